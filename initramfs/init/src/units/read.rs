//! Reading the files a unit is made of (its file, its drop-ins), the
//! `EnvironmentFile=`s it names and the account files `User=` and
//! `Group=` are looked up in, without letting one hold PID 1.
//!
//! PID 1 reads them on its only thread, so a file that never ends or
//! never answers would stop everything: a FIFO blocks `open(2)` until a
//! writer comes, a device node may block or answer forever (and opening
//! one can have effects: `/dev/watchdog` arms), `/dev/zero` never ends.
//! So, as systemd does, only regular files are read, links followed:
//! the kind is checked before opening (a device is never opened), the
//! open is non-blocking (a FIFO swapped in after the check cannot block
//! it), and the opened file is checked again. At most [`MAX_FILE`] bytes
//! are read.

use std::fs::{FileType, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The largest file read: 1 MiB. systemd's own limit is per line
/// (`LONG_LINE_MAX`, 1 MiB); a whole file this size is already hundreds
/// of times the largest real unit (and an `/etc/passwd` of some 15,000
/// accounts), and a cap on the file bounds both the memory and the
/// parsing time.
pub const MAX_FILE: u64 = 1 << 20;

/// The contents of `path` (links followed) as text, or why it cannot be
/// read: missing, not a regular file, larger than [`MAX_FILE`], not
/// UTF-8. The caller names the file.
pub fn read_regular(path: &Path) -> Result<String, String> {
    let before = std::fs::metadata(path).map_err(|e| e.to_string())?;
    check(before.file_type(), before.len())?;
    // O_NONBLOCK: a FIFO put in its place now opens at once instead of
    // waiting for a writer, and is refused below; it changes nothing for
    // a regular file. O_NOCTTY: a terminal put there is not made PID 1's.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| e.to_string())?;
    let opened = file.metadata().map_err(|e| e.to_string())?;
    check(opened.file_type(), opened.len())?;
    let mut bytes = Vec::new();
    // One byte more than allowed: a file that grew since the check is
    // caught without reading all of it.
    file.take(MAX_FILE.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if u64::try_from(bytes.len()).map_or(true, |n| n > MAX_FILE) {
        return Err(too_large());
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())
}

fn check(kind: FileType, len: u64) -> Result<(), String> {
    if !kind.is_file() {
        return Err(format!(
            "{}, not a regular file: refusing to read it",
            describe(kind)
        ));
    }
    if len > MAX_FILE {
        return Err(too_large());
    }
    Ok(())
}

fn too_large() -> String {
    format!(
        "larger than {} KiB, the most PID 1 reads of a configuration file: refusing to read it",
        MAX_FILE / 1024
    )
}

fn describe(kind: FileType) -> &'static str {
    if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_dir() {
        "a directory"
    } else {
        "not a file"
    }
}

#[cfg(test)]
mod tests {
    //! Each test's FIFO has no writer: reading it the ordinary way would
    //! block the test forever, so passing means PID 1 would not block.
    use super::*;
    use crate::units::{load_unit, Context, LoadState};
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    const SYSTEM: &str = "etc/systemd/system";

    fn fifo(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        nix::unistd::mkfifo(path, nix::sys::stat::Mode::S_IRWXU).unwrap();
    }

    /// Runs `f` on another thread and fails if it does not return within
    /// a second: a blocked open would otherwise hang the test run.
    fn quickly<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        let start = Instant::now();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        let out = rx
            .recv_timeout(Duration::from_secs(1))
            .expect("the read blocked");
        assert!(start.elapsed() < Duration::from_secs(1));
        out
    }

    fn load(root: PathBuf, name: &'static str) -> (crate::units::Unit, Vec<String>) {
        quickly(move || {
            let (u, d) = load_unit(&root, name, &Context::default());
            (u, d.iter().map(|d| d.to_string()).collect())
        })
    }

    #[test]
    fn a_fifo_as_the_unit_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        fifo(&dir.path().join(SYSTEM).join("x.service"));
        let (u, d) = load(dir.path().to_path_buf(), "x.service");
        assert!(
            matches!(&u.load, LoadState::Error(m) if m.contains("a FIFO")),
            "{:?}",
            u.load
        );
        assert_eq!(
            d,
            [
                "/etc/systemd/system/x.service: error: cannot read the unit file: \
              a FIFO, not a regular file: refusing to read it"
            ]
        );
    }

    #[test]
    fn a_link_to_a_fifo_is_refused_too() {
        let dir = tempfile::tempdir().unwrap();
        let sys = dir.path().join(SYSTEM);
        fifo(&dir.path().join("srv/pipe"));
        std::fs::create_dir_all(&sys).unwrap();
        std::os::unix::fs::symlink("/srv/pipe", sys.join("x.service")).unwrap();
        let (u, _) = load(dir.path().to_path_buf(), "x.service");
        assert!(matches!(&u.load, LoadState::Error(m) if m.contains("a FIFO")));
    }

    #[test]
    fn a_fifo_as_a_drop_in_is_a_warning_naming_it_and_the_unit_loads() {
        let dir = tempfile::tempdir().unwrap();
        let sys = dir.path().join(SYSTEM);
        std::fs::create_dir_all(&sys).unwrap();
        std::fs::write(sys.join("x.service"), "[Service]\nExecStart=/bin/x\n").unwrap();
        fifo(&sys.join("x.service.d/10-pipe.conf"));
        std::fs::write(
            sys.join("x.service.d/20-env.conf"),
            "[Service]\nEnvironment=A=1\n",
        )
        .unwrap();
        let (u, d) = load(dir.path().to_path_buf(), "x.service");
        assert_eq!(u.load, LoadState::Loaded);
        assert_eq!(
            d,
            [
                "/etc/systemd/system/x.service.d/10-pipe.conf: warning: cannot read the drop-in, \
              ignoring: a FIFO, not a regular file: refusing to read it"
            ]
        );
        // The other drop-in still applies.
        assert_eq!(
            u.service.unwrap().environment,
            [("A".to_string(), "1".to_string())]
        );
    }

    #[test]
    fn an_oversize_unit_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let sys = dir.path().join(SYSTEM);
        std::fs::create_dir_all(&sys).unwrap();
        let mut text = "[Service]\nExecStart=/bin/x\n".to_string();
        while text.len() as u64 <= MAX_FILE {
            text.push_str("# padding padding padding padding padding padding\n");
        }
        std::fs::write(sys.join("big.service"), &text).unwrap();
        // Exactly the limit is still read.
        let at_limit = usize::try_from(MAX_FILE).unwrap();
        std::fs::write(sys.join("edge.service"), text.get(..at_limit).unwrap()).unwrap();

        let (u, d) = load(dir.path().to_path_buf(), "big.service");
        assert!(matches!(u.load, LoadState::Error(_)), "{:?}", u.load);
        assert_eq!(
            d,
            [
                "/etc/systemd/system/big.service: error: cannot read the unit file: \
              larger than 1024 KiB, the most PID 1 reads of a configuration file: \
              refusing to read it"
            ]
        );
        let (u, d) = load(dir.path().to_path_buf(), "edge.service");
        assert_eq!(u.load, LoadState::Loaded, "{d:?}");
    }

    #[test]
    fn devices_and_sockets_are_refused_without_reading() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("s.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let e = read_regular(&sock).unwrap_err();
        assert!(e.starts_with("a socket, not a regular file"), "{e}");
        // Endless if read: refused by kind.
        let e = quickly(|| read_regular(Path::new("/dev/zero"))).unwrap_err();
        assert!(e.starts_with("a character device, not"), "{e}");
        let e = read_regular(dir.path()).unwrap_err();
        assert!(e.starts_with("a directory, not"), "{e}");
        assert!(read_regular(&dir.path().join("missing")).is_err());
    }
}

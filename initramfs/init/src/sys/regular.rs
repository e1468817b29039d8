//! Reading a file as PID 1 may: regular files only, never blocking, and
//! (for the configuration files it parses) at most [`MAX_FILE`] bytes.
//!
//! PID 1 reads on its only thread, so a file that never ends or never
//! answers would stop everything: a FIFO blocks `open(2)` until a writer
//! comes, a device node may block or answer forever (and opening one can
//! have effects: `/dev/watchdog` arms), `/dev/zero` never ends. And the
//! machine can put anything in the `/etc` overlay. So, as systemd does,
//! only regular files are read, links followed: the kind is checked
//! before opening (a device is never opened), the open is non-blocking (a
//! FIFO swapped in after the check cannot block it), and the opened file
//! is checked again.
//!
//! Used by [`super::LinuxSys`]'s `read_file` and `read_config`, the
//! recording double's real-file nodes, and the unit loader (unit files,
//! drop-ins, `EnvironmentFile=`, `User=`/`Group=` lookups). A leaf beside
//! [`super::types`]: it imports nothing else from the crate.

use std::fmt;
use std::fs::{FileType, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use nix::errno::Errno;

use super::types::{errno_text, io_errno};

/// The largest configuration file read: 1 MiB. systemd's own limit is per
/// line (`LONG_LINE_MAX`, 1 MiB); a whole file this size is already
/// hundreds of times the largest real unit (and an `/etc/passwd` of some
/// 15,000 accounts), and a cap on the file bounds both the memory and the
/// parsing time.
pub const MAX_FILE: u64 = 1 << 20;

/// Why a file was not read. Its text does not name the file: the caller
/// does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// Opening, checking or reading it failed (`ENOENT`, `EACCES`, …).
    Errno(Errno),
    /// Not a regular file: what it is instead (`a FIFO`).
    NotRegular(&'static str),
    /// Larger than [`MAX_FILE`].
    TooLarge,
}

impl Unreadable {
    /// The errno `read_file` answers with: `EISDIR` for a folder, `EBADFD`
    /// for another kind (systemd's choice), `EFBIG` for a file too large.
    pub fn errno(self) -> Errno {
        match self {
            Unreadable::Errno(e) => e,
            Unreadable::NotRegular(DIRECTORY) => Errno::EISDIR,
            Unreadable::NotRegular(_) => Errno::EBADFD,
            Unreadable::TooLarge => Errno::EFBIG,
        }
    }

    /// Whether the file is simply not there.
    pub fn is_missing(self) -> bool {
        self == Unreadable::Errno(Errno::ENOENT)
    }
}

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unreadable::Errno(e) => f.write_str(errno_text(*e)),
            Unreadable::NotRegular(kind) => write!(f, "{kind}, not a regular file"),
            Unreadable::TooLarge => write!(
                f,
                "larger than {} KiB, the most PID 1 reads of a configuration file",
                MAX_FILE / 1024
            ),
        }
    }
}

/// What a folder is called in [`Unreadable::NotRegular`].
pub const DIRECTORY: &str = "a directory";

/// The bytes of `path` (links followed) if it is a regular file of at most
/// `limit` bytes (`None`: no limit, for the kernel's own files in `/proc`
/// and `/sys`, which are regular but whose size `stat` does not give).
pub fn read_regular_file(path: &Path, limit: Option<u64>) -> Result<Vec<u8>, Unreadable> {
    let limit = limit.unwrap_or(u64::MAX);
    let io = |e: std::io::Error| Unreadable::Errno(io_errno(&e));
    let before = std::fs::metadata(path).map_err(io)?;
    check(before.file_type(), before.len(), limit)?;
    // O_NONBLOCK: a FIFO put in its place now opens at once instead of
    // waiting for a writer, and is refused below; it changes nothing for
    // a regular file. O_NOCTTY: a terminal put there is not made PID 1's.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io)?;
    let opened = file.metadata().map_err(io)?;
    check(opened.file_type(), opened.len(), limit)?;
    let mut bytes = Vec::new();
    // One byte more than allowed: a file that grew since the check is
    // caught without reading all of it.
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if u64::try_from(bytes.len()).map_or(true, |n| n > limit) {
        return Err(Unreadable::TooLarge);
    }
    Ok(bytes)
}

/// A configuration file's text (at most [`MAX_FILE`] bytes, UTF-8), or
/// why it cannot be read: missing, not a regular file, too large, not
/// UTF-8. The caller names the file.
pub fn read_regular(path: &Path) -> Result<String, String> {
    let bytes = read_regular_file(path, Some(MAX_FILE)).map_err(|e| match e {
        Unreadable::Errno(_) => e.to_string(),
        _ => format!("{e}: refusing to read it"),
    })?;
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())
}

fn check(kind: FileType, len: u64, limit: u64) -> Result<(), Unreadable> {
    if !kind.is_file() {
        return Err(Unreadable::NotRegular(describe(kind)));
    }
    if len > limit {
        return Err(Unreadable::TooLarge);
    }
    Ok(())
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
        DIRECTORY
    } else {
        "not a file"
    }
}

/// For tests here and in the readers' callers: a FIFO with no writer,
/// which an ordinary read would wait on forever, and a runner that fails
/// rather than hangs if it does.
#[cfg(test)]
pub mod test_support {
    use std::path::Path;
    use std::time::{Duration, Instant};

    /// Makes a FIFO (and its parent folders) at `path`.
    pub fn fifo(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        nix::unistd::mkfifo(path, nix::sys::stat::Mode::S_IRWXU).unwrap();
    }

    /// A FIFO named `pipe` in a new temporary folder (removed when the
    /// folder is dropped).
    pub fn temp_fifo() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let pipe = dir.path().join("pipe");
        fifo(&pipe);
        (dir, pipe)
    }

    /// Runs `f` on another thread and fails if it does not return within
    /// a second: a blocked open would otherwise hang the test run.
    pub fn quickly<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
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
}

#[cfg(test)]
mod tests {
    use super::test_support::{quickly, temp_fifo};
    use super::*;

    #[test]
    fn fifos_and_links_to_them_are_refused_without_blocking() {
        let (dir, pipe) = temp_fifo();
        std::os::unix::fs::symlink(&pipe, dir.path().join("link")).unwrap();
        for name in ["pipe", "link"] {
            let path = dir.path().join(name);
            let got = quickly(move || read_regular_file(&path, Some(MAX_FILE)));
            assert_eq!(got, Err(Unreadable::NotRegular("a FIFO")), "{name}");
            let path = dir.path().join(name);
            assert_eq!(
                quickly(move || read_regular_file(&path, None)).map_err(Unreadable::errno),
                Err(Errno::EBADFD)
            );
        }
        assert_eq!(
            read_regular(&pipe).unwrap_err(),
            "a FIFO, not a regular file: refusing to read it"
        );
    }

    #[test]
    fn devices_sockets_and_folders_are_refused_without_reading() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("s.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let e = read_regular(&sock).unwrap_err();
        assert!(e.starts_with("a socket, not a regular file"), "{e}");
        // Endless if read: refused by kind, with or without a limit.
        let e = quickly(|| read_regular_file(Path::new("/dev/zero"), None)).unwrap_err();
        assert_eq!(e, Unreadable::NotRegular("a character device"));
        assert_eq!(e.errno(), Errno::EBADFD);
        let e = read_regular_file(dir.path(), None).unwrap_err();
        assert_eq!(e.to_string(), "a directory, not a regular file");
        assert_eq!(e.errno(), Errno::EISDIR);
        let e = read_regular_file(&dir.path().join("missing"), None).unwrap_err();
        assert!(e.is_missing());
        assert_eq!(e.to_string(), "No such file or directory");
    }

    #[test]
    fn the_limit_is_inclusive_and_none_means_no_limit() {
        let dir = tempfile::tempdir().unwrap();
        let at = usize::try_from(MAX_FILE).unwrap();
        let edge = dir.path().join("edge");
        std::fs::write(&edge, vec![b'a'; at]).unwrap();
        assert_eq!(read_regular_file(&edge, Some(MAX_FILE)).unwrap().len(), at);
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; at + 1]).unwrap();
        let e = read_regular_file(&big, Some(MAX_FILE)).unwrap_err();
        assert_eq!(e, Unreadable::TooLarge);
        assert_eq!(e.errno(), Errno::EFBIG);
        assert_eq!(read_regular_file(&big, None).unwrap().len(), at + 1);
        // The kernel's files report no size and are read whole.
        assert!(!read_regular_file(Path::new("/proc/self/mountinfo"), None)
            .unwrap()
            .is_empty());
        std::fs::write(&edge, [0xff, 0xfe]).unwrap();
        assert_eq!(read_regular(&edge).unwrap_err(), "not UTF-8 text");
    }
}

//! Replacing a file so that a reader, a second writer or a power cut sees
//! the old content or the new, never a mix: write a temporary file in the
//! same folder, then rename it over the target.
//!
//! How far a power cut is survived is the caller's choice, named at each
//! call ([`Durability`]): state a machine acts on after a reboot must be
//! fsynced (file before the rename, folder after), build outputs on the
//! host need not pay for it.
//!
//! Each call writes its own temporary name (process ID and a counter,
//! created exclusively), so two writers of one file never write into each
//! other's temporary file: the last rename wins whole.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// How far the new content must have gone when [`write_atomic`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Readers see the old file or the new one; after a power cut either
    /// may be there (no fsync). For files that are rebuilt anyway.
    Atomic,
    /// As `Atomic`, and the new file is on the medium when the call
    /// returns: the file is fsynced before the rename and its folder after
    /// it.
    Durable,
}

/// Replaces `path` with `bytes`, mode 0644 (see [`write_atomic_mode`]).
pub fn write_atomic(path: &Path, bytes: &[u8], durability: Durability) -> io::Result<()> {
    write_atomic_mode(path, bytes, 0o644, durability)
}

/// Replaces `path` with `bytes`, giving the new file `mode` (exactly: the
/// umask does not apply). The folder must exist. On failure `path` is
/// untouched and the temporary file removed; the error names the file.
pub fn write_atomic_mode(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    durability: Durability,
) -> io::Result<()> {
    let named = |what: &str, p: &Path, e: io::Error| {
        io::Error::new(e.kind(), format!("{what} {}: {e}", p.display()))
    };
    let tmp = temp_path(path)?;
    let create = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode & 0o7777)
            // A symlink planted at the temporary name is refused, not
            // followed; the descriptor never leaks into a program PID 1
            // starts.
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
    };
    let written = (|| {
        let mut f = match create() {
            // Left by an earlier process with this PID that died before
            // its rename (PID 1 is PID 1 at every boot): no live writer
            // has this name, so it goes.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                std::fs::remove_file(&tmp).and_then(|()| create())
            }
            other => other,
        }
        .map_err(|e| named("creating", &tmp, e))?;
        f.write_all(bytes).map_err(|e| named("writing", &tmp, e))?;
        // The mode given to open is filtered by the umask.
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode & 0o7777))
            .map_err(|e| named("setting the mode of", &tmp, e))?;
        if durability == Durability::Durable {
            f.sync_all().map_err(|e| named("syncing", &tmp, e))?;
        }
        std::fs::rename(&tmp, path).map_err(|e| named("renaming into", path, e))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return written;
    }
    if durability == Durability::Durable {
        let dir = folder(path);
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| named("syncing the folder", dir, e))?;
    }
    Ok(())
}

/// The folder `path` is in (`.` for a bare file name).
fn folder(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `.<name>.<pid>.<n>.tmp` next to `path`: hidden, and unique to this call.
/// The counter of [`temp_path`].
static NEXT: AtomicU64 = AtomicU64::new(0);

fn temp_path(path: &Path) -> io::Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a file name", path.display()),
        )
    })?;
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    tmp.push(format!(
        ".{}.{}.tmp",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    Ok(folder(path).join(tmp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_whole_with_the_mode_asked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        for durability in [Durability::Atomic, Durability::Durable] {
            std::fs::write(&p, b"old").unwrap();
            write_atomic_mode(&p, b"new", 0o600, durability).unwrap();
            assert_eq!(std::fs::read(&p).unwrap(), b"new");
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        write_atomic(&p, b"x", Durability::Durable).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        // Nothing left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    /// A temporary file left by a crash of a process with the same PID
    /// (PID 1 at every boot) does not stop the next write.
    #[test]
    fn a_stale_temporary_file_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("conf");
        let next = NEXT.load(Ordering::Relaxed);
        for n in next..next + 64 {
            let stale = dir
                .path()
                .join(format!(".conf.{}.{n}.tmp", std::process::id()));
            std::fs::write(stale, b"half").unwrap();
        }
        write_atomic(&p, b"whole", Durability::Durable).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"whole");
    }

    #[test]
    fn a_failure_leaves_the_file_and_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("missing-folder/conf");
        let e = write_atomic(&p, b"x", Durability::Durable).unwrap_err();
        assert!(e.to_string().contains("missing-folder"), "{e}");
        // Renaming over a folder fails: the folder stays, no temporary.
        let d = dir.path().join("a-dir");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("inside"), b"keep").unwrap();
        assert!(write_atomic(&d, b"x", Durability::Atomic).is_err());
        assert_eq!(std::fs::read(d.join("inside")).unwrap(), b"keep");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// Two writers of one file never share a temporary file: every read
    /// sees one writer's content whole.
    #[test]
    fn concurrent_writers_never_mix() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("shared");
        let a = vec![b'a'; 64 << 10];
        let b = vec![b'b'; 64 << 10];
        std::thread::scope(|s| {
            for content in [&a, &b] {
                let p = &p;
                s.spawn(move || {
                    for _ in 0..50 {
                        write_atomic(p, content, Durability::Atomic).unwrap();
                    }
                });
            }
            s.spawn(|| {
                for _ in 0..200 {
                    if let Ok(got) = std::fs::read(&p) {
                        assert!(got == a || got == b, "a mixed file of {} bytes", got.len());
                    }
                }
            });
        });
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

//! Filesystem operations every step shares: mapping machine paths under
//! the root, creating directories, atomic replacement, appending,
//! ownership and symlinks.
//!
//! Symlinks: the applier runs as root and writes into directories users
//! can write to (their home), so it never follows a symlink below the
//! root. Every operation takes the root and refuses a path whose existing
//! components between the root and the final name are symlinks (or not
//! directories); final files are opened with `O_NOFOLLOW`, and their mode
//! and owner are set on the open descriptor, never by path. The root
//! itself may be a symlink.
//!
//! Mode and owner: `fchown` first, then `fchmod` — a chown clears the
//! setuid and setgid bits, so the other order would lose them.
//!
//! Ownership policy: a failed `chown` is an error, except when the process
//! is not root and the error is "permission denied" — then it is ignored,
//! so the applier can be exercised on a developer's machine without
//! privileges. On the machine the applier runs as root, where every chown
//! failure is real and fails its step.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::OFlag;

/// `path` (absolute on the machine) as seen under `root`.
pub(crate) fn under_root(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// `path` as the machine sees it (for messages): `/` + the part below `root`.
fn machine_path(root: &Path, path: &Path) -> String {
    match path.strip_prefix(root) {
        Ok(rel) => format!("/{}", rel.display()),
        Err(_) => path.display().to_string(),
    }
}

/// A uid and/or gid to give a file; `None` leaves that id as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Owner {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

impl Owner {
    pub(crate) fn ids(uid: u32, gid: u32) -> Owner {
        Owner {
            uid: Some(uid),
            gid: Some(gid),
        }
    }
}

fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Gives the open `file` (`path` names it in messages) `owner`, then `mode`
/// — in that order, so setuid/setgid bits survive (see the module's
/// ownership policy).
fn set_owner_and_mode(file: &File, path: &Path, owner: Owner, mode: u32) -> Result<(), String> {
    if owner.uid.is_some() || owner.gid.is_some() {
        match std::os::unix::fs::fchown(file, owner.uid, owner.gid) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied && !running_as_root() => {}
            Err(e) => {
                return Err(format!(
                    "cannot change the owner of {} to {}:{}: {e}",
                    path.display(),
                    owner.uid.map_or("-".to_string(), |u| u.to_string()),
                    owner.gid.map_or("-".to_string(), |g| g.to_string()),
                ))
            }
        }
    }
    file.set_permissions(Permissions::from_mode(mode))
        .map_err(|e| format!("cannot set mode {mode:04o} on {}: {e}", path.display()))
}

/// Opens the directory `dir` itself, never through a symlink.
fn open_dir(dir: &Path) -> Result<File, String> {
    OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
        .open(dir)
        .map_err(|e| format!("cannot open directory {}: {e}", dir.display()))
}

/// The components of `path` below `root`, refusing `..` and paths that are
/// not under `root`.
fn below_root<'p>(root: &Path, path: &'p Path) -> Result<Vec<&'p std::ffi::OsStr>, String> {
    let rel = path
        .strip_prefix(root)
        .map_err(|_| format!("{} is not under {}", path.display(), root.display()))?;
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => parts.push(n),
            Component::CurDir => {}
            _ => {
                return Err(format!(
                    "refusing {}: the path has a \"..\" component",
                    machine_path(root, path)
                ))
            }
        }
    }
    Ok(parts)
}

/// Creates the directory `dir` (under `root`) and its missing parents with
/// mode 0755 (exactly, whatever the umask). Existing directories are left
/// as they are; an existing component that is a symlink or not a directory
/// is refused, naming it.
pub(crate) fn create_dirs(root: &Path, dir: &Path) -> Result<(), String> {
    let mut current = root.to_path_buf();
    for part in below_root(root, dir)? {
        current.push(part);
        match fs::symlink_metadata(&current) {
            Ok(m) if m.is_dir() => continue,
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!(
                    "refusing {}: {} is a symlink",
                    machine_path(root, dir),
                    machine_path(root, &current)
                ))
            }
            Ok(_) => {
                return Err(format!(
                    "refusing {}: {} exists and is not a directory",
                    machine_path(root, dir),
                    machine_path(root, &current)
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot inspect {}: {e}", current.display())),
        }
        match fs::DirBuilder::new().mode(0o755).create(&current) {
            Ok(()) => {
                let d = open_dir(&current)?;
                set_owner_and_mode(&d, &current, Owner::default(), 0o755)?;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // Created meanwhile: accept only a real directory.
                if !fs::symlink_metadata(&current).is_ok_and(|m| m.is_dir()) {
                    return Err(format!(
                        "refusing {}: {} is not a directory",
                        machine_path(root, dir),
                        machine_path(root, &current)
                    ));
                }
            }
            Err(e) => {
                return Err(format!(
                    "cannot create directory {}: {e}",
                    current.display()
                ))
            }
        }
    }
    Ok(())
}

/// Creates the parents of `path` (under `root`), see [`create_dirs`];
/// returns the parent directory.
fn create_parents<'p>(root: &Path, path: &'p Path) -> Result<&'p Path, String> {
    let dir = path
        .parent()
        .ok_or_else(|| format!("{} has no parent directory", path.display()))?;
    if path.file_name().is_none() || below_root(root, path)?.is_empty() {
        return Err(format!("{} has no file name", path.display()));
    }
    create_dirs(root, dir)?;
    Ok(dir)
}

/// Makes sure `dir` (under `root`) is a real directory (not a symlink)
/// with `mode` and `owner`, creating it (and its parents, 0755) if
/// missing. Returns whether it was created.
pub(crate) fn ensure_private_dir(
    root: &Path,
    dir: &Path,
    mode: u32,
    owner: Owner,
) -> Result<bool, String> {
    create_parents(root, dir)?;
    let created = match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => false,
        Ok(_) => {
            return Err(format!(
                "{} exists but is not a directory (or is a symlink)",
                dir.display()
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .mode(mode)
                .create(dir)
                .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))?;
            true
        }
        Err(e) => return Err(format!("cannot inspect {}: {e}", dir.display())),
    };
    let d = open_dir(dir)?;
    set_owner_and_mode(&d, dir, owner, mode)?;
    Ok(created)
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh name next to `path`, starting with a dot.
fn temp_path(path: &Path) -> Result<PathBuf, String> {
    let dir = path
        .parent()
        .ok_or_else(|| format!("{} has no parent directory", path.display()))?;
    let name = path
        .file_name()
        .ok_or_else(|| format!("{} has no file name", path.display()))?;
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    Ok(dir.join(format!(
        ".{}.slipway-{}-{n}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

fn sync_dir(dir: &Path) -> Result<(), String> {
    open_dir(dir)?
        .sync_all()
        .map_err(|e| format!("cannot sync directory {}: {e}", dir.display()))
}

/// Replaces `path` (under `root`) atomically: a temporary file in the same
/// directory is written, synced, given `owner` and `mode`, then renamed
/// over `path` (a symlink there is replaced, never followed). Missing
/// parents are created 0755. On failure `path` is untouched.
pub(crate) fn write_atomic(
    root: &Path,
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Owner,
) -> Result<(), String> {
    let dir = create_parents(root, path)?;
    if fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        return Err(format!("{} is a directory", path.display()));
    }
    let tmp = temp_path(path)?;
    let written = fill_temp(&tmp, bytes, mode, owner).and_then(|()| {
        fs::rename(&tmp, path).map_err(|e| format!("cannot rename into {}: {e}", path.display()))
    });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

fn fill_temp(tmp: &Path, bytes: &[u8], mode: u32, owner: Owner) -> Result<(), String> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(OFlag::O_NOFOLLOW.bits())
        .open(tmp)
        .map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    f.write_all(bytes)
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    set_owner_and_mode(&f, tmp, owner, mode)?;
    f.sync_all()
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))
}

/// Appends to `path` (under `root`; creating it, and parents 0755), then
/// applies `owner` and `mode`. Not atomic: appending cannot be. A symlink,
/// a file that is not a regular file, or one with several hard links is
/// refused.
pub(crate) fn append(
    root: &Path,
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Owner,
) -> Result<(), String> {
    create_parents(root, path)?;
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(mode & 0o777)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(code) if code == nix::errno::Errno::ELOOP as i32 => {
                format!("refusing to append to {}: it is a symlink", path.display())
            }
            _ => format!("cannot open {} for appending: {e}", path.display()),
        })?;
    let m = f
        .metadata()
        .map_err(|e| format!("cannot inspect {}: {e}", path.display()))?;
    if !m.is_file() {
        return Err(format!(
            "refusing to append to {}: not a regular file",
            path.display()
        ));
    }
    if m.nlink() > 1 {
        return Err(format!(
            "refusing to append to {}: it has {} hard links",
            path.display(),
            m.nlink()
        ));
    }
    f.write_all(bytes)
        .map_err(|e| format!("cannot append to {}: {e}", path.display()))?;
    set_owner_and_mode(&f, path, owner, mode)?;
    f.sync_all()
        .map_err(|e| format!("cannot append to {}: {e}", path.display()))
}

/// Points `link` (under `root`) at `target` atomically (a temporary
/// symlink renamed over whatever file or symlink was there; a directory is
/// refused).
pub(crate) fn symlink_atomic(root: &Path, target: &str, link: &Path) -> Result<(), String> {
    let dir = create_parents(root, link)?;
    if fs::symlink_metadata(link).is_ok_and(|m| m.is_dir()) {
        return Err(format!("{} is a directory", link.display()));
    }
    let tmp = temp_path(link)?;
    let made = std::os::unix::fs::symlink(target, &tmp)
        .map_err(|e| format!("cannot create symlink {}: {e}", tmp.display()))
        .and_then(|()| {
            fs::rename(&tmp, link)
                .map_err(|e| format!("cannot rename into {}: {e}", link.display()))
        });
    if let Err(e) = made {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

/// Removes `path` (under `root`) if it exists — a symlink itself, never its
/// target. A directory is refused. Returns whether something was removed.
pub(crate) fn remove_if_present(root: &Path, path: &Path) -> Result<bool, String> {
    let parts = below_root(root, path)?;
    let mut current = root.to_path_buf();
    for part in parts.iter().take(parts.len().saturating_sub(1)) {
        current.push(part);
        match fs::symlink_metadata(&current) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(format!(
                    "refusing {}: {} is a symlink or not a directory",
                    machine_path(root, path),
                    machine_path(root, &current)
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(format!("cannot inspect {}: {e}", current.display())),
        }
    }
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Err(format!("{} is a directory", path.display())),
        Ok(_) => match fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(format!("cannot remove {}: {e}", path.display())),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(format!("cannot inspect {}: {e}", path.display())),
    }
}

/// The text of `path`, `None` if it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>, String> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// What [`read_user_file`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UserFile {
    Missing,
    Text(String),
    /// Not read, and why (for a note in the step).
    Skipped(String),
}

/// Reads a file in a directory a user controls, without trusting it: the
/// file is opened with `O_NOFOLLOW | O_NONBLOCK` (a symlink or a FIFO
/// cannot redirect or hang the read) and accepted only if, on the open
/// descriptor, it is a regular file with a single link, owned by `uid` or
/// root, at most `max` bytes, in UTF-8. Anything else is `Skipped`.
pub(crate) fn read_user_file(path: &Path, uid: u32, max: u64) -> Result<UserFile, String> {
    let skip = |why: &str| {
        Ok(UserFile::Skipped(format!(
            "{} {why}; ignored",
            path.display()
        )))
    };
    let mut f = match OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(UserFile::Missing),
        Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) => {
            return skip("is a symlink")
        }
        Err(e) => return Err(format!("cannot open {}: {e}", path.display())),
    };
    let m = f
        .metadata()
        .map_err(|e| format!("cannot inspect {}: {e}", path.display()))?;
    if !m.is_file() {
        return skip("is not a regular file");
    }
    if m.uid() != uid && m.uid() != 0 {
        return skip(&format!("is owned by uid {}, not {uid} or root", m.uid()));
    }
    if m.nlink() != 1 {
        return skip(&format!("has {} hard links", m.nlink()));
    }
    if m.len() > max {
        return skip(&format!("is larger than {max} bytes"));
    }
    let mut bytes = Vec::new();
    (&mut f)
        .take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > max {
        return skip(&format!("is larger than {max} bytes"));
    }
    match String::from_utf8(bytes) {
        Ok(s) => Ok(UserFile::Text(s)),
        Err(_) => skip("is not UTF-8 text"),
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_creates_parents_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/c.txt");
        write_atomic(dir.path(), &path, b"one", 0o640, Owner::default()).unwrap();
        write_atomic(dir.path(), &path, b"two", 0o600, Owner::default()).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, 0o600);
        assert_eq!(
            fs::metadata(dir.path().join("a/b")).unwrap().mode() & 0o7777,
            0o755
        );
        // No temporary files are left behind.
        assert_eq!(fs::read_dir(dir.path().join("a/b")).unwrap().count(), 1);
    }

    #[test]
    fn atomic_write_refuses_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_atomic(dir.path(), dir.path(), b"x", 0o644, Owner::default()).is_err());
    }

    #[test]
    fn symlinks_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("x/l");
        symlink_atomic(dir.path(), "/dev/null", &link).unwrap();
        symlink_atomic(dir.path(), "../other", &link).unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("../other"));
    }

    #[test]
    fn symlinks_below_the_root_are_refused_but_the_root_may_be_one() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        fs::create_dir_all(real.join("home/alice")).unwrap();
        fs::create_dir_all(real.join("etc")).unwrap();
        std::os::unix::fs::symlink(real.join("etc"), real.join("home/alice/.config")).unwrap();
        let e = write_atomic(
            &real,
            &real.join("home/alice/.config/x/evil"),
            b"x",
            0o644,
            Owner::default(),
        )
        .unwrap_err();
        assert!(e.contains("/home/alice/.config is a symlink"), "{e}");
        assert!(!real.join("etc/x").exists());
        // The root itself may be reached through a symlink.
        let root_link = dir.path().join("root-link");
        std::os::unix::fs::symlink(&real, &root_link).unwrap();
        write_atomic(
            &root_link,
            &root_link.join("etc/ok"),
            b"x",
            0o644,
            Owner::default(),
        )
        .unwrap();
        assert_eq!(fs::read(real.join("etc/ok")).unwrap(), b"x");
        // Removing a symlinked file removes the link, not its target.
        std::os::unix::fs::symlink(real.join("etc/ok"), real.join("home/alice/l")).unwrap();
        assert!(remove_if_present(&real, &real.join("home/alice/l")).unwrap());
        assert!(real.join("etc/ok").exists());
        assert!(!remove_if_present(&real, &real.join("home/alice/l")).unwrap());
    }
}

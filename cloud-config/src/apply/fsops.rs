//! Filesystem operations every step shares: mapping machine paths under
//! the root, creating directories, atomic replacement, appending,
//! ownership and symlinks.
//!
//! Ownership policy: a failed `chown` is an error, except when the process
//! is not root and the error is "permission denied" — then it is ignored,
//! so the applier can be exercised on a developer's machine without
//! privileges. On the machine the applier runs as root, where every chown
//! failure is real and fails its step.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// `path` (absolute on the machine) as seen under `root`.
pub(crate) fn under_root(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
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

/// Changes ownership without following a symlink (see the module's policy).
pub(crate) fn chown(path: &Path, owner: Owner) -> Result<(), String> {
    if owner.uid.is_none() && owner.gid.is_none() {
        return Ok(());
    }
    match std::os::unix::fs::lchown(path, owner.uid, owner.gid) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied && !running_as_root() => Ok(()),
        Err(e) => Err(format!(
            "cannot change the owner of {} to {}:{}: {e}",
            path.display(),
            owner.uid.map_or("-".to_string(), |u| u.to_string()),
            owner.gid.map_or("-".to_string(), |g| g.to_string()),
        )),
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    fs::set_permissions(path, Permissions::from_mode(mode))
        .map_err(|e| format!("cannot set mode {mode:04o} on {}: {e}", path.display()))
}

/// Creates `dir` and its missing parents with mode 0755 (exactly, whatever
/// the umask). Existing directories are left as they are.
pub(crate) fn create_dirs(dir: &Path) -> Result<(), String> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs(parent)?;
    }
    match fs::DirBuilder::new().mode(0o755).create(dir) {
        Ok(()) => set_mode(dir, 0o755),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(format!("cannot create directory {}: {e}", dir.display())),
    }
}

/// Makes sure `dir` is a real directory (not a symlink) with `mode` and
/// `owner`, creating it (and its parents, 0755) if missing. Returns whether
/// it was created.
pub(crate) fn ensure_private_dir(dir: &Path, mode: u32, owner: Owner) -> Result<bool, String> {
    let created = match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => false,
        Ok(_) => {
            return Err(format!(
                "{} exists but is not a directory (or is a symlink)",
                dir.display()
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent() {
                create_dirs(parent)?;
            }
            fs::DirBuilder::new()
                .mode(mode)
                .create(dir)
                .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))?;
            true
        }
        Err(e) => return Err(format!("cannot inspect {}: {e}", dir.display())),
    };
    set_mode(dir, mode)?;
    chown(dir, owner)?;
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
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("cannot sync directory {}: {e}", dir.display()))
}

/// Replaces `path` atomically: a temporary file in the same directory is
/// written, synced, given `mode` and `owner`, then renamed over `path`.
/// Missing parents are created 0755. On failure `path` is untouched.
pub(crate) fn write_atomic(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Owner,
) -> Result<(), String> {
    let dir = path
        .parent()
        .ok_or_else(|| format!("{} has no parent directory", path.display()))?;
    create_dirs(dir)?;
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
        .open(tmp)
        .map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    set_mode(tmp, mode)?;
    chown(tmp, owner)
}

/// Appends to `path` (creating it, and parents 0755), then applies `mode`
/// and `owner`. Not atomic: appending cannot be.
pub(crate) fn append(path: &Path, bytes: &[u8], mode: u32, owner: Owner) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        create_dirs(dir)?;
    }
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("cannot open {} for appending: {e}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("cannot append to {}: {e}", path.display()))?;
    set_mode(path, mode)?;
    chown(path, owner)
}

/// Points `link` at `target` atomically (a temporary symlink renamed over
/// whatever file or symlink was there; a directory is refused).
pub(crate) fn symlink_atomic(target: &str, link: &Path) -> Result<(), String> {
    let dir = link
        .parent()
        .ok_or_else(|| format!("{} has no parent directory", link.display()))?;
    create_dirs(dir)?;
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

/// The text of `path`, `None` if it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>, String> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn atomic_write_creates_parents_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/c.txt");
        write_atomic(&path, b"one", 0o640, Owner::default()).unwrap();
        write_atomic(&path, b"two", 0o600, Owner::default()).unwrap();
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
        assert!(write_atomic(dir.path(), b"x", 0o644, Owner::default()).is_err());
    }

    #[test]
    fn symlinks_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("x/l");
        symlink_atomic("/dev/null", &link).unwrap();
        symlink_atomic("../other", &link).unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("../other"));
    }
}

//! Unpacking a package's data tar into a directory, refusing any entry that
//! would write outside it.
//!
//! `tar::Archive::unpack` is not used: it applies owners and times we do
//! not want, and we need to replace files left by an earlier package and
//! report escapes as typed errors.

use std::collections::HashSet;
use std::fs::{self, File, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use tar::EntryType;

use super::DebError;

/// What [`super::extract`] created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtractSummary {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    /// Bytes of regular-file content written.
    pub bytes: u64,
    /// Entries not created (device nodes, FIFOs), as paths in the archive.
    pub skipped: Vec<PathBuf>,
}

/// The path of an archive entry relative to the destination: `./` and `.`
/// components dropped; `..` and absolute paths refused. Empty for the
/// archive's root entry (`./`).
pub(super) fn archive_relative(path: &Path) -> Result<PathBuf, &'static str> {
    let mut relative = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::Normal(c) => relative.push(c),
            Component::ParentDir => return Err("path contains `..`"),
            Component::RootDir | Component::Prefix(_) => return Err("path is absolute"),
        }
    }
    Ok(relative)
}

pub(super) fn unpack(
    deb: &Path,
    data_tar: &mut dyn Read,
    dest: &Path,
) -> Result<ExtractSummary, DebError> {
    let mut unpacker = Unpacker {
        deb,
        dest,
        real_dirs: HashSet::new(),
        dir_modes: Vec::new(),
        summary: ExtractSummary::default(),
        buffer: vec![0; 256 * 1024],
    };
    fs::create_dir_all(dest).map_err(unpacker.io("creating", dest))?;
    let mut archive = tar::Archive::new(data_tar);
    for entry in archive.entries().map_err(unpacker.read_error())? {
        let entry = entry.map_err(unpacker.read_error())?;
        unpacker.entry(entry)?;
    }
    unpacker.apply_dir_modes()?;
    Ok(unpacker.summary)
}

struct Unpacker<'a> {
    deb: &'a Path,
    dest: &'a Path,
    /// Relative paths known to be real directories (not symlinks) under
    /// `dest`, so each parent is checked once rather than per entry.
    real_dirs: HashSet<PathBuf>,
    /// Directory modes, applied once everything is written so a read-only
    /// directory does not stop its own children from being created.
    dir_modes: Vec<(PathBuf, u32)>,
    summary: ExtractSummary,
    /// Reused for every file's content.
    buffer: Vec<u8>,
}

impl Unpacker<'_> {
    fn entry(&mut self, mut entry: tar::Entry<'_, &mut dyn Read>) -> Result<(), DebError> {
        let raw_path = entry.path().map_err(self.read_error())?.into_owned();
        let relative = self.relative(&raw_path)?;
        if relative.as_os_str().is_empty() {
            return Ok(()); // `./`: dest itself, whose mode is the caller's
        }
        let mode = entry.header().mode().map_err(self.read_error())? & 0o7777;
        let kind = entry.header().entry_type();
        let target = self.dest.join(&relative);
        match kind {
            EntryType::Directory => {
                self.real_dir(&relative, &raw_path)?;
                self.dir_modes.push((target, mode));
                self.summary.dirs += 1;
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.parents(&relative, &raw_path)?;
                self.remove_existing(&target)?;
                let mut file = File::create(&target).map_err(self.io("creating", &target))?;
                let written = self.copy(&mut entry, &mut file, &target)?;
                file.set_permissions(Permissions::from_mode(mode))
                    .map_err(self.io("setting the mode of", &target))?;
                self.summary.files += 1;
                self.summary.bytes += written;
            }
            EntryType::Symlink => {
                let link = self.link_name(&entry)?;
                self.parents(&relative, &raw_path)?;
                self.remove_existing(&target)?;
                // The target is stored as written: it is resolved inside the
                // booted image, never on the build host.
                symlink(&link, &target).map_err(self.io("creating symlink", &target))?;
                self.summary.symlinks += 1;
            }
            EntryType::Link => {
                let link = self.link_name(&entry)?;
                let source_relative = self.relative(&link)?;
                self.parents(&source_relative, &link)?;
                self.parents(&relative, &raw_path)?;
                self.remove_existing(&target)?;
                fs::hard_link(self.dest.join(&source_relative), &target)
                    .map_err(self.io("creating hard link", &target))?;
                self.summary.hardlinks += 1;
            }
            _ => self.summary.skipped.push(raw_path),
        }
        Ok(())
    }

    /// Copies one file's content. Not `io::copy`: its error does not say
    /// whether the package (read) or the destination (write) failed.
    fn copy(&mut self, from: &mut impl Read, to: &mut File, path: &Path) -> Result<u64, DebError> {
        let mut total = 0;
        loop {
            let n = match from.read(&mut self.buffer) {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.read_error()(e)),
            };
            to.write_all(&self.buffer[..n])
                .map_err(self.io("writing", path))?;
            total += n as u64;
        }
    }

    fn relative(&self, raw_path: &Path) -> Result<PathBuf, DebError> {
        archive_relative(raw_path).map_err(|reason| self.unsafe_path(raw_path, reason))
    }

    fn link_name(&self, entry: &tar::Entry<'_, &mut dyn Read>) -> Result<PathBuf, DebError> {
        let link = entry.link_name().map_err(self.read_error())?;
        link.map(|l| l.into_owned()).ok_or_else(|| DebError::Io {
            action: "reading",
            path: self.deb.to_path_buf(),
            source: io::Error::new(io::ErrorKind::InvalidData, "link entry without a target"),
        })
    }

    /// Makes every parent of `relative` a real directory under `dest`.
    fn parents(&mut self, relative: &Path, raw_path: &Path) -> Result<(), DebError> {
        match relative.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => self.real_dir(parent, raw_path),
            _ => Ok(()),
        }
    }

    /// Makes `relative` and its parents real directories, creating what is
    /// missing. A symlink on the way is refused: following it could write
    /// outside `dest` (an absolute link resolves on the build host).
    fn real_dir(&mut self, relative: &Path, raw_path: &Path) -> Result<(), DebError> {
        if self.real_dirs.contains(relative) {
            return Ok(());
        }
        if let Some(parent) = relative.parent() {
            if !parent.as_os_str().is_empty() {
                self.real_dir(parent, raw_path)?;
            }
        }
        let path = self.dest.join(relative);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(self.unsafe_path(raw_path, "path goes through a symlink"));
            }
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                let source = io::Error::new(io::ErrorKind::AlreadyExists, "not a directory");
                return Err(self.io("creating directory", &path)(source));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&path).map_err(self.io("creating directory", &path))?;
            }
            Err(e) => return Err(self.io("inspecting", &path)(e)),
        }
        self.real_dirs.insert(relative.to_path_buf());
        Ok(())
    }

    /// Removes a file or symlink already at `path`, so that creating the new
    /// entry never writes through a symlink. Directories stay (creating a
    /// file over one then fails with a clear error).
    fn remove_existing(&self, path: &Path) -> Result<(), DebError> {
        match fs::symlink_metadata(path) {
            Ok(meta) if !meta.is_dir() => fs::remove_file(path).map_err(self.io("replacing", path)),
            _ => Ok(()),
        }
    }

    fn apply_dir_modes(&mut self) -> Result<(), DebError> {
        for (path, mode) in self.dir_modes.iter().rev() {
            fs::set_permissions(path, Permissions::from_mode(*mode))
                .map_err(self.io("setting the mode of", path))?;
        }
        Ok(())
    }

    fn unsafe_path(&self, raw_path: &Path, reason: &'static str) -> DebError {
        DebError::UnsafePath {
            deb: self.deb.to_path_buf(),
            entry: raw_path.to_path_buf(),
            reason,
        }
    }

    fn read_error(&self) -> impl Fn(io::Error) -> DebError + '_ {
        super::read_error(self.deb)
    }

    fn io<'p>(&self, action: &'static str, path: &'p Path) -> impl Fn(io::Error) -> DebError + 'p {
        move |source| DebError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_paths_are_made_relative_or_refused() {
        assert_eq!(
            archive_relative(Path::new("./usr/bin/x")),
            Ok("usr/bin/x".into())
        );
        assert_eq!(archive_relative(Path::new("./")), Ok(PathBuf::new()));
        assert_eq!(
            archive_relative(Path::new("usr/./lib")),
            Ok("usr/lib".into())
        );
        assert!(archive_relative(Path::new("./usr/../../etc")).is_err());
        assert!(archive_relative(Path::new("/etc/passwd")).is_err());
    }
}

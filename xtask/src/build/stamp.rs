//! The up-to-date check of `build-image`: a build records a fingerprint of
//! everything it read and the size, mtime and inode of every file it wrote
//! ([`STAMP`], in the output folder, written last before the rename); the
//! next build with the same fingerprint and the same files says "up to
//! date" and writes nothing.
//!
//! The fingerprint is a list of named parts, so a rebuild can say what
//! changed. What goes into it, and why that is everything that decides the
//! bytes (the build has no clock, no randomness and no host path in it):
//!
//! - `builder`: the sha256 of the running executable (`current_exe`): every
//!   format writer (GPT, FAT, squashfs, verity, cpio, payload) and every
//!   rule of the builder is code linked into it, liblzma and zstd included
//!   (statically; only libc and libgcc are shared, and no output byte goes
//!   through them). Hashing it costs more than the rest of the check (150
//!   MB for a debug build: 0.1 s idle, 0.7 s on a loaded machine), so the
//!   stamp keeps the executable's size, mtime and inode next to its hash,
//!   and the hash is reused while they match: cargo writes a new
//!   executable for every change, and the outputs are trusted the same way.
//! - `board`, `common`: every file under `board/<name>/` (`board.toml`,
//!   `inputs.lock`, read after the inputs are resolved, since
//!   `--update-inputs` rewrites it) and `board/common/` (`packages.toml`,
//!   the static root): path, kind, mode and content.
//! - `inputs`: the pinned packages' sha256 as resolved. The `.deb` files
//!   are checked against them by the inputs phase every build; their
//!   unpacked folders are trusted by marker, as the full build trusts them.
//!   A kernel given with `--kernel/--modules` is not fingerprinted (its
//!   modules folder would have to be read whole): such a build always runs.
//! - `guest:<path>`: the sha256 of each guest program, after the guest
//!   phase's `cargo build` made them current.
//! - `root`: the digest of the common root as the build puts it on the
//!   image, with the update keys (the signing key's public half and
//!   `$SLIPWAY_TRUSTED_KEYS`) and the caller's extra files.
//! - `signing-key`: the public key of the key that signs `update.payload`;
//!   ed25519 signatures are a function of the secret key and the message,
//!   and the public key names the secret one.
//! - `options`: board, version, `SOURCE_DATE_EPOCH`, init kind, verity,
//!   qcow2.
//! - `tool:mke2fs`, `tool:qemu-img`: the versions of the two host programs
//!   whose output is part of the image (`mke2fs -V` names the ext2fs
//!   library too); `busybox --list-full` runs the pinned package's busybox.
//!
//! - Not a part of its own: `Cargo.lock`, which `sbom.spdx.json`'s crate
//!   list comes from. A crate whose version changes changes the guest
//!   programs' bytes (`guest:`); a change of a crate's license metadata
//!   alone would leave the SBOM as it was until the next rebuild.
//!
//! Not in it, on purpose: the block cache under `target/slipway/cache`
//! (an entry gives the bytes an uncached build gives), the `.deb` cache
//! (checked against `inputs.lock`), and the output folder's path.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::BuildOptions;
use crate::inputs::Inputs;
use crate::util::{sha256_bytes, sha256_file};

/// The stamp's name in the output folder.
pub const STAMP: &str = ".build-stamp.json";

/// Named parts of what a build reads (see the module comment), and the
/// state of the builder's executable when its hash was taken.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fingerprint(BTreeMap<String, String>, Option<FileState>);

impl Fingerprint {
    pub fn add(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), value.into());
    }

    pub fn add_bytes(&mut self, name: impl Into<String>, bytes: &[u8]) {
        self.add(name, sha256_bytes(bytes));
    }

    /// Every entry under `dir`, by relative path: kind, permission bits
    /// and content (file) or target (link).
    pub fn add_tree(&mut self, name: impl Into<String>, dir: &Path) -> Result<()> {
        let mut lines = Vec::new();
        walk(dir, dir, &mut lines)?;
        lines.sort();
        self.add(name, sha256_bytes(lines.join("\n").as_bytes()));
        Ok(())
    }

    /// The names of the parts that differ from `old`'s.
    fn changed_from(&self, old: &BTreeMap<String, String>) -> Vec<String> {
        let mut names: Vec<String> = self
            .0
            .iter()
            .filter(|(k, v)| old.get(*k) != Some(v))
            .map(|(k, _)| k.clone())
            .collect();
        names.extend(
            old.keys()
                .filter(|k| !self.0.contains_key(*k))
                .map(|k| format!("{k} (gone)")),
        );
        names
    }
}

/// What the build read, for [`fingerprint`].
pub struct Read<'a> {
    pub board: &'a str,
    /// `board/`.
    pub boards: &'a Path,
    pub opts: &'a BuildOptions,
    pub inputs: &'a Inputs,
    pub init: &'a [u8],
    /// The other guest programs, by their path on the root.
    pub programs: &'a [(&'a str, Vec<u8>)],
    /// [`crate::static_root::digest`] of the common root with the keys and
    /// the caller's files.
    pub root_digest: &'a str,
    /// The signing key's public line.
    pub signing_key: &'a str,
}

/// The fingerprint of a build (the module comment says what is in it and
/// why), or `None` for a build that is never skipped (a kernel of the
/// user's own).
pub fn fingerprint(read: &Read, previous: &Previous) -> Result<Option<Fingerprint>> {
    let opts = read.opts;
    if opts.inputs.kernel_override.is_some() {
        return Ok(None);
    }
    let mut f = Fingerprint::default();
    let exe = std::env::current_exe().context("finding the running builder's executable")?;
    let (sum, state) = builder_sum(&exe, previous)?;
    f.add("builder", sum);
    f.1 = Some(state);
    f.add_tree("board", &read.boards.join(read.board))?;
    f.add_tree("common", &read.boards.join("common"))?;
    let pins: Vec<String> = read
        .inputs
        .packages
        .iter()
        .map(|p| format!("{:?} {} {} {}", p.role, p.package, p.version, p.sha256))
        .collect();
    f.add("inputs", sha256_bytes(pins.join("\n").as_bytes()));
    f.add_bytes("guest:init", read.init);
    for (path, bytes) in read.programs {
        f.add_bytes(format!("guest:{path}"), bytes);
    }
    f.add("root", read.root_digest);
    f.add("signing-key", read.signing_key);
    f.add(
        "options",
        format!(
            "board={} version={} source_date_epoch={} init={:?} verity={} qcow2={}",
            read.board, opts.version, opts.source_date_epoch, opts.init, opts.verity, opts.qcow2
        ),
    );
    f.add(
        "tool:mke2fs",
        slipway_image::var_fs::mke2fs_version().context("asking mke2fs its version")?,
    );
    if opts.qcow2 {
        f.add("tool:qemu-img", super::qemu_img_version()?);
    }
    Ok(Some(f))
}

/// The sha256 of the builder's executable `exe` and its state: the
/// previous stamp's sum if the file is as it was then, else read afresh.
fn builder_sum(exe: &Path, previous: &Previous) -> Result<(String, FileState)> {
    let state = FileState::of(exe)?;
    let known = previous
        .0
        .as_ref()
        .ok()
        .filter(|p| p.builder.as_ref() == Some(&state))
        .and_then(|p| p.fingerprint.get("builder"));
    let sum = match known {
        Some(sum) => sum.clone(),
        None => sha256_file(exe)?,
    };
    Ok((sum, state))
}

fn walk(root: &Path, dir: &Path, lines: &mut Vec<String>) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("reading the folder {}", dir.display()))?;
    for entry in entries {
        let path = entry
            .with_context(|| format!("reading the folder {}", dir.display()))?
            .path();
        let meta = std::fs::symlink_metadata(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let rel = path.strip_prefix(root).unwrap_or(&path).display();
        let mode = meta.mode() & 0o7777;
        if meta.is_dir() {
            lines.push(format!("{rel}\0d{mode:o}"));
            walk(root, &path, lines)?;
        } else if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path)
                .with_context(|| format!("reading the link {}", path.display()))?;
            lines.push(format!("{rel}\0l{}", target.display()));
        } else {
            lines.push(format!("{rel}\0f{mode:o}:{}", sha256_file(&path)?));
        }
    }
    Ok(())
}

/// What a finished build left: its fingerprint, the builder's executable
/// as it was hashed, and its files as written.
#[derive(Debug, Serialize, Deserialize)]
struct Stamp {
    fingerprint: BTreeMap<String, String>,
    builder: Option<FileState>,
    files: BTreeMap<String, FileState>,
}

/// The stamp of the build in an output folder, or why there is none.
pub struct Previous(std::result::Result<Stamp, String>);

impl Previous {
    pub fn read(out: &Path) -> Self {
        let path = out.join(STAMP);
        Self(match std::fs::read(&path) {
            Ok(text) => {
                serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err("no earlier build".into()),
            Err(e) => Err(format!("reading {}: {e}", path.display())),
        })
    }
}

/// Enough to see that a file was not written or replaced since: a rewrite
/// changes the mtime, a replacement the inode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileState {
    size: u64,
    mtime_s: i64,
    mtime_ns: i64,
    inode: u64,
}

impl FileState {
    fn of(path: &Path) -> Result<Self> {
        let meta =
            std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Self::from(&meta))
    }

    fn from(meta: &std::fs::Metadata) -> Self {
        Self {
            size: meta.len(),
            mtime_s: meta.mtime(),
            mtime_ns: meta.mtime_nsec(),
            inode: meta.ino(),
        }
    }
}

/// The files of an output folder (all regular files but the stamp); any
/// other kind of entry is an error, since a build makes none.
fn files_of(dir: &Path) -> Result<BTreeMap<String, FileState>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == STAMP {
            continue;
        }
        let meta = std::fs::symlink_metadata(entry.path())
            .with_context(|| format!("reading {}", entry.path().display()))?;
        anyhow::ensure!(
            meta.is_file(),
            "{} is not a regular file",
            entry.path().display()
        );
        files.insert(name, FileState::from(&meta));
    }
    Ok(files)
}

/// Whether `out` holds a build of `fingerprint`, untouched since: `Ok(())`
/// if so, else why not (for the log line of the rebuild).
pub fn check(
    out: &Path,
    previous: &Previous,
    fingerprint: &Fingerprint,
) -> std::result::Result<(), String> {
    let stamp = previous.0.as_ref().map_err(Clone::clone)?;
    let changed = fingerprint.changed_from(&stamp.fingerprint);
    if !changed.is_empty() {
        return Err(format!("changed: {}", changed.join(", ")));
    }
    let now = files_of(out).map_err(|e| format!("{e:#}"))?;
    let touched: Vec<&str> = stamp
        .files
        .iter()
        .filter(|(name, state)| now.get(*name) != Some(state))
        .map(|(name, _)| name.as_str())
        .chain(
            now.keys()
                .filter(|n| !stamp.files.contains_key(*n))
                .map(String::as_str),
        )
        .collect();
    if !touched.is_empty() {
        return Err(format!("changed since the build: {}", touched.join(", ")));
    }
    Ok(())
}

/// Records the stamp of the finished folder `dir` (the `.partial` one,
/// before its rename, which keeps every file's inode and mtime): call it
/// after the last output is written, so every file is in it.
pub fn record(dir: &Path, fingerprint: &Fingerprint) -> Result<()> {
    let stamp = Stamp {
        fingerprint: fingerprint.0.clone(),
        builder: fingerprint.1.clone(),
        files: files_of(dir)?,
    };
    let path = dir.join(STAMP);
    std::fs::write(&path, serde_json::to_string_pretty(&stamp)? + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint(guest: &[u8]) -> Fingerprint {
        let mut f = Fingerprint::default();
        f.add("options", "version=1");
        f.add_bytes("guest:sbin/init", guest);
        f
    }

    fn up_to_date(out: &Path, f: &Fingerprint) -> std::result::Result<(), String> {
        check(out, &Previous::read(out), f)
    }

    #[test]
    fn a_recorded_build_is_up_to_date_until_an_input_or_output_changes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        assert_eq!(
            up_to_date(out, &fingerprint(b"init")),
            Err("no earlier build".into())
        );
        std::fs::write(out.join("disk.raw"), b"disk").unwrap();
        std::fs::write(out.join("manifest.json"), b"{}").unwrap();
        record(out, &fingerprint(b"init")).unwrap();
        assert_eq!(up_to_date(out, &fingerprint(b"init")), Ok(()));

        assert_eq!(
            up_to_date(out, &fingerprint(b"init2")),
            Err("changed: guest:sbin/init".into())
        );
        let mut more = fingerprint(b"init");
        more.add("tool:mke2fs", "1.47.0");
        assert_eq!(up_to_date(out, &more), Err("changed: tool:mke2fs".into()));

        // Same size, rewritten: the mtime (or at least the inode) differs.
        let raw = out.join("disk.raw");
        let before = std::fs::metadata(&raw).unwrap();
        std::fs::remove_file(&raw).unwrap();
        std::fs::write(&raw, b"DISK").unwrap();
        let after = std::fs::metadata(&raw).unwrap();
        assert!(before.ino() != after.ino() || before.mtime_nsec() != after.mtime_nsec());
        assert_eq!(
            up_to_date(out, &fingerprint(b"init")),
            Err("changed since the build: disk.raw".into())
        );
        record(out, &fingerprint(b"init")).unwrap();
        assert_eq!(up_to_date(out, &fingerprint(b"init")), Ok(()));

        // A file gone, or one the build did not make.
        std::fs::write(out.join("notes.txt"), b"mine").unwrap();
        assert_eq!(
            up_to_date(out, &fingerprint(b"init")),
            Err("changed since the build: notes.txt".into())
        );
        std::fs::remove_file(out.join("notes.txt")).unwrap();
        std::fs::remove_file(out.join("manifest.json")).unwrap();
        assert_eq!(
            up_to_date(out, &fingerprint(b"init")),
            Err("changed since the build: manifest.json".into())
        );
    }

    #[test]
    fn a_tree_digest_sees_content_modes_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("root")).unwrap();
        std::fs::write(d.join("root/motd"), b"hello").unwrap();
        std::fs::write(d.join("board.toml"), b"name = 1").unwrap();
        let digest = || {
            let mut f = Fingerprint::default();
            f.add_tree("board", d).unwrap();
            f
        };
        let first = digest();
        assert_eq!(digest(), first);
        std::fs::write(d.join("root/motd"), b"hellO").unwrap();
        let second = digest();
        assert_eq!(second.changed_from(&first.0), ["board"]);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.join("root/motd"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let third = digest();
        assert_ne!(third, second);
        std::os::unix::fs::symlink("motd", d.join("root/issue")).unwrap();
        assert_ne!(digest(), third);
        assert_eq!(
            Fingerprint::default().changed_from(&third.0),
            ["board (gone)"]
        );
    }

    #[test]
    fn the_builders_sum_is_reused_only_while_its_file_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("xtask");
        std::fs::write(&exe, b"builder one").unwrap();
        let (sum, state) = builder_sum(&exe, &Previous::read(dir.path())).unwrap();
        assert_eq!(sum, sha256_bytes(b"builder one"));
        // A stamp that names this very file with another sum: the sum is
        // taken from it, not read (which shows the file was not hashed).
        let mut parts = BTreeMap::new();
        parts.insert("builder".to_string(), "recorded".to_string());
        let previous = |builder: &FileState| {
            Previous(Ok(Stamp {
                fingerprint: parts.clone(),
                builder: Some(builder.clone()),
                files: BTreeMap::new(),
            }))
        };
        assert_eq!(builder_sum(&exe, &previous(&state)).unwrap().0, "recorded");
        // Rewritten (cargo writes a new file): hashed again.
        std::fs::remove_file(&exe).unwrap();
        std::fs::write(&exe, b"builder two").unwrap();
        assert_eq!(
            builder_sum(&exe, &previous(&state)).unwrap().0,
            sha256_bytes(b"builder two")
        );
    }
}

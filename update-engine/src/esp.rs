//! The boot entries and slot files on the ESP, as a directory (the mounted
//! FAT on a machine, a temporary directory in tests).
//!
//! Boot counting is systemd-boot's: an entry `slipway-b+3.conf` has three
//! tries left; on each boot the loader renames it (`+2-1`, `+1-2`,
//! `+0-3`) before starting the kernel; entries with no tries left sort last,
//! so the other slot boots. Blessing drops the counter (`slipway-b.conf`);
//! marking bad sets it to `+0`. Every change here is a write to a temporary
//! name, fsync, rename, fsync of the directory: a power cut leaves the old
//! name or the new one.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use slipway_image::bls;
use slipway_image::layout::Slot;

pub const ENTRIES_DIR: &str = "loader/entries";
/// Suffix of files being written; systemd-boot only reads `*.conf`.
const NEW: &str = ".new";

/// An entry's boot-counting state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryState {
    /// No counter: blessed (or installed by the image builder).
    Good,
    /// On trial: `left` tries remain, `done` were used.
    Trying { left: u32, done: u32 },
    /// No tries left: the loader boots it only if nothing else is there.
    Bad { done: u32 },
}

impl std::fmt::Display for EntryState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EntryState::Good => write!(f, "good"),
            EntryState::Trying { left, .. } => write!(f, "trying, {left} left"),
            EntryState::Bad { .. } => write!(f, "bad"),
        }
    }
}

/// One entry file found on the ESP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFile {
    pub slot: Slot,
    pub file_name: String,
    pub state: EntryState,
    /// The entry's `version` line.
    pub version: Option<String>,
}

/// Parses `slipway-<slot>[+LEFT[-DONE]].conf`.
pub fn parse_name(name: &str) -> Option<(Slot, EntryState)> {
    let stem = name.strip_prefix("slipway-")?.strip_suffix(".conf")?;
    let mut chars = stem.chars();
    let slot = match chars.next()? {
        'a' => Slot::A,
        'b' => Slot::B,
        _ => return None,
    };
    let rest = chars.as_str();
    if rest.is_empty() {
        return Some((slot, EntryState::Good));
    }
    let counter = rest.strip_prefix('+')?;
    let (left, done) = match counter.split_once('-') {
        Some((l, d)) => (l.parse().ok()?, d.parse().ok()?),
        None => (counter.parse().ok()?, 0),
    };
    let state = if left == 0 {
        EntryState::Bad { done }
    } else {
        EntryState::Trying { left, done }
    };
    Some((slot, state))
}

#[derive(Debug, Clone)]
pub struct Esp {
    root: PathBuf,
}

impl Esp {
    pub fn new(root: impl Into<PathBuf>) -> Esp {
        Esp { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn entries_dir(&self) -> PathBuf {
        self.root.join(ENTRIES_DIR)
    }

    /// Our entries, sorted by name.
    pub fn entries(&self) -> io::Result<Vec<EntryFile>> {
        let dir = self.entries_dir();
        let mut out = Vec::new();
        for e in std::fs::read_dir(&dir).map_err(|e| with_path(e, &dir))? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Some((slot, state)) = parse_name(&name) else {
                continue;
            };
            let version = std::fs::read_to_string(e.path()).ok().and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("version ").map(|v| v.trim().to_string()))
            });
            out.push(EntryFile {
                slot,
                file_name: name,
                state,
                version,
            });
        }
        out.sort_by(|a, b| a.file_name.cmp(&b.file_name));
        Ok(out)
    }

    /// The entry of `slot`. There is at most one unless someone copied
    /// files by hand; then the first by name is reported.
    pub fn entry(&self, slot: Slot) -> io::Result<Option<EntryFile>> {
        Ok(self.entries()?.into_iter().find(|e| e.slot == slot))
    }

    /// Removes every entry of `slot` (and half-written ones), then makes
    /// the removal durable. From here the slot cannot boot.
    pub fn remove_entries(&self, slot: Slot) -> io::Result<usize> {
        let dir = self.entries_dir();
        let mut n = 0;
        let prefix = format!("slipway-{}", slot.letter());
        for e in std::fs::read_dir(&dir).map_err(|e| with_path(e, &dir))? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            let ours = parse_name(&name).is_some_and(|(s, _)| s == slot)
                || (name.starts_with(&prefix) && name.ends_with(NEW));
            if ours {
                std::fs::remove_file(e.path()).map_err(|err| with_path(err, &e.path()))?;
                n += 1;
            }
        }
        sync_dir(&dir)?;
        Ok(n)
    }

    /// Path on the ESP of a slot file (`bls::kernel_path` style, leading `/`).
    pub fn path(&self, esp_path: &str) -> PathBuf {
        self.root.join(esp_path.trim_start_matches('/'))
    }

    /// The staging copy of `esp_path`, open for reading and writing:
    /// emptied when `fresh`, kept (to resume into) otherwise.
    /// [`Esp::commit`] puts it in place.
    pub fn staged(&self, esp_path: &str, fresh: bool) -> io::Result<(File, PathBuf)> {
        let target = self.path(esp_path);
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir).map_err(|e| with_path(e, dir))?;
        }
        let staged = staged_name(&target);
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(fresh)
            .open(&staged)
            .map_err(|e| with_path(e, &staged))?;
        Ok((f, staged))
    }

    /// fsyncs the staged file, renames it over `esp_path`, fsyncs the folder.
    pub fn commit(&self, esp_path: &str) -> io::Result<()> {
        let target = self.path(esp_path);
        let staged = staged_name(&target);
        File::open(&staged)
            .and_then(|f| f.sync_all())
            .map_err(|e| with_path(e, &staged))?;
        durable_rename(&staged, &target)
    }

    /// Writes a new entry for `slot` with `tries` tries (temporary name,
    /// fsync, rename, fsync). Returns its file name.
    pub fn install_entry(&self, entry: &bls::Entry, tries: u32) -> io::Result<String> {
        let name = bls::entry_file_name(entry.slot, Some(tries));
        let esp_path = format!("{ENTRIES_DIR}/{name}");
        let (mut f, _) = self.staged(&esp_path, true)?;
        f.write_all(entry.render().as_bytes())?;
        drop(f);
        self.commit(&esp_path)?;
        Ok(name)
    }

    /// Renames `slot`'s entry to the state `to`; `Ok(None)` if it is
    /// already there, `Err` if the slot has no entry.
    pub fn set_state(&self, slot: Slot, to: EntryState) -> io::Result<Option<(String, String)>> {
        let Some(e) = self.entry(slot)? else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "slot {} has no boot entry in {}",
                    slot.letter(),
                    self.entries_dir().display()
                ),
            ));
        };
        let new_name = match to {
            EntryState::Good => bls::entry_file_name(slot, None),
            EntryState::Trying { left, done } => {
                format!("slipway-{}+{left}-{done}.conf", slot.letter())
            }
            EntryState::Bad { done } => format!("slipway-{}+0-{done}.conf", slot.letter()),
        };
        if new_name == e.file_name {
            return Ok(None);
        }
        let dir = self.entries_dir();
        durable_rename(&dir.join(&e.file_name), &dir.join(&new_name))?;
        Ok(Some((e.file_name, new_name)))
    }

    /// Bytes free on the ESP's filesystem.
    pub fn free_bytes(&self) -> io::Result<u64> {
        let st = nix::sys::statvfs::statvfs(&self.root).map_err(io::Error::from)?;
        Ok(st.blocks_available() * st.fragment_size())
    }
}

fn staged_name(target: &Path) -> PathBuf {
    let mut s = target.as_os_str().to_owned();
    s.push(NEW);
    PathBuf::from(s)
}

/// Renames `from` to `to` so that a power cut afterwards finds `to` whole.
///
/// On Linux's FAT, fsync of the folder after a rename is not enough: the
/// rename writes the new directory entry with size 0 and no first cluster,
/// and only writing the file's inode back fills them in. A power cut before
/// that (up to 30 s later) leaves an empty file under the new name: the VM
/// test's power cuts found blessed entries of 0 bytes, which systemd-boot
/// skips. So the renamed file is fsynced too, then the folder.
pub fn durable_rename(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::rename(from, to).map_err(|e| with_path(e, to))?;
    File::open(to)
        .and_then(|f| f.sync_all())
        .map_err(|e| with_path(e, to))?;
    sync_dir(to.parent().unwrap_or(Path::new("/")))
}

/// fsync of a folder; FAT on Linux supports it, and where a filesystem
/// does not (EINVAL), `syncfs` through it does the same job.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    let f = File::open(dir).map_err(|e| with_path(e, dir))?;
    match f.sync_all() {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            nix::unistd::syncfs(&f).map_err(io::Error::from)
        }
        other => other.map_err(|e| with_path(e, dir)),
    }
}

pub(crate) fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(slot: Slot, version: &str) -> bls::Entry {
        bls::Entry {
            os_name: "Slipway".into(),
            version: version.into(),
            slot,
            options: "console=ttyS0".into(),
        }
    }

    #[test]
    fn names_parse_like_systemd_boot_writes_them() {
        assert_eq!(
            parse_name("slipway-a.conf"),
            Some((Slot::A, EntryState::Good))
        );
        assert_eq!(
            parse_name("slipway-b+3.conf"),
            Some((Slot::B, EntryState::Trying { left: 3, done: 0 }))
        );
        assert_eq!(
            parse_name("slipway-b+2-1.conf"),
            Some((Slot::B, EntryState::Trying { left: 2, done: 1 }))
        );
        assert_eq!(
            parse_name("slipway-a+0-3.conf"),
            Some((Slot::A, EntryState::Bad { done: 3 }))
        );
        for bad in [
            "slipway-c.conf",
            "slipway-a+x.conf",
            "slipway-a.conf.new",
            "other.conf",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn install_bless_and_mark_bad() {
        let dir = tempfile::tempdir().unwrap();
        let esp = Esp::new(dir.path());
        std::fs::create_dir_all(dir.path().join(ENTRIES_DIR)).unwrap();
        std::fs::write(
            dir.path().join(ENTRIES_DIR).join("slipway-a.conf"),
            entry(Slot::A, "1.0").render(),
        )
        .unwrap();
        let name = esp.install_entry(&entry(Slot::B, "2.0"), 3).unwrap();
        assert_eq!(name, "slipway-b+3.conf");
        let b = esp.entry(Slot::B).unwrap().unwrap();
        assert_eq!(b.state, EntryState::Trying { left: 3, done: 0 });
        assert_eq!(b.version.as_deref(), Some("2.0"));
        // The loader counts a boot, then we bless.
        std::fs::rename(
            dir.path().join(ENTRIES_DIR).join("slipway-b+3.conf"),
            dir.path().join(ENTRIES_DIR).join("slipway-b+2-1.conf"),
        )
        .unwrap();
        let renamed = esp.set_state(Slot::B, EntryState::Good).unwrap();
        assert_eq!(
            renamed,
            Some(("slipway-b+2-1.conf".into(), "slipway-b.conf".into()))
        );
        assert_eq!(esp.set_state(Slot::B, EntryState::Good).unwrap(), None);
        esp.set_state(Slot::A, EntryState::Bad { done: 0 }).unwrap();
        assert_eq!(
            esp.entry(Slot::A).unwrap().unwrap().state,
            EntryState::Bad { done: 0 }
        );
        assert_eq!(esp.remove_entries(Slot::A).unwrap(), 1);
        assert!(esp.entry(Slot::A).unwrap().is_none());
        assert!(esp.set_state(Slot::A, EntryState::Good).is_err());
    }

    #[test]
    fn staged_files_commit_by_rename() {
        let dir = tempfile::tempdir().unwrap();
        let esp = Esp::new(dir.path());
        let (mut f, staged) = esp.staged("/slipway/b/vmlinuz", true).unwrap();
        f.write_all(b"kernel").unwrap();
        drop(f);
        assert!(!dir.path().join("slipway/b/vmlinuz").exists());
        assert_eq!(std::fs::metadata(staged).unwrap().len(), 6);
        esp.commit("/slipway/b/vmlinuz").unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("slipway/b/vmlinuz")).unwrap(),
            b"kernel"
        );
    }
}

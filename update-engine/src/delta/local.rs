//! What the machine already has: its active slot's root and verity
//! partitions and the active kernel and initramfs on the ESP, cut into
//! pieces the way the publisher cut the new release, and found by hash.
//!
//! Only the active slot is read (never written; it is opened read-only).
//! The passive slot is not a source: the apply overwrites it from the start
//! while later pieces would still be read from it. Every local piece is
//! hashed again when it is used, so a slot that changed since the scan (or
//! a corrupt one) costs a download, never a wrong byte.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::index::Chunking;

/// The running release's files, as the machine has them.
#[derive(Debug, Clone)]
pub struct ActiveSlot {
    /// For messages ("slot a").
    pub name: String,
    /// The root partition (a squashfs, read up to its own length).
    pub root: PathBuf,
    /// The verity partition (read up to the tree of that root).
    pub verity: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
}

/// Where a piece with a given hash lies on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub source: usize,
    pub offset: u64,
    pub len: u32,
}

/// The result of a scan.
#[derive(Debug)]
pub struct Local {
    /// Open read-only; indexed by [`Location::source`].
    pub files: Vec<(String, File)>,
    pieces: HashMap<[u8; 32], Location>,
    pub scanned_bytes: u64,
    pub scan_time: Duration,
}

impl Local {
    pub fn find(&self, sha256: &[u8; 32]) -> Option<Location> {
        self.pieces.get(sha256).copied()
    }

    /// Reads the piece at `loc` into `buf` (resized to its length).
    pub fn read(&self, loc: Location, buf: &mut Vec<u8>) -> io::Result<()> {
        buf.resize(loc.len as usize, 0);
        let (name, file) = self
            .files
            .get(loc.source)
            .ok_or_else(|| io::Error::other("no such local source"))?;
        file.read_exact_at(buf, loc.offset)
            .map_err(|e| io::Error::new(e.kind(), format!("reading {name}: {e}")))
    }

    /// Pieces known.
    pub fn len(&self) -> usize {
        self.pieces.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }
}

/// Cuts every readable source into pieces. A source that cannot be read
/// (a missing kernel file, say) is skipped with a line in `skipped`: it only
/// means more to download.
pub fn scan(slot: &ActiveSlot, chunking: &Chunking, skipped: &mut Vec<String>) -> Local {
    let started = Instant::now();
    let mut local = Local {
        files: Vec::new(),
        pieces: HashMap::new(),
        scanned_bytes: 0,
        scan_time: Duration::ZERO,
    };
    let mut root_len = None;
    for (what, path) in [
        ("root", &slot.root),
        ("verity", &slot.verity),
        ("kernel", &slot.kernel),
        ("initrd", &slot.initrd),
    ] {
        let name = format!("{} {what} ({})", slot.name, path.display());
        let opened = File::open(path).and_then(|f| {
            let len = match what {
                "root" => squashfs_len(&f)?,
                "verity" => verity_len(root_len.unwrap_or(0))?,
                _ => f.metadata()?.len(),
            };
            Ok((f, len))
        });
        let (file, len) = match opened {
            Ok(x) => x,
            Err(e) => {
                skipped.push(format!("{name}: {e}"));
                continue;
            }
        };
        if what == "root" {
            root_len = Some(len);
        }
        let source = local.files.len();
        let pieces = &mut local.pieces;
        let cut = chunking.each(
            BufReader::with_capacity(1 << 20, (&file).take(len)),
            |offset, len, hash| {
                pieces.entry(hash).or_insert(Location {
                    source,
                    offset,
                    len,
                });
            },
        );
        match cut {
            Ok(()) => local.scanned_bytes += len,
            Err(e) => skipped.push(format!("{name}: {e}")),
        }
        local.files.push((name, file));
    }
    local.scan_time = started.elapsed();
    local
}

/// Bytes of the squashfs at the start of `f` (its superblock's
/// `bytes_used`), padded to 4 KiB as the builder pads the root image.
fn squashfs_len(f: &File) -> io::Result<u64> {
    let mut sb = [0u8; 48];
    f.read_exact_at(&mut sb, 0)?;
    if &sb[..4] != b"hsqs" {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no squashfs superblock",
        ));
    }
    let mut used = [0u8; 8];
    used.copy_from_slice(&sb[40..48]);
    let used = u64::from_le_bytes(used);
    let size = f.metadata()?.len();
    let padded = used.div_ceil(4096) * 4096;
    // A block device's metadata length is 0; only a file can be checked.
    if size > 0 && padded > size {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("squashfs says {used} bytes, the partition has {size}"),
        ));
    }
    Ok(padded)
}

/// The hash partition's used length for a root of `root_len` bytes.
fn verity_len(root_len: u64) -> io::Result<u64> {
    slipway_image::verity::hash_image_len(root_len)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    #[test]
    fn squashfs_length_comes_from_the_superblock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root");
        let mut bytes = vec![0u8; 64 << 10];
        bytes[..4].copy_from_slice(b"hsqs");
        bytes[40..48].copy_from_slice(&10_000u64.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(squashfs_len(&File::open(&path).unwrap()).unwrap(), 12_288);
        bytes[..4].copy_from_slice(b"xxxx");
        std::fs::write(&path, &bytes).unwrap();
        assert!(squashfs_len(&File::open(&path).unwrap()).is_err());
    }

    #[test]
    fn scan_finds_pieces_and_skips_what_it_cannot_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut root = vec![0u8; 200 << 10];
        let mut x = 7u32;
        for b in root.iter_mut() {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            *b = (x >> 16) as u8;
        }
        root[..4].copy_from_slice(b"hsqs");
        root[40..48].copy_from_slice(&(160u64 << 10).to_le_bytes());
        std::fs::write(dir.path().join("root"), &root).unwrap();
        std::fs::write(dir.path().join("verity"), vec![1u8; 8192]).unwrap();
        std::fs::write(dir.path().join("vmlinuz"), &root[..5000]).unwrap();
        let slot = ActiveSlot {
            name: "slot a".into(),
            root: dir.path().join("root"),
            verity: dir.path().join("verity"),
            kernel: dir.path().join("vmlinuz"),
            initrd: dir.path().join("missing"),
        };
        let chunking = Chunking {
            min: 1024,
            avg: 4096,
            max: 16384,
        };
        let mut skipped = Vec::new();
        let local = scan(&slot, &chunking, &mut skipped);
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        assert!(skipped[0].contains("missing"), "{skipped:?}");
        // Root up to the squashfs length only: the pieces of it cover it.
        let root_pieces = chunking.cut(&root[..160 << 10]).unwrap();
        for (len, hash) in &root_pieces {
            let loc = local.find(hash).expect("every root piece is found");
            assert_eq!(loc.len, *len);
            let mut buf = Vec::new();
            local.read(loc, &mut buf).unwrap();
            let got: [u8; 32] = sha2::Sha256::digest(&buf).into();
            assert_eq!(&got, hash);
        }
        let tail = chunking.cut(&root[160 << 10..]).unwrap();
        assert!(tail.iter().all(|(_, h)| local.find(h).is_none()));
        // 160 KiB of root, 8 KiB of verity (superblock and the one tree block of 40 blocks), 5000 of kernel.
        assert_eq!(local.scanned_bytes, (160 << 10) + 8192 + 5000);
    }
}

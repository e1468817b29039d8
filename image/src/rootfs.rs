//! The read-only root filesystem image: squashfs written in pure Rust with
//! `backhand`, xz-compressed with the x86 BCJ filter (1 MiB blocks, 1 MiB
//! dictionary), every inode owned
//! by root and stamped with one time, so the same tree always gives the
//! same bytes.

use std::io::{Cursor, Seek, Write};

use backhand::compression::{CompressionOptions, Compressor, Xz};
use backhand::v4::compressor::XzFilter;
use backhand::{FilesystemCompressor, FilesystemWriter, NodeHeader};

use crate::tree::{Node, Tree};

mod block_cache;

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("squashfs: adding /{path}: {source}")]
    Add {
        path: String,
        #[source]
        source: backhand::BackhandError,
    },
    #[error("squashfs: writing the image: {0}")]
    Write(#[source] backhand::BackhandError),
    #[error("squashfs: device number {major}:{minor} of /{path} does not fit")]
    Device {
        path: String,
        major: u32,
        minor: u32,
    },
}

/// xz with the x86 BCJ filter. Measured on the root with Debian's container
/// engine and etcd (252 MB of files, mostly Go programs; mksquashfs, 1 MiB
/// blocks): zstd 19 gives 82.6 MB, xz with BCJ x86 72.0 MB. With etcd
/// (issue 14: 21.5 MB etcd + 17 MB etcdctl, 12.4 MB more at zstd 19) only
/// xz keeps the whole disk under Talos's 89 MB when compressed with xz
/// (zstd 19 would give about 94 MB) without leaving out a program users
/// need. The price is reading: unpacking the whole root took 6.2 s with xz
/// against 0.74 s with zstd on one core here, which a program's first start
/// pays for the pages it touches (dockerd, containerd, docker: a few
/// seconds once per boot on real hardware, more under TCG); the page cache
/// keeps them after that. Earlier figures for the root without etcd: zstd
/// 3 / 128 KiB 86.8 MB, zstd 19 / 1 MiB 70.5 MB, xz / 1 MiB 64.1 MB.
pub const COMPRESSION: &str = "xz-bcj-x86";

/// backhand's xz filter bit for x86 BCJ (squashfs-tools' `-Xbcj x86`):
/// branch targets in x86 code made absolute, so repeated calls compress.
const XZ_FILTER_X86: u32 = 0x0001;

/// Data block size: larger blocks let the compressor find the repeats
/// across a Go program's sections (1 MiB, the largest squashfs allows;
/// with zstd 19 it gave 70.5 MB against 73.5 MB at 256 KiB).
pub const BLOCK_SIZE: u32 = 1 << 20;

/// xz with the x86 BCJ filter, its dictionary as large as a block.
fn compressor() -> Result<FilesystemCompressor, RootfsError> {
    // The kernel's squashfs accepts an xz dictionary that is a power of
    // two no larger than the block size.
    FilesystemCompressor::new(
        Compressor::Xz,
        Some(CompressionOptions::Xz(Xz {
            dictionary_size: BLOCK_SIZE,
            filters: XzFilter::new(XZ_FILTER_X86),
            bit_opts: None,
            fb: None,
        })),
    )
    .map_err(RootfsError::Write)
}

/// Writes `tree` as a squashfs 4.0 image to `out`; returns the bytes written.
/// With `cache`, compressed data blocks are kept in (and taken from) that
/// folder, keyed by their content ([`block_cache`]): the bytes written are
/// the same with or without it.
pub fn write_squashfs<W: Write + Seek>(
    tree: &Tree,
    mtime: u32,
    cache: Option<&std::path::Path>,
    out: &mut W,
) -> Result<u64, RootfsError> {
    let mut fs = FilesystemWriter::default();
    let cached = cache.is_some_and(|dir| {
        std::fs::create_dir_all(dir).is_ok() && block_cache::use_dir(dir.to_path_buf())
    });
    if cached {
        fs.set_kind(backhand::kind::Kind::new_v4(&block_cache::CACHED));
    }
    // The default kind is little-endian squashfs 4.0, what Linux reads.
    fs.set_time(mtime);
    fs.set_root_mode(0o755);
    fs.set_root_uid(0);
    fs.set_root_gid(0);
    let compressor = compressor()?;
    fs.set_compressor(compressor);
    fs.set_block_size(BLOCK_SIZE);
    if cached {
        block_cache::prewarm(tree, compressor, BLOCK_SIZE);
    }

    let header = |mode: u32| NodeHeader {
        permissions: (mode & 0o7777) as u16,
        uid: 0,
        gid: 0,
        mtime,
    };
    for (path, node) in tree.iter() {
        let add = |source| RootfsError::Add {
            path: path.to_string(),
            source,
        };
        match node {
            Node::Dir { mode } => fs.push_dir(path, header(*mode)).map_err(add)?,
            Node::File { mode, data } => fs
                .push_file(Cursor::new(data.as_slice()), path, header(*mode))
                .map_err(add)?,
            Node::Symlink { target } => {
                fs.push_symlink(target, path, header(0o777)).map_err(add)?
            }
            Node::CharDevice { mode, major, minor } => {
                // squashfs keeps the old 32-bit encoding of dev_t.
                if *major > 0xfff || *minor > 0xfffff {
                    return Err(RootfsError::Device {
                        path: path.to_string(),
                        major: *major,
                        minor: *minor,
                    });
                }
                let dev = (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12);
                fs.push_char_device(dev, path, header(*mode)).map_err(add)?
            }
        }
    }
    let (_, len) = fs.write(out).map_err(RootfsError::Write)?;
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Tree {
        let mut t = Tree::new();
        t.file("sbin/init", 0o755, vec![1u8; 300_000]);
        t.file("etc/os-release", 0o644, b"ID=slipway\n".to_vec());
        t.symlink("bin/sh", "busybox");
        t.dir("tmp", 0o1777);
        t.char_device("dev/console", 0o600, 5, 1);
        t
    }

    #[test]
    fn same_tree_same_bytes_and_reads_back() {
        let mut a = Cursor::new(Vec::new());
        let mut b = Cursor::new(Vec::new());
        write_squashfs(&sample(), 1_700_000_000, None, &mut a).unwrap();
        write_squashfs(&sample(), 1_700_000_000, None, &mut b).unwrap();
        assert_eq!(a.get_ref(), b.get_ref());
        assert_eq!(&a.get_ref()[..4], b"hsqs");

        let reader = backhand::FilesystemReader::from_reader(Cursor::new(a.into_inner())).unwrap();
        let mut seen = Vec::new();
        for node in reader.files() {
            seen.push(node.fullpath.display().to_string());
            if node.fullpath.as_os_str() == "/sbin/init" {
                assert_eq!(node.header.permissions, 0o755);
                assert_eq!(node.header.mtime, 1_700_000_000);
            }
        }
        assert!(seen.contains(&"/etc/os-release".to_string()), "{seen:?}");
        assert!(seen.contains(&"/bin/sh".to_string()), "{seen:?}");
    }

    #[test]
    fn different_time_changes_bytes() {
        let mut a = Cursor::new(Vec::new());
        let mut b = Cursor::new(Vec::new());
        write_squashfs(&sample(), 1, None, &mut a).unwrap();
        write_squashfs(&sample(), 2, None, &mut b).unwrap();
        assert_ne!(a.get_ref(), b.get_ref());
    }

    #[test]
    fn the_block_cache_gives_the_same_bytes_and_is_used() {
        // Blocks of 1 MiB that compress differently, so several entries.
        let mut t = sample();
        let big: Vec<u8> = (0..3 * BLOCK_SIZE)
            .map(|i| (i % 251) as u8 ^ (i >> 17) as u8)
            .collect();
        t.file("usr/bin/big", 0o755, big);
        let dir = tempfile::tempdir().unwrap();
        let mut plain = Cursor::new(Vec::new());
        write_squashfs(&t, 7, None, &mut plain).unwrap();
        // Prewarmed on every core: the big file's three blocks, and nothing
        // of the small files (they go into a fragment).
        assert!(block_cache::use_dir(dir.path().to_path_buf()));
        block_cache::prewarm(&t, compressor().unwrap(), BLOCK_SIZE);
        let entries = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(entries, 3, "cache entries after the prewarm");
        let mut first = Cursor::new(Vec::new());
        write_squashfs(&t, 7, Some(dir.path()), &mut first).unwrap();
        // The writer found the three (a block cut differently would be a
        // new entry); it added only the fragment of the small files.
        let entries = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(entries, 4, "cache entries after the write");
        assert_eq!(first.get_ref(), plain.get_ref());

        // A torn entry is recompressed, not trusted.
        let victim = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        std::fs::write(&victim, b"torn").unwrap();
        let mut second = Cursor::new(Vec::new());
        write_squashfs(&t, 7, Some(dir.path()), &mut second).unwrap();
        assert_eq!(second.get_ref(), plain.get_ref());
        assert_ne!(std::fs::read(&victim).unwrap(), b"torn");

        // Entries are sealed; one byte of compressed data flipped breaks
        // the seal: the block is compressed again, the entry rewritten.
        let Some(Node::File { data: big, .. }) = t.get("usr/bin/big") else {
            panic!("no usr/bin/big")
        };
        let entries: Vec<_> = big
            .chunks(BLOCK_SIZE as usize)
            .map(|piece| block_cache::entry_path(piece, BLOCK_SIZE).unwrap())
            .collect();
        let sealed: Vec<Vec<u8>> = entries.iter().map(|e| std::fs::read(e).unwrap()).collect();
        assert!(sealed.iter().all(|e| e.starts_with(block_cache::MAGIC)));
        let mut flipped = sealed[0].clone();
        *flipped.last_mut().unwrap() ^= 1;
        std::fs::write(&entries[0], &flipped).unwrap();
        // An entry of the old format (the compressed bytes alone) that
        // decompresses to its block is used, and sealed.
        let unsealed = |e: &Vec<u8>| e[block_cache::MAGIC.len() + 32..].to_vec();
        std::fs::write(&entries[1], unsealed(&sealed[1])).unwrap();
        // One that decompresses to another block is not.
        std::fs::write(&entries[2], unsealed(&sealed[1])).unwrap();
        let mut third = Cursor::new(Vec::new());
        write_squashfs(&t, 7, Some(dir.path()), &mut third).unwrap();
        assert_eq!(third.get_ref(), plain.get_ref());
        for (e, want) in entries.iter().zip(&sealed) {
            assert_eq!(&std::fs::read(e).unwrap(), want, "{}", e.display());
        }
    }
}

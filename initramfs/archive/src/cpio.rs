//! The newc ("070701") cpio format the kernel unpacks an initramfs from
//! (Documentation/driver-api/early-userspace/buffer-format.rst).
//!
//! The `cpio` crate's newc `Builder` writes the headers: it pads the name
//! and the data to 4 bytes as the format requires, and takes the mode and
//! rdev fields as given, so symlinks (`S_IFLNK`, target as data) and
//! character devices (`S_IFCHR`, rdev major/minor) need nothing extra.

use std::io::{self, Write};

use ::cpio::newc::{self, Builder};
use slipway_image::tree::{Node, Tree};

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;
/// The name of the entry that ends an archive.
const TRAILER: &str = "TRAILER!!!";

/// Writes every entry of `tree` in tree order (a directory before its
/// children, as the kernel needs), then the `TRAILER!!!` entry.
///
/// Owners are root, every time is `mtime`, and inode numbers count from 1
/// in tree order, so the same tree always gives the same bytes. Each entry
/// has its own inode and one link (two for directories), so the kernel's
/// unpacker never mistakes two files for hard links of each other. A name
/// holding a NUL, or the trailer's own, is an `InvalidInput` error.
pub fn write_newc(tree: &Tree, mtime: u32, out: impl Write) -> io::Result<()> {
    let mut out = NoFlush(out);
    for (ino, (path, node)) in (1..).zip(tree.iter()) {
        let (mode, nlink, data, rdev): (u32, u32, &[u8], (u32, u32)) = match node {
            Node::Dir { mode } => (S_IFDIR | (mode & 0o7777), 2, &[], (0, 0)),
            Node::File { mode, data } => (S_IFREG | (mode & 0o7777), 1, data, (0, 0)),
            Node::Symlink { target } => (S_IFLNK | 0o777, 1, target.as_bytes(), (0, 0)),
            Node::CharDevice { mode, major, minor } => {
                (S_IFCHR | (mode & 0o7777), 1, &[], (*major, *minor))
            }
        };
        // The kernel reads a name up to its NUL and stops at the trailer's
        // name: such an entry would unpack as another, or end the archive
        // (found by the `cpio` fuzz target).
        if path.contains('\0') || path == TRAILER {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{path:?} cannot be a name in a newc archive"),
            ));
        }
        let size = u32::try_from(data.len()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{path} is larger than the 4 GiB a newc entry can hold"),
            )
        })?;
        let mut entry = Builder::new(path)
            .ino(ino)
            .mode(mode)
            .uid(0)
            .gid(0)
            .nlink(nlink)
            .mtime(mtime)
            .rdev_major(rdev.0)
            .rdev_minor(rdev.1)
            .write(&mut out, size);
        entry.write_all(data)?;
        entry.finish()?;
    }
    newc::trailer(&mut out)?;
    out.0.flush()
}

/// The `cpio` crate flushes its output after every entry. Into a zstd
/// encoder a flush ends a block, which costs ratio and time for nothing, so
/// flushes are held back until the archive is complete.
struct NoFlush<W>(W);

impl<W: Write> Write for NoFlush<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// Everything a reader sees of one entry.
    #[derive(Debug, PartialEq)]
    struct Seen {
        name: String,
        ino: u32,
        mode: u32,
        uid: u32,
        gid: u32,
        nlink: u32,
        mtime: u32,
        rdev: (u32, u32),
        data: Vec<u8>,
    }

    fn read_all(mut archive: &[u8]) -> Vec<Seen> {
        let mut seen = Vec::new();
        loop {
            let mut reader = newc::Reader::new(archive).unwrap();
            let e = reader.entry().clone();
            if e.is_trailer() {
                assert!(
                    reader.finish().unwrap().is_empty(),
                    "bytes after the trailer"
                );
                return seen;
            }
            let mut data = Vec::new();
            reader.read_to_end(&mut data).unwrap();
            seen.push(Seen {
                name: e.name().to_string(),
                ino: e.ino(),
                mode: e.mode(),
                uid: e.uid(),
                gid: e.gid(),
                nlink: e.nlink(),
                mtime: e.mtime(),
                rdev: (e.rdev_major(), e.rdev_minor()),
                data,
            });
            archive = reader.finish().unwrap();
        }
    }

    #[test]
    fn round_trips_every_node_kind() {
        let mut tree = Tree::new();
        tree.file("init", 0o755, b"#!/bin/sh\n".to_vec())
            .symlink("bin/sh", "busybox")
            .char_device("dev/console", 0o600, 5, 1)
            .dir("tmp", 0o1777)
            .file("etc/odd", 0o644, b"12345".to_vec());
        let mut archive = Vec::new();
        write_newc(&tree, 1_700_000_000, &mut archive).unwrap();

        assert_eq!(archive.len() % 4, 0);
        assert!(archive.starts_with(b"070701"));
        let seen = read_all(&archive);
        let entry = |name: &str, ino, mode, nlink, rdev, data: &[u8]| Seen {
            name: name.into(),
            ino,
            mode,
            uid: 0,
            gid: 0,
            nlink,
            mtime: 1_700_000_000,
            rdev,
            data: data.to_vec(),
        };
        assert_eq!(
            seen,
            [
                entry("bin", 1, 0o040755, 2, (0, 0), b""),
                entry("bin/sh", 2, 0o120777, 1, (0, 0), b"busybox"),
                entry("dev", 3, 0o040755, 2, (0, 0), b""),
                entry("dev/console", 4, 0o020600, 1, (5, 1), b""),
                entry("etc", 5, 0o040755, 2, (0, 0), b""),
                entry("etc/odd", 6, 0o100644, 1, (0, 0), b"12345"),
                entry("init", 7, 0o100755, 1, (0, 0), b"#!/bin/sh\n"),
                entry("tmp", 8, 0o041777, 2, (0, 0), b""),
            ]
        );
    }

    #[test]
    fn empty_tree_is_just_a_trailer() {
        let mut archive = Vec::new();
        write_newc(&Tree::new(), 0, &mut archive).unwrap();
        assert!(read_all(&archive).is_empty());
        // 110-byte header + "TRAILER!!!\0", padded to 124.
        assert_eq!(archive.len(), 124);
    }

    #[test]
    fn flushes_once_at_the_end() {
        #[derive(Default)]
        struct CountFlushes(Vec<u8>, usize);
        impl Write for CountFlushes {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0.write(buf)
            }
            fn flush(&mut self) -> io::Result<()> {
                self.1 += 1;
                Ok(())
            }
        }
        let mut tree = Tree::new();
        tree.file("a", 0o644, b"abc".to_vec())
            .file("b", 0o644, b"d".to_vec());
        let mut out = CountFlushes::default();
        write_newc(&tree, 0, &mut out).unwrap();
        assert_eq!(out.1, 1);
    }
}

//! The body of the initramfs crate's fuzz target, shared by `../../fuzz/`
//! (cargo-fuzz, its own workspace, includes this file with `#[path]`) and
//! `../fuzz_smoke.rs` (regression inputs, seeds and their mutations in the
//! ordinary test suite). Dependencies: `slipway_initramfs`,
//! `slipway_image` and `cpio`, which both users name.
//!
//! The workspace has no cpio reader of its own (the kernel unpacks the
//! initramfs), so the target checks the writer against a reader: the
//! `cpio` crate's, with the kernel's rules for names.

use std::io::Read;

use cpio::newc;
use slipway_image::tree::{Node, Tree};
use slipway_initramfs::cpio::write_newc;

/// Entries read back: name, mode, rdev, data.
type Seen = (String, u32, (u32, u32), Vec<u8>);

/// Reads a newc archive up to its trailer (`None` if it is malformed).
fn read_back(mut archive: &[u8]) -> Option<(Vec<Seen>, usize)> {
    let mut seen = Vec::new();
    loop {
        let mut reader = newc::Reader::new(archive).ok()?;
        let e = reader.entry().clone();
        if e.is_trailer() {
            let rest = reader.finish().ok()?;
            return Some((seen, rest.len()));
        }
        let mut data = Vec::new();
        reader.by_ref().take(1 << 20).read_to_end(&mut data).ok()?;
        seen.push((
            e.name().to_string(),
            e.mode(),
            (e.rdev_major(), e.rdev_minor()),
            data,
        ));
        archive = reader.finish().ok()?;
    }
}

/// A tree from fuzz bytes: records of a kind byte (low two bits: folder,
/// file, symlink, character device; the rest: mode bits), a path length
/// byte and the path, two bytes of payload length and the payload (file
/// data or link target; a device's numbers).
fn tree_of(mut data: &[u8]) -> Tree {
    let mut tree = Tree::new();
    while let [kind, len, rest @ ..] = data {
        let len = usize::from(*len).min(rest.len());
        let path = String::from_utf8_lossy(&rest[..len]).into_owned();
        let rest = &rest[len..];
        let n = match rest {
            [a, b, ..] => usize::from(u16::from_le_bytes([*a, *b])).min(rest.len() - 2),
            _ => 0,
        };
        let payload = rest.get(2..2 + n).unwrap_or_default();
        data = rest.get(2 + n..).unwrap_or_default();
        let mode = 0o600 | (u32::from(*kind >> 2) << 3);
        match kind & 3 {
            0 => tree.dir(&path, mode),
            1 => tree.file(&path, mode, payload),
            2 => tree.symlink(&path, &String::from_utf8_lossy(payload)),
            _ => tree.char_device(&path, mode, u32::from(n as u8), n as u32 >> 8),
        };
    }
    tree
}

/// First byte even: a tree from the rest ([`tree_of`]) written as newc;
/// the archive reads back as the tree, entry by entry in tree order, up
/// to the trailer and nothing after it, and no name is one the kernel
/// would read otherwise (a NUL in it, or the trailer's). Odd: the rest is
/// an archive, read up to the trailer without a panic.
pub fn cpio(data: &[u8]) -> bool {
    let Some((&mode, rest)) = data.split_first() else {
        return false;
    };
    if mode % 2 == 1 {
        return read_back(rest).is_some();
    }
    let tree = tree_of(rest);
    let mut archive = Vec::new();
    if write_newc(&tree, 42, &mut archive).is_err() {
        return false;
    }
    assert_eq!(archive.len() % 4, 0);
    let (seen, after) = read_back(&archive).expect("the archive does not read back");
    assert_eq!(after, 0, "bytes after the trailer");
    assert_eq!(seen.len(), tree.len(), "entries lost");
    for ((path, node), (name, mode, rdev, data)) in tree.iter().zip(&seen) {
        assert!(
            name == path && !name.contains('\0') && name != "TRAILER!!!",
            "{path:?} read as {name:?}"
        );
        let (kind, perm, want_rdev, want_data): (u32, u32, (u32, u32), &[u8]) = match node {
            Node::Dir { mode } => (0o040000, *mode, (0, 0), &[]),
            Node::File { mode, data } => (0o100000, *mode, (0, 0), data),
            Node::Symlink { target } => (0o120000, 0o777, (0, 0), target.as_bytes()),
            Node::CharDevice { mode, major, minor } => (0o020000, *mode, (*major, *minor), &[]),
        };
        assert_eq!(*mode, kind | (perm & 0o7777), "{path}");
        assert_eq!(*rdev, want_rdev, "{path}");
        assert_eq!(data.as_slice(), want_data, "{path}");
    }
    true
}

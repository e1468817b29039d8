use std::io::Read;

use slipway_image::tree::Node;

use super::*;

fn module(name: &str, data: &[u8]) -> Module {
    Module {
        name: name.into(),
        data: data.to_vec(),
        depends: Vec::new(),
    }
}

fn sample_tree() -> Tree {
    let mut tree = Tree::new();
    tree.file("init", 0o755, b"\x7fELF init".to_vec())
        .dir("proc", 0o555)
        .char_device("dev/console", 0o600, 5, 1)
        .symlink("sbin/init", "../init");
    add_modules(
        &mut tree,
        &[module("virtio_ring", b"ring"), module("virtio_blk", b"blk")],
    );
    tree
}

#[test]
fn modules_go_under_lib_modules_and_are_listed_in_load_order() {
    let tree = sample_tree();
    assert_eq!(
        tree.get("lib/modules/virtio_ring.ko"),
        Some(&Node::File {
            mode: 0o644,
            data: b"ring".to_vec()
        })
    );
    assert_eq!(
        tree.get(MODULES_LOAD),
        Some(&Node::File {
            mode: 0o644,
            data: b"/lib/modules/virtio_ring.ko\n/lib/modules/virtio_blk.ko\n".to_vec()
        })
    );
}

#[test]
fn no_modules_still_writes_an_empty_load_list() {
    let mut tree = Tree::new();
    add_modules(&mut tree, &[]);
    assert_eq!(
        tree.get("etc/slipway/modules.load"),
        Some(&Node::File {
            mode: 0o644,
            data: Vec::new()
        })
    );
}

#[test]
fn initramfs_is_zstd_compressed_newc() {
    let tree = sample_tree();
    let compressed = build_initramfs(&tree, 42).unwrap();
    assert!(
        compressed.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]),
        "zstd magic"
    );
    let mut archive = Vec::new();
    zstd::Decoder::new(compressed.as_slice())
        .unwrap()
        .read_to_end(&mut archive)
        .unwrap();
    let mut plain = Vec::new();
    crate::cpio::write_newc(&tree, 42, &mut plain).unwrap();
    assert_eq!(archive, plain);
}

#[test]
fn same_inputs_give_the_same_bytes() {
    let first = build_initramfs(&sample_tree(), 1_700_000_000).unwrap();
    // Built again, entries added in another order.
    let mut tree = Tree::new();
    add_modules(
        &mut tree,
        &[module("virtio_ring", b"ring"), module("virtio_blk", b"blk")],
    );
    tree.symlink("sbin/init", "../init")
        .char_device("dev/console", 0o600, 5, 1)
        .dir("proc", 0o555)
        .file("init", 0o755, b"\x7fELF init".to_vec());
    assert_eq!(build_initramfs(&tree, 1_700_000_000).unwrap(), first);
    assert_ne!(build_initramfs(&tree, 1_700_000_001).unwrap(), first);
}

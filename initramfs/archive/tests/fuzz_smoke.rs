//! The initramfs crate's fuzz target's body (`fuzz_bodies/`, shared with
//! `../fuzz/`) over its regression inputs, valid seeds and a few thousand
//! mutations of them (see `boot-contract/tests/fuzz_support/smoke.rs`).

mod fuzz_bodies;
#[path = "../../../boot-contract/tests/fuzz_support/smoke.rs"]
mod smoke;

use slipway_image::tree::Tree;
use slipway_initramfs::cpio::write_newc;

const CRATE: &str = env!("CARGO_MANIFEST_DIR");

/// One record of the body's tree format.
fn record(kind: u8, path: &str, payload: &[u8]) -> Vec<u8> {
    let mut r = vec![kind, path.len() as u8];
    r.extend(path.as_bytes());
    r.extend((payload.len() as u16).to_le_bytes());
    r.extend(payload);
    r
}

#[test]
fn cpio() {
    let tree_input = [
        vec![0u8],
        record(0x1c, "etc", b""),
        record(0x1d, "etc/initrd-release", b"NAME=Slipway\n"),
        record(0x02, "bin/sh", b"busybox"),
        record(0x03, "dev/console", &[0u8; 0x0105]),
        record(0x1d, "lib/modules/virtio_blk.ko", b"\x7fELF"),
    ]
    .concat();
    let mut tree = Tree::new();
    tree.file("init", 0o755, b"#!/bin/sh\n".to_vec())
        .symlink("sbin/init", "../init")
        .char_device("dev/console", 0o600, 5, 1);
    let mut archive = vec![1u8];
    write_newc(&tree, 1_700_000_000, &mut archive).unwrap();
    smoke::smoke(
        CRATE,
        "cpio",
        &[tree_input, archive],
        fuzz_bodies::cpio,
        3000,
    );
}

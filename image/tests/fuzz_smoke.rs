//! The image crate's fuzz targets' bodies (`fuzz_bodies/`, shared with
//! `../fuzz/`) over their regression inputs, valid seeds and a few
//! thousand mutations of them (see `boot-contract/tests/fuzz_support/smoke.rs`).

mod fuzz_bodies;
#[path = "../../boot-contract/tests/fuzz_support/smoke.rs"]
mod smoke;

use fuzz_bodies::{ar, fix_tar_checksums, tar_header};

const CRATE: &str = env!("CARGO_MANIFEST_DIR");

const CONTROL: &str = "Package: hello\nVersion: 2.10-3\nArchitecture: amd64\n\
                       Depends: libc6 (>= 2.34), a | b\nDescription: hi\n more\n";

/// A data tar of a folder, a file, a symlink and a hard link.
fn data_tar(extra: &[(&str, u8, &str)]) -> Vec<u8> {
    let mut tar = Vec::new();
    tar.extend(tar_header("./", b'5', 0, ""));
    tar.extend(tar_header("./usr/", b'5', 0, ""));
    tar.extend(tar_header("./usr/hello", b'0', 5, ""));
    let mut body = b"hello".to_vec();
    body.resize(512, 0);
    tar.extend(body);
    tar.extend(tar_header("./usr/link", b'2', 0, "hello"));
    tar.extend(tar_header("./usr/again", b'1', 0, "./usr/hello"));
    for (name, kind, link) in extra {
        tar.extend(tar_header(name, *kind, 0, link));
    }
    tar.extend([0u8; 1024]);
    tar
}

/// A build-mode input: control text and data tar for the body to wrap.
fn built(control: &str, tar: &[u8]) -> Vec<u8> {
    let mut input = vec![1u8];
    input.extend((control.len() as u16).to_le_bytes());
    input.extend(control.as_bytes());
    input.extend(tar);
    input
}

#[test]
fn deb() {
    let mut control_tar = tar_header("./control", b'0', CONTROL.len(), "");
    control_tar.extend(CONTROL.as_bytes());
    control_tar.resize(2048, 0);
    fix_tar_checksums(&mut control_tar);
    let mut tar = data_tar(&[]);
    fix_tar_checksums(&mut tar);
    let raw = ar(&[
        ("debian-binary", b"2.0\n"),
        ("control.tar", &control_tar),
        ("data.tar", &tar),
    ]);
    let seeds = vec![
        [&[0u8][..], &raw].concat(),
        built(CONTROL, &data_tar(&[])),
        // A link out of the folder, then a file by its name (replaced,
        // not written through); a device node (skipped).
        built(
            CONTROL,
            &data_tar(&[
                ("./usr/out", b'2', "../../beside"),
                ("./usr/out", b'0', ""),
                ("./dev", b'3', ""),
            ]),
        ),
    ];
    smoke::smoke(CRATE, "deb", &seeds, fuzz_bodies::deb, 2000);
}

#[test]
fn gpt_table() {
    let seeds = fuzz_bodies::gpt_disk::reader_seeds();
    smoke::smoke(CRATE, "gpt_table", &seeds, fuzz_bodies::gpt_table, 1000);
}

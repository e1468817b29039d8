//! The bodies of the image crate's fuzz targets, shared by `../../fuzz/`
//! (cargo-fuzz, its own workspace, includes this file with `#[path]`) and
//! `../fuzz_smoke.rs` (regression inputs, seeds and their mutations in the
//! ordinary test suite). Each takes arbitrary bytes, must never panic,
//! checks a property a wrong reader would break, and returns whether the
//! input was accepted. Dependencies: `slipway_image` and `crc32fast` (for
//! `gpt_disk.rs`), which both users name.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use slipway_image::{deb, gpt_table};

#[path = "../../../boot-contract/tests/fuzz_support/gpt_disk.rs"]
pub mod gpt_disk;

/// A folder of this process's own for the files the targets need.
fn sandbox() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("slipway-fuzz-image-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// One `ar` member: a 60-byte header, the data, padded to even.
pub fn ar_member(name: &str, data: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
        name,
        0,
        0,
        0,
        "100644",
        data.len()
    )
    .into_bytes();
    out.extend_from_slice(data);
    if data.len() % 2 == 1 {
        out.push(b'\n');
    }
    out
}

/// A `.deb` of the given members.
pub fn ar(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = b"!<arch>\n".to_vec();
    for (name, data) in members {
        out.extend(ar_member(name, data));
    }
    out
}

/// Sets the checksum of every tar header in `tar` (following the size
/// fields), so that mutated headers get past it.
pub fn fix_tar_checksums(tar: &mut [u8]) {
    let mut at = 0;
    while let Some(header) = tar.get_mut(at..at + 512) {
        if header.iter().all(|&b| b == 0) {
            break;
        }
        header[148..156].fill(b' ');
        let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
        header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let size = std::str::from_utf8(&header[124..136])
            .ok()
            .and_then(|s| u64::from_str_radix(s.trim_matches([' ', '\0']), 8).ok());
        let Some(size) = size.filter(|&s| s < 1 << 30) else {
            break;
        };
        at += 512 + size.div_ceil(512) as usize * 512;
    }
}

/// A tar header for `name` (`kind` a tar type flag), checksum left out.
pub fn tar_header(name: &str, kind: u8, size: usize, link: &str) -> Vec<u8> {
    let mut h = vec![0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000755\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h
}

/// A package, read as the builder reads Debian's: its control paragraph
/// and its data unpacked. First byte even: the rest is the `.deb` as it
/// is; odd: bytes 1–2 are the length of a control file, which follows,
/// and the rest is a data tar whose checksums the body sets, both
/// wrapped in a `.deb` by the body. However it ends, the unpacking never
/// writes outside its folder: the folder's neighbours (the package and a
/// file beside it) are unchanged and not linked to, and nothing else
/// appears beside it. A control read has its three fields.
pub fn deb(data: &[u8]) -> bool {
    let Some((&mode, rest)) = data.split_first() else {
        return false;
    };
    let package = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        let Some(len) = rest.get(..2) else {
            return false;
        };
        let len = usize::from(u16::from_le_bytes([len[0], len[1]])).min(rest.len() - 2);
        let (control, data_tar) = rest[2..].split_at(len);
        let mut control_tar = tar_header("./control", b'0', control.len(), "");
        control_tar.extend_from_slice(control);
        control_tar.resize(control_tar.len().div_ceil(512) * 512 + 1024, 0);
        fix_tar_checksums(&mut control_tar);
        let mut data_tar = data_tar.to_vec();
        fix_tar_checksums(&mut data_tar);
        ar(&[
            ("debian-binary", b"2.0\n"),
            ("control.tar", &control_tar),
            ("data.tar", &data_tar),
        ])
    };
    let dir = sandbox().join("deb");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (pkg, beside, root) = (dir.join("pkg.deb"), dir.join("beside"), dir.join("root"));
    std::fs::write(&pkg, &package).unwrap();
    std::fs::write(&beside, b"not to be touched").unwrap();
    let control = deb::control(&pkg);
    if let Ok(c) = &control {
        for (name, value) in [
            ("Package", &c.package),
            ("Version", &c.version),
            ("Architecture", &c.architecture),
        ] {
            assert_eq!(c.field(name), Some(value.as_str()));
        }
    }
    let extracted = deb::extract(&pkg, &root);
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert!(
        names == ["beside", "pkg.deb", "root"] || names == ["beside", "pkg.deb"],
        "beside the folder: {names:?} ({extracted:?})"
    );
    assert_eq!(std::fs::read(&pkg).unwrap(), package, "the package changed");
    assert_eq!(std::fs::read(&beside).unwrap(), b"not to be touched");
    for file in [&pkg, &beside] {
        assert_eq!(
            std::fs::metadata(file).unwrap().nlink(),
            1,
            "{file:?} linked"
        );
    }
    control.is_ok() && extracted.is_ok()
}

/// The image's partition table reader (`gpt_table::read`, used by the
/// update engine on the boot disk) on the disk `gpt_disk` describes,
/// written as a sparse file: partitions read lie on the disk.
pub fn gpt_table(data: &[u8]) -> bool {
    let Some((disk, _)) = gpt_disk::gpt_disk(data) else {
        return false;
    };
    let path = sandbox().join("disk.raw");
    disk.write_file(&path).unwrap();
    let Ok((_, parts)) = gpt_table::read(&path) else {
        return false;
    };
    for p in &parts {
        assert!(p.size > 0 && p.offset + p.size <= disk.len, "{p:?}");
    }
    true
}

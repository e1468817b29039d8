//! The empty ext4 the installer puts on `var` when it installs from the
//! running system's boot disk.
//!
//! Why not copy the boot disk's `var`: it is that machine's state (its
//! machine ID, SSH host keys, `/etc` overlay, logs, containers); a copy would
//! make two machines with one identity. Why not make a filesystem on the
//! machine: the image has no `mke2fs`, and no maintained Rust crate writes
//! ext4 (see `slipway-image`'s `var_fs`). So the installer carries the
//! filesystem the builder would make: `var-template.bin.gz` holds the
//! non-zero blocks (12 of 4 KiB) of a 128 MiB ext4 made by the builder's own
//! `var_fs::format` (same private `mke2fs.conf`, label `var`, inode tables
//! and journal zeroed at creation) with a fixed UUID and time; every other
//! byte is zero. The test `the_template_is_what_var_fs_makes` remakes it
//! and fails if it differs (`SLIPWAY_WRITE_VAR_TEMPLATE=1` rewrites it).
//! The init grows it, like a fresh image's, to the end of the disk at the
//! first boot.
//!
//! File format (before gzip): records of `u64` LE offset, `u32` LE length,
//! then the bytes.

use std::io::Read;

use anyhow::{bail, Context, Result};

/// The filesystem's size, and so the installed `var` partition's before the
/// first boot grows it (the qemu and generic boards' `var_mib`).
pub const LEN: u64 = 128 * 1024 * 1024;
/// The fixed creation time (2025-01-01T00:00:00Z).
pub const EPOCH: u64 = 1_735_689_600;
/// The filesystem UUID: `derived_uuid("slipway-install", "var")`.
pub fn uuid() -> uuid::Uuid {
    slipway_image::layout::derived_uuid("slipway-install", "var")
}

const DATA: &[u8] = include_bytes!("var-template.bin.gz");

/// The non-zero runs of the template: `(offset, bytes)`, in order.
pub fn runs() -> Result<Vec<(u64, Vec<u8>)>> {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(DATA)
        .read_to_end(&mut raw)
        .context("var template: gunzip")?;
    decode(&raw)
}

/// Parses the record format (module doc).
pub fn decode(raw: &[u8]) -> Result<Vec<(u64, Vec<u8>)>> {
    let mut runs = Vec::new();
    let mut rest = raw;
    while !rest.is_empty() {
        let (Some(off), Some(len)) = (rest.get(..8), rest.get(8..12)) else {
            bail!("var template: truncated record header");
        };
        let offset = u64::from_le_bytes(off.try_into().unwrap_or_default());
        let len = u32::from_le_bytes(len.try_into().unwrap_or_default()) as usize;
        let Some(bytes) = rest.get(12..12 + len) else {
            bail!("var template: truncated record at offset {offset}");
        };
        if offset + len as u64 > LEN {
            bail!("var template: record at {offset} runs past {LEN}");
        }
        runs.push((offset, bytes.to_vec()));
        rest = &rest[12 + len..];
    }
    Ok(runs)
}

/// The record format of the non-zero 4 KiB blocks of `fs`, adjacent blocks
/// merged into one record.
pub fn encode(fs: &[u8]) -> Vec<u8> {
    const BLOCK: usize = 4096;
    let mut out = Vec::new();
    let mut run: Option<(usize, usize)> = None;
    let flush = |run: (usize, usize), out: &mut Vec<u8>| {
        out.extend_from_slice(&(run.0 as u64).to_le_bytes());
        out.extend_from_slice(&((run.1 - run.0) as u32).to_le_bytes());
        out.extend_from_slice(&fs[run.0..run.1]);
    };
    for (i, block) in fs.chunks(BLOCK).enumerate() {
        let start = i * BLOCK;
        if block.iter().any(|&b| b != 0) {
            run = match run {
                Some((s, e)) if e == start => Some((s, start + block.len())),
                Some(r) => {
                    flush(r, &mut out);
                    Some((start, start + block.len()))
                }
                None => Some((start, start + block.len())),
            };
        }
    }
    if let Some(r) = run {
        flush(r, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    fn have(tool: &str) -> bool {
        ["/usr/sbin", "/sbin"]
            .iter()
            .any(|d| Path::new(d).join(tool).exists())
    }

    #[test]
    fn the_template_is_what_var_fs_makes() {
        if !have("mke2fs") {
            assert!(std::env::var_os("CI").is_none(), "mke2fs missing in CI");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("var.ext4");
        std::fs::File::create(&path).unwrap().set_len(LEN).unwrap();
        slipway_image::var_fs::format(&path, 0, LEN, &uuid(), EPOCH).unwrap();
        let fs = std::fs::read(&path).unwrap();
        let encoded = encode(&fs);
        if std::env::var_os("SLIPWAY_WRITE_VAR_TEMPLATE").is_some() {
            let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/var-template.bin.gz");
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            std::io::Write::write_all(&mut gz, &encoded).unwrap();
            std::fs::write(out, gz.finish().unwrap()).unwrap();
        }
        assert!(
            decode(&encoded).unwrap() == runs().unwrap(),
            "src/var-template.bin.gz is not what var_fs::format makes now (another \
             mke2fs, or changed settings): rerun this test with SLIPWAY_WRITE_VAR_TEMPLATE=1"
        );
    }

    #[test]
    fn the_template_is_a_clean_ext4_labelled_var() {
        let mut fs = vec![0u8; LEN as usize];
        for (offset, bytes) in runs().unwrap() {
            fs[offset as usize..offset as usize + bytes.len()].copy_from_slice(&bytes);
        }
        // The superblock: ext magic, label `var`, the fixed UUID.
        let sb = &fs[1024..2048];
        assert_eq!(&sb[0x38..0x3a], &[0x53, 0xef]);
        assert_eq!(&sb[0x78..0x7b], b"var");
        assert_eq!(&sb[0x68..0x78], uuid().as_bytes());
        if !have("e2fsck") {
            assert!(std::env::var_os("CI").is_none(), "e2fsck missing in CI");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("var.ext4");
        std::fs::write(&path, &fs).unwrap();
        let out = Command::new("e2fsck")
            .args(["-f", "-n"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "e2fsck: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

//! User-data seeds for QEMU: the small disks cloud images read their
//! configuration from.
//!
//! - NoCloud: a filesystem labelled `cidata` with `user-data` and
//!   `meta-data` in its root (what `cloud-localds` makes);
//! - ConfigDrive: a filesystem labelled `config-2` with
//!   `openstack/latest/user_data` and `openstack/latest/meta_data.json`.
//!
//! Both are FAT32 written with `fatfs` (through the ESP writer). FAT32
//! needs at least 65525 clusters, hence 40 MiB of 512-byte clusters; the
//! file is sparse, so it costs a few hundred KiB.

use std::path::Path;

use anyhow::{Context, Result};
use slipway_image::esp::{write_fat32, Fat32Volume};

use crate::util::sha256_bytes;

/// Which seed format to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeedKind {
    NoCloud,
    ConfigDrive,
}

const SEED_SIZE: u64 = 40 * 1024 * 1024;

/// The instance ID a seed carries: derived from the user-data, so editing
/// the user-data makes a new instance (per-instance items run again) and
/// booting the same user-data again does not.
pub fn instance_id(user_data: &[u8]) -> String {
    format!("iid-slipway-{}", &sha256_bytes(user_data)[..16])
}

/// The files of the seed, by path inside it.
pub fn seed_files(kind: &SeedKind, user_data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let id = instance_id(user_data);
    match kind {
        SeedKind::NoCloud => vec![
            ("user-data".into(), user_data.to_vec()),
            (
                "meta-data".into(),
                format!("instance-id: {id}\n").into_bytes(),
            ),
        ],
        SeedKind::ConfigDrive => vec![
            ("openstack/latest/user_data".into(), user_data.to_vec()),
            (
                "openstack/latest/meta_data.json".into(),
                serde_json::to_vec_pretty(&serde_json::json!({ "uuid": id })).unwrap_or_default(),
            ),
        ],
    }
}

/// Writes a seed disk image holding `user_data` to `out`.
pub fn write_seed(kind: &SeedKind, user_data: &[u8], out: &Path) -> Result<()> {
    let mut file = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(out)
        .with_context(|| format!("creating {}", out.display()))?;
    file.set_len(SEED_SIZE)?;
    let label = match kind {
        SeedKind::NoCloud => *b"CIDATA     ",
        SeedKind::ConfigDrive => *b"CONFIG-2   ",
    };
    let volume = Fat32Volume {
        offset: 0,
        size: SEED_SIZE,
        bytes_per_cluster: 512,
        volume_id: u32::from_str_radix(&sha256_bytes(user_data)[..8], 16).unwrap_or(0),
        label,
    };
    write_fat32(&mut file, out, &volume, 0, &seed_files(kind, user_data))
        .with_context(|| format!("writing the seed {}", out.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nocloud_seed_has_label_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("seed.img");
        let user_data = b"#cloud-config\nhostname: box\n";
        write_seed(&SeedKind::NoCloud, user_data, &out).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        // The FAT32 boot sector's volume label (offset 0x47).
        assert_eq!(&bytes[0x47..0x52], b"CIDATA     ");
        let mut f = std::fs::File::open(&out).unwrap();
        let got = slipway_image::esp::read_file(&mut f, 0, SEED_SIZE, "user-data").unwrap();
        assert_eq!(got, user_data);
        let meta = slipway_image::esp::read_file(&mut f, 0, SEED_SIZE, "meta-data").unwrap();
        assert_eq!(
            String::from_utf8(meta).unwrap(),
            format!("instance-id: {}\n", instance_id(user_data))
        );
    }

    #[test]
    fn config_drive_seed_has_openstack_layout() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("seed.img");
        write_seed(&SeedKind::ConfigDrive, b"#!/bin/sh\necho hi\n", &out).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(&bytes[0x47..0x52], b"CONFIG-2   ");
        let mut f = std::fs::File::open(&out).unwrap();
        let meta =
            slipway_image::esp::read_file(&mut f, 0, SEED_SIZE, "openstack/latest/meta_data.json")
                .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&meta).unwrap();
        assert!(v["uuid"].as_str().unwrap().starts_with("iid-slipway-"));
    }

    #[test]
    fn instance_id_follows_the_user_data() {
        assert_eq!(instance_id(b"a"), instance_id(b"a"));
        assert_ne!(instance_id(b"a"), instance_id(b"b"));
    }
}

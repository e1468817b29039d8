//! The user-data of `-i`, as a NoCloud seed partition on the installed disk.
//!
//! How the installed system finds it: at every boot, stage 2 runs
//! `slipway-cloud-config boot local`, which probes every block device
//! (partitions included) for a FAT or ISO 9660 filesystem labelled
//! `cidata`, mounts it read-only and reads `user-data` (cloud-config's
//! `boot/seeds.rs` and `datasource/`). The other sources (fw_cfg, a config drive, a URL on the
//! command line, EC2) are not on a bare-metal disk, and nothing reads
//! user-data from a file on `/var`; a seed partition is the standard NoCloud
//! place (cloud-init documents a `cidata` partition) and needs no new code
//! on the machine. The instance ID follows the file's content, so it is
//! applied once, at the first boot, and again only if the seed changes.
//!
//! Where: in the gap between the primary GPT and the first partition
//! (sectors 40–2047, 4 KiB-aligned, 1004 KiB). Not after `var`: the init
//! grows `var`, the last partition, to the end of the disk at first boot
//! and refuses to when anything lies after it. The seed stays readable by
//! root on the disk, as a NoCloud seed disk would: keep secrets out of
//! user-data or remove the partition after the first boot.

use std::io::{Cursor, Write};

use anyhow::{Context, Result};
use uuid::Uuid;

use crate::source::SourcePartition;

const SECTOR: u64 = 512;
/// First byte of the seed partition (sector 40: past the primary GPT's 34
/// sectors, on a 4 KiB boundary).
pub const START: u64 = 40 * SECTOR;
/// Where the first Slipway partition starts (1 MiB).
pub const END: u64 = 2048 * SECTOR;
/// The label NoCloud looks for.
pub const LABEL: &str = "cidata";
/// Microsoft basic data, the type FAT data partitions carry.
pub const BASIC_DATA: Uuid = Uuid::from_u128(0xebd0a0a2_b9e5_4433_87c0_68b6b72699c7);
/// The most user-data the FAT12 volume takes, with room for its tables.
pub const MAX_USER_DATA: usize = 900 * 1024;

/// The seed's GPT entry (a fresh partition UUID per install).
pub fn partition(number: u32) -> SourcePartition {
    SourcePartition {
        number,
        label: LABEL.to_string(),
        type_guid: BASIC_DATA,
        uuid: Uuid::new_v4(),
        first_lba: START / SECTOR,
        last_lba: END / SECTOR - 1,
        flags: 0,
    }
}

/// Whether a partition is a seed an earlier install made (it is not part of
/// the image and is replaced, or dropped without `-i`).
pub fn is_seed(p: &SourcePartition) -> bool {
    p.label == LABEL && p.type_guid == BASIC_DATA && p.end() <= END
}

/// The seed filesystem: FAT12, label `cidata`, holding `user-data`.
pub fn build(user_data: &[u8]) -> Result<Vec<u8>> {
    let mut image = vec![0u8; (END - START) as usize];
    let mut label = [b' '; 11];
    label[..LABEL.len()].copy_from_slice(LABEL.as_bytes());
    fatfs::format_volume(
        Cursor::new(&mut image[..]),
        fatfs::FormatVolumeOptions::new()
            .fat_type(fatfs::FatType::Fat12)
            .volume_label(label),
    )
    .context("formatting the seed (FAT12)")?;
    {
        let fs = fatfs::FileSystem::new(Cursor::new(&mut image[..]), fatfs::FsOptions::new())
            .context("opening the seed")?;
        let mut file = fs
            .root_dir()
            .create_file("user-data")
            .context("creating user-data on the seed")?;
        file.truncate().context("seed user-data")?;
        file.write_all(user_data)
            .context("writing user-data to the seed")?;
        file.flush().context("seed user-data")?;
        drop(file);
        fs.unmount().context("closing the seed")?;
    }
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_seed_is_a_cidata_fat_that_cloud_config_recognises() {
        let text = b"#cloud-config\nhostname: installed\n";
        let mut image = build(text).unwrap();
        assert_eq!(image.len(), 1004 * 1024);
        // The same probe the machine's boot step runs on every block device.
        let probe = cloud_config::datasource::filesystem_label(&image);
        assert_eq!(
            probe,
            Some((cloud_config::datasource::FsKind::Vfat, "cidata".to_string()))
        );
        let fs =
            fatfs::FileSystem::new(Cursor::new(&mut image[..]), fatfs::FsOptions::new()).unwrap();
        assert_eq!(fs.fat_type(), fatfs::FatType::Fat12);
        let mut got = Vec::new();
        fs.root_dir()
            .open_file("user-data")
            .unwrap()
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got, text);
    }

    #[test]
    fn the_largest_user_data_fits() {
        let big = vec![b'#'; MAX_USER_DATA];
        build(&big).unwrap();
    }
}

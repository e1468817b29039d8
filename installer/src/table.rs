//! The target's partition table: what it will hold ([`Plan`]), wiping the
//! old one first, writing the new one last.

use std::collections::BTreeMap;
use std::fs::File;

use anyhow::{anyhow, bail, Result};
use gpt::disk::LogicalBlockSize;
use gpt::mbr::ProtectiveMBR;
use gpt::partition::Partition;
use gpt::partition_types::{OperatingSystem, Type};
use uuid::Uuid;

use crate::seed;
use crate::source::{Source, SourcePartition};
use crate::var_template;
use crate::written::{self, Stats};

const SECTOR: u64 = 512;
/// The protective MBR and the primary GPT (header, 128 entries of 128 bytes).
pub const PRIMARY_BYTES: u64 = 34 * SECTOR;
/// The backup GPT at the disk's end (entries, then the header).
pub const BACKUP_BYTES: u64 = 33 * SECTOR;

/// The `var` partition type (ARCHITECTURE.md, "On-disk layout"), which the init grows at first boot.
pub const VAR_TYPE: Uuid = Uuid::from_u128(0x4d21b016_b534_45c2_a9fb_5c16e091fd2d);

/// Where a partition's bytes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// The same offsets of the source.
    Source,
    /// A fresh, empty ext4 ([`var_template`]): the boot disk's own `var`
    /// holds that machine's state (machine ID, SSH host keys, logs) and is
    /// never copied.
    VarTemplate,
    /// The NoCloud seed with the user-data ([`seed`]).
    Seed,
}

/// One partition of the installed disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub entry: SourcePartition,
    pub content: Content,
}

/// The installed disk's partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub disk_guid: Uuid,
    pub partitions: Vec<Planned>,
    /// Where the image ends on the target: its backup GPT's end for a whole
    /// image, the fresh `var`'s end for the boot disk.
    image_end: u64,
}

impl Plan {
    /// Checks the source's table and plans the target's: a whole image is
    /// laid out as it is; from the boot disk, every partition but `var`
    /// (made fresh at its start, the template's size) and an earlier
    /// install's seed. With user-data, the seed partition goes in the gap
    /// before the first partition ([`seed`] says why there).
    pub fn from_source(source: &Source, with_seed: bool) -> Result<Plan> {
        let name = &source.name;
        let vars: Vec<&SourcePartition> = source
            .partitions
            .iter()
            .filter(|p| p.type_guid == VAR_TYPE)
            .collect();
        let [var] = vars.as_slice() else {
            bail!(
                "{name}: {} partitions of the var type {VAR_TYPE}, want exactly one: not a Slipway disk",
                vars.len()
            );
        };
        if let Some(after) = source.partitions.iter().find(|p| p.last_lba > var.last_lba) {
            bail!(
                "{name}: partition {} ({}) lies after var: not a Slipway disk",
                after.number,
                after.label
            );
        }
        if let Some(early) = source
            .partitions
            .iter()
            .find(|p| p.offset() < seed::END && !seed::is_seed(p))
        {
            bail!(
                "{name}: partition {} ({}) starts before 1 MiB: not a Slipway disk",
                early.number,
                early.label
            );
        }
        let mut partitions = Vec::new();
        let image_end;
        if source.boot_disk {
            for p in &source.partitions {
                if seed::is_seed(p) {
                    continue;
                }
                if p.type_guid == VAR_TYPE {
                    let mut entry = p.clone();
                    entry.last_lba = p.first_lba + var_template::LEN / SECTOR - 1;
                    partitions.push(Planned {
                        entry,
                        content: Content::VarTemplate,
                    });
                } else {
                    partitions.push(Planned {
                        entry: p.clone(),
                        content: Content::Source,
                    });
                }
            }
            image_end = var.offset() + var_template::LEN + BACKUP_BYTES;
        } else {
            if var.end() + BACKUP_BYTES > source.len {
                bail!(
                    "{name}: var ends at byte {} but the image is only {} bytes",
                    var.end(),
                    source.len
                );
            }
            for p in source.partitions.iter().filter(|p| !seed::is_seed(p)) {
                partitions.push(Planned {
                    entry: p.clone(),
                    content: Content::Source,
                });
            }
            image_end = source.len;
        }
        if with_seed {
            let number = partitions.iter().map(|p| p.entry.number).max().unwrap_or(0) + 1;
            partitions.push(Planned {
                entry: seed::partition(number),
                content: Content::Seed,
            });
        }
        partitions.sort_by_key(|p| p.entry.number);
        Ok(Plan {
            disk_guid: source.disk_guid,
            partitions,
            image_end,
        })
    }

    /// The smallest target that holds the image and a backup GPT.
    pub fn min_target_bytes(&self) -> u64 {
        self.image_end
    }

    /// Bytes the image occupies on the target (for the report).
    pub fn image_bytes(&self) -> u64 {
        self.image_end
    }

    /// Bytes the copy walks (the progress bar's total): a whole image is
    /// read (and hashed) front to back; from the boot disk, the partitions
    /// that are copied.
    pub fn copy_bytes(&self, source: &Source) -> u64 {
        if source.boot_disk {
            self.partitions
                .iter()
                .filter(|p| p.content == Content::Source)
                .map(|p| p.entry.end() - p.entry.offset())
                .sum()
        } else {
            source.len
        }
    }

    /// Byte offset of the seed partition.
    pub fn seed_offset(&self) -> u64 {
        seed::START
    }
}

/// Zeroes the old primary and backup tables (and protective MBR), flushed,
/// before any data: a disk cut off mid-install must not look bootable,
/// not even as what it held before.
pub fn wipe(file: &mut File, len: u64, stats: &mut Stats) -> Result<()> {
    let zeros = vec![0u8; PRIMARY_BYTES as usize];
    written::write_all_at(file, &zeros, 0, stats)?;
    if len >= PRIMARY_BYTES + BACKUP_BYTES {
        written::write_all_at(
            file,
            &zeros[..BACKUP_BYTES as usize],
            len - BACKUP_BYTES,
            stats,
        )?;
    }
    file.sync_all()?;
    Ok(())
}

/// Writes the planned GPT over the whole target (backup header in its last
/// sector, usable space to its end) and the protective MBR.
pub fn write(file: &mut File, len: u64, plan: &Plan, stats: &mut Stats) -> Result<()> {
    let entries: BTreeMap<u32, Partition> = plan
        .partitions
        .iter()
        .map(|p| {
            let e = &p.entry;
            (
                e.number,
                Partition {
                    part_type_guid: Type {
                        guid: e.type_guid,
                        os: OperatingSystem::None,
                    },
                    part_guid: e.uuid,
                    first_lba: e.first_lba,
                    last_lba: e.last_lba,
                    flags: e.flags,
                    name: e.label.clone(),
                },
            )
        })
        .collect();
    let mut disk = gpt::GptConfig::new()
        .writable(true)
        .logical_block_size(LogicalBlockSize::Lb512)
        .create_from_device(&mut *file, Some(plan.disk_guid))
        .map_err(|e| anyhow!("{e}"))?;
    disk.update_partitions(entries)
        .map_err(|e| anyhow!("{e}"))?;
    disk.write().map_err(|e| anyhow!("{e}"))?;
    let sectors = len / SECTOR;
    let mbr = ProtectiveMBR::with_lb_size(u32::try_from(sectors - 1).unwrap_or(u32::MAX));
    mbr.overwrite_lba0(&mut *file)
        .map_err(|e| anyhow!("protective MBR: {e}"))?;
    stats.written += PRIMARY_BYTES + BACKUP_BYTES;
    Ok(())
}

//! Reading a disk's GPT: its GUID and the used entries. A leaf: the source,
//! the boot-disk search and the refusal checks all read tables with it.

use std::io::Cursor;

use anyhow::{anyhow, bail, Result};
use gpt::disk::LogicalBlockSize;
use uuid::Uuid;

const SECTOR: u64 = 512;

/// One used entry of the source's GPT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePartition {
    pub number: u32,
    pub label: String,
    pub type_guid: Uuid,
    pub uuid: Uuid,
    pub first_lba: u64,
    pub last_lba: u64,
    pub flags: u64,
}

impl SourcePartition {
    /// From an entry the `gpt` crate read.
    pub fn from_entry(number: u32, p: &gpt::partition::Partition) -> SourcePartition {
        SourcePartition {
            number,
            label: p.name.clone(),
            type_guid: p.part_type_guid.guid,
            uuid: p.part_guid,
            first_lba: p.first_lba,
            last_lba: p.last_lba,
            flags: p.flags,
        }
    }

    pub fn offset(&self) -> u64 {
        self.first_lba * SECTOR
    }
    pub fn end(&self) -> u64 {
        (self.last_lba + 1) * SECTOR
    }
}

/// The disk GUID and used partitions of the primary GPT in `head`.
pub fn parse_table(head: &[u8]) -> Result<(Uuid, Vec<SourcePartition>)> {
    let lb = LogicalBlockSize::Lb512;
    let mut cursor = Cursor::new(head);
    let header = gpt::header::read_header_from_arbitrary_device(&mut cursor, lb)
        .map_err(|e| anyhow!("no valid primary GPT: {e}"))?;
    if header.part_size != 128 {
        bail!(
            "the GPT has {}-byte entries, not 128: not a Slipway image",
            header.part_size
        );
    }
    let entries = gpt::partition::file_read_partitions(&mut cursor, &header, lb)
        .map_err(|e| anyhow!("reading the GPT entries: {e}"))?;
    let partitions: Vec<SourcePartition> = entries
        .into_iter()
        .filter(|(_, p)| p.is_used())
        .map(|(number, p)| SourcePartition::from_entry(number, &p))
        .collect();
    // `offset`, `end` and the sizes the refusals print must compute (found
    // by the `gpt_read` fuzz target: an entry ending before it started).
    if let Some(bad) = partitions
        .iter()
        .find(|p| p.first_lba > p.last_lba || p.last_lba >= u64::MAX / SECTOR)
    {
        bail!(
            "GPT entry {} ends before it starts or beyond any disk",
            bad.number
        );
    }
    Ok((header.disk_guid, partitions))
}

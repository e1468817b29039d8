//! Writing (and reading back) the GPT of a disk image file with the `gpt`
//! crate, from a planned [`Layout`].

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use gpt::disk::LogicalBlockSize;
use gpt::mbr::ProtectiveMBR;
use gpt::partition::Partition;
use gpt::partition_types::{OperatingSystem, Type};

use crate::layout::{Layout, SECTOR};

#[derive(Debug, thiserror::Error)]
pub enum GptTableError {
    #[error("{path}: writing the GPT: {source}")]
    Gpt {
        path: String,
        #[source]
        source: gpt::GptError,
    },
    #[error("{path}: writing the protective MBR: {source}")]
    Mbr {
        path: String,
        #[source]
        source: gpt::mbr::MBRError,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Writes the protective MBR and both GPT headers and tables to `file`,
/// which must already have the layout's full length.
pub fn write(file: &mut File, path: &Path, layout: &Layout) -> Result<(), GptTableError> {
    let p = || path.display().to_string();
    let sectors = layout.disk_size / SECTOR;
    let mbr = ProtectiveMBR::with_lb_size(u32::try_from(sectors - 1).unwrap_or(u32::MAX));
    mbr.overwrite_lba0(file)
        .map_err(|source| GptTableError::Mbr { path: p(), source })?;

    let mut disk = gpt::GptConfig::new()
        .writable(true)
        .logical_block_size(LogicalBlockSize::Lb512)
        .create_from_device(&mut *file, Some(layout.disk_guid))
        .map_err(|source| GptTableError::Gpt { path: p(), source })?;

    // The crate's add_partition* helpers pick random partition GUIDs; we set
    // every entry ourselves so the UUIDs stay derived from the image identity.
    let entries: BTreeMap<u32, Partition> = layout
        .partitions
        .iter()
        .map(|part| {
            let entry = Partition {
                part_type_guid: Type {
                    guid: part.type_guid,
                    os: OperatingSystem::None,
                },
                part_guid: part.uuid,
                first_lba: part.first_lba(),
                last_lba: part.last_lba(),
                flags: part.attributes,
                name: part.label.clone(),
            };
            (part.number, entry)
        })
        .collect();
    disk.update_partitions(entries)
        .map_err(|source| GptTableError::Gpt { path: p(), source })?;
    disk.write()
        .map_err(|source| GptTableError::Gpt { path: p(), source })?;
    Ok(())
}

/// One partition as read back from an image (for tests and tools).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadPartition {
    pub number: u32,
    pub label: String,
    pub type_guid: uuid::Uuid,
    pub uuid: uuid::Uuid,
    pub offset: u64,
    pub size: u64,
    pub attributes: u64,
}

/// Reads the partition table of an image file.
pub fn read(path: &Path) -> Result<(uuid::Uuid, Vec<ReadPartition>), GptTableError> {
    let p = || path.display().to_string();
    check_entries(path).map_err(|source| GptTableError::Io { path: p(), source })?;
    let disk = gpt::GptConfig::new()
        .writable(false)
        .logical_block_size(LogicalBlockSize::Lb512)
        .open(path)
        .map_err(|source| GptTableError::Gpt { path: p(), source })?;
    // Seeking, not the metadata: a block device's metadata says 0 bytes.
    let disk_len = File::open(path)
        .and_then(|mut f| f.seek(SeekFrom::End(0)))
        .map_err(|source| GptTableError::Io { path: p(), source })?;
    let parts = disk
        .partitions()
        .iter()
        .filter(|(_, part)| part.is_used())
        .map(|(number, part)| {
            // An entry ending before it starts or past the disk is not one
            // we wrote, and its size would not even compute (found by the
            // `gpt_table` fuzz target).
            let end = part
                .last_lba
                .checked_add(1)
                .and_then(|n| n.checked_mul(SECTOR))
                .filter(|&end| end <= disk_len && part.last_lba >= part.first_lba)
                .ok_or_else(|| GptTableError::Io {
                    path: p(),
                    source: io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("partition {number} does not lie on the disk"),
                    ),
                })?;
            let offset = part.first_lba * SECTOR;
            Ok(ReadPartition {
                number: *number,
                label: part.name.clone(),
                type_guid: part.part_type_guid.guid,
                uuid: part.part_guid,
                offset,
                size: end - offset,
                attributes: part.flags,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok((*disk.guid(), parts))
}

/// The largest entry array [`read`] reads (the init's reader has the same
/// bound): a table larger than this is not one we wrote.
const MAX_ENTRIES_BYTES: u64 = 1024 * 1024;

/// Refuses what the `gpt` crate would trust in the header it reads the
/// entries by (the primary if valid, else the backup in the last sector):
/// an entry size other than 128, on which it panics (an assert; found by
/// the `gpt_table` fuzz target, and the update engine reads every disk of
/// the machine), and an entry count it would read one by one for minutes.
fn check_entries(path: &Path) -> io::Result<()> {
    let mut file = File::open(path)?;
    let (count, size) =
        match gpt::header::read_header_from_arbitrary_device(&mut file, LogicalBlockSize::Lb512) {
            Ok(h) => (h.num_parts, h.part_size),
            Err(_) => {
                let len = file.seek(SeekFrom::End(0))?;
                if len < 3 * SECTOR {
                    return Ok(());
                }
                let mut raw = [0u8; 92];
                file.seek(SeekFrom::Start((len - SECTOR) / SECTOR * SECTOR))?;
                file.read_exact(&mut raw)?;
                let word = |at: usize| {
                    raw.get(at..at + 4)
                        .and_then(|b| b.try_into().ok())
                        .map_or(0, u32::from_le_bytes)
                };
                if raw.get(..8) != Some(b"EFI PART".as_slice()) {
                    return Ok(());
                }
                (word(80), word(84))
            }
        };
    if size != 128 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the GPT has {size}-byte entries; only 128-byte ones are read"),
        ));
    }
    if u64::from(count) * 128 > MAX_ENTRIES_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the GPT has {count} entries, more than any table we write"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{Sizes, MIB};

    #[test]
    fn written_table_reads_back_exactly() {
        let layout = Layout::plan(
            Sizes {
                esp: 2 * MIB,
                root: 4 * MIB,
                verity: MIB,
                var: 2 * MIB,
            },
            "test",
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.raw");
        let mut f = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        f.set_len(layout.disk_size).unwrap();
        write(&mut f, &path, &layout).unwrap();
        drop(f);

        let (guid, parts) = read(&path).unwrap();
        assert_eq!(guid, layout.disk_guid);
        assert_eq!(parts.len(), 6);
        for (got, want) in parts.iter().zip(&layout.partitions) {
            assert_eq!(got.number, want.number);
            assert_eq!(got.label, want.label);
            assert_eq!(got.type_guid, want.type_guid);
            assert_eq!(got.uuid, want.uuid);
            assert_eq!(got.offset, want.offset);
            assert_eq!(got.size, want.size);
            assert_eq!(got.attributes, want.attributes);
        }
        // A protective MBR: signature and one 0xEE partition.
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[510..512], &[0x55, 0xAA]);
        assert_eq!(bytes[446 + 4], 0xEE);
        // The backup header sits in the last sector.
        let last = &bytes[bytes.len() - 512..];
        assert_eq!(&last[..8], b"EFI PART");
    }
}

//! Writing (and reading back) the GPT of a disk image file with the `gpt`
//! crate, from a planned [`Layout`].

use std::collections::BTreeMap;
use std::fs::File;
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
    let disk = gpt::GptConfig::new()
        .writable(false)
        .logical_block_size(LogicalBlockSize::Lb512)
        .open(path)
        .map_err(|source| GptTableError::Gpt { path: p(), source })?;
    let parts = disk
        .partitions()
        .iter()
        .filter(|(_, part)| part.is_used())
        .map(|(number, part)| ReadPartition {
            number: *number,
            label: part.name.clone(),
            type_guid: part.part_type_guid.guid,
            uuid: part.part_guid,
            offset: part.first_lba * SECTOR,
            size: (part.last_lba + 1 - part.first_lba) * SECTOR,
            attributes: part.flags,
        })
        .collect();
    Ok((*disk.guid(), parts))
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

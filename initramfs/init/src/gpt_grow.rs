//! Growing the `var` partition to the end of an enlarged disk, in an order
//! that survives a power cut at any moment.
//!
//! Images are written to disks bigger than the image. The GPT then
//! describes the image's size: the backup header is in the middle of the
//! disk and `var` ends where the image ended. [`plan`] works out the table
//! the disk should have and the writes that get it there; the caller does
//! them in order, each one flushed before the next.
//!
//! Why the order is safe (the kernel reads the primary table; with `gpt` on
//! its command line, which the builder adds, it falls back to the backup
//! at the disk's last sector when the primary is damaged; UEFI firmware
//! does the same and restores the primary):
//!
//! 1. The new backup table goes to the end of the disk. Nothing points at
//!    it yet: a cut here leaves the old, consistent primary and old backup.
//! 2. The primary header and its entries, as one write of the sectors that
//!    change (on a 512e disk they share one physical 4 KiB sector, so the
//!    write is effectively atomic). A torn write leaves a primary with a bad
//!    checksum; Linux and the firmware then use the backup of step 1, which
//!    already describes the grown table, and the next boot's plan repairs
//!    the primary from it.
//! 3. The protective MBR's size field, one sector, cosmetic.
//!
//! The filesystem is grown only after all of this (see `var.rs`), so it
//! never extends past its partition. Every step is recomputed from what is
//! on the disk, so a second boot finds nothing to write.
//!
//! Hand-written over raw sectors rather than with the `gpt` crate: it
//! writes both tables and the MBR in one call, in its own order, and the
//! order is the whole point here.

use std::io::{self, SeekFrom};

use uuid::Uuid;

/// The `var` partition type (ARCHITECTURE.md, "On-disk layout"; systemd's
/// `/var` type).
pub const VAR_TYPE: Uuid = Uuid::from_u128(0x4d21b016_b534_45c2_a9fb_5c16e091fd2d);
/// Partitions end on 1 MiB boundaries, as the builder makes them.
pub const ALIGN: u64 = 1024 * 1024;

const SIGNATURE: &[u8; 8] = b"EFI PART";
/// The `what` of the protective MBR's write, the one write that may fail
/// without consequence.
pub const MBR_WRITE: &str = "protective MBR";
const HEADER_SIZE: usize = 92;
/// A table larger than this is not one we wrote; refusing it bounds memory.
const MAX_ENTRIES_BYTES: u64 = 1024 * 1024;
const ENTRY_SIZE: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum GrowError {
    #[error(
        "the disk is {disk_bytes} bytes but its partition table describes {table_bytes}: \
         the disk is smaller than the image written to it"
    )]
    DiskSmaller { disk_bytes: u64, table_bytes: u64 },
    #[error("no valid GPT: primary {primary}; backup at the last sector {backup}")]
    NoTable { primary: String, backup: String },
    #[error("no partition of the var type {VAR_TYPE} in the GPT")]
    NoVar,
    #[error("var is partition {var} but partition {other} lies after it, so var cannot grow")]
    NotLast { var: u32, other: u32 },
    #[error("reading the disk: {0}")]
    Io(#[from] io::Error),
    #[error("the partition table is malformed: {0}")]
    Malformed(String),
}

/// The fields of a GPT header we read and write.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Header {
    revision: u32,
    my_lba: u64,
    alternate_lba: u64,
    first_usable: u64,
    last_usable: u64,
    disk_guid: [u8; 16],
    entries_lba: u64,
    entry_count: u32,
    entry_size: u32,
    entries_crc: u32,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut v = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        v.copy_from_slice(s);
    }
    u32::from_le_bytes(v)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        v.copy_from_slice(s);
    }
    u64::from_le_bytes(v)
}

fn put(b: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(s) = b.get_mut(at..at + bytes.len()) {
        s.copy_from_slice(bytes);
    }
}

impl Header {
    /// Parses and checks one header sector; the error says what is wrong.
    fn parse(sector: &[u8]) -> Result<Header, String> {
        if sector.get(..8) != Some(SIGNATURE.as_slice()) {
            return Err("has no GPT signature".into());
        }
        let size = u32_at(sector, 12) as usize;
        let Some(bytes) = sector.get(..size).filter(|_| size >= HEADER_SIZE) else {
            return Err(format!("has a bad header size {size}"));
        };
        let mut zeroed = bytes.to_vec();
        put(&mut zeroed, 16, &[0; 4]);
        if crc32fast::hash(&zeroed) != u32_at(sector, 16) {
            return Err("has a bad header checksum".into());
        }
        let mut disk_guid = [0u8; 16];
        if let Some(g) = sector.get(56..72) {
            disk_guid.copy_from_slice(g);
        }
        let header = Header {
            revision: u32_at(sector, 8),
            my_lba: u64_at(sector, 24),
            alternate_lba: u64_at(sector, 32),
            first_usable: u64_at(sector, 40),
            last_usable: u64_at(sector, 48),
            disk_guid,
            entries_lba: u64_at(sector, 72),
            entry_count: u32_at(sector, 80),
            entry_size: u32_at(sector, 84),
            entries_crc: u32_at(sector, 88),
        };
        // No disk has sectors this far; refusing them keeps every byte
        // offset computed from them (`lba * block`) in range.
        let limit = u64::MAX >> 20;
        if [
            header.my_lba,
            header.alternate_lba,
            header.first_usable,
            header.last_usable,
            header.entries_lba,
        ]
        .iter()
        .any(|lba| *lba > limit)
        {
            return Err("has sector numbers beyond any disk".into());
        }
        if header.entry_size as usize != ENTRY_SIZE {
            return Err(format!(
                "has an unsupported entry size {} (only 128 is supported)",
                header.entry_size
            ));
        }
        if header.entries_bytes() > MAX_ENTRIES_BYTES {
            return Err(format!("has {} entries", header.entry_count));
        }
        Ok(header)
    }

    fn entries_bytes(&self) -> u64 {
        u64::from(self.entry_count) * u64::from(self.entry_size)
    }

    /// The header as one sector of `block` bytes, checksum included.
    fn to_sector(&self, block: u64) -> Vec<u8> {
        let mut s = vec![0u8; block as usize];
        put(&mut s, 0, SIGNATURE);
        put(&mut s, 8, &self.revision.to_le_bytes());
        put(&mut s, 12, &(HEADER_SIZE as u32).to_le_bytes());
        put(&mut s, 24, &self.my_lba.to_le_bytes());
        put(&mut s, 32, &self.alternate_lba.to_le_bytes());
        put(&mut s, 40, &self.first_usable.to_le_bytes());
        put(&mut s, 48, &self.last_usable.to_le_bytes());
        put(&mut s, 56, &self.disk_guid);
        put(&mut s, 72, &self.entries_lba.to_le_bytes());
        put(&mut s, 80, &self.entry_count.to_le_bytes());
        put(&mut s, 84, &self.entry_size.to_le_bytes());
        put(&mut s, 88, &self.entries_crc.to_le_bytes());
        let crc = crc32fast::hash(s.get(..HEADER_SIZE).unwrap_or_default());
        put(&mut s, 16, &crc.to_le_bytes());
        s
    }
}

/// A header with its entry array (padded to whole sectors).
#[derive(Debug, Clone)]
struct Table {
    header: Header,
    entries: Vec<u8>,
}

fn read_at(dev: &mut dyn crate::sys::ReadSeek, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    dev.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0u8; len as usize];
    dev.read_exact(&mut buf)?;
    Ok(buf)
}

fn sectors_for(bytes: u64, block: u64) -> u64 {
    bytes.div_ceil(block)
}

/// Reads the table whose header is at `lba`; `Err` says why it is unusable.
fn read_table(dev: &mut dyn crate::sys::ReadSeek, block: u64, lba: u64) -> Result<Table, String> {
    let sector = read_at(dev, lba * block, block).map_err(|e| format!("is unreadable ({e})"))?;
    let header = Header::parse(&sector)?;
    if header.my_lba != lba {
        return Err(format!(
            "says it is at sector {} but was read at {lba}",
            header.my_lba
        ));
    }
    let len = sectors_for(header.entries_bytes(), block) * block;
    let entries = read_at(dev, header.entries_lba * block, len)
        .map_err(|e| format!("has unreadable entries ({e})"))?;
    let used = entries
        .get(..header.entries_bytes() as usize)
        .unwrap_or_default();
    if crc32fast::hash(used) != header.entries_crc {
        return Err("has a bad entry array checksum".into());
    }
    Ok(Table { header, entries })
}

/// The disk size the primary GPT header describes (its backup's sector
/// and last usable sector), if there is a valid one.
pub fn declared_size(dev: &mut dyn crate::sys::ReadSeek, block: u64) -> Option<u64> {
    let sector = read_at(dev, block, block).ok()?;
    let header = Header::parse(&sector).ok()?;
    Some((header.alternate_lba.max(header.last_usable) + 1) * block)
}

/// Sector sizes disks have: a power of two from 512 to 64 KiB. Anything
/// else (a bad sysfs value) would make every offset wrong, or divide by 0.
fn check_block(block: u64) -> Result<(), String> {
    if (512..=65536).contains(&block) && block.is_power_of_two() {
        Ok(())
    } else {
        Err(format!("sector size {block} is not one a disk has"))
    }
}

/// The used entries of the disk's GPT as `(number, unique GUID)`, for
/// finding partitions by PARTUUID: the primary table, or the backup in the
/// disk's last sector if the primary is damaged (as Linux does with `gpt`
/// on its command line, and as UEFI firmware does).
pub fn partition_guids(
    dev: &mut dyn crate::sys::ReadSeek,
    block: u64,
) -> Result<Vec<(u32, Uuid)>, String> {
    check_block(block)?;
    let table = match read_table(dev, block, 1) {
        Ok(t) => t,
        Err(primary) => {
            let size = dev.seek(SeekFrom::End(0)).map_err(|e| e.to_string())?;
            let last = (size / block).saturating_sub(1);
            read_table(dev, block, last).map_err(|backup| {
                format!("no valid GPT: primary at sector 1 {primary}; backup at the last sector {backup}")
            })?
        }
    };
    Ok(entries(&table)
        .into_iter()
        .map(|e| (e.number, e.unique_guid))
        .collect())
}

/// One GPT entry's fields that growth looks at.
#[derive(Debug, Clone, Copy)]
struct Entry {
    number: u32,
    type_guid: Uuid,
    unique_guid: Uuid,
    last_lba: u64,
    first_lba: u64,
}

fn entries(table: &Table) -> Vec<Entry> {
    table
        .entries
        .chunks_exact(ENTRY_SIZE)
        .take(table.header.entry_count as usize)
        .zip(1u32..)
        .filter_map(|(raw, number)| {
            let mut guid = [0u8; 16];
            guid.copy_from_slice(raw.get(..16)?);
            let type_guid = Uuid::from_bytes_le(guid);
            let mut unique = [0u8; 16];
            unique.copy_from_slice(raw.get(16..32)?);
            (!type_guid.is_nil()).then(|| Entry {
                number,
                type_guid,
                unique_guid: Uuid::from_bytes_le(unique),
                first_lba: u64_at(raw, 32),
                last_lba: u64_at(raw, 40),
            })
        })
        .collect()
}

/// One write of the plan: flush it before doing the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub offset: u64,
    pub data: Vec<u8>,
    /// For messages: `backup GPT`, `primary GPT`, `protective MBR`.
    pub what: &'static str,
}

/// What [`plan`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Growth {
    /// The `var` partition's entry number (its `/dev/vdaN` suffix).
    pub var_number: u32,
    /// In bytes from the start of the disk.
    pub var_offset: u64,
    pub var_old_size: u64,
    pub var_new_size: u64,
    /// The primary table was damaged and is rebuilt from the backup.
    pub repairs_primary: bool,
    /// In order; empty when the disk already has the table it should.
    pub writes: Vec<Write>,
    /// Why `var` stays as it is although the disk may be bigger (the disk
    /// is smaller than the table says, or `var` is not the last partition).
    pub cannot_grow: Option<String>,
}

/// Reads the GPT of a disk of `disk_bytes` with `block`-byte sectors and
/// plans the growth of its `var` partition to the end of the disk. An
/// error means `var` cannot even be located.
pub fn plan(
    dev: &mut dyn crate::sys::ReadSeek,
    block: u64,
    disk_bytes: u64,
) -> Result<Growth, GrowError> {
    check_block(block)
        .map_err(|e| GrowError::Io(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    let last_lba = (disk_bytes / block).saturating_sub(1);
    let (base, repairs_primary) = match read_table(dev, block, 1) {
        Ok(t) => (t, false),
        Err(primary) => match read_table(dev, block, last_lba) {
            Ok(t) => (t, true),
            Err(backup) => {
                return Err(GrowError::NoTable {
                    primary: format!("at sector 1 {primary}"),
                    backup,
                })
            }
        },
    };

    let array_sectors = sectors_for(base.header.entries_bytes(), block);
    let last_usable = last_lba.saturating_sub(array_sectors + 1);
    let all = entries(&base);
    let var = all
        .iter()
        .find(|e| e.type_guid == VAR_TYPE)
        .copied()
        .ok_or(GrowError::NoVar)?;
    // Saturating: an entry may say it ends at u64::MAX (found by the
    // `gpt_grow` fuzz target; it is refused below as beyond the disk).
    let var_old_size = var
        .last_lba
        .saturating_add(1)
        .saturating_sub(var.first_lba)
        .saturating_mul(block);
    let unchanged = |reason: GrowError| Growth {
        var_number: var.number,
        var_offset: var.first_lba.saturating_mul(block),
        var_old_size,
        var_new_size: var_old_size,
        repairs_primary,
        writes: Vec::new(),
        cannot_grow: Some(reason.to_string()),
    };
    let needed = base.header.alternate_lba.max(base.header.last_usable);
    if needed > last_lba {
        return Ok(unchanged(GrowError::DiskSmaller {
            disk_bytes,
            table_bytes: (needed + 1) * block,
        }));
    }
    // A table we would only make worse: an entry ending before it starts
    // or past the disk, or var reaching into the area the backup table is
    // written to.
    if let Some(bad) = all.iter().find(|e| e.last_lba > last_lba) {
        return Ok(unchanged(GrowError::Malformed(format!(
            "partition {} lies beyond the end of the disk",
            bad.number
        ))));
    }
    if let Some(bad) = all.iter().find(|e| e.last_lba < e.first_lba) {
        return Ok(unchanged(GrowError::Malformed(format!(
            "partition {} ends before it starts",
            bad.number
        ))));
    }
    if var.last_lba > base.header.last_usable || var.last_lba > last_usable {
        return Ok(unchanged(GrowError::Malformed(format!(
            "var (partition {}) ends past the last usable sector",
            var.number
        ))));
    }
    if let Some(other) = all
        .iter()
        .find(|e| e.number != var.number && e.last_lba > var.last_lba)
    {
        return Ok(unchanged(GrowError::NotLast {
            var: var.number,
            other: other.number,
        }));
    }
    match grown(
        dev,
        block,
        last_lba,
        last_usable,
        array_sectors,
        &base,
        var,
        repairs_primary,
    ) {
        Ok(growth) => Ok(growth),
        // var is known: it can still be mounted, just not grown.
        Err(e) => Ok(unchanged(GrowError::Io(e))),
    }
}

/// The growth of `var` in `base` to `last_usable`: the new tables and the
/// writes that differ from what is on the disk.
#[allow(clippy::too_many_arguments)]
fn grown(
    dev: &mut dyn crate::sys::ReadSeek,
    block: u64,
    last_lba: u64,
    last_usable: u64,
    array_sectors: u64,
    base: &Table,
    var: Entry,
    repairs_primary: bool,
) -> io::Result<Growth> {
    let var_old_size = (var.last_lba + 1)
        .saturating_sub(var.first_lba)
        .saturating_mul(block);
    let align = (ALIGN / block).max(1);
    let room = (last_usable + 1).saturating_sub(var.first_lba);
    // Never shrink, whatever the arithmetic says.
    let new_last = (var.first_lba + room / align * align)
        .saturating_sub(1)
        .max(var.last_lba);

    let mut new_entries = base.entries.clone();
    let var_at = (var.number as usize - 1) * ENTRY_SIZE;
    put(&mut new_entries, var_at + 40, &new_last.to_le_bytes());
    let used = new_entries
        .get(..base.header.entries_bytes() as usize)
        .unwrap_or_default();
    let entries_crc = crc32fast::hash(used);

    let primary_entries_lba = if repairs_primary {
        2
    } else {
        base.header.entries_lba
    };
    let primary = Header {
        my_lba: 1,
        alternate_lba: last_lba,
        last_usable,
        entries_lba: primary_entries_lba,
        entries_crc,
        ..base.header.clone()
    };
    let backup = Header {
        my_lba: last_lba,
        alternate_lba: 1,
        entries_lba: last_lba - array_sectors,
        ..primary.clone()
    };

    let mut writes = Vec::new();

    // 1. The backup: entries, then its header in the disk's last sector.
    let mut data = new_entries.clone();
    data.extend(backup.to_sector(block));
    let offset = backup.entries_lba * block;
    if read_at(dev, offset, data.len() as u64)? != data {
        writes.push(Write {
            offset,
            data,
            what: "backup GPT",
        });
    }

    // 2. The primary, as few sectors as change.
    let header_sector = primary.to_sector(block);
    let current_entries = read_at(dev, primary_entries_lba * block, new_entries.len() as u64)?;
    let changed_sectors = new_entries
        .chunks(block as usize)
        .zip(current_entries.chunks(block as usize))
        .rposition(|(new, old)| new != old)
        .map_or(0, |i| i + 1);
    let header_changed = read_at(dev, block, block)? != header_sector;
    let entries_part = new_entries
        .get(..changed_sectors * block as usize)
        .unwrap_or_default();
    if primary_entries_lba == 2 {
        if header_changed || changed_sectors > 0 {
            let mut data = header_sector;
            data.extend_from_slice(entries_part);
            writes.push(Write {
                offset: block,
                data,
                what: "primary GPT",
            });
        }
    } else {
        if changed_sectors > 0 {
            writes.push(Write {
                offset: primary_entries_lba * block,
                data: entries_part.to_vec(),
                what: "primary GPT entries",
            });
        }
        if header_changed || changed_sectors > 0 {
            writes.push(Write {
                offset: block,
                data: header_sector,
                what: "primary GPT",
            });
        }
    }

    // 3. The protective MBR's size, if it is the plain one we wrote.
    let mbr = read_at(dev, 0, 512)?;
    if let Some(fixed) = fixed_protective_mbr(&mbr, last_lba) {
        writes.push(Write {
            offset: 0,
            data: fixed,
            what: MBR_WRITE,
        });
    }

    Ok(Growth {
        var_number: var.number,
        var_offset: var.first_lba * block,
        var_old_size,
        var_new_size: (new_last + 1 - var.first_lba) * block,
        repairs_primary,
        writes,
        cannot_grow: None,
    })
}

/// The MBR with its protective entry's size covering the whole disk, or
/// `None` if it already does or is not a plain protective MBR (a hybrid
/// MBR is somebody else's business).
fn fixed_protective_mbr(mbr: &[u8], last_lba: u64) -> Option<Vec<u8>> {
    if mbr.get(510..512) != Some(&[0x55, 0xaa]) {
        return None;
    }
    let records: Vec<&[u8]> = (0..4)
        .filter_map(|i| mbr.get(446 + 16 * i..446 + 16 * (i + 1)))
        .collect();
    let first = records.first()?;
    let others_empty = records.iter().skip(1).all(|r| r.iter().all(|b| *b == 0));
    if first.get(4) != Some(&0xee) || u32_at(first, 8) != 1 || !others_empty {
        return None;
    }
    let want = u32::try_from(last_lba).unwrap_or(u32::MAX);
    if u32_at(first, 12) == want {
        return None;
    }
    let mut fixed = mbr.to_vec();
    put(&mut fixed, 446 + 12, &want.to_le_bytes());
    Some(fixed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpt::disk::LogicalBlockSize;
    use gpt::partition::Partition;
    use std::collections::BTreeMap;
    use std::io::{Cursor, Read, Seek, Write as _};

    const MIB: u64 = 1024 * 1024;

    /// A disk image like the builder's: ESP, one root, and `var` last, each
    /// 1 MiB-aligned, 1 MiB free at the end for the backup GPT.
    fn image(block: LogicalBlockSize, var_mib: u64) -> Vec<u8> {
        let lb = block.as_u64();
        let size = (1 + 2 + 2 + var_mib + 1) * MIB;
        let file = tempfile::tempfile().unwrap();
        file.set_len(size).unwrap();
        let mut disk = gpt::GptConfig::new()
            .writable(true)
            .logical_block_size(block)
            .create_from_device(file, None)
            .unwrap();
        let mut parts = BTreeMap::new();
        let s = |mib: u64| mib * MIB / lb;
        for (number, (name, kind, start, len)) in [
            ("esp", gpt::partition_types::EFI, 1, 2),
            ("root-a", gpt::partition_types::LINUX_ROOT_X64, 3, 2),
        ]
        .into_iter()
        .enumerate()
        {
            parts.insert(
                number as u32 + 1,
                Partition {
                    part_type_guid: kind,
                    part_guid: Uuid::new_v4(),
                    first_lba: s(start),
                    last_lba: s(start + len) - 1,
                    flags: 0,
                    name: name.into(),
                },
            );
        }
        parts.insert(
            3,
            Partition {
                part_type_guid: gpt::partition_types::Type {
                    guid: VAR_TYPE,
                    os: gpt::partition_types::OperatingSystem::Custom("var".into()),
                },
                part_guid: Uuid::new_v4(),
                first_lba: s(5),
                last_lba: s(5 + var_mib) - 1,
                flags: 0,
                name: "var".into(),
            },
        );
        disk.update_partitions(parts).unwrap();
        let mut file = disk.write().unwrap();
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(0)).unwrap();
        file.read_to_end(&mut bytes).unwrap();
        let sectors = u32::try_from(size / lb - 1).unwrap();
        let mbr = gpt::mbr::ProtectiveMBR::with_lb_size(sectors).to_bytes();
        bytes[..512].copy_from_slice(&mbr);
        bytes
    }

    /// Recomputes the primary table's checksums after a test edited it.
    fn rechecksum(disk: &mut [u8]) {
        let crc = crc32fast::hash(&disk[1024..1024 + 128 * 128]);
        disk[512 + 88..512 + 92].copy_from_slice(&crc.to_le_bytes());
        disk[512 + 16..512 + 20].copy_from_slice(&[0; 4]);
        let hcrc = crc32fast::hash(&disk[512..512 + 92]);
        disk[512 + 16..512 + 20].copy_from_slice(&hcrc.to_le_bytes());
    }

    fn apply(disk: &mut Vec<u8>, writes: &[Write]) {
        for w in writes {
            let mut c = Cursor::new(std::mem::take(disk));
            c.seek(SeekFrom::Start(w.offset)).unwrap();
            c.write_all(&w.data).unwrap();
            *disk = c.into_inner();
        }
    }

    fn plan_on(disk: &[u8], block: u64) -> Result<Growth, GrowError> {
        plan(&mut Cursor::new(disk.to_vec()), block, disk.len() as u64)
    }

    /// What the `gpt` crate (an independent reader) sees: the disk's last
    /// sector as backup, and var's last sector.
    fn read_back(disk: &[u8], block: LogicalBlockSize) -> (u64, u64, u64) {
        let file = tempfile::tempfile().unwrap();
        let mut f = file;
        f.write_all(disk).unwrap();
        let gpt = gpt::GptConfig::new()
            .writable(false)
            .logical_block_size(block)
            .open_from_device(f)
            .unwrap();
        let primary = gpt.primary_header().unwrap().clone();
        let backup = gpt.backup_header().unwrap().clone();
        assert_eq!(primary.backup_lba, backup.current_lba);
        let var = gpt.partitions().get(&3).unwrap();
        (backup.current_lba, var.last_lba, primary.last_usable)
    }

    #[test]
    fn the_image_as_built_needs_nothing() {
        for block in [LogicalBlockSize::Lb512, LogicalBlockSize::Lb4096] {
            let disk = image(block, 4);
            let g = plan_on(&disk, block.as_u64()).unwrap();
            assert_eq!(g.writes, vec![], "{block:?}");
            assert_eq!(g.var_number, 3);
            assert_eq!(g.var_offset, 5 * MIB);
            assert_eq!(g.var_old_size, 4 * MIB);
            assert_eq!(g.var_new_size, 4 * MIB);
        }
    }

    #[test]
    fn grows_var_to_the_aligned_end_and_moves_the_backup() {
        for block in [LogicalBlockSize::Lb512, LogicalBlockSize::Lb4096] {
            let lb = block.as_u64();
            let mut disk = image(block, 4);
            // The last usable sector is just under 40.5 MiB, so var (from
            // 5 MiB) ends at the 1 MiB boundary below it: 40 MiB.
            disk.resize((40 * MIB + MIB / 2) as usize, 0);
            let g = plan_on(&disk, lb).unwrap();
            let whats: Vec<_> = g.writes.iter().map(|w| w.what).collect();
            assert_eq!(
                whats,
                ["backup GPT", "primary GPT", "protective MBR"],
                "{block:?}"
            );
            assert_eq!(g.var_new_size, 35 * MIB);
            assert!(!g.repairs_primary);
            // The primary write is the header and just the entry sectors up
            // to var's entry (entry 3: the first sector of entries).
            assert_eq!(g.writes[1].offset, lb);
            assert_eq!(g.writes[1].data.len() as u64, 2 * lb);
            apply(&mut disk, &g.writes);
            let last = disk.len() as u64 / lb - 1;
            let (backup_lba, var_last, last_usable) = read_back(&disk, block);
            assert_eq!(backup_lba, last);
            assert_eq!((var_last + 1) * lb, 40 * MIB);
            assert!(var_last <= last_usable);
            assert_eq!(u32_at(&disk, 446 + 12) as u64, last);
            // And the second boot has nothing to do.
            assert_eq!(plan_on(&disk, lb).unwrap().writes, vec![]);
        }
    }

    #[test]
    fn every_power_cut_point_recovers_to_the_same_table() {
        let lb = 512;
        let mut grown = image(LogicalBlockSize::Lb512, 4);
        grown.resize((64 * MIB) as usize, 0);
        let writes = plan_on(&grown, lb).unwrap().writes;
        let mut want = grown.clone();
        apply(&mut want, &writes);

        for done in 0..writes.len() {
            for torn in [None, Some(1usize), Some(2)] {
                // The first `done` writes completed; the next one wrote only
                // its first `torn` sectors (or nothing).
                let mut disk = grown.clone();
                apply(&mut disk, &writes[..done]);
                if let (Some(n), Some(next)) = (torn, writes.get(done)) {
                    let mut part = next.clone();
                    part.data.truncate(n * lb as usize);
                    apply(&mut disk, &[part]);
                }
                let g = plan_on(&disk, lb).unwrap();
                apply(&mut disk, &g.writes);
                assert!(disk == want, "cut after {done} writes, torn {torn:?}");
            }
        }
    }

    #[test]
    fn a_damaged_primary_is_rebuilt_from_the_backup() {
        let lb = 512;
        let mut disk = image(LogicalBlockSize::Lb512, 4);
        disk.resize((64 * MIB) as usize, 0);
        let g = plan_on(&disk, lb).unwrap();
        apply(&mut disk, &g.writes[..1]);
        // A torn primary: its header checksum no longer matches.
        disk[lb as usize + 40] ^= 1;
        let g = plan_on(&disk, lb).unwrap();
        assert!(g.repairs_primary);
        assert_eq!(g.var_new_size, 58 * MIB);
        apply(&mut disk, &g.writes);
        let (_, var_last, _) = read_back(&disk, LogicalBlockSize::Lb512);
        assert_eq!((var_last + 1) * lb, 63 * MIB);
    }

    #[test]
    fn a_disk_smaller_than_the_image_is_refused() {
        let mut disk = image(LogicalBlockSize::Lb512, 4);
        disk.truncate((8 * MIB) as usize);
        let g = plan_on(&disk, 512).unwrap();
        assert_eq!(g.writes, vec![]);
        assert_eq!(g.var_new_size, g.var_old_size);
        assert_eq!(
            g.cannot_grow.unwrap(),
            format!(
                "the disk is {} bytes but its partition table describes {}: the disk is \
                 smaller than the image written to it",
                8 * MIB,
                10 * MIB
            )
        );
    }

    #[test]
    fn no_gpt_and_no_var_are_explained() {
        let err = plan_on(&vec![0u8; (4 * MIB) as usize], 512).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no valid GPT: primary at sector 1 has no GPT signature; backup at the last \
             sector has no GPT signature"
        );
        let mut disk = image(LogicalBlockSize::Lb512, 4);
        // Turn var into a plain Linux filesystem partition.
        let entry = 2 * 512 + 2 * 128;
        disk[entry..entry + 16].copy_from_slice(&gpt::partition_types::LINUX_FS.guid.to_bytes_le());
        rechecksum(&mut disk);
        assert!(matches!(plan_on(&disk, 512), Err(GrowError::NoVar)));
    }

    #[test]
    fn refuses_when_var_is_not_the_last_partition() {
        let mut disk = image(LogicalBlockSize::Lb512, 4);
        // Make the ESP entry end after var.
        let entry = 2 * 512;
        disk[entry + 40..entry + 48].copy_from_slice(&(20 * MIB / 512).to_le_bytes());
        rechecksum(&mut disk);
        disk.resize((64 * MIB) as usize, 0);
        let g = plan_on(&disk, 512).unwrap();
        assert_eq!(g.writes, vec![]);
        assert_eq!(
            g.cannot_grow.unwrap(),
            "var is partition 3 but partition 1 lies after it, so var cannot grow"
        );
    }

    #[test]
    fn a_read_error_past_the_table_leaves_var_mountable_but_not_grown() {
        // The disk claims 64 MiB but reading its end fails.
        let disk = image(LogicalBlockSize::Lb512, 4);
        let g = plan(&mut Cursor::new(disk.clone()), 512, 64 * MIB).unwrap();
        assert_eq!(g.var_number, 3);
        assert_eq!(g.writes, vec![]);
        assert!(
            g.cannot_grow
                .as_deref()
                .unwrap()
                .starts_with("reading the disk: "),
            "{g:?}"
        );
    }

    #[test]
    fn a_var_entry_past_the_usable_area_is_not_grown() {
        let mut disk = image(LogicalBlockSize::Lb512, 4);
        // var (entry 3) ends in the backup table's area.
        let entry = 2 * 512 + 2 * 128;
        let last = (disk.len() as u64) / 512 - 2;
        disk[entry + 40..entry + 48].copy_from_slice(&last.to_le_bytes());
        rechecksum(&mut disk);
        disk.resize((64 * MIB) as usize, 0);
        let g = plan_on(&disk, 512).unwrap();
        assert_eq!(g.writes, vec![]);
        assert_eq!(
            g.cannot_grow.as_deref(),
            Some("the partition table is malformed: var (partition 3) ends past the last usable sector")
        );
    }

    /// A stand-in for a fuzzer: corrupted tables (with their checksums
    /// repaired, so the parser goes deep) never panic the planner, and
    /// whatever it writes, a second plan finds nothing more to do.
    #[test]
    fn corrupted_tables_never_panic_and_plans_converge() {
        let base = {
            let mut d = image(LogicalBlockSize::Lb512, 1);
            d.resize((10 * MIB) as usize, 0);
            d
        };
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..800 {
            let mut disk = base.clone();
            for _ in 0..=(next() % 4) {
                // Header fields and the first entries, where it matters.
                let at = 512 + (next() % (512 + 3 * 128)) as usize;
                disk[at] ^= 1 << (next() % 8);
            }
            if round % 2 == 0 {
                rechecksum(&mut disk);
            }
            let result = std::panic::catch_unwind(|| plan_on(&disk, 512)).expect("plan panicked");
            if let Ok(g) = result {
                apply(&mut disk, &g.writes);
                let again = plan_on(&disk, 512);
                if let Ok(again) = again {
                    assert_eq!(again.writes, vec![], "round {round}: {g:?}");
                }
            }
        }
    }
}

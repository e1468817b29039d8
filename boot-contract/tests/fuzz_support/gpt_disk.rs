//! GPT fuzz inputs, shared by the bodies of every target that reads a GPT
//! (the init's growth of `var`, the image's and the installer's readers;
//! each includes this file with `#[path]`): a compact description of a
//! disk that may be gigabytes, and checksums set by the body so that
//! mutated fields get past them. Needs `crc32fast` in the includer.

#![allow(dead_code)] // each includer uses part of it

use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom};

pub const BLOCK: u64 = 512;

/// A disk of any size that holds only the sectors written to it (zeros
/// elsewhere), so a fuzz input can describe a disk of gigabytes.
#[derive(Clone)]
pub struct SparseDisk {
    pub len: u64,
    pos: u64,
    sectors: BTreeMap<u64, [u8; BLOCK as usize]>,
}

impl SparseDisk {
    pub fn new(len: u64) -> SparseDisk {
        SparseDisk {
            len,
            pos: 0,
            sectors: BTreeMap::new(),
        }
    }

    /// Writes `data` at `offset`; what lies past the end is dropped.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) {
        let end = (offset + data.len() as u64).min(self.len);
        let mut at = offset;
        while at < end {
            let (sector, within) = (at / BLOCK, (at % BLOCK) as usize);
            let n = (BLOCK as usize - within).min((end - at) as usize);
            let from = (at - offset) as usize;
            let s = self.sectors.entry(sector).or_insert([0; BLOCK as usize]);
            s[within..within + n].copy_from_slice(&data[from..from + n]);
            at += n as u64;
        }
    }

    pub fn read_at(&self, offset: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        let end = offset + len as u64;
        let first = offset / BLOCK;
        for (&sector, bytes) in self.sectors.range(first..end.div_ceil(BLOCK)) {
            let start = (sector * BLOCK).max(offset);
            let stop = ((sector + 1) * BLOCK).min(end);
            let within = (start - sector * BLOCK) as usize;
            out[(start - offset) as usize..(stop - offset) as usize]
                .copy_from_slice(&bytes[within..within + (stop - start) as usize]);
        }
        out
    }
}

impl SparseDisk {
    /// The disk as a (sparse) file at `path`.
    pub fn write_file(&self, path: &std::path::Path) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::create(path)?;
        file.set_len(self.len)?;
        for (sector, bytes) in &self.sectors {
            let n = (self.len - sector * BLOCK).min(BLOCK) as usize;
            file.write_all_at(&bytes[..n], sector * BLOCK)?;
        }
        Ok(())
    }
}

impl Read for SparseDisk {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.len.saturating_sub(self.pos)) as usize;
        buf[..n].copy_from_slice(&self.read_at(self.pos, n));
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for SparseDisk {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek"))?;
        Ok(self.pos)
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |s| u16::from_le_bytes([s[0], s[1]]))
}

/// Sets the CRCs of the GPT header in sector `lba` (entry array, then
/// header), if it has the signature, so that mutated fields get past the
/// checksums.
pub fn fix_crcs(disk: &mut SparseDisk, lba: u64) {
    let header = disk.read_at(lba * BLOCK, BLOCK as usize);
    if &header[..8] != b"EFI PART" {
        return;
    }
    let word = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().unwrap());
    let entries_lba = u64::from_le_bytes(header[72..80].try_into().unwrap());
    let entries_bytes = u64::from(word(80)) * u64::from(word(84));
    let mut header = header.clone();
    let in_range = entries_lba
        .checked_mul(BLOCK)
        .and_then(|o| o.checked_add(entries_bytes))
        .is_some();
    if entries_bytes <= 1 << 20 && in_range {
        let crc = crc32fast::hash(&disk.read_at(entries_lba * BLOCK, entries_bytes as usize));
        header[88..92].copy_from_slice(&crc.to_le_bytes());
    }
    let size = (word(12) as usize).clamp(92, BLOCK as usize);
    header[16..20].fill(0);
    let crc = crc32fast::hash(&header[..size]);
    header[16..20].copy_from_slice(&crc.to_le_bytes());
    disk.write_at(lba * BLOCK, &header);
}

/// The disk a GPT fuzz input describes: byte 0 bit 0 set: fix the CRCs
/// of both headers; bits 1–3: how many MiB the disk has beyond the image;
/// bytes 1–4: the image's size in sectors (at least what the two parts
/// need); bytes 5–6: how long the head is; then the head (from sector 0)
/// and the tail (ending at the image's last sector).
pub fn gpt_disk(data: &[u8]) -> Option<(SparseDisk, u64)> {
    let mode = *data.first()?;
    let sectors = u64::from(u32::from_le_bytes(data.get(1..5)?.try_into().ok()?)) % (1 << 24);
    let rest = data.get(7..)?;
    let head_len = usize::from(u16_at(data, 5)).min(rest.len());
    let (head, tail) = rest.split_at(head_len);
    let image_len = (sectors * BLOCK).max((head.len() + tail.len()) as u64 + BLOCK);
    let image_len = image_len.div_ceil(BLOCK) * BLOCK;
    let disk_len = image_len + u64::from((mode >> 1) & 7) * (1 << 20);
    let mut disk = SparseDisk::new(disk_len);
    disk.write_at(0, head);
    disk.write_at(image_len - tail.len() as u64, tail);
    if mode & 1 == 1 {
        fix_crcs(&mut disk, 1);
        fix_crcs(&mut disk, image_len / BLOCK - 1);
    }
    Some((disk, image_len))
}

/// Seeds: one GPT entry (`type_guid` as it is on disk).
pub fn entry(type_guid: [u8; 16], unique: u128, first: u64, last: u64) -> Vec<u8> {
    let mut e = vec![0u8; 128];
    e[..16].copy_from_slice(&type_guid);
    e[16..32].copy_from_slice(&unique.to_le_bytes());
    e[32..40].copy_from_slice(&first.to_le_bytes());
    e[40..48].copy_from_slice(&last.to_le_bytes());
    e
}

/// A header sector (CRCs left to the body, whose mode bit 0 sets them).
fn header(my_lba: u64, alternate: u64, last_usable: u64, entries_lba: u64, count: u32) -> Vec<u8> {
    let mut h = vec![0u8; 512];
    h[..8].copy_from_slice(b"EFI PART");
    h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
    h[12..16].copy_from_slice(&92u32.to_le_bytes());
    h[24..32].copy_from_slice(&my_lba.to_le_bytes());
    h[32..40].copy_from_slice(&alternate.to_le_bytes());
    h[40..48].copy_from_slice(&(2 + u64::from(count) / 4).to_le_bytes());
    h[48..56].copy_from_slice(&last_usable.to_le_bytes());
    h[56..72].copy_from_slice(&[0x5a; 16]);
    h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
    h[80..84].copy_from_slice(&count.to_le_bytes());
    h[84..88].copy_from_slice(&128u32.to_le_bytes());
    h
}

/// A GPT fuzz input (see `fuzz_bodies::gpt_disk`): an image of `sectors`
/// with `count` entries, `parts` in it, and `grow_mib` more on the disk.
pub fn gpt_input(
    sectors: u64,
    count: u32,
    parts: &[Vec<u8>],
    grow_mib: u8,
    primary: bool,
) -> Vec<u8> {
    let array_sectors = (u64::from(count) * 128).div_ceil(512);
    let last = sectors - 1;
    let mut array: Vec<u8> = parts.concat();
    array.resize((array_sectors * 512) as usize, 0);
    let mut mbr = vec![0u8; 512];
    mbr[446 + 4] = 0xee;
    mbr[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
    mbr[446 + 12..446 + 16].copy_from_slice(&(last as u32).to_le_bytes());
    mbr[510..512].copy_from_slice(&[0x55, 0xaa]);
    let last_usable = last - array_sectors - 1;
    let mut head = mbr;
    if primary {
        head.extend(header(1, last, last_usable, 2, count));
    } else {
        head.extend(vec![0u8; 512]);
    }
    head.extend(&array);
    let mut tail = array.clone();
    tail.extend(header(last, 1, last_usable, last - array_sectors, count));
    let mut input = vec![1 | (grow_mib << 1)];
    input.extend((sectors as u32).to_le_bytes());
    input.extend((head.len() as u16).to_le_bytes());
    input.extend(head);
    input.extend(tail);
    input
}

/// Seeds for the readers: an ESP and a `var` partition, with 128 entries
/// and with 4.
pub fn reader_seeds() -> Vec<Vec<u8>> {
    let esp = 0xc12a7328_f81f_11d2_ba4b_00a0c93ec93bu128.to_le_bytes();
    let var = 0x4d21b016_b534_45c2_a9fb_5c16e091fd2du128.to_le_bytes();
    let parts = [entry(esp, 1, 2048, 4095), entry(var, 2, 4096, 6143)];
    vec![
        gpt_input(8192, 128, &parts, 0, true),
        gpt_input(8192, 4, &parts, 2, true),
    ]
}

//! Repairs two defects of `fatfs` 0.3.6 (the newest release) in the
//! directories it creates, so `fsck.fat` finds the ESP clean:
//!
//! - it writes long-file-name entries in front of `.` and `..`, where the
//!   FAT specification wants `.` in slot 0 and `..` in slot 1;
//! - for a child of the FAT32 root it points `..` at the root's cluster (2),
//!   where the specification wants 0.
//!
//! Written by hand because no crate fixes another crate's output; it only
//! rewrites the first cluster of each directory, and refuses (with an error)
//! a directory whose entries do not fit there.

use std::io::{self, Read, Seek, SeekFrom, Write};

const ENTRY: usize = 32;
const ATTR_LFN: u8 = 0x0f;
const ATTR_DIR: u8 = 0x10;

struct Geometry {
    cluster_bytes: u64,
    fat_offset: u64,
    data_offset: u64,
    root_cluster: u32,
}

impl Geometry {
    fn read<S: Read + Seek>(s: &mut S) -> io::Result<Self> {
        let mut b = [0u8; 512];
        s.seek(SeekFrom::Start(0))?;
        s.read_exact(&mut b)?;
        let bps = u64::from(u16::from_le_bytes([b[11], b[12]]));
        let spc = u64::from(b[13]);
        let reserved = u64::from(u16::from_le_bytes([b[14], b[15]]));
        let fats = u64::from(b[16]);
        let fat_sectors = u64::from(u32::from_le_bytes([b[36], b[37], b[38], b[39]]));
        let root_cluster = u32::from_le_bytes([b[44], b[45], b[46], b[47]]);
        if bps == 0 || spc == 0 || fat_sectors == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a FAT32 boot sector",
            ));
        }
        Ok(Self {
            cluster_bytes: bps * spc,
            fat_offset: reserved * bps,
            data_offset: (reserved + fats * fat_sectors) * bps,
            root_cluster,
        })
    }

    fn cluster_offset(&self, cluster: u32) -> u64 {
        self.data_offset + u64::from(cluster - 2) * self.cluster_bytes
    }

    fn next_cluster<S: Read + Seek>(&self, s: &mut S, cluster: u32) -> io::Result<u32> {
        let mut b = [0u8; 4];
        s.seek(SeekFrom::Start(self.fat_offset + u64::from(cluster) * 4))?;
        s.read_exact(&mut b)?;
        Ok(u32::from_le_bytes(b) & 0x0fff_ffff)
    }
}

fn first_cluster(e: &[u8]) -> u32 {
    u32::from(u16::from_le_bytes([e[26], e[27]]))
        | (u32::from(u16::from_le_bytes([e[20], e[21]])) << 16)
}

fn set_first_cluster(e: &mut [u8], c: u32) {
    e[26..28].copy_from_slice(&((c & 0xffff) as u16).to_le_bytes());
    e[20..22].copy_from_slice(&((c >> 16) as u16).to_le_bytes());
}

fn is_dot(e: &[u8]) -> bool {
    &e[..11] == b".          " || &e[..11] == b"..         "
}

/// Fixes every directory below the root of the FAT32 volume in `s`.
pub fn fix_dot_entries<S: Read + Write + Seek>(s: &mut S) -> io::Result<()> {
    let g = Geometry::read(s)?;
    // (directory cluster, parent cluster or 0 for the root)
    let mut todo: Vec<(u32, u32)> = subdirs(s, &g, g.root_cluster)?
        .into_iter()
        .map(|c| (c, 0))
        .collect();
    while let Some((dir, parent)) = todo.pop() {
        let off = g.cluster_offset(dir);
        let mut buf = vec![0u8; g.cluster_bytes as usize];
        s.seek(SeekFrom::Start(off))?;
        s.read_exact(&mut buf)?;
        let entries: Vec<Vec<u8>> = buf
            .chunks(ENTRY)
            .take_while(|e| e[0] != 0)
            .map(<[u8]>::to_vec)
            .collect();
        let used = entries.len();
        if used * ENTRY == buf.len() && g.next_cluster(s, dir)? < 0x0fff_fff8 {
            return Err(io::Error::other(format!(
                "ESP directory at cluster {dir} spans clusters; too many files for the fix-up"
            )));
        }
        let mut kept: Vec<Vec<u8>> = Vec::with_capacity(used);
        for (i, e) in entries.iter().enumerate() {
            let lfn_of_dot = e[11] == ATTR_LFN
                && entries[i..]
                    .iter()
                    .find(|x| x[11] != ATTR_LFN)
                    .is_some_and(|x| is_dot(x));
            if !lfn_of_dot {
                kept.push(e.clone());
            }
        }
        for e in kept.iter_mut() {
            if &e[..11] == b"..         " {
                set_first_cluster(e, parent);
            }
        }
        let mut out = vec![0u8; buf.len()];
        for (i, e) in kept.iter().enumerate() {
            out[i * ENTRY..(i + 1) * ENTRY].copy_from_slice(e);
        }
        s.seek(SeekFrom::Start(off))?;
        s.write_all(&out)?;
        todo.extend(subdirs(s, &g, dir)?.into_iter().map(|c| (c, dir)));
    }
    s.flush()
}

/// First clusters of the subdirectories listed in a directory's first
/// cluster (our directories are small; see the module docs).
fn subdirs<S: Read + Seek>(s: &mut S, g: &Geometry, dir: u32) -> io::Result<Vec<u32>> {
    let mut buf = vec![0u8; g.cluster_bytes as usize];
    s.seek(SeekFrom::Start(g.cluster_offset(dir)))?;
    s.read_exact(&mut buf)?;
    Ok(buf
        .chunks(ENTRY)
        .take_while(|e| e[0] != 0)
        .filter(|e| e[0] != 0xe5 && e[11] != ATTR_LFN && e[11] & ATTR_DIR != 0 && !is_dot(e))
        .map(first_cluster)
        .filter(|c| *c >= 2)
        .collect())
}

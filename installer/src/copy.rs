//! The sparse copy: only the source's non-zero 4 KiB blocks are written.
//!
//! Skipping a zero block leaves whatever the target held there, so where
//! must the target still read zero? Wherever a reader of the image looks at
//! bytes the image has as zero: inside a filesystem (the ESP's FAT tables,
//! `var`'s inode tables and journal, which mke2fs zeroed and flagged as
//! zeroed) and inside the verity-covered root data. Old bytes there are
//! corruption, or a verity failure. So, per partition:
//!
//! - a partition with any data gets all of its zero ranges made zero, by
//!   the cheapest means that guarantees zeros: `fallocate(PUNCH_HOLE)`
//!   (a hole in a file; on a block device the kernel's write-zeroes without
//!   fallback, i.e. NVMe/SCSI/virtio zeroing commands that write no data),
//!   else `fallocate(ZERO_RANGE)` (the kernel writes zeros), else zero
//!   writes;
//! - a partition the image leaves empty (slot B and its verity partition:
//!   the update engine writes them in full before anything reads them) gets
//!   only its first and last MiB zeroed, where filesystem and RAID
//!   signatures live, so no probe (the boot's seed search, blkid) finds a
//!   former disk's filesystem in it;
//! - bytes outside every partition are not written (the seed gap is
//!   written whole when there is user-data; the tables come last).
//!
//! The digest of a file or URL source covers every byte, holes included.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;

use anyhow::{bail, Context, Result};
use nix::fcntl::{fallocate, FallocateFlags};
use sha2::{Digest, Sha256};

use crate::progress::Progress;
use crate::source::{Reader, Source};
use crate::table::{Content, Plan};
use crate::var_template;

pub use crate::written::{write_all_at, Stats};

const BLOCK: u64 = 4096;
const CHUNK: usize = 1024 * 1024;
/// How much of an empty partition's start and end is zeroed.
const SIGNATURE_AREA: u64 = 1024 * 1024;

/// One partition's progress through the copy.
#[derive(Debug, Clone)]
struct Part {
    start: u64,
    end: u64,
    /// Any non-zero block seen.
    used: bool,
    /// Zero ranges, merged.
    zeros: Vec<(u64, u64)>,
}

impl Part {
    fn zero(&mut self, start: u64, end: u64) {
        match self.zeros.last_mut() {
            Some(last) if last.1 == start => last.1 = end,
            _ => self.zeros.push((start, end)),
        }
    }
}

/// The copy of one source into the target at the same offsets.
struct Copier<'a> {
    target: &'a mut File,
    parts: Vec<Part>,
    stats: &'a mut Stats,
    /// Whether fast zeroing still looks supported.
    fast_zero: bool,
}

impl Copier<'_> {
    /// Takes `buf`, the source's bytes at `offset`: non-zero blocks inside a
    /// copied partition are written, zero ones remembered.
    fn data(&mut self, offset: u64, buf: &[u8]) -> Result<()> {
        let end = offset + buf.len() as u64;
        let mut at = offset;
        // A run of non-zero blocks written with one pwrite.
        let mut pending: Option<(u64, u64)> = None;
        while at < end {
            let Some(index) = self.parts.iter().position(|p| p.start <= at && at < p.end) else {
                // Outside every copied partition: skip to the next one.
                self.flush(&mut pending, offset, buf)?;
                at = self
                    .parts
                    .iter()
                    .map(|p| p.start)
                    .filter(|&s| s > at)
                    .min()
                    .unwrap_or(end)
                    .min(end);
                continue;
            };
            let block_end = ((at / BLOCK + 1) * BLOCK)
                .min(end)
                .min(self.parts[index].end);
            let bytes = &buf[(at - offset) as usize..(block_end - offset) as usize];
            if bytes.iter().all(|&b| b == 0) {
                self.flush(&mut pending, offset, buf)?;
                self.parts[index].zero(at, block_end);
            } else {
                self.parts[index].used = true;
                pending = match pending {
                    Some((s, e)) if e == at => Some((s, block_end)),
                    other => {
                        let mut p = other;
                        self.flush(&mut p, offset, buf)?;
                        Some((at, block_end))
                    }
                };
            }
            at = block_end;
        }
        self.flush(&mut pending, offset, buf)
    }

    fn flush(&mut self, pending: &mut Option<(u64, u64)>, offset: u64, buf: &[u8]) -> Result<()> {
        if let Some((s, e)) = pending.take() {
            let bytes = &buf[(s - offset) as usize..(e - offset) as usize];
            write_all_at(self.target, bytes, s, self.stats)?;
        }
        Ok(())
    }

    /// A hole of the source: zero for every partition it touches.
    fn hole(&mut self, start: u64, end: u64) {
        for p in &mut self.parts {
            let (s, e) = (start.max(p.start), end.min(p.end));
            if s < e {
                p.zero(s, e);
            }
        }
    }

    /// Makes the remembered zero ranges zero on the target (module doc).
    fn finish_zeros(&mut self) -> Result<()> {
        let parts = std::mem::take(&mut self.parts);
        for p in &parts {
            if p.used {
                for &(s, e) in &p.zeros {
                    self.make_zero(s, e)?;
                }
            } else {
                let len = p.end - p.start;
                let head = SIGNATURE_AREA.min(len);
                self.make_zero(p.start, p.start + head)?;
                if len > head {
                    self.make_zero((p.end - SIGNATURE_AREA).max(p.start + head), p.end)?;
                }
            }
        }
        Ok(())
    }

    fn make_zero(&mut self, start: u64, end: u64) -> Result<()> {
        let len = end - start;
        if len == 0 {
            return Ok(());
        }
        self.stats.zeroed += len;
        let (off, n) = (start as i64, len as i64);
        if self.fast_zero {
            let flags = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
            if fallocate(self.target.as_fd(), flags, off, n).is_ok() {
                return Ok(());
            }
            // Not supported here: every later range takes the slow way too.
            self.fast_zero = false;
        }
        if fallocate(
            self.target.as_fd(),
            FallocateFlags::FALLOC_FL_ZERO_RANGE,
            off,
            n,
        )
        .is_ok()
        {
            return Ok(());
        }
        let zeros = vec![0u8; CHUNK];
        let mut at = start;
        while at < end {
            let n = (end - at).min(CHUNK as u64) as usize;
            self.target
                .write_all_at(&zeros[..n], at)
                .with_context(|| format!("writing zeros at byte {at}"))?;
            at += n as u64;
        }
        Ok(())
    }
}

/// Copies what the plan takes from the source, the fresh `var` when the
/// source is a boot disk, and checks the digest of a file or URL source.
pub fn copy_image(
    source: &mut Source,
    plan: &Plan,
    target: &mut File,
    progress: &mut Progress,
    stats: &mut Stats,
) -> Result<()> {
    let parts = plan
        .partitions
        .iter()
        .filter(|p| p.content == Content::Source)
        .map(|p| Part {
            start: p.entry.offset(),
            end: p.entry.end(),
            used: false,
            zeros: Vec::new(),
        })
        .collect();
    let mut copier = Copier {
        target,
        parts,
        stats,
        fast_zero: true,
    };
    if source.boot_disk {
        let Reader::File(file) = &source.reader else {
            bail!("{}: the boot disk is read as a file", source.name);
        };
        let ranges: Vec<(u64, u64)> = copier.parts.iter().map(|p| (p.start, p.end)).collect();
        let mut buf = vec![0u8; CHUNK];
        for (start, end) in ranges {
            let mut at = start;
            while at < end {
                let n = (end - at).min(CHUNK as u64) as usize;
                file.read_exact_at(&mut buf[..n], at)
                    .with_context(|| format!("{}: reading byte {at}", source.name))?;
                copier.data(at, &buf[..n])?;
                progress.advance(n as u64);
                at += n as u64;
            }
        }
        if let Some(var) = plan
            .partitions
            .iter()
            .find(|p| p.content == Content::VarTemplate)
        {
            let base = var.entry.offset();
            copier.parts.push(Part {
                start: base,
                end: base + var_template::LEN,
                used: true,
                zeros: Vec::new(),
            });
            let mut at = base;
            for (offset, bytes) in var_template::runs()? {
                copier.hole(at, base + offset);
                write_all_at(copier.target, &bytes, base + offset, copier.stats)?;
                at = base + offset + bytes.len() as u64;
            }
            copier.hole(at, base + var_template::LEN);
        }
        copier.finish_zeros()?;
        return Ok(());
    }

    let mut hasher = source.expected_sha256.map(|_| Sha256::new());
    if let Some(h) = &mut hasher {
        h.update(&source.head);
    }
    progress.advance(source.head.len() as u64);
    let mut at = source.head.len() as u64;
    let len = source.len;
    let mut buf = vec![0u8; CHUNK];
    let zeros = vec![0u8; CHUNK];
    match &mut source.reader {
        Reader::File(file) => {
            while at < len {
                let (data_start, data_end) = next_data(file, at, len);
                // The hole before the data.
                copier.hole(at, data_start);
                let mut h = at;
                while h < data_start {
                    let n = (data_start - h).min(CHUNK as u64) as usize;
                    if let Some(hs) = &mut hasher {
                        hs.update(&zeros[..n]);
                    }
                    progress.advance(n as u64);
                    h += n as u64;
                }
                let mut d = data_start;
                while d < data_end {
                    let n = (data_end - d).min(CHUNK as u64) as usize;
                    file.read_exact_at(&mut buf[..n], d)
                        .with_context(|| format!("{}: reading byte {d}", source.name))?;
                    if let Some(hs) = &mut hasher {
                        hs.update(&buf[..n]);
                    }
                    copier.data(d, &buf[..n])?;
                    progress.advance(n as u64);
                    d += n as u64;
                }
                at = data_end;
            }
        }
        Reader::Stream { body, at: read_at } => {
            while at < len {
                let n = (len - at).min(CHUNK as u64) as usize;
                body.read_exact(&mut buf[..n])
                    .with_context(|| format!("{}: reading byte {at}", source.name))?;
                if let Some(hs) = &mut hasher {
                    hs.update(&buf[..n]);
                }
                copier.data(at, &buf[..n])?;
                progress.advance(n as u64);
                at += n as u64;
                *read_at = at;
            }
        }
    }
    if let (Some(h), Some(want)) = (hasher, source.expected_sha256) {
        let got: [u8; 32] = h.finalize().into();
        if got != want {
            bail!(
                "{}: sha256 {} but SHA256SUMS says {}; the target has no partition table",
                source.name,
                hex::encode(got),
                hex::encode(want)
            );
        }
    }
    copier.finish_zeros()
}

/// The next data extent at or after `pos` (`SEEK_DATA`/`SEEK_HOLE`);
/// `(len, len)` when only a hole is left. Where the file system cannot
/// say, all of it is data.
fn next_data(file: &File, pos: u64, len: u64) -> (u64, u64) {
    use nix::unistd::{lseek, Whence};
    let fd = file.as_fd();
    let start = match lseek(fd, pos as i64, Whence::SeekData) {
        Ok(s) => s as u64,
        Err(nix::errno::Errno::ENXIO) => return (len, len),
        Err(_) => return (pos, len),
    };
    let end = match lseek(fd, start as i64, Whence::SeekHole) {
        Ok(e) => (e as u64).min(len),
        Err(_) => len,
    };
    (start.min(len), end.max(start.min(len)))
}

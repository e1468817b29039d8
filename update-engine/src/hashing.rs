//! sha256 of files and ranges of block devices, read back from the medium;
//! the O_DIRECT file the slot's partitions are written and re-read through.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};

/// Read size for hashing: large enough for sequential device reads.
const BUF: usize = 1 << 20;

/// sha256 of at most `limit` bytes of `r`; returns (bytes read, hex).
pub fn sha256_reader(mut r: impl Read, limit: u64) -> io::Result<(u64, String)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; BUF];
    let mut n = 0u64;
    while n < limit {
        let want = (limit - n).min(BUF as u64) as usize;
        let got = match r.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..got]);
        n += got as u64;
    }
    Ok((n, hex::encode(h.finalize())))
}

/// sha256 of `len` bytes of `f` from `offset`, after asking the kernel to
/// drop its cached pages of that range, so the bytes come from the medium
/// rather than from what we just wrote into the page cache. Short reads
/// (a device smaller than claimed) are an error.
#[cfg(feature = "machine")]
pub fn sha256_range_uncached(f: &File, offset: u64, len: u64) -> io::Result<String> {
    drop_cache(f, offset, len);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; BUF];
    let mut at = 0u64;
    while at < len {
        let want = (len - at).min(BUF as u64) as usize;
        f.read_exact_at(&mut buf[..want], offset + at)?;
        h.update(&buf[..want]);
        at += want as u64;
    }
    Ok(hex::encode(h.finalize()))
}

/// `POSIX_FADV_DONTNEED` on a range: clean pages are dropped, so only call
/// it after an fsync. Advisory: failure only means a cached re-read.
#[cfg(feature = "machine")]
pub fn drop_cache(f: &File, offset: u64, len: u64) {
    use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
    let _ = posix_fadvise(
        f,
        offset as i64,
        len as i64,
        PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    );
}

/// The alignment O_DIRECT wants of buffers, offsets and lengths: the
/// largest logical block size of the disks a slot lives on.
pub const ALIGN: usize = 4096;

/// A buffer whose bytes start on an [`ALIGN`] boundary, without unsafe
/// code: one block more is allocated and the bytes start at its first
/// aligned address (a `Vec`'s heap block does not move when the `Vec`
/// does, so the alignment holds as the buffer passes between threads).
#[derive(Debug)]
pub struct AlignedBuf {
    mem: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    pub fn new(capacity: usize) -> AlignedBuf {
        let mem = vec![0u8; capacity + ALIGN];
        // `align_offset` may in theory refuse (usize::MAX); the buffer is
        // then unaligned, which only costs the O_DIRECT path.
        let start = mem.as_ptr().align_offset(ALIGN).min(ALIGN);
        AlignedBuf { mem, start, len: 0 }
    }

    pub fn capacity(&self) -> usize {
        self.mem.len() - ALIGN
    }

    /// The first `len` bytes (at most the capacity), to be filled.
    pub fn fill(&mut self, len: usize) -> &mut [u8] {
        assert!(
            len <= self.capacity(),
            "{len} bytes into a buffer of {}",
            self.capacity()
        );
        self.len = len;
        &mut self.mem[self.start..self.start + len]
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.mem[self.start..self.start + self.len]
    }
}

/// A partition (or slot file) written with O_DIRECT where it can be,
/// through the page cache where it cannot.
///
/// O_DIRECT moves the data from the engine's buffer to the disk with no
/// copy into the page cache, no dirty pages to write back and none to drop
/// before the re-read. That halves the kernel's CPU time of an apply, and
/// the CPU is what limits it on a fast disk (`cargo xtask bench update`:
/// the write phase went from 0.7-1.3 s to 0.4-0.45 s for 554 MB). Reads
/// stay buffered (see `Sinks::read` in apply.rs). Where O_DIRECT is refused (tmpfs, some FUSE
/// filesystems: `EINVAL` at open or at the first transfer) and for the
/// unaligned ends of a range, the same file opened normally is used; the
/// kernel keeps the two views coherent, and fsync covers both.
#[derive(Debug)]
pub struct DirectFile {
    buffered: File,
    direct: Option<File>,
    /// Cleared when the filesystem refuses a direct transfer.
    direct_ok: AtomicBool,
}

impl DirectFile {
    /// Opens `path` for reading and writing, in place (never created nor
    /// truncated: a block device cannot be, a slot file keeps its size).
    pub fn open(path: &Path) -> io::Result<DirectFile> {
        let buffered = OpenOptions::new().read(true).write(true).open(path)?;
        let direct = match OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
        {
            Ok(f) => Some(f),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => None,
            Err(e) => return Err(e),
        };
        Ok(DirectFile {
            buffered,
            direct_ok: AtomicBool::new(direct.is_some()),
            direct,
        })
    }

    /// A file used through the page cache only.
    pub fn buffered(file: File) -> DirectFile {
        DirectFile {
            buffered: file,
            direct: None,
            direct_ok: AtomicBool::new(false),
        }
    }

    /// The file through the page cache (fsync, fadvise).
    pub fn file(&self) -> &File {
        &self.buffered
    }

    /// Whether transfers go direct (false once refused).
    pub fn is_direct(&self) -> bool {
        self.direct.is_some() && self.direct_ok.load(Ordering::Relaxed)
    }

    pub fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let head = self.direct_len(buf.as_ptr() as usize, offset, buf.len());
        if head > 0 {
            let f = self.direct.as_ref().unwrap_or(&self.buffered);
            match f.write_all_at(&buf[..head], offset) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    self.direct_ok.store(false, Ordering::Relaxed);
                    return self.buffered.write_all_at(buf, offset);
                }
                Err(e) => return Err(e),
            }
        }
        self.buffered
            .write_all_at(&buf[head..], offset + head as u64)
    }

    /// How many leading bytes of a transfer can go direct.
    fn direct_len(&self, addr: usize, offset: u64, len: usize) -> usize {
        if self.is_direct() {
            direct_len(addr, offset, len)
        } else {
            0
        }
    }
}

/// The leading bytes of a transfer of `len` bytes at `addr` in memory and
/// `offset` in the file that O_DIRECT takes: all whole blocks if memory and
/// file offset are both block-aligned, none otherwise. The rest (the tail
/// of a part whose size is not a whole number of blocks) goes through the
/// page cache.
pub fn direct_len(addr: usize, offset: u64, len: usize) -> usize {
    if addr.is_multiple_of(ALIGN) && offset.is_multiple_of(ALIGN as u64) {
        len - len % ALIGN
    } else {
        0
    }
}

#[cfg(all(test, feature = "machine"))]
mod tests {
    use super::*;

    #[test]
    fn only_whole_aligned_blocks_go_direct() {
        assert_eq!(direct_len(0, 0, 3 * ALIGN), 3 * ALIGN);
        // The last, partial chunk of a part: its whole blocks, not the tail.
        assert_eq!(
            direct_len(ALIGN, 8 * ALIGN as u64, 2 * ALIGN + 17),
            2 * ALIGN
        );
        assert_eq!(direct_len(0, 0, ALIGN - 1), 0);
        // A part starting inside a chunk: memory or file misaligned.
        assert_eq!(direct_len(17, 0, 2 * ALIGN), 0);
        assert_eq!(direct_len(0, 512, 2 * ALIGN), 0);
    }

    #[test]
    fn aligned_buffer_is_aligned_and_bounded() {
        let mut b = AlignedBuf::new(3 * ALIGN);
        assert_eq!(b.capacity(), 3 * ALIGN);
        assert_eq!(b.fill(100).as_ptr() as usize % ALIGN, 0);
        assert_eq!(b.as_slice().len(), 100);
    }

    /// Writes a range with an aligned start and an unaligned tail, and a
    /// range that is not aligned at all, in a folder of `dir`; reads them
    /// back from the medium.
    fn round_trip(dir: &Path) -> bool {
        let tmp = tempfile::tempdir_in(dir).unwrap();
        let path = tmp.path().join("slot.img");
        std::fs::write(&path, vec![0u8; 16 * ALIGN]).unwrap();
        let f = DirectFile::open(&path).unwrap();
        let mut buf = AlignedBuf::new(8 * ALIGN);
        let data = buf.fill(5 * ALIGN + 123);
        for (i, b) in data.iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        let data = buf.as_slice().to_vec();
        f.write_all_at(buf.as_slice(), 2 * ALIGN as u64).unwrap();
        f.write_all_at(&data[..100], 9 * ALIGN as u64 + 5).unwrap();
        f.file().sync_all().unwrap();
        drop_cache(f.file(), 0, 16 * ALIGN as u64);
        let mut back = AlignedBuf::new(8 * ALIGN);
        f.file()
            .read_exact_at(back.fill(data.len()), 2 * ALIGN as u64)
            .unwrap();
        assert_eq!(back.as_slice(), &data[..]);
        let mut odd = vec![0u8; 100];
        f.file()
            .read_exact_at(&mut odd, 9 * ALIGN as u64 + 5)
            .unwrap();
        assert_eq!(odd, &data[..100]);
        let whole = std::fs::read(&path).unwrap();
        assert_eq!(&whole[2 * ALIGN..2 * ALIGN + data.len()], &data[..]);
        assert!(whole[2 * ALIGN + data.len()..9 * ALIGN]
            .iter()
            .all(|&b| b == 0));
        f.is_direct()
    }

    #[test]
    fn direct_file_round_trips_on_a_disk_filesystem() {
        // Usually a disk filesystem, where O_DIRECT works (ext4, xfs,
        // btrfs); where /tmp is a tmpfs this is the fallback again.
        let direct = round_trip(&std::env::temp_dir());
        eprintln!("direct I/O used: {direct}");
    }

    #[test]
    fn direct_file_falls_back_on_tmpfs() {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            // tmpfs refuses O_DIRECT at open (or, on newer kernels,
            // accepts it): either way the data must round-trip.
            round_trip(shm);
        }
    }
}

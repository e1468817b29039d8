//! sha256 of files and ranges of block devices, read back from the medium,
//! and dropping cached pages so that a re-read does come from the medium.

#[cfg(feature = "machine")]
use std::fs::File;
use std::io::{self, Read};
#[cfg(feature = "machine")]
use std::os::unix::fs::FileExt;

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

/// `POSIX_FADV_DONTNEED` on a range: Linux starts writing its dirty pages
/// back without waiting, and drops its clean ones (so after an fsync it
/// drops them all). Advisory: failure only means a cached re-read, or
/// writeback left to the fsync.
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

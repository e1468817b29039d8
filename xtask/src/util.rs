//! Small helpers shared by the builder's modules.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// sha256 of a file, hex; reads in 1 MiB pieces (sha2 runs at ~1.8 GB/s here
/// with SHA-NI, so the read size matters more than the hashing).
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// sha256 of a sparse file, hex, reading only what is not a hole:
/// `holes` are `(offset, length)` ranges known to read as zeros (sorted,
/// not overlapping), fed to the hash from memory. Reading a hole is not
/// free: the kernel fills page-cache pages with zeros first, and for the
/// 2.5 GB of holes of disk.raw that cost more than the hashing itself
/// (perf, in a VM: 38 % of a build's samples in the kernel's memset
/// against 26 % in sha256).
pub fn sha256_sparse_file(path: &Path, holes: &[(u64, u64)]) -> Result<String> {
    use std::io::{Seek, SeekFrom};
    const PIECE: usize = 1 << 20;
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let len = f
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; PIECE];
    let zeros = vec![0u8; PIECE];
    let mut pos = 0u64;
    let mut hash_data = |h: &mut Sha256, f: &mut std::fs::File, from: u64, to: u64| -> Result<()> {
        f.seek(SeekFrom::Start(from))?;
        let mut left = to - from;
        while left > 0 {
            let n = left.min(PIECE as u64) as usize;
            f.read_exact(&mut buf[..n])
                .with_context(|| format!("reading {}", path.display()))?;
            h.update(&buf[..n]);
            left -= n as u64;
        }
        Ok(())
    };
    for &(start, length) in holes {
        let end = start.saturating_add(length).min(len);
        anyhow::ensure!(
            start >= pos && start <= end,
            "internal: holes of {} not sorted or past its end",
            path.display()
        );
        hash_data(&mut h, &mut f, pos, start)?;
        let mut left = end - start;
        while left > 0 {
            let n = left.min(PIECE as u64) as usize;
            h.update(&zeros[..n]);
            left -= n as u64;
        }
        pos = end;
    }
    hash_data(&mut h, &mut f, pos, len)?;
    Ok(hex::encode(h.finalize()))
}

pub fn sha256_bytes(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Writes a file by temporary name and rename, so a reader never sees half
/// of it (no fsync: build outputs are rebuilt after a power cut).
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    use slipway_boot_contract::atomic::{self, Durability};
    Ok(atomic::write_atomic(path, data, Durability::Atomic)?)
}

/// Finds a program on PATH.
pub fn which(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Parses a size for the command line: `4G`, `512M`, `1.5G`, `1073741824`.
/// The suffixes K, M, G, T (optionally followed by `iB` or `B`) are powers
/// of 1024, as in `qemu-img`.
pub fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    let digits_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(digits_end);
    let shift = match unit.trim().trim_end_matches("iB").trim_end_matches('B') {
        "" => 0,
        "K" | "k" => 10,
        "M" | "m" => 20,
        "G" | "g" => 30,
        "T" | "t" => 40,
        other => {
            return Err(format!(
                "`{text}`: unknown unit `{other}` (use K, M, G or T)"
            ))
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size like 4G or 512M"))?;
    let bytes = value * f64::from(1u32 << (shift / 2)) * f64::from(1u32 << (shift - shift / 2));
    if !(bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(format!("`{text}` is not a usable size"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparse_files_sum_is_the_plain_sum() {
        use std::io::{Seek, SeekFrom, Write};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.raw");
        let mut f = std::fs::File::create(&path).unwrap();
        f.set_len(5 << 20).unwrap();
        f.seek(SeekFrom::Start(1 << 20)).unwrap();
        f.write_all(&[7u8; 3000]).unwrap();
        f.seek(SeekFrom::Start((4 << 20) + 5)).unwrap();
        f.write_all(b"end").unwrap();
        drop(f);
        let plain = sha256_file(&path).unwrap();
        let holes = [(0, 1 << 20), ((1 << 20) + 3000, (3 << 20) - 3000)];
        assert_eq!(sha256_sparse_file(&path, &holes).unwrap(), plain);
        assert_eq!(sha256_sparse_file(&path, &[]).unwrap(), plain);
        // A range that is not zeros gives another sum: the holes are
        // trusted, so they must come from the filesystem.
        assert_ne!(sha256_sparse_file(&path, &[(0, 2 << 20)]).unwrap(), plain);
        assert!(sha256_sparse_file(&path, &[(2, 1), (0, 1)]).is_err());
    }

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("4G"), Ok(4 << 30));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("2048"), Ok(2048));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert!(parse_size("4X").unwrap_err().contains("unknown unit `X`"));
        assert!(parse_size("G").is_err());
        assert!(parse_size("0").is_err());
    }
}

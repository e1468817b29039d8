//! What an install writes, counted. A leaf: the copy and the partition
//! table both write through it.

use std::fs::File;
use std::os::unix::fs::FileExt;

use anyhow::{Context, Result};

/// What the install wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Data bytes written (non-zero blocks, seed, tables).
    pub written: u64,
    /// Bytes made zero (by zeroing commands or zero writes).
    pub zeroed: u64,
}

/// Writes `bytes` at `offset`, counted.
pub fn write_all_at(target: &mut File, bytes: &[u8], offset: u64, stats: &mut Stats) -> Result<()> {
    target
        .write_all_at(bytes, offset)
        .with_context(|| format!("writing {} bytes at byte {offset}", bytes.len()))?;
    stats.written += bytes.len() as u64;
    Ok(())
}

//! A cache of compressed squashfs blocks, keyed by the sha256 of the
//! uncompressed block: xz costs about a minute for a root with
//! the container engine, and consecutive builds (a test release, the
//! reproducible-build test, a one-line change) share nearly every block.
//!
//! backhand compresses through a `CompressionAction`; this one hands a
//! block to backhand's own compressor unless the cache folder already holds
//! it. An entry is trusted only after it decompresses to the exact bytes
//! its name promises, so a torn or stale file costs a recompression, never
//! a wrong image. Only data blocks of 64 KiB and more are kept: metadata
//! blocks are small and cheap, and would fill the folder with tiny files.
//! Written by hand because no crate caches backhand's blocks.

use std::path::PathBuf;
use std::sync::OnceLock;

use backhand::compression::{CompressionAction, Compressor, DefaultCompressor};
use backhand::{BackhandError, FilesystemCompressor, SuperBlock};
use sha2::{Digest, Sha256};

/// Blocks smaller than this are compressed every time.
const MIN_CACHED: usize = 64 * 1024;

/// The folder of the process's cache: backhand needs a `'static`
/// compressor, so the folder is process-wide, set by the first build that
/// asks for a cache.
static DIR: OnceLock<PathBuf> = OnceLock::new();

/// The compressor backhand is given when a build has a cache.
pub(super) static CACHED: CachedCompressor = CachedCompressor;

/// Makes `dir` the process's block cache; false if another folder already
/// is (that build then compresses without a cache).
pub(super) fn use_dir(dir: PathBuf) -> bool {
    DIR.get_or_init(|| dir.clone()) == &dir
}

#[derive(Debug)]
pub(super) struct CachedCompressor;

impl CachedCompressor {
    fn entry(bytes: &[u8], tag: &str) -> Option<PathBuf> {
        let dir = DIR.get()?;
        let mut h = Sha256::new();
        h.update(tag.as_bytes());
        h.update(bytes);
        Some(dir.join(hex::encode(h.finalize())))
    }
}

impl CompressionAction for CachedCompressor {
    type Error = BackhandError;
    type Compressor = Compressor;
    type FilesystemCompressor = FilesystemCompressor;
    type SuperBlock = SuperBlock;

    fn decompress(
        &self,
        bytes: &[u8],
        out: &mut Vec<u8>,
        compressor: Compressor,
    ) -> Result<(), BackhandError> {
        DefaultCompressor.decompress(bytes, out, compressor)
    }

    fn compress(
        &self,
        bytes: &[u8],
        fc: FilesystemCompressor,
        block_size: u32,
    ) -> Result<Vec<u8>, BackhandError> {
        // The key holds everything that shapes the output besides the
        // bytes: the writer's settings (one compressor, one level, one
        // block size for the whole program).
        let tag = format!("{}-{block_size}\0", super::COMPRESSION);
        let entry = (bytes.len() >= MIN_CACHED)
            .then(|| Self::entry(bytes, &tag))
            .flatten();
        if let Some(path) = &entry {
            if let Ok(cached) = std::fs::read(path) {
                let mut check = Vec::with_capacity(bytes.len());
                if DefaultCompressor
                    .decompress(&cached, &mut check, Compressor::Xz)
                    .is_ok()
                    && check == bytes
                {
                    return Ok(cached);
                }
            }
        }
        let compressed = DefaultCompressor.compress(bytes, fc, block_size)?;
        if let Some(path) = entry {
            // A cache that cannot be written is only slower.
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            if std::fs::write(&tmp, &compressed).is_ok() {
                let _ = std::fs::rename(&tmp, &path);
            }
        }
        Ok(compressed)
    }

    fn compression_options(
        &self,
        superblock: &mut SuperBlock,
        kind: &backhand::kind::Kind,
        fs_compressor: FilesystemCompressor,
    ) -> Result<Option<Vec<u8>>, BackhandError> {
        DefaultCompressor.compression_options(superblock, kind, fs_compressor)
    }
}

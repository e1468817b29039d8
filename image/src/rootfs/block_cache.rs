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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use backhand::compression::{CompressionAction, Compressor, DefaultCompressor};
use backhand::{BackhandError, FilesystemCompressor, SuperBlock};
use sha2::{Digest, Sha256};

use crate::tree::{Node, Tree};

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

/// Compresses, on every core, each data block of `tree` that the cache
/// lacks, so that backhand's writer, which compresses one block after the
/// other, finds them all cached: a cold build's xz pass (about three
/// minutes on one core for the root with the container engine) then takes
/// about as long divided by the cores. The writer still checks every entry
/// it reads, so this only moves work, it never decides bytes.
///
/// The blocks are the ones backhand's data writer compresses: a file of at
/// least one block is cut into `block_size` pieces (the last one may be
/// shorter); a smaller file goes into a fragment, which is not cached; a
/// piece of zeros is a hole.
pub(super) fn prewarm(tree: &Tree, fc: FilesystemCompressor, block_size: u32) {
    let block = block_size as usize;
    let tag = tag(block_size);
    let wanted: Vec<&[u8]> = tree
        .iter()
        .filter_map(|(_, node)| match node {
            Node::File { data, .. } if data.len() >= block => Some(data.chunks(block)),
            _ => None,
        })
        .flatten()
        .filter(|piece| piece.len() >= MIN_CACHED && piece.iter().any(|b| *b != 0))
        .filter(|piece| CachedCompressor::entry(piece, &tag).is_some_and(|p| !p.exists()))
        .collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(wanted.len());
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(piece) = wanted.get(i) else { break };
                // A failure here is the writer's to report, when it
                // compresses the same block itself.
                let _ = CACHED.compress(piece, fc, block_size);
            });
        }
    });
}

/// Everything that shapes a block's compressed bytes besides the bytes:
/// the writer's settings (one compressor, one level, one block size for
/// the whole program).
fn tag(block_size: u32) -> String {
    format!("{}-{block_size}\0", super::COMPRESSION)
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
        let tag = tag(block_size);
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

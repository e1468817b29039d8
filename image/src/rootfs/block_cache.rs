//! A cache of compressed squashfs blocks, keyed by the sha256 of the
//! uncompressed block: xz costs about a minute for a root with
//! the container engine, and consecutive builds (a test release, the
//! reproducible-build test, a one-line change) share nearly every block.
//!
//! backhand compresses through a `CompressionAction`; this one hands a
//! block to backhand's own compressor unless the cache folder already holds
//! it. Only data blocks of 64 KiB and more are kept: metadata blocks are
//! small and cheap, and would fill the folder with tiny files. Written by
//! hand because no crate caches backhand's blocks.
//!
//! An entry is sealed: [`MAGIC`], then the sha256 of its name (the key)
//! and its compressed bytes, then those bytes. It is used only if the seal
//! matches, so a torn or altered file, or one copied under another name,
//! costs a recompression, never a wrong image. The seal is what this cache
//! wrote after compressing exactly the bytes the name promises, so using
//! the entry gives the bytes a build without the cache writes (the
//! compressor's settings are in the key; a liblzma that compressed
//! differently would need a new tag, with either check). Entries used to
//! be checked by decompressing
//! them instead, which cost more than anything else in a warm build (xz
//! decodes at about 50 MB/s here: 5 s for the 250 MB of the root's
//! blocks, against 0.2 s to hash their 80 MB compressed); an unsealed
//! entry of that format is still taken if it decompresses to its bytes,
//! and sealed on the way.

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
    let pieces: Vec<&[u8]> = tree
        .iter()
        .filter_map(|(_, node)| match node {
            Node::File { data, .. } if data.len() >= block => Some(data.chunks(block)),
            _ => None,
        })
        .flatten()
        .filter(|piece| piece.len() >= MIN_CACHED)
        .collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(pieces.len());
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(piece) = pieces.get(i) else { break };
                // Hashing the pieces for their names is work too (0.2 s
                // for the root's 250 MB): done here on every core.
                let missing = piece.iter().any(|b| *b != 0)
                    && CachedCompressor::entry(piece, &tag).is_some_and(|(p, _)| !p.exists());
                if missing {
                    // A failure here is the writer's to report, when it
                    // compresses the same block itself.
                    let _ = CACHED.compress(piece, fc, block_size);
                }
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

/// The first bytes of a sealed entry.
pub(super) const MAGIC: &[u8; 8] = b"swsqblk2";

/// The entry a data block of `block_size` settings would have.
#[cfg(test)]
pub(super) fn entry_path(piece: &[u8], block_size: u32) -> Option<PathBuf> {
    CachedCompressor::entry(piece, &tag(block_size)).map(|(path, _)| path)
}

impl CachedCompressor {
    /// The entry's path and key (the sha256 its name spells).
    fn entry(bytes: &[u8], tag: &str) -> Option<(PathBuf, [u8; 32])> {
        let dir = DIR.get()?;
        let mut h = Sha256::new();
        h.update(tag.as_bytes());
        h.update(bytes);
        let key: [u8; 32] = h.finalize().into();
        Some((dir.join(hex::encode(key)), key))
    }

    fn seal(key: &[u8; 32], compressed: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(key);
        h.update(compressed);
        h.finalize().into()
    }

    /// The compressed bytes of `bytes` from the entry at `path`, if it is
    /// sealed for `key`, or (the old format) decompresses to `bytes`.
    fn load(path: &std::path::Path, key: &[u8; 32], bytes: &[u8]) -> Option<Vec<u8>> {
        let file = std::fs::read(path).ok()?;
        if let Some(rest) = file.strip_prefix(MAGIC.as_slice()) {
            let (seal, compressed) = rest.split_at_checked(32)?;
            return (seal == Self::seal(key, compressed)).then(|| compressed.to_vec());
        }
        let mut check = Vec::with_capacity(bytes.len());
        DefaultCompressor
            .decompress(&file, &mut check, Compressor::Xz)
            .ok()?;
        if check != bytes {
            return None;
        }
        Self::store(path, key, &file);
        Some(file)
    }

    /// Writes a sealed entry by temporary name and rename, so no reader
    /// sees half of one. A cache that cannot be written is only slower.
    fn store(path: &std::path::Path, key: &[u8; 32], compressed: &[u8]) {
        let mut data = Vec::with_capacity(MAGIC.len() + 32 + compressed.len());
        data.extend_from_slice(MAGIC);
        data.extend_from_slice(&Self::seal(key, compressed));
        data.extend_from_slice(compressed);
        // Unique per writer: the prewarm's threads may store one block
        // twice at once (two files with the same piece).
        static WRITES: AtomicUsize = AtomicUsize::new(0);
        let n = WRITES.fetch_add(1, Ordering::Relaxed);
        let tmp = path.with_extension(format!("tmp{}-{n}", std::process::id()));
        if std::fs::write(&tmp, &data).is_ok() {
            let _ = std::fs::rename(&tmp, path);
        }
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
        if let Some((path, key)) = &entry {
            if let Some(cached) = Self::load(path, key, bytes) {
                return Ok(cached);
            }
        }
        let compressed = DefaultCompressor.compress(bytes, fc, block_size)?;
        if let Some((path, key)) = &entry {
            Self::store(path, key, &compressed);
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

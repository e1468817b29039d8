//! dm-verity hash trees, byte for byte as `veritysetup format` writes them
//! (cryptsetup 2.x, verity format version 1): sha256, 4096-byte data and
//! hash blocks, a 32-byte salt.
//!
//! The hash image is the 4096-byte superblock followed by the tree, so the
//! kernel's dm-verity target uses it with `hash_start_block = 1` and
//! `veritysetup verify DATA HASH ROOTHASH` accepts it as is.
//!
//! The tree (kernel `Documentation/admin-guide/device-mapper/verity.rst`):
//! level 0 holds `sha256(salt || block)` of every data block (hash type 1 puts
//! the salt first), 128 digests to a hash block, the last block zero-padded.
//! Each level above hashes the hash blocks of the one below the same way,
//! until a level fits in one block; the root hash is the hash of that block.
//! On disk the highest level comes first, right after the superblock, and
//! level 0 last. A single data block needs no tree at all: the root hash is
//! the hash of that block and the image is only the superblock.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use thiserror::Error;
use uuid::Uuid;

/// Data and hash block size.
pub const BLOCK: u64 = 4096;
const BLOCK_BYTES: usize = BLOCK as usize;
/// Size of a sha256 digest, and of the salt we use.
pub const DIGEST: usize = 32;
/// Digests in one hash block.
const PER_BLOCK: usize = BLOCK_BYTES / DIGEST;
/// The first block of the hash image is the superblock; the tree starts at
/// this block (the kernel table's `<hash_start_block>`).
pub const HASH_START_BLOCK: u64 = 1;
/// Bytes of the superblock proper; the rest of its block is zero.
const SUPERBLOCK_LEN: usize = 512;
/// Bytes read from a file at a time by each worker of [`build_from_file`].
const READ_CHUNK: usize = 256 * BLOCK_BYTES;

#[derive(Debug, Error)]
pub enum VerityError {
    #[error("data size {0} is not a multiple of {BLOCK} bytes")]
    Unaligned(u64),
    #[error("data is empty: dm-verity needs at least one {BLOCK}-byte block")]
    Empty,
    #[error("reading {len} bytes at offset {offset} of {path}: {source}")]
    Read {
        path: PathBuf,
        offset: u64,
        len: u64,
        source: std::io::Error,
    },
    #[error("opening {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("data size {0} bytes is too large for this machine")]
    TooLarge(u64),
}

/// What a build needs besides the data. Fixed values keep builds reproducible;
/// see [`params_from_identity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerityParams {
    pub salt: [u8; DIGEST],
    /// Written into the superblock; dm-verity itself ignores it.
    pub uuid: Uuid,
}

/// A computed hash tree.
#[derive(Clone, PartialEq, Eq)]
pub struct Verity {
    pub root_hash: [u8; DIGEST],
    pub salt: [u8; DIGEST],
    pub uuid: Uuid,
    pub data_blocks: u64,
    /// Superblock block + tree, ready to write at offset 0 of the hash
    /// partition. Its length is [`hash_image_len`] of the data size.
    pub hash_image: Vec<u8>,
}

impl std::fmt::Debug for Verity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verity")
            .field("root_hash", &self.root_hash_hex())
            .field("salt", &self.salt_hex())
            .field("uuid", &self.uuid)
            .field("data_blocks", &self.data_blocks)
            .field("hash_image_len", &self.hash_image.len())
            .finish()
    }
}

impl Verity {
    pub fn root_hash_hex(&self) -> String {
        hex::encode(self.root_hash)
    }

    pub fn salt_hex(&self) -> String {
        hex::encode(self.salt)
    }

    /// Where the tree starts on the hash device, in hash blocks (always 1:
    /// block 0 is the superblock).
    pub fn hash_start_block(&self) -> u64 {
        HASH_START_BLOCK
    }

    /// Blocks of the tree, without the superblock (veritysetup's "Hash blocks").
    pub fn tree_blocks(&self) -> u64 {
        self.hash_image.len() as u64 / BLOCK - HASH_START_BLOCK
    }

    /// The dm-verity target's parameters (after `<start> <len> verity`):
    /// `1 <data_dev> <hash_dev> 4096 4096 <data_blocks> 1 sha256 <root> <salt>`.
    pub fn dm_table_params(&self, data_dev: &str, hash_dev: &str) -> String {
        format!(
            "1 {data_dev} {hash_dev} {BLOCK} {BLOCK} {} {} sha256 {} {}",
            self.data_blocks,
            HASH_START_BLOCK,
            self.root_hash_hex(),
            self.salt_hex()
        )
    }
}

/// Salt and superblock UUID derived from the image identity and a name (e.g.
/// the slot), so the same build gives the same hash tree.
pub fn params_from_identity(identity: &str, name: &str) -> VerityParams {
    let derive = |what: &[u8]| -> [u8; DIGEST] {
        let mut h = Sha256::new();
        h.update(b"slipway-verity-");
        h.update(what);
        h.update(b"\0");
        h.update(identity.as_bytes());
        h.update(b"\0");
        h.update(name.as_bytes());
        h.finalize().into()
    };
    let salt = derive(b"salt");
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&derive(b"uuid")[..16]);
    VerityParams {
        salt,
        uuid: uuid::Builder::from_random_bytes(uuid).into_uuid(),
    }
}

/// Length of the hash image (superblock + tree) for `data_len` bytes of
/// data, to size the hash partition before building.
pub fn hash_image_len(data_len: u64) -> Result<u64, VerityError> {
    let blocks = data_blocks(data_len)?;
    let tree: u64 = level_sizes(blocks).iter().sum();
    (HASH_START_BLOCK + tree)
        .checked_mul(BLOCK)
        .ok_or(VerityError::TooLarge(data_len))
}

/// The hash tree of `data`, whose length must be a non-zero multiple of
/// [`BLOCK`] (the caller pads).
pub fn build(data: &[u8], params: &VerityParams) -> Result<Verity, VerityError> {
    build_from(Source::Mem(data), data.len() as u64, params)
}

/// The hash tree of `len` bytes of the file at `path` starting at byte
/// `offset` (e.g. a root partition inside a disk image), read in chunks
/// rather than into memory. `len` must be a non-zero multiple of [`BLOCK`].
pub fn build_from_file(
    path: &Path,
    offset: u64,
    len: u64,
    params: &VerityParams,
) -> Result<Verity, VerityError> {
    let file = File::open(path).map_err(|source| VerityError::Open {
        path: path.to_owned(),
        source,
    })?;
    build_from(
        Source::File {
            file: &file,
            path,
            offset,
        },
        len,
        params,
    )
}

#[derive(Clone, Copy)]
enum Source<'a> {
    Mem(&'a [u8]),
    File {
        file: &'a File,
        path: &'a Path,
        offset: u64,
    },
}

fn data_blocks(len: u64) -> Result<u64, VerityError> {
    if !len.is_multiple_of(BLOCK) {
        return Err(VerityError::Unaligned(len));
    }
    if len == 0 {
        return Err(VerityError::Empty);
    }
    Ok(len / BLOCK)
}

/// Blocks of each tree level, level 0 first. Empty for one data block.
/// Same as cryptsetup's `hash_levels`: level i has ceil(n / 128^(i+1)) blocks
/// and the tree grows until a level is a single block.
fn level_sizes(data_blocks: u64) -> Vec<u64> {
    let mut sizes = Vec::new();
    let mut n = data_blocks;
    while n > 1 {
        n = n.div_ceil(PER_BLOCK as u64);
        sizes.push(n);
    }
    sizes
}

fn build_from(source: Source<'_>, len: u64, params: &VerityParams) -> Result<Verity, VerityError> {
    let n = data_blocks(len)?;
    let sizes = level_sizes(n);
    let total_blocks = HASH_START_BLOCK + sizes.iter().sum::<u64>();
    let image_len = total_blocks
        .checked_mul(BLOCK)
        .and_then(|l| usize::try_from(l).ok())
        .ok_or(VerityError::TooLarge(len))?;
    // Level 0's digests must fit in memory as well; `usize` holds n * 32.
    usize::try_from(len).map_err(|_| VerityError::TooLarge(len))?;

    let mut image = vec![0u8; image_len];
    write_superblock(&mut image[..SUPERBLOCK_LEN], n, params);

    // Byte offset of each level in the image: the highest level first.
    let mut offsets = vec![0usize; sizes.len()];
    let mut pos = HASH_START_BLOCK as usize * BLOCK_BYTES;
    for (i, size) in sizes.iter().enumerate().rev() {
        offsets[i] = pos;
        pos += *size as usize * BLOCK_BYTES;
    }

    let prefix = Sha256::new_with_prefix(params.salt);
    let mut root_hash = [0u8; DIGEST];
    if sizes.is_empty() {
        // One data block: its hash is the root.
        hash_level0(source, n, &prefix, &mut root_hash)?;
    } else {
        let level0 = &mut image[offsets[0]..offsets[0] + sizes[0] as usize * BLOCK_BYTES];
        hash_level0(source, n, &prefix, level0)?;
        for i in 1..sizes.len() {
            // Level i sits right before level i-1.
            let (head, tail) = image.split_at_mut(offsets[i - 1]);
            let below = &tail[..sizes[i - 1] as usize * BLOCK_BYTES];
            hash_blocks(&prefix, below, &mut head[offsets[i]..]);
        }
        let top = offsets[sizes.len() - 1];
        hash_blocks(&prefix, &image[top..top + BLOCK_BYTES], &mut root_hash);
    }

    Ok(Verity {
        root_hash,
        salt: params.salt,
        uuid: params.uuid,
        data_blocks: n,
        hash_image: image,
    })
}

/// The on-disk superblock (`struct verity_sb` of cryptsetup), little-endian.
fn write_superblock(sb: &mut [u8], data_blocks: u64, params: &VerityParams) {
    let mut put = |at: usize, bytes: &[u8]| sb[at..at + bytes.len()].copy_from_slice(bytes);
    put(0, b"verity\0\0"); // signature
    put(8, &1u32.to_le_bytes()); // version
    put(12, &1u32.to_le_bytes()); // hash_type: salt first
    put(16, params.uuid.as_bytes()); // RFC byte order
    put(32, b"sha256"); // algorithm[32], NUL-padded
    put(64, &(BLOCK as u32).to_le_bytes()); // data_block_size
    put(68, &(BLOCK as u32).to_le_bytes()); // hash_block_size
    put(72, &data_blocks.to_le_bytes());
    put(80, &(DIGEST as u16).to_le_bytes()); // salt_size; pad[6] follows
    put(88, &params.salt); // salt[256]; then pad[168] up to 512
}

/// `sha256(salt || block)` of each block of `blocks` into consecutive
/// digests of `out`. `prefix` has the salt already absorbed; cloning it is
/// a copy of the state, with no allocation.
fn hash_blocks(prefix: &Sha256, blocks: &[u8], out: &mut [u8]) {
    for (block, digest) in blocks
        .chunks_exact(BLOCK_BYTES)
        .zip(out.chunks_exact_mut(DIGEST))
    {
        let mut h = prefix.clone();
        h.update(block);
        digest.copy_from_slice(&h.finalize());
    }
}

/// Level 0: the digests of all `n` data blocks into `out` (at least n * 32
/// bytes), on as many threads as there are cores. Each thread takes a run of
/// whole hash blocks (multiples of 128 data blocks).
fn hash_level0(
    source: Source<'_>,
    n: u64,
    prefix: &Sha256,
    out: &mut [u8],
) -> Result<(), VerityError> {
    let n = n as usize;
    let groups = n.div_ceil(PER_BLOCK);
    let threads = std::thread::available_parallelism()
        .map_or(2, |p| p.get())
        .clamp(1, 8)
        .min(groups);
    let per_thread = groups.div_ceil(threads) * PER_BLOCK;
    let out = &mut out[..n * DIGEST];
    if threads <= 1 {
        return hash_range(source, 0, n, prefix, out);
    }
    std::thread::scope(|s| {
        let workers: Vec<_> = out
            .chunks_mut(per_thread * DIGEST)
            .enumerate()
            .map(|(t, out)| {
                let first = t * per_thread;
                let count = out.len() / DIGEST;
                s.spawn(move || hash_range(source, first, count, prefix, out))
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
    })
}

/// Digests of data blocks `first .. first + count` into `out`.
fn hash_range(
    source: Source<'_>,
    first: usize,
    count: usize,
    prefix: &Sha256,
    out: &mut [u8],
) -> Result<(), VerityError> {
    match source {
        Source::Mem(data) => {
            let blocks = &data[first * BLOCK_BYTES..(first + count) * BLOCK_BYTES];
            hash_blocks(prefix, blocks, out);
        }
        Source::File { file, path, offset } => {
            let mut buf = vec![0u8; READ_CHUNK.min(count * BLOCK_BYTES)];
            let mut at = (first * BLOCK_BYTES) as u64;
            for out in out.chunks_mut(READ_CHUNK / BLOCK_BYTES * DIGEST) {
                let len = out.len() / DIGEST * BLOCK_BYTES;
                let buf = &mut buf[..len];
                file.read_exact_at(buf, offset + at)
                    .map_err(|source| VerityError::Read {
                        path: path.to_owned(),
                        offset: offset + at,
                        len: len as u64,
                        source,
                    })?;
                hash_blocks(prefix, buf, out);
                at += len as u64;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;

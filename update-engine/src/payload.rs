//! The payload container: a fixed header, the manifest, its signatures,
//! then the data (README.md has the diagram).
//!
//! Reading is streaming: [`read_header`] takes only the header, manifest
//! and signatures (bounded sizes), and [`ChunkReader`] hands out the data
//! one verified chunk at a time, so nothing unverified ever reaches a
//! writer and memory does not grow with the payload.

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::keys::{SecretKey, Signature, SignatureError, TrustedKeys};
use crate::manifest::{Artifact, Manifest, ManifestError, VerityInfo, FORMAT, PARTS};

pub const MAGIC: &[u8; 16] = b"SLIPWAY-PAYLOAD\0";
/// The signature context of a manifest (see `keys`).
pub const MANIFEST_CONTEXT: &[u8] = b"slipway payload manifest v1";
/// Magic, format, manifest length, signatures length, reserved.
pub const HEADER_LEN: usize = 32;
pub const MAX_MANIFEST: u32 = 8 << 20;
pub const MAX_SIGNATURES: u32 = 64 << 10;

#[derive(Debug, Error)]
pub enum PayloadError {
    #[error("not a Slipway payload (bad magic bytes)")]
    BadMagic,
    #[error("payload container format {0} is not supported (this engine reads {FORMAT})")]
    Format(u32),
    #[error("payload header: {0}")]
    Header(String),
    #[error("payload truncated: {0}")]
    Truncated(String),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("payload manifest signature: {0}")]
    Signature(#[from] SignatureError),
    #[error(
        "chunk {index} (data bytes {start}..{end}) does not match the signed manifest: \
         the payload is corrupt or was tampered with"
    )]
    ChunkMismatch { index: usize, start: u64, end: u64 },
    #[error("reading the payload: {0}")]
    Io(#[from] io::Error),
}

/// Header, manifest and signatures as read; the data follows at
/// `data_offset`.
#[derive(Debug, Clone)]
pub struct Header {
    pub manifest: Manifest,
    pub manifest_bytes: Vec<u8>,
    pub signatures: Vec<Signature>,
    pub data_offset: u64,
}

impl Header {
    /// Checks the manifest's signatures; returns the key ID that verified.
    pub fn verify(&self, keys: &TrustedKeys) -> Result<String, PayloadError> {
        Ok(keys.verify(MANIFEST_CONTEXT, &self.manifest_bytes, &self.signatures)?)
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8], what: &str) -> Result<(), PayloadError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => PayloadError::Truncated(format!("ends inside the {what}")),
        _ => PayloadError::Io(e),
    })
}

/// Reads and parses the header, manifest and signatures (not verified yet:
/// call [`Header::verify`]).
pub fn read_header(r: &mut impl Read) -> Result<Header, PayloadError> {
    let mut head = [0u8; HEADER_LEN];
    read_full(r, &mut head, "header")?;
    let (manifest_len, sigs_len) = lengths(&head)?;
    let mut manifest_bytes = vec![0u8; manifest_len as usize];
    read_full(r, &mut manifest_bytes, "manifest")?;
    let mut sig_bytes = vec![0u8; sigs_len as usize];
    read_full(r, &mut sig_bytes, "signatures")?;
    let signatures: Vec<Signature> = serde_json::from_slice(&sig_bytes)
        .map_err(|e| PayloadError::Header(format!("signatures: {e}")))?;
    let manifest = Manifest::parse(&manifest_bytes)?;
    Ok(Header {
        manifest,
        manifest_bytes,
        signatures,
        data_offset: (HEADER_LEN + manifest_len as usize + sigs_len as usize) as u64,
    })
}

/// How many bytes follow the fixed header before the data (manifest and
/// signatures), from the fixed header alone: what a reader of byte ranges
/// asks for next.
pub fn header_rest_len(head: &[u8; HEADER_LEN]) -> Result<u64, PayloadError> {
    let (m, s) = lengths(head)?;
    Ok(u64::from(m) + u64::from(s))
}

/// The fixed header checked: the manifest's and the signatures' lengths.
fn lengths(head: &[u8; HEADER_LEN]) -> Result<(u32, u32), PayloadError> {
    if &head[..16] != MAGIC {
        return Err(PayloadError::BadMagic);
    }
    let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    let (format, manifest_len, sigs_len, reserved) = (word(16), word(20), word(24), word(28));
    if format != FORMAT {
        return Err(PayloadError::Format(format));
    }
    if manifest_len == 0 || manifest_len > MAX_MANIFEST {
        return Err(PayloadError::Header(format!(
            "manifest length {manifest_len} is not in 1..={MAX_MANIFEST}"
        )));
    }
    if sigs_len > MAX_SIGNATURES {
        return Err(PayloadError::Header(format!(
            "signatures length {sigs_len} is over {MAX_SIGNATURES}"
        )));
    }
    if reserved != 0 {
        return Err(PayloadError::Header("reserved field is not 0".into()));
    }
    Ok((manifest_len, sigs_len))
}

/// What the builder knows about a release besides its bytes.
#[derive(Debug, Clone)]
pub struct Release {
    pub os_name: String,
    pub version: String,
    pub board: String,
    pub build_id: String,
    pub cmdline: String,
    pub verity: VerityInfo,
    pub chunk_size: u32,
}

/// The manifest of `parts` (root, verity, kernel, initrd).
pub fn manifest_for(release: &Release, parts: [&[u8]; 4]) -> Result<Manifest, ManifestError> {
    let artifacts = PARTS
        .iter()
        .zip(parts)
        .map(|(&part, bytes)| Artifact {
            part,
            size: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(bytes)),
        })
        .collect();
    // Chunks run across artifact boundaries, over the bytes as they follow
    // each other in the payload.
    let chunk = release.chunk_size as usize;
    let mut chunks = Vec::new();
    let mut hasher = Sha256::new();
    let mut filled = 0;
    for bytes in parts {
        let mut rest = bytes;
        while !rest.is_empty() {
            let take = (chunk - filled).min(rest.len());
            hasher.update(&rest[..take]);
            filled += take;
            rest = &rest[take..];
            if filled == chunk {
                chunks.push(hex::encode(hasher.finalize_reset()));
                filled = 0;
            }
        }
    }
    if filled > 0 {
        chunks.push(hex::encode(hasher.finalize()));
    }
    let m = Manifest {
        format: FORMAT,
        os_name: release.os_name.clone(),
        version: release.version.clone(),
        board: release.board.clone(),
        build_id: release.build_id.clone(),
        cmdline: release.cmdline.clone(),
        verity: release.verity.clone(),
        chunk_size: release.chunk_size,
        artifacts,
        chunks,
    };
    m.check()?;
    Ok(m)
}

/// Writes a signed payload. Returns the bytes written.
pub fn write(
    out: &mut impl Write,
    manifest: &Manifest,
    parts: [&[u8]; 4],
    keys: &[&SecretKey],
) -> io::Result<u64> {
    let manifest_bytes = manifest.to_json();
    let sigs: Vec<Signature> = keys
        .iter()
        .map(|k| k.sign(MANIFEST_CONTEXT, &manifest_bytes))
        .collect();
    let sig_bytes = serde_json::to_vec(&sigs).map_err(io::Error::other)?;
    let mut head = Vec::with_capacity(HEADER_LEN);
    head.extend_from_slice(MAGIC);
    for w in [
        FORMAT,
        manifest_bytes.len() as u32,
        sig_bytes.len() as u32,
        0,
    ] {
        head.extend_from_slice(&w.to_le_bytes());
    }
    out.write_all(&head)?;
    out.write_all(&manifest_bytes)?;
    out.write_all(&sig_bytes)?;
    let mut n = (head.len() + manifest_bytes.len() + sig_bytes.len()) as u64;
    for p in parts {
        out.write_all(p)?;
        n += p.len() as u64;
    }
    Ok(n)
}

/// Hands out the payload's data one chunk at a time, each checked against
/// the manifest before the caller sees it.
pub struct ChunkReader<'m, R> {
    source: R,
    manifest: &'m Manifest,
    next: usize,
}

impl<'m, R: Read> ChunkReader<'m, R> {
    /// `source` must be positioned at data chunk `first`.
    pub fn new(source: R, manifest: &'m Manifest, first: usize) -> Self {
        ChunkReader {
            source,
            manifest,
            next: first,
        }
    }

    /// Index of the chunk the next call returns.
    pub fn position(&self) -> usize {
        self.next
    }

    /// Fills `buf` with the next chunk and returns its index and data
    /// range, or `None` after the last one.
    pub fn next_into(
        &mut self,
        buf: &mut Vec<u8>,
    ) -> Result<Option<(usize, u64, u64)>, PayloadError> {
        let i = self.next;
        if i >= self.manifest.chunks.len() {
            return Ok(None);
        }
        let (start, end) = self.manifest.chunk_range(i);
        buf.resize((end - start) as usize, 0);
        read_chunk(&mut self.source, self.manifest, i, buf)?;
        check_chunk(self.manifest, i, buf)?;
        self.next += 1;
        Ok(Some((i, start, end)))
    }
}

/// Reads the bytes of data chunk `i` into `buf` (exactly its length), NOT
/// checked: for a caller that hashes on other threads ([`check_chunk`]),
/// which must check every chunk before anything else sees it.
pub fn read_chunk(
    source: &mut impl Read,
    manifest: &Manifest,
    i: usize,
    buf: &mut [u8],
) -> Result<(), PayloadError> {
    let (start, end) = manifest.chunk_range(i);
    read_full(
        source,
        buf,
        &format!("data (chunk {i}, bytes {start}..{end})"),
    )
}

/// Checks data chunk `i` against the manifest's sha256 of it.
pub fn check_chunk(manifest: &Manifest, i: usize, data: &[u8]) -> Result<(), PayloadError> {
    let (start, end) = manifest.chunk_range(i);
    let ok = data.len() as u64 == end - start
        && manifest
            .chunks
            .get(i)
            .is_some_and(|want| hex::encode(Sha256::digest(data)) == *want);
    if ok {
        Ok(())
    } else {
        Err(PayloadError::ChunkMismatch {
            index: i,
            start,
            end,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::manifest::MIN_CHUNK;

    pub(crate) fn release(version: &str, root: &[u8]) -> Release {
        Release {
            os_name: "Slipway".into(),
            version: version.into(),
            board: "qemu-x86_64".into(),
            build_id: "b1".into(),
            cmdline: "console=ttyS0".into(),
            verity: VerityInfo {
                root_hash: "11".repeat(32),
                salt: "22".repeat(32),
                data_blocks: root.len() as u64 / 4096,
            },
            chunk_size: MIN_CHUNK,
        }
    }

    /// Parts with chunk boundaries falling inside artifacts.
    pub(crate) fn parts() -> [Vec<u8>; 4] {
        let fill = |n: usize, seed: u8| (0..n).map(|i| (i as u8).wrapping_mul(seed)).collect();
        [
            fill(40 * 4096, 7),
            fill(3 * 4096 + 17, 11),
            fill(70_001, 13),
            fill(12_345, 17),
        ]
    }

    pub(crate) fn build(version: &str, key: &SecretKey) -> (Manifest, Vec<u8>) {
        let p = parts();
        let refs = [&p[0][..], &p[1][..], &p[2][..], &p[3][..]];
        let m = manifest_for(&release(version, &p[0]), refs).unwrap();
        let mut out = Vec::new();
        write(&mut out, &m, refs, &[key]).unwrap();
        (m, out)
    }

    #[test]
    fn written_payload_reads_back_chunk_by_chunk() {
        let key = SecretKey::from_seed(&[5; 32]);
        let (m, bytes) = build("2.0", &key);
        let mut r = &bytes[..];
        let h = read_header(&mut r).unwrap();
        assert_eq!(h.manifest, m);
        h.verify(&TrustedKeys::new(vec![key.public()])).unwrap();
        let mut chunks = ChunkReader::new(r, &h.manifest, 0);
        let mut buf = Vec::new();
        let mut data = Vec::new();
        while let Some((_, s, e)) = chunks.next_into(&mut buf).unwrap() {
            assert_eq!(e - s, buf.len() as u64);
            data.extend_from_slice(&buf);
        }
        assert_eq!(data, parts().concat());
        assert_eq!(m.chunks.len(), data.len().div_ceil(MIN_CHUNK as usize));
    }

    #[test]
    fn any_flipped_data_byte_is_caught_in_its_chunk() {
        let key = SecretKey::from_seed(&[5; 32]);
        let (m, bytes) = build("2.0", &key);
        let data_at = bytes.len() - m.data_size().unwrap() as usize;
        for chunk in 0..m.chunks.len() {
            let (s, e) = m.chunk_range(chunk);
            let mut bad = bytes.clone();
            bad[data_at + ((s + e) / 2) as usize] ^= 0x40;
            let mut r = &bad[..];
            let h = read_header(&mut r).unwrap();
            let mut chunks = ChunkReader::new(r, &h.manifest, 0);
            let mut buf = Vec::new();
            let err = loop {
                match chunks.next_into(&mut buf) {
                    Ok(Some(_)) => continue,
                    Ok(None) => panic!("chunk {chunk}: flip not caught"),
                    Err(e) => break e,
                }
            };
            assert!(
                matches!(err, PayloadError::ChunkMismatch { index, .. } if index == chunk),
                "{err}"
            );
        }
    }

    #[test]
    fn truncation_and_header_damage_are_named() {
        let key = SecretKey::from_seed(&[5; 32]);
        let (m, bytes) = build("2.0", &key);
        let cut = &bytes[..bytes.len() - 10];
        let mut r = cut;
        let h = read_header(&mut r).unwrap();
        let mut chunks = ChunkReader::new(r, &m, 0);
        let mut buf = Vec::new();
        let err = loop {
            match chunks.next_into(&mut buf) {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("truncation not caught"),
                Err(e) => break e,
            }
        };
        assert!(
            err.to_string()
                .starts_with("payload truncated: ends inside the data"),
            "{err}"
        );
        drop(h);
        assert!(matches!(
            read_header(&mut &bytes[..20]),
            Err(PayloadError::Truncated(_))
        ));
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert!(matches!(
            read_header(&mut &bad[..]),
            Err(PayloadError::BadMagic)
        ));
        let mut bad = bytes.clone();
        bad[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            read_header(&mut &bad[..]),
            Err(PayloadError::Header(_))
        ));
        // A flipped manifest byte: either unparsable or a bad signature.
        let mut bad = bytes.clone();
        let at = HEADER_LEN + 40;
        bad[at] = if bad[at] == b'1' { b'2' } else { b'1' };
        let outcome = read_header(&mut &bad[..])
            .and_then(|h| h.verify(&TrustedKeys::new(vec![key.public()])));
        assert!(outcome.is_err());
    }
}

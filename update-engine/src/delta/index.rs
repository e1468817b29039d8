//! The delta index: a payload's data cut into content-defined pieces, each
//! with its length and sha256, signed like the manifest. `cargo xtask
//! publish` writes it next to the payload as `<payload>.index`; a machine
//! reads it to learn which pieces it already has (found by hash in its
//! active slot) and which it must fetch with a byte range.
//!
//! ```json
//! {"index": "<the JSON text below>", "signatures": [{"key_id", "signature"}]}
//!
//! {"format": 1, "manifest_sha256": "<hex>",
//!  "chunking": {"min": 16384, "avg": 65536, "max": 262144},
//!  "parts": [{"part": "root", "size": N, "pieces": [[LEN, "<sha256 hex>"], …]},
//!            … verity, kernel, initrd, in the manifest's order]}
//! ```
//!
//! The signature covers `"slipway delta index v1" NUL index-text`, and the
//! text names the sha256 of the manifest bytes it belongs to, so an index
//! can never be paired with another release. Nothing written trusts the
//! index alone: every chunk is still checked against the manifest before it
//! is written (see `reader.rs`).
//!
//! Each part is chunked on its own (FastCDC 2020, normalisation level 1,
//! seed 0, as the `fastcdc` crate implements it), so the machine can cut
//! its own copy of each part the same way without knowing the rest.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::keys::{self, SealError, SecretKey, SignatureError, TrustedKeys};
use crate::manifest::{Manifest, Part, PARTS};
use crate::payload::{self, PayloadError};

pub const FORMAT: u32 = 1;
/// Signing domain of the index text.
pub const CONTEXT: &[u8] = b"slipway delta index v1";
/// The largest index a machine reads (a 64 GiB payload in 16 KiB pieces
/// would not fit; a real one in 64 KiB pieces is about 1 KiB per MiB).
pub const MAX_INDEX: usize = 16 << 20;
/// Bounds on the chunking parameters a machine accepts: pieces of at most
/// 4 MiB keep the engine's memory small, and the crate requires even sizes
/// within its own limits.
const MIN_MIN: u32 = 1024;
const MIN_MAX: u32 = 1 << 20;
const MAX_MAX: u32 = 4 << 20;

/// FastCDC's sizes, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chunking {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

/// What publishing uses unless told otherwise: measured on real releases
/// (see the update engine's README, "Delta updates").
pub const DEFAULT_CHUNKING: Chunking = Chunking {
    min: 16 << 10,
    avg: 64 << 10,
    max: 256 << 10,
};

impl Chunking {
    fn check(&self) -> Result<(), IndexError> {
        let Chunking { min, avg, max } = *self;
        let even = min % 2 == 0 && avg % 2 == 0 && max % 2 == 0;
        let ordered = (MIN_MIN..=MIN_MAX).contains(&min) && min <= avg && avg <= max;
        if !(even && ordered && max <= MAX_MAX) {
            return Err(IndexError::Field {
                field: "chunking".into(),
                why: format!(
                    "min {min}, avg {avg}, max {max}: expected even sizes with \
                     {MIN_MIN} <= min <= {MIN_MAX}, min <= avg <= max <= {MAX_MAX}"
                ),
            });
        }
        Ok(())
    }

    /// The pieces of `source`, in order, as `(length, sha256)`.
    pub fn cut(&self, source: impl Read) -> io::Result<Vec<(u32, [u8; 32])>> {
        let mut out = Vec::new();
        self.each(source, |_, len, hash| out.push((len, hash)))?;
        Ok(out)
    }

    /// Calls `f(offset, length, sha256)` for every piece of `source`.
    pub fn each(&self, source: impl Read, mut f: impl FnMut(u64, u32, [u8; 32])) -> io::Result<()> {
        let cdc = fastcdc::v2020::StreamCDC::new(
            source,
            self.min as usize,
            self.avg as usize,
            self.max as usize,
        );
        for piece in cdc {
            let piece = piece.map_err(io::Error::from)?;
            // A piece is at most `max` (4 MiB) long.
            f(
                piece.offset,
                piece.length as u32,
                Sha256::digest(&piece.data).into(),
            );
        }
        Ok(())
    }
}

/// One part's pieces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartPieces {
    pub part: Part,
    pub size: u64,
    /// `[length, sha256 hex]`, in order, covering the part exactly.
    pub pieces: Vec<(u32, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Index {
    pub format: u32,
    pub manifest_sha256: String,
    pub chunking: Chunking,
    pub parts: Vec<PartPieces>,
}

/// One piece, placed in the payload's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// Offset in the data (the four parts back to back).
    pub offset: u64,
    pub len: u32,
    pub sha256: [u8; 32],
}

impl Piece {
    pub fn end(&self) -> u64 {
        self.offset + u64::from(self.len)
    }
}

#[derive(Debug, Error)]
pub enum IndexError {
    #[error("delta index is not valid JSON of the expected shape: {0}")]
    Json(String),
    #[error("delta index field {field}: {why}")]
    Field { field: String, why: String },
    #[error("delta index signature: {0}")]
    Signature(#[from] SignatureError),
    #[error("the delta index belongs to another release (manifest sha256 {found}, this payload's is {want})")]
    OtherRelease { found: String, want: String },
    #[error(transparent)]
    Payload(#[from] PayloadError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
}

fn field(field: impl Into<String>, why: impl Into<String>) -> IndexError {
    IndexError::Field {
        field: field.into(),
        why: why.into(),
    }
}

impl Index {
    /// Cuts the data of the payload at `path` into pieces.
    pub fn build(path: &Path, chunking: Chunking) -> Result<Index, IndexError> {
        chunking.check()?;
        let io_err = |source| IndexError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut file = File::open(path).map_err(io_err)?;
        let header = payload::read_header(&mut io::BufReader::new(&mut file))?;
        let m = &header.manifest;
        let mut parts = Vec::new();
        for (part, start, size) in m.offsets() {
            file.seek(SeekFrom::Start(header.data_offset + start))
                .map_err(io_err)?;
            let pieces = chunking
                .cut(io::BufReader::with_capacity(1 << 20, (&file).take(size)))
                .map_err(io_err)?;
            let covered: u64 = pieces.iter().map(|(l, _)| u64::from(*l)).sum();
            if covered != size {
                return Err(io_err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the payload ends inside its {}", part.name()),
                )));
            }
            parts.push(PartPieces {
                part,
                size,
                pieces: pieces
                    .into_iter()
                    .map(|(l, h)| (l, hex::encode(h)))
                    .collect(),
            });
        }
        Ok(Index {
            format: FORMAT,
            manifest_sha256: hex::encode(Sha256::digest(&header.manifest_bytes)),
            chunking,
            parts,
        })
    }

    /// The signed file, as `publish` writes it.
    pub fn sign(&self, keys: &[&SecretKey]) -> Vec<u8> {
        // Serialising our own structs cannot fail.
        let text = serde_json::to_string(self).unwrap_or_default();
        keys::seal("index", CONTEXT, text, keys, false)
    }

    /// Parses a signed index, checks its signature, and that it describes
    /// exactly the release of `manifest` (whose bytes hash to
    /// `manifest_sha256`).
    pub fn verify(
        bytes: &[u8],
        keys: &TrustedKeys,
        manifest: &Manifest,
        manifest_sha256: &str,
    ) -> Result<Index, IndexError> {
        let text = keys::unseal("index", CONTEXT, bytes, keys).map_err(|e| match e {
            SealError::Json(e) => IndexError::Json(e),
            SealError::Signature(e) => IndexError::Signature(e),
        })?;
        let index: Index =
            serde_json::from_str(&text).map_err(|e| IndexError::Json(e.to_string()))?;
        index.check(manifest, manifest_sha256)?;
        Ok(index)
    }

    fn check(&self, m: &Manifest, manifest_sha256: &str) -> Result<(), IndexError> {
        if self.format != FORMAT {
            return Err(field(
                "format",
                format!("{} (this engine reads {FORMAT})", self.format),
            ));
        }
        if self.manifest_sha256 != manifest_sha256 {
            return Err(IndexError::OtherRelease {
                found: self.manifest_sha256.clone(),
                want: manifest_sha256.to_string(),
            });
        }
        self.chunking.check()?;
        if self.parts.len() != PARTS.len() {
            return Err(field(
                "parts",
                format!("{} parts, expected 4", self.parts.len()),
            ));
        }
        for (i, (p, (part, _, size))) in self.parts.iter().zip(m.offsets()).enumerate() {
            let name = format!("parts[{i}]");
            if p.part != part || p.size != size {
                return Err(field(
                    name,
                    format!(
                        "{} of {} bytes, but the manifest's part {i} is {} of {size}",
                        p.part.name(),
                        p.size,
                        part.name()
                    ),
                ));
            }
            let mut covered = 0u64;
            for (j, (len, hash)) in p.pieces.iter().enumerate() {
                let ok_hex = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
                if *len == 0 || *len > self.chunking.max || !ok_hex {
                    return Err(field(
                        format!("{name}.pieces[{j}]"),
                        format!(
                            "[{len}, {hash:?}]: expected 1..={} bytes and 64 hex digits",
                            self.chunking.max
                        ),
                    ));
                }
                covered += u64::from(*len);
            }
            if covered != size {
                return Err(field(
                    format!("{name}.pieces"),
                    format!("cover {covered} bytes, the part has {size}"),
                ));
            }
        }
        Ok(())
    }

    /// Every piece with its place in the data, in order.
    pub fn pieces(&self) -> Vec<Piece> {
        let mut out = Vec::new();
        let mut offset = 0u64;
        for p in &self.parts {
            for (len, hash) in &p.pieces {
                let mut sha256 = [0u8; 32];
                // `check` made sure of 64 hex digits.
                let _ = hex::decode_to_slice(hash, &mut sha256);
                out.push(Piece {
                    offset,
                    len: *len,
                    sha256,
                });
                offset += u64::from(*len);
            }
        }
        out
    }
}

/// The index's URL (or path) for a payload's: the same with `.index`
/// appended to the path (before any query).
pub fn url_for(payload: &str) -> String {
    match payload.split_once('?') {
        Some((path, query)) => format!("{path}.index?{query}"),
        None => format!("{payload}.index"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SecretKey;

    fn key() -> SecretKey {
        SecretKey::from_seed(&[42; 32])
    }

    fn payload_file(dir: &Path) -> (std::path::PathBuf, Manifest, String) {
        let (m, bytes) = payload::tests::build("1.0", &key());
        let path = dir.join("p.payload");
        std::fs::write(&path, &bytes).unwrap();
        let header = payload::read_header(&mut &bytes[..]).unwrap();
        let sha = hex::encode(Sha256::digest(&header.manifest_bytes));
        (path, m, sha)
    }

    fn small() -> Chunking {
        Chunking {
            min: 1024,
            avg: 4096,
            max: 16384,
        }
    }

    #[test]
    fn build_sign_verify_round_trip_covers_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let (path, m, sha) = payload_file(dir.path());
        let index = Index::build(&path, small()).unwrap();
        let signed = index.sign(&[&key()]);
        let keys = TrustedKeys::new(vec![key().public()]);
        let back = Index::verify(&signed, &keys, &m, &sha).unwrap();
        assert_eq!(back, index);
        let pieces = back.pieces();
        assert_eq!(pieces.last().unwrap().end(), m.data_size().unwrap());
        // Many pieces, none above max, each hash the bytes it covers.
        assert!(pieces.len() > 10, "{}", pieces.len());
        let bytes = std::fs::read(&path).unwrap();
        let data = &bytes[bytes.len() - m.data_size().unwrap() as usize..];
        for p in &pieces {
            assert!(p.len <= 16384);
            let got: [u8; 32] = Sha256::digest(&data[p.offset as usize..p.end() as usize]).into();
            assert_eq!(got, p.sha256);
        }
        // Pieces never straddle two parts.
        let starts: Vec<u64> = m.offsets().iter().map(|(_, s, _)| *s).collect();
        for s in starts {
            assert!(
                pieces.iter().any(|p| p.offset == s),
                "no piece starts at {s}"
            );
        }
    }

    #[test]
    fn bad_indexes_are_refused_with_their_field() {
        let dir = tempfile::tempdir().unwrap();
        let (path, m, sha) = payload_file(dir.path());
        let index = Index::build(&path, small()).unwrap();
        let keys = TrustedKeys::new(vec![key().public()]);
        let refused = |i: &Index| {
            Index::verify(&i.sign(&[&key()]), &keys, &m, &sha)
                .unwrap_err()
                .to_string()
        };

        let mut other = index.clone();
        other.manifest_sha256 = "00".repeat(32);
        assert!(refused(&other).contains("another release"));
        let mut short = index.clone();
        short.parts[1].pieces.pop();
        assert!(
            refused(&short).contains("parts[1].pieces"),
            "{}",
            refused(&short)
        );
        let mut odd = index.clone();
        odd.chunking.min = 1023;
        assert!(refused(&odd).contains("chunking"));
        let mut big = index.clone();
        big.parts[0].pieces[0].0 = 20_000;
        assert!(refused(&big).contains("parts[0].pieces[0]"));
        let mut swapped = index.clone();
        swapped.parts.swap(2, 3);
        assert!(refused(&swapped).contains("parts[2]"));

        // Signed by another key, or altered after signing.
        let stranger = SecretKey::from_seed(&[7; 32]);
        let err = Index::verify(&index.sign(&[&stranger]), &keys, &m, &sha).unwrap_err();
        assert!(err.to_string().contains("unknown key"), "{err}");
        let text = String::from_utf8(index.sign(&[&key()])).unwrap();
        let altered = text.replacen("\\\"format\\\":1", "\\\"format\\\":1 ", 1);
        assert_ne!(altered, text);
        let err = Index::verify(altered.as_bytes(), &keys, &m, &sha).unwrap_err();
        assert!(err.to_string().contains("BAD SIGNATURE"), "{err}");
    }

    #[test]
    fn content_defined_pieces_survive_an_insertion() {
        // The property deltas rest on: bytes inserted early shift the rest,
        // yet the pieces after the change are found again.
        let mut rng = 1u64;
        let data: Vec<u8> = (0..400_000)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng as u8
            })
            .collect();
        let mut changed = data[..50_000].to_vec();
        changed.extend_from_slice(b"a few new bytes");
        changed.extend_from_slice(&data[50_000..]);
        let old: std::collections::HashSet<_> =
            small().cut(&data[..]).unwrap().into_iter().collect();
        let new = small().cut(&changed[..]).unwrap();
        let missing: u64 = new
            .iter()
            .filter(|p| !old.contains(p))
            .map(|(l, _)| u64::from(*l))
            .sum();
        assert!(
            missing < 40_000,
            "{missing} bytes to fetch of {}",
            changed.len()
        );
    }

    #[test]
    fn index_url_sits_next_to_the_payload() {
        assert_eq!(
            url_for("http://h/p/1.payload"),
            "http://h/p/1.payload.index"
        );
        assert_eq!(
            url_for("http://h/p/1.payload?t=x"),
            "http://h/p/1.payload.index?t=x"
        );
        assert_eq!(url_for("/srv/1.payload"), "/srv/1.payload.index");
    }
}

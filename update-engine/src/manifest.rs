//! The payload manifest: what a release holds and the hash of every chunk
//! of its data, signed as a whole. JSON, because a person debugging a
//! release reads it with `jq`; parsed strictly (unknown fields are errors)
//! and checked for consistency before anyone trusts a number in it.

use serde::{Deserialize, Serialize};
use slipway_boot_contract::cmdline;
use thiserror::Error;

/// The only manifest format this engine reads.
pub const FORMAT: u32 = 1;
/// Chunk sizes we accept: powers of two from 64 KiB to 16 MiB. The writer
/// holds a few chunks in memory, so the upper bound bounds its memory.
pub const MIN_CHUNK: u32 = 64 << 10;
pub const MAX_CHUNK: u32 = 16 << 20;
/// The default: small enough that a corrupt chunk is found early, large
/// enough that the hash list stays small (1 GiB = 1024 hashes).
pub const DEFAULT_CHUNK: u32 = 1 << 20;
/// No release is bigger than this; it bounds the hash list too.
pub const MAX_DATA: u64 = 64 << 30;
const BLOCK: u64 = 4096;

/// The four parts of a release, in the order they follow the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    /// The root filesystem image (squashfs padded to 4 KiB), for `root-<slot>`.
    Root,
    /// Its dm-verity hash tree, for `root-<slot>-verity`.
    Verity,
    /// The kernel, for `/slipway/<slot>/vmlinuz` on the ESP.
    Kernel,
    /// The initramfs, for `/slipway/<slot>/initrd` on the ESP.
    Initrd,
}

pub const PARTS: [Part; 4] = [Part::Root, Part::Verity, Part::Kernel, Part::Initrd];

impl Part {
    pub fn name(self) -> &'static str {
        match self {
            Part::Root => "root",
            Part::Verity => "verity",
            Part::Kernel => "kernel",
            Part::Initrd => "initrd",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    pub part: Part,
    pub size: u64,
    pub sha256: String,
}

/// What the boot entry needs to set up dm-verity (the kernel command line's
/// `slipway.roothash=`, `slipway.verity_salt=`, `slipway.verity_blocks=`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerityInfo {
    pub root_hash: String,
    pub salt: String,
    pub data_blocks: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    pub os_name: String,
    pub version: String,
    pub board: String,
    pub build_id: String,
    /// The board's part of the kernel command line (console, `panic=`,
    /// …); the engine appends the slot's own arguments on the machine,
    /// because only the machine knows its partition UUIDs.
    pub cmdline: String,
    pub verity: VerityInfo,
    pub chunk_size: u32,
    /// Root, verity, kernel, initrd, in that order.
    pub artifacts: Vec<Artifact>,
    /// sha256 of each `chunk_size` piece of the data (the four artifacts
    /// back to back; the last chunk may be short).
    pub chunks: Vec<String>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("manifest is not valid JSON of the expected shape: {0}")]
    Json(String),
    #[error("manifest field {field}: {why}")]
    Field { field: String, why: String },
}

fn field(field: &str, why: impl Into<String>) -> ManifestError {
    ManifestError::Field {
        field: field.to_string(),
        why: why.into(),
    }
}

impl Manifest {
    /// Parses and checks a manifest. Everything the engine later relies on
    /// (sizes add up, one hash per chunk, hex where hex is due) is checked
    /// here, so the writer never meets an inconsistent number.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
        m.check()?;
        Ok(m)
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Serialising our own struct cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    pub fn check(&self) -> Result<(), ManifestError> {
        if self.format != FORMAT {
            return Err(field(
                "format",
                format!(
                    "{} is not supported (this engine reads format {FORMAT})",
                    self.format
                ),
            ));
        }
        crate::version::validate(&self.version).map_err(|why| field("version", why))?;
        check_name("board", &self.board)?;
        if self.os_name.is_empty() || self.os_name.len() > 64 || self.os_name.contains('\n') {
            return Err(field("os_name", "must be 1-64 characters on one line"));
        }
        if self.build_id.len() > 64 || self.build_id.contains(char::is_whitespace) {
            return Err(field("build_id", "at most 64 characters, no spaces"));
        }
        if self.cmdline.len() > 2048 {
            return Err(field("cmdline", "at most 2048 characters"));
        }
        // Read as PID 1 reads a command line (its tokenizer: quotes,
        // control characters): no slipway.* parameter, so a release can
        // neither name a slot nor turn verity off.
        cmdline::check_base(&self.cmdline).map_err(|e| field("cmdline", e.to_string()))?;
        // Exactly what the init accepts on the command line.
        cmdline::HexDigest::parse(cmdline::ROOTHASH_KEY, &self.verity.root_hash, "sha256")
            .map_err(|e| field("verity.root_hash", e.to_string()))?;
        cmdline::HexDigest::parse(cmdline::VERITY_SALT_KEY, &self.verity.salt, "salt")
            .map_err(|e| field("verity.salt", e.to_string()))?;
        if !self.chunk_size.is_power_of_two() || !(MIN_CHUNK..=MAX_CHUNK).contains(&self.chunk_size)
        {
            return Err(field(
                "chunk_size",
                format!(
                    "{} is not a power of two from {MIN_CHUNK} to {MAX_CHUNK}",
                    self.chunk_size
                ),
            ));
        }
        let parts: Vec<Part> = self.artifacts.iter().map(|a| a.part).collect();
        if parts != PARTS {
            return Err(field(
                "artifacts",
                "must list root, verity, kernel, initrd, in that order",
            ));
        }
        for a in &self.artifacts {
            let name = format!("artifacts.{}", a.part.name());
            check_hex(&format!("{name}.sha256"), &a.sha256, 32..=32)?;
            if a.size == 0 {
                return Err(field(&format!("{name}.size"), "is 0"));
            }
        }
        let root = &self.artifacts[0];
        if !root.size.is_multiple_of(BLOCK) || root.size / BLOCK != self.verity.data_blocks {
            return Err(field(
                "verity.data_blocks",
                format!(
                    "{} blocks of 4096 bytes do not match the root's size {}",
                    self.verity.data_blocks, root.size
                ),
            ));
        }
        let total = self
            .data_size()
            .ok_or_else(|| field("artifacts", "sizes overflow"))?;
        if total > MAX_DATA {
            return Err(field(
                "artifacts",
                format!("{total} bytes in all; at most {MAX_DATA} are accepted"),
            ));
        }
        let want = total.div_ceil(u64::from(self.chunk_size));
        if self.chunks.len() as u64 != want {
            return Err(field(
                "chunks",
                format!(
                    "{} hashes for {total} bytes in chunks of {}: expected {want}",
                    self.chunks.len(),
                    self.chunk_size
                ),
            ));
        }
        for (i, c) in self.chunks.iter().enumerate() {
            check_hex(&format!("chunks[{i}]"), c, 32..=32)?;
        }
        Ok(())
    }

    /// Bytes of data after the manifest: the four artifacts back to back.
    pub fn data_size(&self) -> Option<u64> {
        self.artifacts
            .iter()
            .try_fold(0u64, |acc, a| acc.checked_add(a.size))
    }

    pub fn artifact(&self, part: Part) -> &Artifact {
        // `check` guarantees the order of PARTS.
        &self.artifacts[PARTS.iter().position(|p| *p == part).unwrap_or(0)]
    }

    /// Where each artifact starts in the data.
    pub fn offsets(&self) -> [(Part, u64, u64); 4] {
        let mut at = 0;
        PARTS.map(|p| {
            let size = self.artifact(p).size;
            let start = at;
            at += size;
            (p, start, size)
        })
    }

    /// The byte range of chunk `i` in the data.
    pub fn chunk_range(&self, i: usize) -> (u64, u64) {
        let start = i as u64 * u64::from(self.chunk_size);
        let end = (start + u64::from(self.chunk_size)).min(self.data_size().unwrap_or(0));
        (start, end)
    }
}

fn check_name(name: &str, v: &str) -> Result<(), ManifestError> {
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(field(
            name,
            format!("{v:?}: expected 1-64 of a-z, 0-9, -, _"),
        ))
    }
}

fn check_hex(
    name: &str,
    v: &str,
    bytes: std::ops::RangeInclusive<usize>,
) -> Result<(), ManifestError> {
    let ok = v.len().is_multiple_of(2)
        && bytes.contains(&(v.len() / 2))
        && v.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(())
    } else {
        Err(field(
            name,
            format!(
                "expected {} lower-case hex digits",
                if bytes.start() == bytes.end() {
                    format!("{}", bytes.start() * 2)
                } else {
                    format!("{}-{}", bytes.start() * 2, bytes.end() * 2)
                }
            ),
        ))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> Manifest {
        let h = "ab".repeat(32);
        Manifest {
            format: 1,
            os_name: "Slipway".into(),
            version: "1.2.0".into(),
            board: "qemu-x86_64".into(),
            build_id: "abc".into(),
            cmdline: "quiet gpt console=ttyS0".into(),
            verity: VerityInfo {
                root_hash: h.clone(),
                salt: "cd".repeat(32),
                data_blocks: 2,
            },
            chunk_size: MIN_CHUNK,
            artifacts: PARTS
                .iter()
                .map(|&part| Artifact {
                    part,
                    size: if part == Part::Root { 8192 } else { 100 },
                    sha256: h.clone(),
                })
                .collect(),
            chunks: vec![h],
        }
    }

    #[test]
    fn sample_round_trips() {
        let m = sample();
        assert_eq!(Manifest::parse(&m.to_json()).unwrap(), m);
        assert_eq!(m.data_size(), Some(8492));
        assert_eq!(m.offsets()[2], (Part::Kernel, 8292, 100));
        assert_eq!(m.chunk_range(0), (0, 8492));
    }

    fn refused(f: impl FnOnce(&mut Manifest), field_name: &str) {
        let mut m = sample();
        f(&mut m);
        match Manifest::parse(&m.to_json()) {
            Err(ManifestError::Field { field, .. }) => assert_eq!(field, field_name),
            other => panic!("{field_name}: {other:?}"),
        }
    }

    #[test]
    fn inconsistent_manifests_are_refused_by_field() {
        refused(|m| m.format = 2, "format");
        refused(|m| m.version = "1 0".into(), "version");
        refused(|m| m.board = "Q".into(), "board");
        refused(|m| m.chunk_size = 1000, "chunk_size");
        refused(|m| m.chunk_size = MAX_CHUNK * 2, "chunk_size");
        refused(|m| m.artifacts.swap(0, 1), "artifacts");
        refused(|m| m.artifacts.pop().map(drop).unwrap_or(()), "artifacts");
        refused(|m| m.artifacts[0].size = 4096, "verity.data_blocks");
        refused(|m| m.artifacts[2].size = 0, "artifacts.kernel.size");
        refused(
            |m| m.artifacts[3].sha256 = "xyz".into(),
            "artifacts.initrd.sha256",
        );
        refused(|m| m.chunks.push("ab".repeat(32)), "chunks");
        refused(|m| m.chunks[0] = "AB".repeat(32), "chunks[0]");
        refused(|m| m.verity.root_hash.clear(), "verity.root_hash");
        refused(|m| m.cmdline = "quiet slipway.verity=off".into(), "cmdline");
        // Quoted, the kernel still reads the key (the quotes are removed).
        refused(
            |m| m.cmdline = "quiet \"slipway.verity=off\"".into(),
            "cmdline",
        );
        refused(|m| m.cmdline = "quiet\tslipway.slot=a".into(), "cmdline");
        refused(|m| m.cmdline = "quiet\rpanic=1".into(), "cmdline");
        // The init takes a 64-digit salt and nothing else.
        refused(|m| m.verity.salt = "cd".repeat(31), "verity.salt");
        refused(|m| m.verity.salt = String::new(), "verity.salt");
        refused(|m| m.artifacts[1].size = u64::MAX, "artifacts");
    }

    #[test]
    fn unknown_fields_and_garbage_are_json_errors() {
        let mut v: serde_json::Value = serde_json::from_slice(&sample().to_json()).unwrap();
        v["extra"] = 1.into();
        assert!(matches!(
            Manifest::parse(v.to_string().as_bytes()),
            Err(ManifestError::Json(_))
        ));
        assert!(matches!(
            Manifest::parse(b"\xff"),
            Err(ManifestError::Json(_))
        ));
    }
}

//! Where the image comes from: the running system's boot disk, a `disk.raw`
//! file, or a URL. A file or URL is checked against the `SHA256SUMS` beside
//! it; the digest is computed while the data is written (one pass), and the
//! partition table that makes the target bootable is written only after it
//! matched.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use uuid::Uuid;

use crate::bootdisk;
pub use crate::gpt_read::{parse_table, SourcePartition};

/// The bytes read before anything else: the protective MBR, the primary
/// GPT (header and 128 entries), and the rest of the first MiB, where the
/// first partition starts in every Slipway image.
pub const HEAD_BYTES: usize = 1024 * 1024;

/// The source the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// The disk the running system booted from (the default on a machine).
    BootDisk,
    /// A `disk.raw` image file.
    File(PathBuf),
    /// `http://…/disk.raw` (plain HTTP; `SHA256SUMS` from the same folder).
    Url(String),
}

/// How the source's bytes are read.
pub enum Reader {
    /// Seekable, with holes found by `SEEK_DATA`/`SEEK_HOLE` (a sparse
    /// `disk.raw` is 2.5 GiB long and about 100 MB of data).
    File(File),
    /// A stream read front to back (HTTP); `at` is how far it has been read.
    Stream { body: Box<dyn Read + Send>, at: u64 },
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reader::File(file) => f.debug_tuple("File").field(file).finish(),
            Reader::Stream { at, .. } => f.debug_struct("Stream").field("at", at).finish(),
        }
    }
}

/// An opened source.
#[derive(Debug)]
pub struct Source {
    /// For messages: the file, URL or device.
    pub name: String,
    /// The boot disk (only the slots and the ESP are copied; `var` is made
    /// fresh) or a whole image (copied as it is).
    pub boot_disk: bool,
    /// Bytes of the source: the image's length, or the boot disk's size.
    pub len: u64,
    /// The first [`HEAD_BYTES`] (already counted in the digest).
    pub head: Vec<u8>,
    pub disk_guid: Uuid,
    pub partitions: Vec<SourcePartition>,
    pub reader: Reader,
    /// The sha256 the whole image must have, from `SHA256SUMS`.
    pub expected_sha256: Option<[u8; 32]>,
}

/// Opens the source and reads its partition table.
pub fn open(spec: &SourceSpec, no_checksum: bool) -> Result<Source> {
    match spec {
        SourceSpec::BootDisk => open_disk(&bootdisk::find_running()?.path),
        SourceSpec::File(path) => {
            let expected = if no_checksum {
                None
            } else {
                Some(expected_for_file(path)?)
            };
            let file = crate::open_read(path)?;
            let len = seek_len(&file, path)?;
            from_file(path.display().to_string(), file, len, false, expected)
        }
        SourceSpec::Url(url) => open_url(url, no_checksum),
    }
}

/// Opens a disk holding an installed Slipway (the boot disk, or in tests a
/// file) as a source: its ESP and slots are copied, its `var` is not.
pub fn open_disk(path: &Path) -> Result<Source> {
    let file = crate::open_read(path)?;
    let len = seek_len(&file, path)?;
    from_file(path.display().to_string(), file, len, true, None)
}

fn seek_len(file: &File, path: &Path) -> Result<u64> {
    use std::io::Seek;
    let mut f = file;
    f.seek(std::io::SeekFrom::End(0))
        .with_context(|| format!("{}: finding its size", path.display()))
}

fn from_file(
    name: String,
    file: File,
    len: u64,
    boot_disk: bool,
    expected_sha256: Option<[u8; 32]>,
) -> Result<Source> {
    let mut head = vec![0u8; HEAD_BYTES.min(len as usize)];
    file.read_exact_at(&mut head, 0)
        .with_context(|| format!("{name}: reading its partition table"))?;
    let (disk_guid, partitions) = parse_table(&head).with_context(|| name.clone())?;
    Ok(Source {
        name,
        boot_disk,
        len,
        head,
        disk_guid,
        partitions,
        reader: Reader::File(file),
        expected_sha256,
    })
}

fn open_url(url: &str, no_checksum: bool) -> Result<Source> {
    if !url.starts_with("http://") {
        bail!("{url}: only plain http:// URLs are supported (the image has no TLS stack; the SHA256SUMS check protects the data)");
    }
    let expected = if no_checksum {
        None
    } else {
        let sums_url = match url.rsplit_once('/') {
            Some((dir, _)) => format!("{dir}/SHA256SUMS"),
            None => bail!("{url}: not a URL of a file"),
        };
        let text = get(&sums_url)?
            .into_body()
            .read_to_string()
            .with_context(|| format!("{sums_url}: reading"))?;
        let file_name = url.rsplit('/').next().unwrap_or_default();
        Some(expected_from_sums(&text, file_name).map_err(|e| anyhow!("{sums_url}: {e}"))?)
    };
    let response = get(url)?;
    let len = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| anyhow!("{url}: the server sent no Content-Length"))?;
    let mut body: Box<dyn Read + Send> = Box::new(response.into_body().into_reader());
    let mut head = vec![0u8; HEAD_BYTES.min(len as usize)];
    body.read_exact(&mut head)
        .with_context(|| format!("{url}: reading the first MiB"))?;
    let (disk_guid, partitions) = parse_table(&head).with_context(|| url.to_string())?;
    Ok(Source {
        name: url.to_string(),
        boot_disk: false,
        len,
        reader: Reader::Stream {
            body,
            at: head.len() as u64,
        },
        head,
        disk_guid,
        partitions,
        expected_sha256: expected,
    })
}

fn get(url: &str) -> Result<ureq::http::Response<ureq::Body>> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(std::time::Duration::from_secs(15)))
        .build()
        .into();
    agent
        .get(url)
        .call()
        .with_context(|| format!("{url}: fetching"))
}

/// The expected digest of `path` from the `SHA256SUMS` in its folder.
fn expected_for_file(path: &Path) -> Result<[u8; 32]> {
    let sums = path.with_file_name("SHA256SUMS");
    let text = std::fs::read_to_string(&sums).with_context(|| {
        format!(
            "{}: reading (the image's checksums; --no-checksum skips the check)",
            sums.display()
        )
    })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    expected_from_sums(&text, &name).map_err(|e| anyhow!("{}: {e}", sums.display()))
}

/// The digest `SHA256SUMS` (`<hex>  <name>` lines, `*name` for binary
/// mode) gives for `name`.
pub fn expected_from_sums(text: &str, name: &str) -> std::result::Result<[u8; 32], String> {
    for line in text.lines() {
        let Some((hex_digest, file)) = line.split_once(char::is_whitespace) else {
            continue;
        };
        let file = file.trim_start().trim_start_matches('*');
        if file != name {
            continue;
        }
        let mut digest = [0u8; 32];
        hex::decode_to_slice(hex_digest, &mut digest)
            .map_err(|e| format!("the line for {name} has a bad digest: {e}"))?;
        return Ok(digest);
    }
    Err(format!("no line for {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_lines_are_matched_by_name() {
        let digest = "ab".repeat(32);
        let text = format!("{}  disk.qcow2\n{digest} *disk.raw\n", "cd".repeat(32));
        assert_eq!(expected_from_sums(&text, "disk.raw").unwrap(), [0xab; 32]);
        assert_eq!(
            expected_from_sums(&text, "manifest.json").unwrap_err(),
            "no line for manifest.json"
        );
        let bad = "zz  disk.raw\n";
        assert!(expected_from_sums(bad, "disk.raw")
            .unwrap_err()
            .starts_with("the line for disk.raw has a bad digest"));
    }
}

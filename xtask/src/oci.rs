//! Test container images written by the xtask: an OCI image layout (the
//! format `skopeo copy oci:DIR:REF …` reads) holding one layer made from
//! files the project already has — Debian's static busybox and an index
//! page — so the container tests need no image from the internet.
//!
//! The layer is a tar with fixed owners, modes and mtimes and sorted
//! entries, gzip-compressed without a timestamp: the same inputs give the
//! same digests, so a registry sees the same image on every run.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::board::Board;
use crate::inputs::{self, InputOptions};
use crate::paths;

pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// The busybox applets the test image links in `/bin` (what its
/// entrypoint, `docker exec … sh -c`, and `docker run IMAGE true` use).
const APPLETS: &[&str] = &[
    "cat", "echo", "httpd", "ls", "mkdir", "rm", "sh", "sleep", "true", "wget",
];

/// The port the test image's httpd listens on inside the container.
pub const WEB_PORT: u16 = 80;

/// An image written as an OCI layout; digests are `sha256:<hex>`.
#[derive(Debug, Clone)]
pub struct OciImage {
    /// The layout folder (`oci-layout`, `index.json`, `blobs/sha256/`).
    pub dir: PathBuf,
    /// The manifest's `org.opencontainers.image.ref.name` in `index.json`:
    /// `oci:DIR:REF` names the image to skopeo.
    pub reference: String,
    pub manifest_digest: String,
    pub config_digest: String,
    /// The compressed layer as stored and pulled.
    pub layer_digest: String,
    /// The uncompressed layer (the config's `rootfs.diff_ids`).
    pub diff_id: String,
    /// The command the image runs by default.
    pub cmd: Vec<String>,
}

impl OciImage {
    /// skopeo's source name for this image.
    pub fn skopeo_source(&self) -> String {
        format!("oci:{}:{}", self.dir.display(), self.reference)
    }
}

/// The static busybox of a board's pinned inputs (`packages.busybox`,
/// fetched and unpacked the way `build-image` does).
pub fn board_busybox(board: &str) -> Result<PathBuf> {
    let board = Board::load(&paths::boards_dir(), board)?;
    Ok(inputs::resolve(&board, &InputOptions::default())?.busybox)
}

/// The static busybox a built image was made with: its manifest names the
/// pinned package, whose unpacked copy (checked by the unpack marker's
/// sha256) is in the build cache; if the cache no longer has it, the
/// board's inputs are resolved again.
pub fn image_busybox(image_dir: &Path) -> Result<PathBuf> {
    let path = image_dir.join("manifest.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let manifest: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let input = manifest["inputs"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["role"] == "busybox"))
        .with_context(|| format!("{}: no input with role busybox", path.display()))?;
    let field = |k: &str| input[k].as_str().unwrap_or_default().to_string();
    let dir = paths::unpack_cache().join(format!("{}_{}", field("package"), field("version")));
    let marker = std::fs::read_to_string(dir.join(".slipway-unpacked")).unwrap_or_default();
    let found = ["bin/busybox", "usr/bin/busybox"]
        .iter()
        .map(|p| dir.join(p))
        .find(|p| p.is_file());
    match found {
        Some(bin) if marker.trim() == field("sha256") => Ok(bin),
        _ => {
            let board = manifest["board"]
                .as_str()
                .with_context(|| format!("{}: no board", path.display()))?;
            board_busybox(board)
        }
    }
}

/// Writes the web test image into `out` (made if missing, its old blobs
/// removed): `/bin/busybox` with applet links, `/www/index.html` holding
/// `page`, an empty `/data` (where the tests mount a named volume), and
/// `busybox httpd -f -p 80 -h /www` as its command. `epoch` is every
/// file's mtime and the image's creation time.
pub fn write_busybox_web(busybox: &Path, page: &str, epoch: u64, out: &Path) -> Result<OciImage> {
    let bin = std::fs::read(busybox).with_context(|| format!("reading {}", busybox.display()))?;
    if bin.get(..4) != Some(b"\x7fELF") {
        bail!("{} is not an ELF program", busybox.display());
    }
    let mut files = BTreeMap::new();
    files.insert("bin/busybox".to_string(), Entry::File(0o755, bin));
    for applet in APPLETS {
        files.insert(format!("bin/{applet}"), Entry::Link("busybox".into()));
    }
    files.insert(
        "www/index.html".to_string(),
        Entry::File(0o644, page.as_bytes().to_vec()),
    );
    files.insert("data".to_string(), Entry::Dir);
    files.insert("tmp".to_string(), Entry::Dir);
    let cmd: Vec<String> = ["/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/www"]
        .iter()
        .map(|s| s.to_string())
        .collect();

    let tar = layer_tar(&files, epoch)?;
    let diff_id = format!("sha256:{}", hex::encode(Sha256::digest(&tar)));
    let gz = gzip(&tar)?;

    let created = rfc3339(epoch);
    let config = json!({
        "created": created,
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/bin"],
            "Cmd": cmd,
            "WorkingDir": "/",
            "ExposedPorts": { format!("{WEB_PORT}/tcp"): {} },
            "Volumes": { "/data": {} },
        },
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        "history": [{ "created": created, "created_by": "cargo xtask (slipway test image)" }],
    });
    let config = serde_json::to_vec(&config)?;

    let blobs = out.join("blobs/sha256");
    if out.exists() {
        std::fs::remove_dir_all(out).with_context(|| format!("clearing {}", out.display()))?;
    }
    std::fs::create_dir_all(&blobs).with_context(|| format!("creating {}", blobs.display()))?;
    let layer_digest = write_blob(&blobs, &gz)?;
    let config_digest = write_blob(&blobs, &config)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": { "mediaType": MEDIA_CONFIG, "digest": config_digest, "size": config.len() },
        "layers": [{ "mediaType": MEDIA_LAYER_GZIP, "digest": layer_digest, "size": gz.len() }],
    });
    let manifest = serde_json::to_vec(&manifest)?;
    let manifest_digest = write_blob(&blobs, &manifest)?;
    let reference = "1".to_string();
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": MEDIA_MANIFEST,
            "digest": manifest_digest,
            "size": manifest.len(),
            "annotations": { "org.opencontainers.image.ref.name": reference },
        }],
    });
    std::fs::write(out.join("index.json"), serde_json::to_vec(&index)?)?;
    std::fs::write(out.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    Ok(OciImage {
        dir: out.to_path_buf(),
        reference,
        manifest_digest,
        config_digest,
        layer_digest,
        diff_id,
        cmd,
    })
}

enum Entry {
    Dir,
    File(u32, Vec<u8>),
    Link(String),
}

/// The layer: parents before children (the map is sorted and every
/// parent is listed as a directory first), root-owned, one mtime.
fn layer_tar(files: &BTreeMap<String, Entry>, epoch: u64) -> Result<Vec<u8>> {
    let mut all: BTreeMap<String, &Entry> = BTreeMap::new();
    const DIR: &Entry = &Entry::Dir;
    for (path, entry) in files {
        let mut parent = Path::new(path).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            all.entry(p.to_string_lossy().into_owned()).or_insert(DIR);
            parent = p.parent();
        }
        all.insert(path.clone(), entry);
    }
    let mut tar = tar::Builder::new(Vec::new());
    for (path, entry) in all {
        let mut h = tar::Header::new_ustar();
        h.set_mtime(epoch);
        h.set_uid(0);
        h.set_gid(0);
        match entry {
            Entry::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                tar.append_data(&mut h, format!("{path}/"), std::io::empty())?;
            }
            Entry::File(mode, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                tar.append_data(&mut h, &path, data.as_slice())?;
            }
            Entry::Link(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                tar.append_link(&mut h, &path, target)?;
            }
        }
    }
    Ok(tar.into_inner()?)
}

/// gzip with no name and mtime 0 in its header (flate2's default), so the
/// compressed layer is as reproducible as the tar.
fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data)?;
    Ok(enc.finish()?)
}

fn write_blob(blobs: &Path, data: &[u8]) -> Result<String> {
    let hex = hex::encode(Sha256::digest(data));
    let path = blobs.join(&hex);
    std::fs::write(&path, data).with_context(|| format!("writing {}", path.display()))?;
    Ok(format!("sha256:{hex}"))
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (the OCI config's
/// `created`). Written by hand: a civil-from-days conversion is a few
/// lines, not worth a date crate in the builder.
fn rfc3339(epoch: u64) -> String {
    let days = (epoch / 86_400) as i64;
    let secs = epoch % 86_400;
    // Howard Hinnant's days_from_civil inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_764_806_400 + 3661), "2025-12-04T01:01:01Z");
    }

    #[test]
    fn layout_is_reproducible_and_consistent() {
        let tmp = tempfile::tempdir().unwrap();
        // Any ELF file stands in for busybox here; the VM test uses the real one.
        let fake = tmp.path().join("busybox");
        std::fs::write(&fake, b"\x7fELF fake").unwrap();
        let a = write_busybox_web(&fake, "hi", 1_700_000_000, &tmp.path().join("a")).unwrap();
        let b = write_busybox_web(&fake, "hi", 1_700_000_000, &tmp.path().join("b")).unwrap();
        assert_eq!(a.manifest_digest, b.manifest_digest);
        let c = write_busybox_web(&fake, "other", 1_700_000_000, &tmp.path().join("c")).unwrap();
        assert_ne!(a.layer_digest, c.layer_digest);

        // Every blob's name is its sha256; the index points at the manifest.
        for entry in std::fs::read_dir(a.dir.join("blobs/sha256")).unwrap() {
            let entry = entry.unwrap();
            let data = std::fs::read(entry.path()).unwrap();
            assert_eq!(
                hex::encode(Sha256::digest(&data)),
                entry.file_name().to_string_lossy()
            );
        }
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(a.dir.join("index.json")).unwrap()).unwrap();
        assert_eq!(index["manifests"][0]["digest"], a.manifest_digest.as_str());

        // The layer unpacks to the expected tree with fixed metadata.
        let gz = std::fs::read(
            a.dir
                .join("blobs/sha256")
                .join(a.layer_digest.trim_start_matches("sha256:")),
        )
        .unwrap();
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(gz.as_slice()));
        let mut names = Vec::new();
        for e in tar.entries().unwrap() {
            let e = e.unwrap();
            assert_eq!(e.header().mtime().unwrap(), 1_700_000_000);
            assert_eq!(e.header().uid().unwrap(), 0);
            names.push(e.path().unwrap().to_string_lossy().into_owned());
        }
        assert_eq!(names.first().map(String::as_str), Some("bin/"));
        for want in ["bin/busybox", "bin/true", "www/index.html", "data/"] {
            assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
        }
    }
}

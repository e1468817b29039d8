//! Signing keys on the builder side, the payload `build-image` emits, and
//! `publish`: a static release feed any HTTP server or object store can
//! host.
//!
//! Keys: `SLIPWAY_SIGNING_KEY` (or `--key`) names a production secret key
//! file; without it the development key `target/slipway/keys/dev.key` is
//! used, made on first use (never committed: `target/` is ignored). The
//! image trusts the signing key's public half plus every file listed in
//! `SLIPWAY_TRUSTED_KEYS` (colon-separated `.pub` files), so a new key can
//! be baked in before releases are signed with it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use slipway_update::delta::index::{Index, DEFAULT_CHUNKING};
use slipway_update::feed::{PayloadRef, Release};
use slipway_update::keys::{PublicKey, SecretKey};
use slipway_update::payload;
use slipway_update::waves::{self, Wave};

use crate::paths;

pub const SIGNING_KEY_ENV: &str = "SLIPWAY_SIGNING_KEY";
pub const TRUSTED_KEYS_ENV: &str = "SLIPWAY_TRUSTED_KEYS";
/// The payload `build-image` writes next to the disk.
pub const PAYLOAD_FILE: &str = "update.payload";

pub fn keys_dir() -> PathBuf {
    paths::slipway_dir().join("keys")
}

pub fn dev_key_path() -> PathBuf {
    keys_dir().join("dev.key")
}

/// Writes a new key pair `<dir>/<name>.key` (mode 0600) and `.pub`.
/// Refuses to overwrite a key unless `force`: losing a key that machines
/// trust means they can never be updated again.
pub fn keygen(dir: &Path, name: &str, force: bool) -> Result<(PathBuf, PublicKey)> {
    use std::os::unix::fs::OpenOptionsExt;
    let secret_path = dir.join(format!("{name}.key"));
    let public_path = dir.join(format!("{name}.pub"));
    if secret_path.exists() && !force {
        bail!(
            "{} exists; machines built with it trust it. Pass --force to replace it",
            secret_path.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let key = SecretKey::generate().context("reading random bytes for a new key")?;
    let tmp = dir.join(format!(".{name}.key.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(key.to_line().as_bytes())?;
        f.sync_all()?;
    }
    let public = key.public();
    if force {
        std::fs::rename(&tmp, &secret_path)
            .with_context(|| format!("writing {}", secret_path.display()))?;
    } else {
        // A link cannot replace a file: two builds making the development
        // key at once end up with one key, never an image trusting a key
        // that was overwritten.
        let linked = std::fs::hard_link(&tmp, &secret_path);
        let _ = std::fs::remove_file(&tmp);
        linked.with_context(|| format!("writing {}", secret_path.display()))?;
    }
    std::fs::write(&public_path, public.to_line(&format!("{name} key")))
        .with_context(|| format!("writing {}", public_path.display()))?;
    Ok((secret_path, public))
}

/// The key that signs: `explicit`, else `$SLIPWAY_SIGNING_KEY`, else the
/// development key (made if missing).
pub fn signing_key(explicit: Option<&Path>) -> Result<(SecretKey, PathBuf)> {
    let from_env = std::env::var_os(SIGNING_KEY_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let path = match explicit.map(Path::to_path_buf).or(from_env) {
        Some(p) => p,
        None => {
            let dev = dev_key_path();
            if !dev.exists() {
                let (_, public) = match keygen(&keys_dir(), "dev", false) {
                    Ok(made) => made,
                    // Another build made it meanwhile: use that one.
                    Err(_) if dev.exists() => return load_signing(&dev),
                    Err(e) => return Err(e),
                };
                eprintln!(
                    "made a development signing key {} (key ID {}); set {SIGNING_KEY_ENV} \
                     for releases",
                    dev.display(),
                    public.id()
                );
            }
            dev
        }
    };
    load_signing(&path)
}

fn load_signing(path: &Path) -> Result<(SecretKey, PathBuf)> {
    let key = SecretKey::load(path)
        .with_context(|| format!("loading the signing key (set {SIGNING_KEY_ENV} or --key)"))?;
    Ok((key, path.to_path_buf()))
}

/// Public keys the image trusts: the signing key's and `$SLIPWAY_TRUSTED_KEYS`.
pub fn trusted_keys(signing: &SecretKey) -> Result<Vec<PublicKey>> {
    let mut keys = vec![signing.public()];
    if let Some(list) = std::env::var_os(TRUSTED_KEYS_ENV) {
        for p in std::env::split_paths(&list).filter(|p| !p.as_os_str().is_empty()) {
            let k = PublicKey::load(&p)
                .with_context(|| format!("{TRUSTED_KEYS_ENV}: {}", p.display()))?;
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
    Ok(keys)
}

/// Writes the signed payload of an image's parts to `path`.
pub fn write_payload(
    path: &Path,
    release: &payload::Release,
    parts: [&[u8]; 4],
    key: &SecretKey,
) -> Result<slipway_update::manifest::Manifest> {
    let manifest = payload::manifest_for(release, parts)
        .context("the image's parts do not make a valid payload manifest")?;
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    payload::write(&mut out, &manifest, parts, &[key])
        .with_context(|| format!("writing {}", path.display()))?;
    use std::io::Write;
    out.flush()?;
    Ok(manifest)
}

pub struct PublishOptions {
    pub image_dir: PathBuf,
    pub dir: PathBuf,
    pub channel: String,
    /// Seconds the feed stays valid.
    pub valid_for: u64,
    pub key: Option<PathBuf>,
}

/// What `publish` wrote.
#[derive(Debug)]
pub struct Published {
    pub feed: PathBuf,
    pub payload: PathBuf,
    /// The signed delta index next to the payload (`<payload>.index`).
    pub index: PathBuf,
    pub release: Release,
}

/// Copies the image's payload to `DIR/payloads/<board>/<version>.payload`
/// and writes the signed feed `DIR/<channel>/<board>.json` pointing at it
/// (relative URL, so the folder can be served from anywhere).
pub fn publish(opts: &PublishOptions) -> Result<Published> {
    publish_with_waves(opts, None)
}

/// [`publish`], the release rolled out in `waves` (update-engine's README,
/// "Phased rollout"), counted from the feed's `published` time, which is
/// now: publishing again restarts them. Waves the machines would refuse
/// are refused here, before anything is written.
pub fn publish_with_waves(opts: &PublishOptions, waves: Option<&[Wave]>) -> Result<Published> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let expires = now.saturating_add(opts.valid_for);
    if let Some(w) = waves {
        waves::validate(w, now, expires).with_context(|| {
            format!(
                "--waves {} (the feed is valid for {} s from now)",
                waves::format_spec(w),
                opts.valid_for
            )
        })?;
    }
    let payload_src = opts.image_dir.join(PAYLOAD_FILE);
    let mut f = std::fs::File::open(&payload_src).with_context(|| {
        format!(
            "opening {} (build the image first: cargo xtask build-image)",
            payload_src.display()
        )
    })?;
    let header = payload::read_header(&mut f)
        .with_context(|| format!("reading {}", payload_src.display()))?;
    let m = &header.manifest;
    let (key, key_path) = signing_key(opts.key.as_deref())?;
    header
        .verify(&slipway_update::keys::TrustedKeys::new(vec![key.public()]))
        .with_context(|| {
            format!(
                "{} is not signed by {} (the feed and the payload must be signed by a key the \
                 machines trust)",
                payload_src.display(),
                key_path.display()
            )
        })?;
    let name_ok = !opts.channel.is_empty()
        && opts
            .channel
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && !opts.channel.starts_with('.');
    if !name_ok {
        bail!(
            "channel {:?}: use letters, digits, '.', '_' and '-'",
            opts.channel
        );
    }
    let rel_payload = format!("payloads/{}/{}.payload", m.board, m.version);
    let payload_dst = opts.dir.join(&rel_payload);
    std::fs::create_dir_all(payload_dst.parent().unwrap_or(&opts.dir))?;
    let tmp = payload_dst.with_extension("payload.partial");
    std::fs::copy(&payload_src, &tmp).with_context(|| format!("copying to {}", tmp.display()))?;
    std::fs::rename(&tmp, &payload_dst)?;
    let (size, sha256) = {
        let f = std::fs::File::open(&payload_dst)?;
        slipway_update::hashing::sha256_reader(f, u64::MAX)?
    };
    // The delta index: machines fetch only the pieces they lack. It needs
    // no older release; each machine finds what it has by hash.
    let index = PathBuf::from(slipway_update::delta::index::url_for(
        &payload_dst.display().to_string(),
    ));
    let pieces = Index::build(&payload_dst, DEFAULT_CHUNKING)
        .with_context(|| format!("cutting {} into pieces", payload_dst.display()))?;
    let tmp = index.with_extension("index.partial");
    std::fs::write(&tmp, pieces.sign(&[&key]))
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &index)?;
    let release = Release {
        format: slipway_update::feed::FORMAT,
        board: m.board.clone(),
        channel: opts.channel.clone(),
        version: m.version.clone(),
        payload: PayloadRef {
            url: format!("../{rel_payload}"),
            size,
            sha256,
        },
        published: now,
        expires,
        waves: waves.map(<[Wave]>::to_vec),
    };
    // The feed goes last: until it is renamed into place, machines see the
    // previous release and never a feed naming a payload not yet copied.
    let feed = opts
        .dir
        .join(&opts.channel)
        .join(format!("{}.json", m.board));
    std::fs::create_dir_all(feed.parent().unwrap_or(&opts.dir))?;
    let tmp = feed.with_extension("json.partial");
    std::fs::write(&tmp, release.sign(&[&key]))?;
    std::fs::rename(&tmp, &feed)?;
    Ok(Published {
        feed,
        payload: payload_dst,
        index,
        release,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_never_replaces_a_key_by_accident() {
        let dir = tempfile::tempdir().unwrap();
        let (path, public) = keygen(dir.path(), "k", false).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(SecretKey::load(&path).unwrap().public(), public);
        assert_eq!(PublicKey::load(&dir.path().join("k.pub")).unwrap(), public);
        let err = keygen(dir.path(), "k", false).unwrap_err();
        assert!(err.to_string().contains("--force"), "{err}");
        assert_eq!(SecretKey::load(&path).unwrap().public(), public);
        let (_, other) = keygen(dir.path(), "k", true).unwrap();
        assert_ne!(other, public);
        // No temporary files left.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    /// An image folder holding a small signed payload of version 2.0, and
    /// the key that signed it.
    fn image_dir(dir: &Path) -> PathBuf {
        let (key_path, _) = keygen(dir, "k", false).unwrap();
        let key = SecretKey::load(&key_path).unwrap();
        let image = dir.join("image");
        std::fs::create_dir_all(&image).unwrap();
        let root = vec![7u8; 2 * 4096];
        let verity = vec![0x5a; 4096];
        let (kernel, initrd) = (b"kernel".repeat(100), b"initrd".repeat(100));
        let release = payload::Release {
            os_name: "Slipway".into(),
            version: "2.0".into(),
            board: "qemu-x86_64".into(),
            build_id: "test".into(),
            cmdline: "quiet".into(),
            verity: slipway_update::manifest::VerityInfo {
                root_hash: "ab".repeat(32),
                salt: "cd".repeat(32),
                data_blocks: 2,
            },
            chunk_size: slipway_update::manifest::MIN_CHUNK,
        };
        write_payload(
            &image.join(PAYLOAD_FILE),
            &release,
            [&root, &verity, &kernel, &initrd],
            &key,
        )
        .unwrap();
        image
    }

    fn options(dir: &Path) -> PublishOptions {
        PublishOptions {
            image_dir: dir.join("image"),
            dir: dir.join("pub"),
            channel: "stable".into(),
            valid_for: 86_400,
            key: Some(dir.join("k.key")),
        }
    }

    fn verify(dir: &Path, feed: &Path) -> Release {
        let keys =
            slipway_update::keys::TrustedKeys::new(vec![
                PublicKey::load(&dir.join("k.pub")).unwrap()
            ]);
        let bytes = std::fs::read(feed).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        Release::verify(&bytes, &keys, now, "qemu-x86_64", "stable").unwrap()
    }

    #[test]
    fn publish_writes_waves_into_the_signed_feed() {
        let dir = tempfile::tempdir().unwrap();
        image_dir(dir.path());
        let waves = waves::parse_spec("512@0s,1024@1h,2048@4h").unwrap();
        let p = publish_with_waves(&options(dir.path()), Some(&waves)).unwrap();
        assert_eq!(p.feed, dir.path().join("pub/stable/qemu-x86_64.json"));
        let r = verify(dir.path(), &p.feed);
        assert_eq!(r.waves.as_deref(), Some(&waves[..]));
        assert_eq!(r, p.release);
        assert!(p.payload.exists());
        // The delta index sits next to the payload, signed, for its manifest.
        assert_eq!(
            p.index,
            PathBuf::from(format!("{}.index", p.payload.display()))
        );
        let header = payload::read_header(&mut std::fs::File::open(&p.payload).unwrap()).unwrap();
        let keys = slipway_update::keys::TrustedKeys::new(vec![PublicKey::load(
            &dir.path().join("k.pub"),
        )
        .unwrap()]);
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            &header.manifest_bytes,
        ));
        let index = Index::verify(
            &std::fs::read(&p.index).unwrap(),
            &keys,
            &header.manifest,
            &sha,
        )
        .unwrap();
        assert_eq!(index.chunking, DEFAULT_CHUNKING);

        // Without waves: no waves field at all, as before waves existed.
        let p = publish(&options(dir.path())).unwrap();
        assert_eq!(verify(dir.path(), &p.feed).waves, None);
        let text = std::fs::read_to_string(&p.feed).unwrap();
        assert!(!text.contains("waves"), "{text}");
    }

    #[test]
    fn publish_refuses_waves_machines_would_refuse_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        image_dir(dir.path());
        for (spec, field) in [
            ("1024@0s,512@1h", "waves[1].seeds_below"),
            ("512@1h,2048@0s", "waves[1].after_s"),
            ("512@0s,4096@1h", "waves[1].seeds_below"),
            // The feed is valid for a day: a wave after two never opens.
            ("512@0s,2048@2d", "waves[1].after_s"),
        ] {
            let waves = waves::parse_spec(spec).unwrap();
            let err = publish_with_waves(&options(dir.path()), Some(&waves)).unwrap_err();
            let text = format!("{err:#}");
            assert!(
                text.contains(field) && text.contains("--waves"),
                "{spec}: {text}"
            );
        }
        assert!(!dir.path().join("pub").exists(), "something was published");
    }
}

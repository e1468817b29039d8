//! Signing keys: ed25519 (RFC 8032) through `ed25519-dalek`.
//!
//! Key files are one line of text so they can be pasted, diffed and
//! baked into an image:
//!
//! - public: `slipway-ed25519-public <64 hex digits> [comment]`
//! - secret: `slipway-ed25519-secret <64 hex digits of the seed>`
//!
//! A key's ID is the first 8 bytes of the sha256 of its 32 public bytes,
//! in hex. Signatures name the key ID they were made with, so a machine
//! trusting several keys (rotation: old and new baked in side by side)
//! knows which one to check, and an unknown key is a clear refusal rather
//! than a generic "bad signature".

use std::path::Path;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

const PUBLIC_TAG: &str = "slipway-ed25519-public";
const SECRET_TAG: &str = "slipway-ed25519-secret";

/// Where the image carries the public keys it trusts, one `*.pub` file each.
pub const TRUSTED_KEYS_DIR: &str = "/usr/lib/slipway/update-keys";

#[derive(Debug, Error)]
pub enum KeyError {
    #[error("{file}: {why}")]
    Parse { file: String, why: String },
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no trusted update keys in {0}: this image cannot verify any update")]
    NoKeys(String),
}

/// A public key and its ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    id: String,
}

impl PublicKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<PublicKey, String> {
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| "not a valid ed25519 public key")?;
        Ok(PublicKey {
            id: key_id(bytes),
            key,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The one-line file form.
    pub fn to_line(&self, comment: &str) -> String {
        let hex = hex::encode(self.key.as_bytes());
        if comment.is_empty() {
            format!("{PUBLIC_TAG} {hex}\n")
        } else {
            format!("{PUBLIC_TAG} {hex} {comment}\n")
        }
    }

    /// Parses the one-line form; `file` names the source in errors.
    pub fn parse(file: &str, text: &str) -> Result<PublicKey, KeyError> {
        let bytes = parse_line(file, text, PUBLIC_TAG)?;
        PublicKey::from_bytes(&bytes).map_err(|why| KeyError::Parse {
            file: file.to_string(),
            why,
        })
    }

    pub fn load(path: &Path) -> Result<PublicKey, KeyError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            file: file.clone(),
            source,
        })?;
        PublicKey::parse(&file, &text)
    }

    fn verify(&self, context: &[u8], message: &[u8], sig: &[u8; 64]) -> bool {
        let sig = ed25519_dalek::Signature::from_bytes(sig);
        // `verify_strict` refuses the malleable and small-order edge cases
        // plain RFC 8032 verification lets through.
        self.key
            .verify_strict(&signed_bytes(context, message), &sig)
            .is_ok()
    }
}

/// A signing key. Never written anywhere but the file `keygen` makes.
pub struct SecretKey {
    key: SigningKey,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.public().id())
    }
}

impl SecretKey {
    /// A new key from the kernel's random source.
    pub fn generate() -> Result<SecretKey, std::io::Error> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(SecretKey::from_seed(&seed))
    }

    pub fn from_seed(seed: &[u8; 32]) -> SecretKey {
        SecretKey {
            key: SigningKey::from_bytes(seed),
        }
    }

    pub fn public(&self) -> PublicKey {
        let key = self.key.verifying_key();
        PublicKey {
            id: key_id(key.as_bytes()),
            key,
        }
    }

    pub fn to_line(&self) -> String {
        format!("{SECRET_TAG} {}\n", hex::encode(self.key.to_bytes()))
    }

    pub fn parse(file: &str, text: &str) -> Result<SecretKey, KeyError> {
        Ok(SecretKey::from_seed(&parse_line(file, text, SECRET_TAG)?))
    }

    pub fn load(path: &Path) -> Result<SecretKey, KeyError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            file: file.clone(),
            source,
        })?;
        SecretKey::parse(&file, &text)
    }

    /// Signs `message` in the domain `context` (see [`signed_bytes`]).
    pub fn sign(&self, context: &[u8], message: &[u8]) -> Signature {
        let sig = self.key.sign(&signed_bytes(context, message));
        Signature {
            key_id: self.public().id,
            signature: hex::encode(sig.to_bytes()),
        }
    }
}

/// A signed text as the feed and the delta index store it:
/// `{"<field>": "<text>", "signatures": [...]}`, the signatures over the
/// text itself, so no JSON canonicalisation is needed. `pretty` as the
/// feed is written (people read feeds).
pub fn seal(
    field: &str,
    context: &[u8],
    text: String,
    keys: &[&SecretKey],
    pretty: bool,
) -> Vec<u8> {
    let signatures: Vec<Signature> = keys
        .iter()
        .map(|k| k.sign(context, text.as_bytes()))
        .collect();
    // serde_json's map is sorted, and both users' field sort before
    // "signatures": the bytes are those of a struct with the two fields.
    let mut map = serde_json::Map::new();
    map.insert(field.to_string(), serde_json::Value::String(text));
    map.insert(
        "signatures".into(),
        serde_json::to_value(signatures).unwrap_or_default(),
    );
    let value = serde_json::Value::Object(map);
    let written = if pretty {
        serde_json::to_vec_pretty(&value)
    } else {
        serde_json::to_vec(&value)
    };
    let mut out = written.unwrap_or_default();
    out.push(b'\n');
    out
}

/// Why a sealed text was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SealError {
    #[error("{0}")]
    Json(String),
    #[error(transparent)]
    Signature(#[from] SignatureError),
}

/// The text of a [`seal`]ed document, once a trusted key's signature
/// checks. Fields other than the two are refused.
pub fn unseal(
    field: &str,
    context: &[u8],
    bytes: &[u8],
    keys: &TrustedKeys,
) -> Result<String, SealError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sealed {
        text: String,
        signatures: Vec<Signature>,
    }
    let mut map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(bytes).map_err(|e| SealError::Json(e.to_string()))?;
    // The caller's field name, read as the struct's `text`.
    let text = map
        .remove(field)
        .ok_or_else(|| SealError::Json(format!("missing field `{field}`")))?;
    map.insert("text".into(), text);
    let sealed: Sealed = serde_json::from_value(serde_json::Value::Object(map))
        .map_err(|e| SealError::Json(e.to_string()))?;
    keys.verify(context, sealed.text.as_bytes(), &sealed.signatures)?;
    Ok(sealed.text)
}

/// One signature as it is stored next to the signed bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    pub key_id: String,
    /// 64 bytes in hex.
    pub signature: String,
}

/// Why signed bytes were refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("not signed at all")]
    Unsigned,
    #[error(
        "signed only by unknown key(s) {found}; this machine trusts {trusted} \
         (a release signed with a key that is not baked into the running image)"
    )]
    UnknownKey { found: String, trusted: String },
    #[error(
        "BAD SIGNATURE by trusted key {0}: the signed data was altered or the signature forged"
    )]
    Bad(String),
    #[error("malformed signature by key {0}: expected 128 hex digits")]
    Malformed(String),
}

/// The keys a machine trusts.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: Vec<PublicKey>,
}

impl TrustedKeys {
    pub fn new(keys: Vec<PublicKey>) -> TrustedKeys {
        TrustedKeys { keys }
    }

    /// Every `*.pub` file of `dir`; none at all is an error (an image that
    /// trusts nothing could never update, better said at once).
    pub fn load_dir(dir: &Path) -> Result<TrustedKeys, KeyError> {
        let name = dir.display().to_string();
        let entries = std::fs::read_dir(dir).map_err(|source| KeyError::Io {
            file: name.clone(),
            source,
        })?;
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "pub"))
            .collect();
        paths.sort();
        let keys = paths
            .iter()
            .map(|p| PublicKey::load(p))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(KeyError::NoKeys(name));
        }
        Ok(TrustedKeys { keys })
    }

    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id()).collect()
    }

    /// Accepts `message` when at least one signature is by a trusted key
    /// and every signature by a trusted key verifies. Signatures by other
    /// keys are ignored (a release may be signed by an old and a new key
    /// while machines roll over). Returns the ID of a key that verified.
    pub fn verify(
        &self,
        context: &[u8],
        message: &[u8],
        sigs: &[Signature],
    ) -> Result<String, SignatureError> {
        if sigs.is_empty() {
            return Err(SignatureError::Unsigned);
        }
        let mut good = None;
        for sig in sigs {
            let Some(key) = self.keys.iter().find(|k| k.id == sig.key_id) else {
                continue;
            };
            let bytes: [u8; 64] = hex::decode(&sig.signature)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| SignatureError::Malformed(sig.key_id.clone()))?;
            if !key.verify(context, message, &bytes) {
                return Err(SignatureError::Bad(sig.key_id.clone()));
            }
            good = Some(sig.key_id.clone());
        }
        good.ok_or_else(|| SignatureError::UnknownKey {
            found: sigs
                .iter()
                .map(|s| s.key_id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            trusted: self.ids().join(", "),
        })
    }
}

/// What is actually signed: a context string naming the kind of document,
/// a NUL, then the document. A payload manifest's signature can then never
/// be replayed as a feed's, or the other way round.
fn signed_bytes(context: &[u8], message: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(context.len() + 1 + message.len());
    v.extend_from_slice(context);
    v.push(0);
    v.extend_from_slice(message);
    v
}

fn key_id(public: &[u8; 32]) -> String {
    hex::encode(&Sha256::digest(public)[..8])
}

fn parse_line(file: &str, text: &str, tag: &str) -> Result<[u8; 32], KeyError> {
    let err = |why: String| KeyError::Parse {
        file: file.to_string(),
        why,
    };
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or_else(|| err(format!("empty; expected `{tag} <64 hex digits>`")))?;
    let mut words = line.split_whitespace();
    let found = words.next().unwrap_or_default();
    if found != tag {
        return Err(err(format!("starts with `{found}`, expected `{tag}`")));
    }
    let hex_text = words
        .next()
        .ok_or_else(|| err(format!("`{tag}` without a key")))?;
    hex::decode(hex_text)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| err("the key must be 64 hex digits (32 bytes)".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SecretKey {
        SecretKey::from_seed(&[n; 32])
    }

    #[test]
    fn key_files_round_trip() {
        let k = key(1);
        let back = SecretKey::parse("k", &k.to_line()).unwrap();
        assert_eq!(back.public(), k.public());
        let p = PublicKey::parse("p", &k.public().to_line("dev key")).unwrap();
        assert_eq!(p, k.public());
        assert_eq!(p.id().len(), 16);
    }

    #[test]
    fn bad_key_files_name_the_file() {
        let e = PublicKey::parse("/k.pub", "ssh-ed25519 AAAA").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/k.pub: starts with `ssh-ed25519`"),
            "{e}"
        );
        let e = PublicKey::parse("/k.pub", "slipway-ed25519-public abcd").unwrap_err();
        assert!(e.to_string().contains("64 hex digits"), "{e}");
        let e = SecretKey::parse("/k", &key(1).public().to_line("")).unwrap_err();
        assert!(
            e.to_string().contains("expected `slipway-ed25519-secret`"),
            "{e}"
        );
    }

    #[test]
    fn verification_accepts_trusted_and_names_refusals() {
        let (old, new, stranger) = (key(1), key(2), key(3));
        let trusted = TrustedKeys::new(vec![old.public(), new.public()]);
        let msg = b"release 2";
        let sig = new.sign(b"ctx", msg);
        assert_eq!(
            trusted
                .verify(b"ctx", msg, std::slice::from_ref(&sig))
                .unwrap(),
            new.public().id()
        );
        // Rotation: signed by a stranger and a trusted key: fine.
        let both = [stranger.sign(b"ctx", msg), old.sign(b"ctx", msg)];
        assert!(trusted.verify(b"ctx", msg, &both).is_ok());
        // Altered message, other context, unknown key, nothing.
        assert!(matches!(
            trusted.verify(b"ctx", b"release 3", std::slice::from_ref(&sig)),
            Err(SignatureError::Bad(_))
        ));
        assert!(matches!(
            trusted.verify(b"other", msg, std::slice::from_ref(&sig)),
            Err(SignatureError::Bad(_))
        ));
        assert!(matches!(
            trusted.verify(b"ctx", msg, &[stranger.sign(b"ctx", msg)]),
            Err(SignatureError::UnknownKey { .. })
        ));
        assert_eq!(
            trusted.verify(b"ctx", msg, &[]),
            Err(SignatureError::Unsigned)
        );
        let mut flipped = sig;
        flipped.signature.replace_range(0..2, "00");
        assert!(trusted.verify(b"ctx", msg, &[flipped]).is_err());
    }

    #[test]
    fn trusted_dir_needs_a_key() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            TrustedKeys::load_dir(dir.path()),
            Err(KeyError::NoKeys(_))
        ));
        std::fs::write(dir.path().join("a.pub"), key(1).public().to_line("")).unwrap();
        std::fs::write(dir.path().join("README"), "not a key").unwrap();
        assert_eq!(TrustedKeys::load_dir(dir.path()).unwrap().ids().len(), 1);
    }
}

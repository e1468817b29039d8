//! The release feed: one small signed JSON document per channel and board,
//! `<server>/<channel>/<board>.json`, naming the newest release and where
//! its payload is. Static files, so any HTTP server or object store can
//! host a feed.
//!
//! The signed document is embedded as a string (`"release"`), and the
//! signature covers exactly those bytes: no JSON canonicalisation needed,
//! and what was signed is what is parsed.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::keys::{self, SealError, SecretKey, SignatureError, TrustedKeys};
use crate::waves::{self, Wave, WaveError};

pub const FEED_CONTEXT: &[u8] = b"slipway release feed v1";
pub const FORMAT: u32 = 1;
/// A feed is small; anything bigger is not one.
pub const MAX_FEED: usize = 256 << 10;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadRef {
    /// Absolute, or relative to the feed's own URL.
    pub url: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    pub format: u32,
    pub board: String,
    pub channel: String,
    pub version: String,
    pub payload: PayloadRef,
    /// Seconds since 1970 (UTC).
    pub published: u64,
    /// Seconds since 1970 (UTC). An expired feed is refused, so a mirror
    /// or attacker replaying an old feed cannot hold machines back forever.
    pub expires: u64,
    /// Phased rollout (`waves.rs`, README.md "Phased rollout"): which
    /// machines may install how long after `published`. Absent: all of
    /// them at once, and the field is not written, so a feed without waves
    /// is the same text as before waves existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waves: Option<Vec<Wave>>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FeedError {
    #[error("feed is not valid JSON of the expected shape: {0}")]
    Json(String),
    #[error("feed signature: {0}")]
    Signature(#[from] SignatureError),
    #[error("feed field {field}: {why}")]
    Field { field: &'static str, why: String },
    #[error("feed field {0}")]
    Waves(WaveError),
    #[error("feed expired at {expires} (now {now}): the server has not published a fresh feed")]
    Expired { expires: u64, now: u64 },
    #[error("feed is for board {found}, this machine is {want}")]
    WrongBoard { found: String, want: String },
    #[error("feed is for channel {found}, this machine follows {want}")]
    WrongChannel { found: String, want: String },
}

impl Release {
    /// The signed envelope as written to `<channel>/<board>.json`.
    pub fn sign(&self, keys: &[&SecretKey]) -> Vec<u8> {
        let release = serde_json::to_string_pretty(self).unwrap_or_default();
        keys::seal("release", FEED_CONTEXT, release, keys, true)
    }

    /// Verifies and parses a feed for this machine: signature first, then
    /// the fields, expiry, board and channel.
    pub fn verify(
        bytes: &[u8],
        keys: &TrustedKeys,
        now: u64,
        board: &str,
        channel: &str,
    ) -> Result<Release, FeedError> {
        let release = keys::unseal("release", FEED_CONTEXT, bytes, keys).map_err(|e| match e {
            SealError::Json(e) => FeedError::Json(e),
            SealError::Signature(e) => FeedError::Signature(e),
        })?;
        let r: Release =
            serde_json::from_str(&release).map_err(|e| FeedError::Json(format!("release: {e}")))?;
        r.check()?;
        if r.expires <= now {
            return Err(FeedError::Expired {
                expires: r.expires,
                now,
            });
        }
        if r.board != board {
            return Err(FeedError::WrongBoard {
                found: r.board,
                want: board.to_string(),
            });
        }
        if r.channel != channel {
            return Err(FeedError::WrongChannel {
                found: r.channel,
                want: channel.to_string(),
            });
        }
        Ok(r)
    }

    fn check(&self) -> Result<(), FeedError> {
        let f = |field, why: &str| FeedError::Field {
            field,
            why: why.to_string(),
        };
        if self.format != FORMAT {
            return Err(f("format", "not supported by this engine"));
        }
        crate::version::validate(&self.version).map_err(|w| f("version", &w))?;
        if self.payload.url.is_empty() || self.payload.url.contains(char::is_whitespace) {
            return Err(f("payload.url", "empty or contains spaces"));
        }
        if self.payload.sha256.len() != 64
            || !self.payload.sha256.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(f("payload.sha256", "expected 64 hex digits"));
        }
        if self.payload.size == 0 {
            return Err(f("payload.size", "is 0"));
        }
        if self.expires <= self.published {
            return Err(f("expires", "is not after published"));
        }
        if let Some(w) = &self.waves {
            waves::validate(w, self.published, self.expires).map_err(FeedError::Waves)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Release {
        Release {
            format: 1,
            board: "qemu-x86_64".into(),
            channel: "stable".into(),
            version: "2.0".into(),
            payload: PayloadRef {
                url: "../payloads/qemu-x86_64/2.0.payload".into(),
                size: 1000,
                sha256: "ab".repeat(32),
            },
            published: 100,
            expires: 200,
            waves: None,
        }
    }

    #[test]
    fn feed_round_trips_and_refusals_are_named() {
        let key = SecretKey::from_seed(&[9; 32]);
        let keys = TrustedKeys::new(vec![key.public()]);
        let bytes = sample().sign(&[&key]);
        assert_eq!(
            Release::verify(&bytes, &keys, 150, "qemu-x86_64", "stable").unwrap(),
            sample()
        );
        assert!(matches!(
            Release::verify(&bytes, &keys, 200, "qemu-x86_64", "stable"),
            Err(FeedError::Expired { .. })
        ));
        assert!(matches!(
            Release::verify(&bytes, &keys, 150, "generic-x86_64", "stable"),
            Err(FeedError::WrongBoard { .. })
        ));
        assert!(matches!(
            Release::verify(&bytes, &keys, 150, "qemu-x86_64", "beta"),
            Err(FeedError::WrongChannel { .. })
        ));
        let other = TrustedKeys::new(vec![SecretKey::from_seed(&[1; 32]).public()]);
        assert!(matches!(
            Release::verify(&bytes, &other, 150, "qemu-x86_64", "stable"),
            Err(FeedError::Signature(SignatureError::UnknownKey { .. }))
        ));
        // Editing the signed text (a later expiry) breaks the signature.
        let text = String::from_utf8(bytes).unwrap().replace("200", "900");
        assert!(matches!(
            Release::verify(text.as_bytes(), &keys, 150, "qemu-x86_64", "stable"),
            Err(FeedError::Signature(SignatureError::Bad(_)))
        ));
    }
}

//! What this machine has already accepted, so that data signed with the
//! right key but old cannot take it back (TUF's "freeze" and "rollback"
//! attacks: a mirror or a man in the middle replaying last month's feed,
//! or a release the fleet has moved past):
//!
//! - the newest feed accepted (`published`, and the version it offered): a
//!   feed published before it is refused, however valid its signature and
//!   expiry;
//! - a minimum-version floor, raised to the running version each time a
//!   boot is blessed: no install goes below it, not even with
//!   `--allow-downgrade` (which stays for going back between releases the
//!   machine has not yet blessed past).
//!
//! Kept in `/var/lib/slipway/update/trust.json`, written durably. A file
//! that cannot be read is reported and counts as empty: it only ever
//! protects, and losing it must not stop updates (whoever can corrupt it
//! is root on the machine anyway).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::feed;
use crate::version;

pub const TRUST_FILE: &str = "/var/lib/slipway/update/trust.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trust {
    /// The newest feed accepted.
    #[serde(default)]
    pub newest_feed: Option<FeedSeen>,
    /// No release below this version is installed.
    #[serde(default)]
    pub floor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedSeen {
    /// The feed's `published`, seconds since 1970 (UTC).
    pub published: u64,
    pub version: String,
}

impl Trust {
    /// The record at `path`; a missing file is an empty record, an
    /// unreadable one too, with the reason.
    pub fn load(path: &Path) -> (Trust, Option<String>) {
        crate::files::read_json_or_default(path)
    }

    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        crate::files::write_json(path, self)
    }

    /// Refuses a feed published before the newest one accepted.
    pub fn check_feed(&self, r: &feed::Release) -> Result<(), String> {
        match &self.newest_feed {
            Some(seen) if r.published < seen.published => Err(format!(
                "the feed was published at {} (offering {}), before one this machine already \
                 accepted ({}, offering {}): an old feed is refused, however well signed (a \
                 replayed or frozen feed)",
                crate::waves::utc(r.published),
                r.version,
                crate::waves::utc(seen.published),
                seen.version
            )),
            _ => Ok(()),
        }
    }

    /// Remembers `r` if it is the newest feed seen; `true` when the record
    /// changed (and needs saving).
    pub fn accept_feed(&mut self, r: &feed::Release) -> bool {
        let newer = self
            .newest_feed
            .as_ref()
            .is_none_or(|seen| r.published > seen.published);
        if newer {
            self.newest_feed = Some(FeedSeen {
                published: r.published,
                version: r.version.clone(),
            });
        }
        newer
    }

    /// Raises the floor to `version` (never lowers it); `true` when the
    /// record changed (and needs saving).
    pub fn raise_floor(&mut self, version: &str) -> bool {
        let higher = self
            .floor
            .as_deref()
            .is_none_or(|f| version::compare(version, f) == std::cmp::Ordering::Greater);
        if higher {
            self.floor = Some(version.to_string());
        }
        higher
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::PayloadRef;

    fn release(published: u64, version: &str) -> feed::Release {
        feed::Release {
            format: feed::FORMAT,
            board: "b".into(),
            channel: "stable".into(),
            version: version.into(),
            payload: PayloadRef {
                url: "p".into(),
                size: 1,
                sha256: "ab".repeat(32),
            },
            published,
            expires: published + 100,
            waves: None,
        }
    }

    #[test]
    fn an_older_feed_is_refused_the_same_or_newer_taken() {
        let mut t = Trust::default();
        assert!(t.check_feed(&release(1000, "1.1")).is_ok());
        t.accept_feed(&release(1000, "1.1"));
        // Fetched again, or a newer one: fine.
        assert!(t.check_feed(&release(1000, "1.1")).is_ok());
        assert!(t.check_feed(&release(2000, "1.2")).is_ok());
        let e = t.check_feed(&release(999, "1.1")).unwrap_err();
        assert!(e.contains("before one this machine already accepted"), "{e}");
        // Accepting an older one never moves the mark back.
        t.accept_feed(&release(500, "1.0"));
        assert_eq!(t.newest_feed.as_ref().unwrap().published, 1000);
        t.accept_feed(&release(3000, "1.3"));
        assert_eq!(t.newest_feed.as_ref().unwrap().version, "1.3");
    }

    #[test]
    fn the_floor_only_rises() {
        let mut t = Trust::default();
        t.raise_floor("1.2");
        t.raise_floor("1.1");
        assert_eq!(t.floor.as_deref(), Some("1.2"));
        t.raise_floor("1.10");
        assert_eq!(t.floor.as_deref(), Some("1.10"));
    }

    #[test]
    fn saved_and_loaded_whole_and_a_broken_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("trust.json");
        assert_eq!(Trust::load(&p), (Trust::default(), None));
        let mut t = Trust::default();
        t.raise_floor("2.0");
        t.accept_feed(&release(7, "2.0"));
        t.save(&p).unwrap();
        assert_eq!(Trust::load(&p).0, t);
        std::fs::write(&p, b"{not json").unwrap();
        let (empty, why) = Trust::load(&p);
        assert_eq!(empty, Trust::default());
        assert!(why.unwrap().contains("not valid"));
    }
}

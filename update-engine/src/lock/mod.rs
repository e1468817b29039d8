//! Reboot coordination across a fleet: a machine takes a lock before it
//! reboots into an update and frees it once the new boot is blessed (or
//! rolled back), so no more than `max` machines are down at once.
//!
//! - [`etcd`]: locksmith's semaphore (`REBOOT_STRATEGY=etcd-lock`) in etcd,
//!   through etcd's v3 JSON gateway;
//! - [`fleetlock`]: Zincati's FleetLock protocol, for fleets that run a
//!   lock server (airlock and the like);
//! - [`semaphore`]: the semaphore value and its changes, pure.
//!
//! Both clients implement [`RebootLock`], which is what the daemon needs.

pub mod codec;
pub mod coordinator;
pub mod etcd;
pub mod fleetlock;
pub mod semaphore;

use std::time::Duration;

use semaphore::SemaphoreError;

pub use crate::files::{machine_id, MACHINE_ID_PATH};

/// The endpoint locksmith used when none is configured: the local member.
pub const DEFAULT_ETCD_ENDPOINT: &str = "http://127.0.0.1:2379";

/// How long one request to a lock server may take, connect included. A
/// dead endpoint costs at most this before the next one is tried.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What the daemon asks of a reboot lock, whatever its kind.
pub trait RebootLock {
    /// Takes the lock for `id`; holding it already is success.
    fn acquire(&self, id: &str) -> Result<(), LockError>;
    /// Frees `id`'s hold; not holding it is success (a retried release
    /// whose first answer was lost must not look like a failure).
    fn release(&self, id: &str) -> Result<(), LockError>;
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The semaphore at `key` refused the change, or is not locksmith's
    /// JSON (then it was left as it is).
    #[error("{key}: {error}")]
    Semaphore { key: String, error: SemaphoreError },
    /// No endpoint gave an answer; each is listed with what went wrong.
    #[error("no {what} answered (tried {})", tried_list(.tried))]
    Unreachable {
        what: &'static str,
        tried: Vec<(String, String)>,
    },
    /// Other machines changed the key between each read and write.
    #[error(
        "{key}: gave up after {attempts} attempts: the key changed under every compare-and-swap"
    )]
    Conflict { key: String, attempts: u32 },
    /// A server answered, but not as the protocol says.
    #[error("{url}: {message}")]
    Protocol { url: String, message: String },
    /// A FleetLock server refused (any status but 200).
    #[error("{url}: the lock server refused with HTTP {status}: {reason}")]
    Refused {
        url: String,
        status: u16,
        reason: String,
    },
    /// The configuration cannot work (bad URL, https, bad group).
    #[error("{0}")]
    Config(String),
}

impl LockError {
    /// The lock is held by others: not a fault, the caller waits.
    pub fn is_busy(&self) -> bool {
        match self {
            LockError::Semaphore { error, .. } => matches!(error, SemaphoreError::Busy { .. }),
            // FleetLock servers answer a busy lock with a non-200; the
            // caller retries either way.
            LockError::Refused { .. } => true,
            _ => false,
        }
    }
}

fn tried_list(tried: &[(String, String)]) -> String {
    tried
        .iter()
        .map(|(url, why)| format!("{url}: {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// [`crate::fetch::check_http_url`], refusing with a configuration error.
pub fn check_url(what: &str, url: &str) -> Result<String, LockError> {
    crate::fetch::check_http_url(what, url).map_err(LockError::Config)
}

/// The etcd endpoints of `LOCKSMITHD_ENDPOINT` (locksmith's comma-separated
/// list), or the local member when it is unset or empty.
pub fn configured_endpoints(locksmith: &std::collections::BTreeMap<String, String>) -> Vec<String> {
    let list: Vec<String> = locksmith
        .get("LOCKSMITHD_ENDPOINT")
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if list.is_empty() {
        vec![DEFAULT_ETCD_ENDPOINT.to_owned()]
    } else {
        list
    }
}

/// `LOCKSMITHD_GROUP`, if set and not empty.
pub fn configured_group(locksmith: &std::collections::BTreeMap<String, String>) -> Option<String> {
    locksmith
        .get("LOCKSMITHD_GROUP")
        .map(|g| g.trim().to_owned())
        .filter(|g| !g.is_empty())
}

/// One HTTP agent for lock requests: statuses are ours to read (FleetLock's
/// JSON errors, etcd's gateway errors), and every phase is bounded.
pub(crate) fn agent() -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(REQUEST_TIMEOUT))
        .build();
    ureq::Agent::new_with_config(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn urls_are_checked_and_normalised() {
        assert_eq!(
            check_url("endpoint", " http://10.0.0.1:2379/ ").unwrap(),
            "http://10.0.0.1:2379"
        );
        assert_eq!(
            check_url("base", "HTTP://lock.example/fleet").unwrap(),
            "HTTP://lock.example/fleet"
        );
        let e = check_url("endpoint", "https://10.0.0.1:2379").unwrap_err();
        assert!(e.to_string().contains("https is not supported"), "{e}");
        let e = check_url("endpoint", "10.0.0.1:2379").unwrap_err();
        assert!(e.to_string().contains("not an http:// URL"), "{e}");
        assert!(check_url("endpoint", "http://").is_err());
        assert!(check_url("endpoint", "http:///x").is_err());
    }

    #[test]
    fn endpoints_come_from_locksmithd_endpoint_or_the_local_member() {
        let mut m = BTreeMap::new();
        assert_eq!(configured_endpoints(&m), vec![DEFAULT_ETCD_ENDPOINT]);
        m.insert("LOCKSMITHD_ENDPOINT".to_owned(), " ".to_owned());
        assert_eq!(configured_endpoints(&m), vec![DEFAULT_ETCD_ENDPOINT]);
        m.insert(
            "LOCKSMITHD_ENDPOINT".to_owned(),
            "http://10.0.0.1:2379, http://10.0.0.2:2379,".to_owned(),
        );
        assert_eq!(
            configured_endpoints(&m),
            vec!["http://10.0.0.1:2379", "http://10.0.0.2:2379"]
        );
        assert_eq!(configured_group(&m), None);
        m.insert("LOCKSMITHD_GROUP".to_owned(), "web".to_owned());
        assert_eq!(configured_group(&m).as_deref(), Some("web"));
    }

    #[test]
    fn machine_id_is_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("machine-id");
        std::fs::write(&p, "0123456789abcdef0123456789ABCDEF\n").unwrap();
        assert_eq!(machine_id(&p).unwrap(), "0123456789abcdef0123456789ABCDEF");
        std::fs::write(&p, "uninitialized\n").unwrap();
        let e = machine_id(&p).unwrap_err().to_string();
        assert!(
            e.contains("not a machine ID") && e.contains("machine-id"),
            "{e}"
        );
        let e = machine_id(&dir.path().join("none"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("none"), "{e}");
    }

    #[test]
    fn busy_is_told_apart_from_faults() {
        let busy = LockError::Semaphore {
            key: "k".into(),
            error: SemaphoreError::Busy {
                holders: vec!["a".into()],
                semaphore: 0,
                max: 1,
            },
        };
        assert!(busy.is_busy());
        assert_eq!(
            busy.to_string(),
            "k: the reboot lock is busy: 1 of 1 held by a"
        );
        let down = LockError::Unreachable {
            what: "etcd endpoint",
            tried: vec![
                ("http://a:1".into(), "connection refused".into()),
                ("http://b:2".into(), "timeout".into()),
            ],
        };
        assert!(!down.is_busy());
        assert_eq!(
            down.to_string(),
            "no etcd endpoint answered (tried http://a:1: connection refused; http://b:2: timeout)"
        );
    }
}

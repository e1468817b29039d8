//! What the daemon does between "installed" and "reboot", and after the
//! boot that follows, for the strategies that take a lock (`etcd-lock`,
//! `fleetlock`, and `best-effort` when an etcd answers).
//!
//! The order, which is the whole point:
//! 1. the passive slot is fully written (the daemon calls us after apply);
//! 2. inside the maintenance window, take the lock, retrying with backoff
//!    for as long as it takes: never reboot without it;
//! 3. record the hold in [`HOLD_FILE`] (on `/var`, so the next boot knows),
//!    then ask PID 1 for the reboot;
//! 4. on the next boot, once the booted slot is blessed (PID 1's health
//!    check passed), or once the machine is back on the old slot after a
//!    rollback, free the lock and forget the hold. A trial boot that is
//!    not yet blessed keeps the lock: the machine is not healthy yet.
//!
//! A release that failed its trial boots is recorded in etcd under
//! [`FAILED_PREFIX`]`/<version>`: the other machines of the fleet do not
//! install it, and one that already did does not reboot into it (its entry
//! is marked bad so no later reboot picks it).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::etcd::EtcdLock;
use super::fleetlock::FleetLock;
use super::{configured_endpoints, configured_group, LockError, RebootLock};
use crate::config::{Config, RebootStrategy};
use crate::esp::EntryState;
use crate::state::now_unix;
use crate::system::System;

/// The hold taken before a reboot, read back on the next boot.
pub const HOLD_FILE: &str = "/var/lib/slipway/update/reboot-lock.json";

/// etcd keys `<prefix>/<version>`: releases that failed their trial boots
/// on some machine of the fleet. Not locksmith's: it never had this.
pub const FAILED_PREFIX: &str = "slipway/updateengine/failed-releases";

const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// Waits between attempts on a busy lock: short enough that a fleet
/// rolls on quickly once a machine frees it.
const BUSY_RETRY: Duration = Duration::from_secs(10);
/// Waits after a fault (no etcd answered, a lock value that is not
/// locksmith's JSON): doubling from the first to the last.
const FAULT_RETRY_FIRST: Duration = Duration::from_secs(5);
const FAULT_RETRY_LAST: Duration = Duration::from_secs(300);

/// Which lock a hold is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Where {
    Etcd {
        endpoints: Vec<String>,
        group: Option<String>,
    },
    FleetLock {
        url: String,
        group: String,
    },
}

/// What [`HOLD_FILE`] records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    #[serde(flatten)]
    pub at: Where,
    /// The holder name (the machine ID).
    pub id: String,
    /// The release the machine reboots into, and the one it ran.
    pub version: String,
    pub from_version: String,
    /// The boot that took the lock: a hold of this same boot means the
    /// reboot has not happened yet.
    pub boot_id: String,
    pub acquired_at: u64,
}

/// A lock client for a hold's place.
pub enum Client {
    Etcd(EtcdLock),
    Fleet(FleetLock),
}

impl Client {
    fn open(at: &Where) -> Result<Client, LockError> {
        Ok(match at {
            Where::Etcd { endpoints, group } => {
                Client::Etcd(EtcdLock::new(endpoints, group.as_deref())?)
            }
            Where::FleetLock { url, group } => Client::Fleet(FleetLock::new(url, Some(group))?),
        })
    }

    fn lock(&self) -> &dyn RebootLock {
        match self {
            Client::Etcd(l) => l,
            Client::Fleet(l) => l,
        }
    }

    fn describe(at: &Where) -> String {
        match at {
            Where::Etcd { endpoints, group } => format!(
                "etcd lock {} at {}",
                super::etcd::semaphore_key(group.as_deref()),
                endpoints.join(",")
            ),
            Where::FleetLock { url, group } => format!("FleetLock {url} group {group}"),
        }
    }
}

/// Where the configured strategy takes its lock; `None` for strategies
/// without one (and `best-effort` when no etcd answers).
pub fn lock_place(cfg: &Config) -> Result<Option<Where>, LockError> {
    let etcd = || Where::Etcd {
        endpoints: configured_endpoints(&cfg.locksmith),
        group: configured_group(&cfg.locksmith),
    };
    Ok(match cfg.reboot_strategy {
        RebootStrategy::Reboot | RebootStrategy::Off => None,
        RebootStrategy::EtcdLock => Some(etcd()),
        RebootStrategy::FleetLock => {
            let url = cfg.fleetlock_url.clone().ok_or_else(|| {
                LockError::Config("REBOOT_STRATEGY=fleetlock needs FLEETLOCK_URL".into())
            })?;
            Some(Where::FleetLock {
                url,
                group: cfg.fleetlock_group.clone(),
            })
        }
        RebootStrategy::BestEffort => {
            let at = etcd();
            let Client::Etcd(lock) = Client::open(&at)? else {
                unreachable!("an etcd place opens an etcd client")
            };
            // Container Linux's rule: the lock when etcd is there.
            match lock.read() {
                Err(LockError::Unreachable { .. }) => None,
                _ => Some(at),
            }
        }
    })
}

fn boot_id() -> String {
    std::fs::read_to_string(BOOT_ID)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

pub fn load_hold(path: &Path) -> Result<Option<Hold>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("{}: not a reboot-lock record", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn save_hold(path: &Path, hold: &Hold) -> Result<()> {
    // The record must survive the reboot it announces, or a power cut
    // could leave a lock held with nobody knowing to free it: write_json
    // syncs the file and its folder.
    crate::files::write_json(path, hold).with_context(|| format!("writing {}", path.display()))
}

fn forget_hold(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

fn failed_key(version: &str) -> String {
    format!("{FAILED_PREFIX}/{version}")
}

/// Whether the fleet has recorded `version` as failed (etcd only; `None`
/// when no etcd answered: then nothing is known).
pub fn failed_in_fleet(at: &Where, version: &str) -> Option<String> {
    let Ok(Client::Etcd(lock)) = Client::open(at) else {
        return None;
    };
    lock.get(&failed_key(version))
        .ok()
        .flatten()
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// What the daemon should do after [`settle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Nothing held, or freed now: check for updates as usual.
    Free,
    /// The lock is held for a boot that is not blessed yet (or freeing it
    /// failed): look again soon, do not install anything meanwhile.
    Pending(String),
}

/// On a boot after a reboot under a lock: frees the lock once the booted
/// slot is good, and records a rollback in the fleet.
pub fn settle(sys: &System, path: &Path, say: &dyn Fn(&str)) -> Result<Settled> {
    let Some(hold) = load_hold(path)? else {
        return Ok(Settled::Free);
    };
    if hold.boot_id == boot_id() {
        // Taken by this very boot: the reboot it was for is still to come
        // (or asking for it failed, and the daemon frees it itself).
        return Ok(Settled::Free);
    }
    let slot = sys.machine.running.slot;
    let state = sys.esp.entry(slot)?.map(|e| e.state);
    if state != Some(EntryState::Good) {
        return Ok(Settled::Pending(format!(
            "holding the reboot lock until slot {} ({}) is blessed",
            slot.letter(),
            sys.machine.running.version
        )));
    }
    let running = &sys.machine.running.version;
    let client = Client::open(&hold.at)?;
    if *running != hold.version {
        // Back on the old release: the new one failed its trial boots.
        if let Client::Etcd(lock) = &client {
            let record = serde_json::json!({
                "machine": hold.id,
                "at": now_unix(),
                "rolled_back_to": running,
            })
            .to_string();
            if let Err(e) = lock.create(&failed_key(&hold.version), record.as_bytes()) {
                return Ok(Settled::Pending(format!(
                    "recording that {} failed in etcd: {e}",
                    hold.version
                )));
            }
        }
        say(&format!(
            "{} failed its trial boots; back on {running}; recorded for the fleet",
            hold.version
        ));
    }
    if let Err(e) = client.lock().release(&hold.id) {
        return Ok(Settled::Pending(format!("freeing the reboot lock: {e}")));
    }
    forget_hold(path)?;
    let now = now_unix();
    say(&format!(
        "reboot lock released by {} at {now} after {} s ({}, running {running})",
        hold.id,
        now.saturating_sub(hold.acquired_at),
        Client::describe(&hold.at)
    ));
    Ok(Settled::Free)
}

/// What [`take`] ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// The lock is held and recorded: reboot now.
    Reboot,
    /// The fleet recorded `version` as failed: its entry is marked bad
    /// and the machine stays where it is.
    FailedElsewhere(String),
}

/// Takes the lock for rebooting into `version`, waiting as long as it
/// takes; `in_window` says whether the maintenance window is open (the
/// caller waits for it before calling, and it is asked again once the
/// lock is held, since taking it may have taken hours).
pub fn take(
    sys: &System,
    at: &Where,
    id: &str,
    version: &str,
    path: &Path,
    in_window: &dyn Fn() -> bool,
    say: &dyn Fn(&str),
) -> Result<Taken> {
    let client = Client::open(at)?;
    let mut fault_wait = FAULT_RETRY_FIRST;
    let mut last_busy = String::new();
    loop {
        if let Some(record) = failed_in_fleet(at, version) {
            mark_passive_bad(sys, version)?;
            return Ok(Taken::FailedElsewhere(record));
        }
        match client.lock().acquire(id) {
            Ok(()) => {
                let hold = Hold {
                    at: at.clone(),
                    id: id.to_owned(),
                    version: version.to_owned(),
                    from_version: sys.machine.running.version.clone(),
                    boot_id: boot_id(),
                    acquired_at: now_unix(),
                };
                if let Err(e) = save_hold(path, &hold) {
                    let _ = client.lock().release(id);
                    return Err(e.context("recording the reboot lock (freed it again)"));
                }
                if let Some(record) = failed_in_fleet(at, version) {
                    free_now(&client, id, path, say);
                    mark_passive_bad(sys, version)?;
                    return Ok(Taken::FailedElsewhere(record));
                }
                if !in_window() {
                    free_now(&client, id, path, say);
                    say("the maintenance window closed while waiting for the lock: freed it");
                    return Err(anyhow::anyhow!(
                        "the maintenance window closed; trying again in the next one"
                    ));
                }
                say(&format!(
                    "reboot lock taken by {id} at {} ({}): rebooting into {version}",
                    hold.acquired_at,
                    Client::describe(at)
                ));
                return Ok(Taken::Reboot);
            }
            Err(e) if e.is_busy() => {
                let text = e.to_string();
                if text != last_busy {
                    say(&format!(
                        "{version} installed; waiting for the reboot lock: {text}"
                    ));
                    last_busy = text;
                }
                fault_wait = FAULT_RETRY_FIRST;
                std::thread::sleep(BUSY_RETRY);
            }
            Err(e) => {
                say(&format!(
                    "{version} installed; cannot take the reboot lock, not rebooting; \
                     retrying in {} s: {e}",
                    fault_wait.as_secs()
                ));
                last_busy.clear();
                std::thread::sleep(fault_wait);
                fault_wait = (fault_wait * 2).min(FAULT_RETRY_LAST);
            }
        }
    }
}

/// Frees a hold of this boot (the reboot is not going to happen).
pub fn free_now(client: &Client, id: &str, path: &Path, say: &dyn Fn(&str)) {
    match client.lock().release(id) {
        Ok(()) => {
            let _ = forget_hold(path);
        }
        Err(e) => say(&format!(
            "freeing the reboot lock failed (the next round retries): {e}"
        )),
    }
}

/// Frees the hold recorded by this boot when its reboot did not happen.
pub fn abandon(path: &Path, say: &dyn Fn(&str)) {
    if let Ok(Some(hold)) = load_hold(path) {
        if hold.boot_id == boot_id() {
            if let Ok(client) = Client::open(&hold.at) {
                free_now(&client, &hold.id, path, say);
            }
        }
    }
}

/// Marks the passive slot's entry for `version` bad, so that no reboot,
/// planned or not, starts a release the fleet saw fail.
fn mark_passive_bad(sys: &System, version: &str) -> Result<()> {
    let passive = sys.machine.running.slot.other();
    if let Some(entry) = sys.esp.entry(passive)? {
        if entry.version.as_deref() == Some(version) && entry.state != (EntryState::Bad { done: 0 })
        {
            sys.esp.set_state(passive, EntryState::Bad { done: 0 })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_record_round_trips_and_names_its_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("reboot-lock.json");
        assert_eq!(load_hold(&path).unwrap(), None);
        let hold = Hold {
            at: Where::Etcd {
                endpoints: vec!["http://10.0.0.1:2379".into()],
                group: Some("web".into()),
            },
            id: "0123456789abcdef0123456789abcdef".into(),
            version: "2.0.0".into(),
            from_version: "1.0.0".into(),
            boot_id: "b".into(),
            acquired_at: 7,
        };
        save_hold(&path, &hold).unwrap();
        assert_eq!(load_hold(&path).unwrap(), Some(hold.clone()));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"kind\": \"etcd\""), "{text}");
        forget_hold(&path).unwrap();
        forget_hold(&path).unwrap();
        assert_eq!(load_hold(&path).unwrap(), None);
        std::fs::write(&path, "{").unwrap();
        let e = load_hold(&path).unwrap_err().to_string();
        assert!(e.contains("not a reboot-lock record"), "{e}");
    }

    #[test]
    fn strategies_choose_their_lock() {
        let mut cfg = Config::default();
        assert_eq!(lock_place(&cfg).unwrap(), None);
        cfg.reboot_strategy = RebootStrategy::EtcdLock;
        cfg.locksmith.insert(
            "LOCKSMITHD_ENDPOINT".into(),
            "http://10.0.0.1:2379,http://10.0.0.2:2379".into(),
        );
        assert_eq!(
            lock_place(&cfg).unwrap(),
            Some(Where::Etcd {
                endpoints: vec!["http://10.0.0.1:2379".into(), "http://10.0.0.2:2379".into()],
                group: None
            })
        );
        cfg.reboot_strategy = RebootStrategy::FleetLock;
        assert!(lock_place(&cfg).is_err());
        cfg.fleetlock_url = Some("http://10.0.0.9:8080".into());
        assert_eq!(
            lock_place(&cfg).unwrap(),
            Some(Where::FleetLock {
                url: "http://10.0.0.9:8080".into(),
                group: "default".into()
            })
        );
        // best-effort with no etcd answering: a plain reboot.
        cfg.reboot_strategy = RebootStrategy::BestEffort;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        cfg.locksmith.insert(
            "LOCKSMITHD_ENDPOINT".into(),
            format!("http://127.0.0.1:{port}"),
        );
        assert_eq!(lock_place(&cfg).unwrap(), None);
    }
}

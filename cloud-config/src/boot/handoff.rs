//! What the local stage tells the network stage, in `/run` (gone at the
//! next boot, root-only): whether a local source was found, and if so its
//! user-data and metadata, so the network stage runs `runcmd` and scripts
//! from the same user-data without mounting the seeds again.
//!
//! And, on `/var`, the one piece that must survive a power cut between the
//! stages: whether this instance's `runcmd` is still to run.

use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use slipway_boot_contract::atomic::{self, Durability};

use crate::datasource::Metadata;

const DIR: &str = "/run/slipway/cloud-config";
const STATE: &str = "/run/slipway/cloud-config/local.json";
const USER_DATA: &str = "/run/slipway/cloud-config/user-data";

/// `pending <instance>` after the local stage applied a new instance whose
/// `runcmd` has yet to run; `done <instance>` once the network stage
/// started it. Written durably: `runcmd` runs at most once per instance,
/// and at the latest at the next boot when the machine lost power before
/// the network stage.
const RUNCMD: &str = "/var/lib/slipway/cloud-config/runcmd";

/// What the local stage found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "local", rename_all = "kebab-case")]
pub(super) enum Handoff {
    /// No local source: the network stage tries the network ones.
    None,
    /// A local source; its user-data (if any) is in [`USER_DATA`].
    Found {
        source: String,
        instance_id: String,
        metadata: Metadata,
        has_user_data: bool,
    },
    /// A local source that could not be read: nothing is applied, and the
    /// network sources are not tried either (see `crate::datasource`,
    /// "Absent versus broken").
    Broken { why: String },
}

/// Writes the hand-off (and the user-data beside it), root-only.
pub(super) fn write(handoff: &Handoff, user_data: Option<&[u8]>) -> std::io::Result<()> {
    // Only the last folder is root's alone: `/run/slipway` holds sockets
    // other users reach (the notify socket a `User=etcd` service sends
    // to), and a recursive builder would give every folder it makes 0700.
    if let Some(parent) = Path::new(DIR).parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(DIR) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    if let Some(bytes) = user_data {
        write_private(Path::new(USER_DATA), bytes)?;
    }
    let json = serde_json::to_vec_pretty(handoff).map_err(std::io::Error::other)?;
    write_private(Path::new(STATE), &json)
}

/// The hand-off and the user-data beside it.
pub(super) type Received = (Handoff, Option<Vec<u8>>);

/// `Ok(None)`: the local stage left nothing (it did not run or did not
/// finish).
pub(super) fn read() -> Result<Option<Received>, String> {
    let bytes = match std::fs::read(STATE) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{STATE}: {e}")),
    };
    let handoff: Handoff = serde_json::from_slice(&bytes).map_err(|e| format!("{STATE}: {e}"))?;
    let user_data = match &handoff {
        Handoff::Found {
            has_user_data: true,
            ..
        } => Some(std::fs::read(USER_DATA).map_err(|e| format!("{USER_DATA}: {e}"))?),
        _ => None,
    };
    Ok(Some((handoff, user_data)))
}

/// Root-only from the moment it exists (a fresh temporary file renamed
/// over the old one).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    atomic::write_atomic_mode(path, bytes, 0o600, Durability::Atomic)
}

/// Marks this instance's `runcmd` as still to run.
pub(super) fn runcmd_pending(instance_id: &str) -> std::io::Result<()> {
    write_runcmd(&format!("pending {instance_id}\n"))
}

/// Whether the local stage left `runcmd` to run for this instance.
pub(super) fn runcmd_is_pending(instance_id: &str) -> bool {
    std::fs::read_to_string(RUNCMD)
        .is_ok_and(|s| s.trim().strip_prefix("pending ") == Some(instance_id))
}

/// Records, before the first command starts, that this instance's
/// `runcmd` ran: a command that reboots the machine must not run again.
pub(super) fn runcmd_started(instance_id: &str) -> std::io::Result<()> {
    write_runcmd(&format!("done {instance_id}\n"))
}

fn write_runcmd(text: &str) -> std::io::Result<()> {
    if let Some(dir) = Path::new(RUNCMD).parent() {
        std::fs::create_dir_all(dir)?;
    }
    atomic::write_atomic(Path::new(RUNCMD), text.as_bytes(), Durability::Durable)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_handoff_round_trips_through_json() {
        let h = Handoff::Found {
            source: "NoCloud (/dev/vdb)".into(),
            instance_id: "iid-1".into(),
            metadata: Metadata {
                public_keys: vec!["ssh-ed25519 AAAA k".into()],
                ..Metadata::default()
            },
            has_user_data: true,
        };
        let json = serde_json::to_string(&h).unwrap();
        assert!(json.contains("\"local\":\"found\""), "{json}");
        assert_eq!(serde_json::from_str::<Handoff>(&json).unwrap(), h);
        let none: Handoff = serde_json::from_str("{\"local\":\"none\"}").unwrap();
        assert_eq!(none, Handoff::None);
    }
}

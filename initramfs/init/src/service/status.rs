//! What the manager reports about units and the boot.

use std::path::PathBuf;
use std::time::Duration;

/// The active state and the boot's health are the control protocol's
/// own types: what `slipctl` shows is what the manager decides.
/// `Health`: `healthy` once every unit of the boot has started and stayed
/// up for the grace period (then it stays so for this boot), `unhealthy`
/// while one of them has failed.
pub use slipway_control::{ActiveState, Health};

/// One unit's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitInfo {
    pub name: String,
    pub description: Option<String>,
    pub load: String,
    pub enabled: bool,
    pub active: ActiveState,
    pub sub: String,
    pub main_pid: Option<i32>,
    /// Time since the active state last changed.
    pub since_ago: Duration,
    pub restarts: u32,
    pub result: Option<String>,
    pub memory_bytes: Option<u64>,
    pub tasks: Option<u32>,
    pub log: Option<PathBuf>,
}

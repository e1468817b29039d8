//! What the manager reports about units and the boot.

use std::path::PathBuf;
use std::time::Duration;

/// `systemctl`'s active state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActiveState {
    Inactive,
    Activating,
    Active,
    Deactivating,
    Failed,
}

impl ActiveState {
    pub fn as_str(self) -> &'static str {
        match self {
            ActiveState::Inactive => "inactive",
            ActiveState::Activating => "activating",
            ActiveState::Active => "active",
            ActiveState::Deactivating => "deactivating",
            ActiveState::Failed => "failed",
        }
    }
}

/// The boot's health, for boot assessment: `healthy` once every unit of
/// the boot has started and stayed up for the grace period (then it
/// stays so for this boot), `unhealthy` while one of them has failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Starting,
    Healthy,
    Unhealthy,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

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

//! Where the service manager finds and puts things; the defaults are the
//! machine's, tests use a temporary tree.

use std::path::PathBuf;
use std::time::Duration;

use super::cgroup::SERVICES_CGROUP;
use super::logs::{DEFAULT_MAX_BYTES, LOG_DIR};
use super::notify::NOTIFY_SOCKET;

/// The target the boot starts.
pub const DEFAULT_TARGET: &str = "multi-user.target";
/// Where cloud-config queues `coreos.units` commands.
pub const UNIT_COMMANDS: &str = "/run/slipway/unit-commands";
/// The boot's health for the update engine (`starting`, `healthy`,
/// `unhealthy: <why>`).
pub const HEALTH_FILE: &str = "/run/slipway/health";
/// How long the boot's units must have stayed up before the boot counts
/// as healthy.
pub const DEFAULT_HEALTH_GRACE: Duration = Duration::from_secs(10);
/// See [`Config::settle_timeout`]. Ten minutes: far above a normal boot
/// under emulation, short enough that a hung trial boot rolls back.
pub const DEFAULT_SETTLE_TIMEOUT: Duration = Duration::from_secs(600);

/// Where things are; the defaults are the machine's, tests use a
/// temporary tree.
#[derive(Debug, Clone)]
pub struct Config {
    /// Unit files, `/etc/passwd` and conditions are read under it.
    pub root: PathBuf,
    pub cgroup_parent: Option<PathBuf>,
    pub log_dir: PathBuf,
    pub log_max_bytes: u64,
    pub health_file: Option<PathBuf>,
    pub health_grace: Duration,
    pub target: String,
    /// Run as `HOOK on-health healthy|unhealthy` once the boot's health
    /// settles: the update engine blesses a healthy boot and reboots an
    /// unhealthy trial boot. PID 1 runs it itself, not through a unit,
    /// because rollback must never depend on a service the user can
    /// disable.
    pub health_hook: Option<PathBuf>,
    /// A boot still `starting` this long after the manager started is
    /// reported to the hook as unhealthy (health itself stays `starting`):
    /// a trial boot whose units hang must still roll back.
    pub settle_timeout: Duration,
    /// The `Type=notify` socket ([`NOTIFY_SOCKET`]); `None`: none (notify
    /// services then time out).
    pub notify_socket: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            root: PathBuf::from("/"),
            cgroup_parent: Some(PathBuf::from(SERVICES_CGROUP)),
            log_dir: PathBuf::from(LOG_DIR),
            log_max_bytes: DEFAULT_MAX_BYTES,
            health_file: Some(PathBuf::from(HEALTH_FILE)),
            health_grace: DEFAULT_HEALTH_GRACE,
            target: DEFAULT_TARGET.to_string(),
            health_hook: None,
            settle_timeout: DEFAULT_SETTLE_TIMEOUT,
            notify_socket: Some(PathBuf::from(NOTIFY_SOCKET)),
        }
    }
}

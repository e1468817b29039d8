//! Where things are: the socket, the log files, unit names.

use std::path::{Path, PathBuf};

/// The socket the PID 1 listens on.
pub const SOCKET_PATH: &str = "/run/slipway/control.sock";
/// Environment variable with which clients use another socket (tests).
pub const SOCKET_ENV: &str = "SLIPWAY_CONTROL_SOCKET";
/// The directory of the units' log files.
pub const LOG_DIR: &str = "/var/log/services";
/// Environment variable with which clients read logs from another directory.
pub const LOG_DIR_ENV: &str = "SLIPWAY_LOG_DIR";

/// The socket a client connects to: `$SLIPWAY_CONTROL_SOCKET` if set and
/// not empty, else [`SOCKET_PATH`]. (The server always uses `SOCKET_PATH`.)
pub fn socket_path() -> PathBuf {
    env_path(SOCKET_ENV).unwrap_or_else(|| PathBuf::from(SOCKET_PATH))
}

/// The log directory a client reads: `$SLIPWAY_LOG_DIR` if set and not
/// empty, else [`LOG_DIR`].
pub fn log_dir() -> PathBuf {
    env_path(LOG_DIR_ENV).unwrap_or_else(|| PathBuf::from(LOG_DIR))
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The current log file of `unit`: `<log_dir>/<unit>.log`. A `/` in the
/// name (never in a valid unit name) is replaced by `-`, so the file stays
/// in `log_dir`.
pub fn log_path(log_dir: &Path, unit: &str) -> PathBuf {
    log_dir.join(format!("{}.log", file_stem(unit)))
}

/// The previous log file of `unit`, after rotation: `<log_dir>/<unit>.log.1`.
pub fn previous_log_path(log_dir: &Path, unit: &str) -> PathBuf {
    log_dir.join(format!("{}.log.1", file_stem(unit)))
}

fn file_stem(unit: &str) -> String {
    unit.replace(['/', '\0'], "-")
}

/// The unit types systemd knows (a name ends with one; a name without
/// one gets `.service`). The init's unit loader uses the same list.
pub const UNIT_TYPES: &[&str] = &[
    "service",
    "socket",
    "target",
    "timer",
    "mount",
    "automount",
    "swap",
    "path",
    "slice",
    "scope",
    "device",
];

/// The unit a user means, as `systemctl` reads it: `sshd` → `sshd.service`,
/// `sshd.service` and `multi-user.target` unchanged.
pub fn unit_name(name: &str) -> String {
    let has_suffix = name
        .rsplit_once('.')
        .is_some_and(|(stem, suffix)| !stem.is_empty() && UNIT_TYPES.contains(&suffix));
    if has_suffix {
        name.to_owned()
    } else {
        format!("{name}.service")
    }
}

//! The messages: what a client asks and what the server answers.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a client asks, one per connection. Internally tagged by
/// `"command"`, lowercase: `{"command":"start","unit":"sshd.service"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "lowercase")]
pub enum Request {
    /// The whole system (`unit: None`) or one unit.
    Status {
        #[serde(default)]
        unit: Option<String>,
    },
    Start {
        unit: String,
    },
    Stop {
        unit: String,
    },
    Restart {
        unit: String,
    },
    /// Enable the unit for the next boots; with `now`, start it too.
    Enable {
        unit: String,
        #[serde(default)]
        now: bool,
    },
    /// Disable the unit for the next boots; with `now`, stop it too.
    Disable {
        unit: String,
        #[serde(default)]
        now: bool,
    },
    Reboot,
    Poweroff,
}

impl Request {
    /// The unit the request is about, if any.
    pub fn unit(&self) -> Option<&str> {
        match self {
            Request::Status { unit } => unit.as_deref(),
            Request::Start { unit }
            | Request::Stop { unit }
            | Request::Restart { unit }
            | Request::Enable { unit, .. }
            | Request::Disable { unit, .. } => Some(unit),
            Request::Reboot | Request::Poweroff => None,
        }
    }

    /// The `command` tag: `status`, `start`, …
    pub fn command(&self) -> &'static str {
        match self {
            Request::Status { .. } => "status",
            Request::Start { .. } => "start",
            Request::Stop { .. } => "stop",
            Request::Restart { .. } => "restart",
            Request::Enable { .. } => "enable",
            Request::Disable { .. } => "disable",
            Request::Reboot => "reboot",
            Request::Poweroff => "poweroff",
        }
    }
}

/// The server's answer. `ok` tells success; `message` is for the user on
/// success, `error` on failure; `status` answers a `status` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub status: Option<SystemStatus>,
}

impl Response {
    /// Success with a message for the user.
    pub fn ok(message: impl Into<String>) -> Response {
        Response {
            ok: true,
            message: Some(message.into()),
            error: None,
            status: None,
        }
    }

    /// Failure with an error for the user.
    pub fn err(error: impl Into<String>) -> Response {
        Response {
            ok: false,
            message: None,
            error: Some(error.into()),
            status: None,
        }
    }

    /// Success answering a `status` request.
    pub fn with_status(status: SystemStatus) -> Response {
        Response {
            ok: true,
            message: None,
            error: None,
            status: Some(status),
        }
    }
}

/// The state of the boot and of its units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemStatus {
    pub health: Health,
    /// Why the boot is not healthy (yet), e.g. `web.service failed`.
    #[serde(default)]
    pub health_detail: Option<String>,
    /// Boot clock (CLOCK_BOOTTIME) in ms when the answer was made.
    pub uptime_ms: u64,
    #[serde(default)]
    pub units: Vec<UnitStatus>,
}

/// The boot's health, for boot assessment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
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

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `systemctl`'s active state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
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

impl fmt::Display for ActiveState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One unit's status, as `systemctl status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitStatus {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// `loaded`, `masked`, `not-found`, `error`, `unsupported`.
    pub load: String,
    pub enabled: bool,
    pub active: ActiveState,
    /// `running`, `exited`, `dead`, `auto-restart`, `start-pre`,
    /// `start-post`, `stop-sigterm`, `stop-sigkill`, `condition-failed`, …
    pub sub: String,
    #[serde(default)]
    pub main_pid: Option<i32>,
    /// Boot clock (ms) of the last active-state change.
    pub since_ms: u64,
    #[serde(default)]
    pub restarts: u32,
    /// The last failure cause: `exit status 1`, `killed by SIGKILL`,
    /// `start timeout`, `start limit hit`, `dependency failed: x.service`, …
    #[serde(default)]
    pub result: Option<String>,
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    #[serde(default)]
    pub tasks: Option<u32>,
    /// Path of its current log file.
    #[serde(default)]
    pub log: Option<String>,
    /// The last `STATUS=` a `Type=notify` service sent (`sd_notify(3)`).
    #[serde(default)]
    pub status_text: Option<String>,
}

//! What the state machine ([`super::machine::Machine`]) hears and what it
//! asks for: the whole vocabulary between the pure core and the PID 1
//! loop, in one place.
//!
//! An [`Event`] comes with the current time; handling it returns the
//! [`Action`]s to carry out, in order. Some actions are questions whose
//! answer is the next event (a spawn answers [`Event::Spawned`] or
//! [`Event::SpawnFailed`], a group check [`Event::GroupChecked`], a socket
//! unit's bind [`Event::Listened`]): the driver ([`super::Manager`]) feeds
//! that answer back at once, before the rest of the batch, so the order of
//! effects is the one a synchronous manager would have had.

use std::path::PathBuf;

use nix::sys::signal::Signal;

use super::cgroup::GroupOptions;
use super::notify::Message;
use super::phase::Job;
use super::spawn::Account;
use crate::units::{ExitOutcome, ResourceLimit, Socket};

/// Something that happened, for the state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Stage 2 starts the boot target; `unit_commands` is what cloud-config
    /// queued (`<command> <unit>` lines).
    Boot { unit_commands: String },
    /// A child exited; children that are not ours are ignored.
    Exited { pid: i32, outcome: ExitOutcome },
    /// The time [`super::machine::Machine::next_deadline`] named came.
    Timer,
    /// `slipctl start|stop|restart`: answered with [`Action::Answer`].
    Request { unit: String, job: Job },
    /// `slipctl reload`: `ExecReload=`; answered with [`Action::Answer`].
    Reload { unit: String },
    /// Shutdown: stop everything.
    StopAll,
    /// A datagram on the notification socket, with its sender and the unit
    /// whose cgroup the sender is in (a helper of the main process).
    Notify {
        pid: i32,
        cgroup_unit: Option<String>,
        message: Message,
    },
    /// A listening socket unit's fd is readable: traffic.
    SocketReadable { unit: String },
    /// Answer to [`Action::Spawn`].
    Spawned { unit: String, pid: i32 },
    /// Answer to [`Action::Spawn`]: the command could not be started.
    SpawnFailed { unit: String, error: String },
    /// Answer to [`Action::CheckGroup`]: whether any process of the unit
    /// is left, and which (known only with cgroups).
    GroupChecked {
        unit: String,
        check: GroupCheck,
        alive: bool,
        pids: Vec<i32>,
    },
    /// Answer to [`Action::Listen`].
    Listened {
        unit: String,
        result: Result<(), String>,
    },
}

/// Why the machine asked whether a unit's group is empty; echoed in the
/// answer so the machine needs no memory of the question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupCheck {
    /// A stopping unit whose main and control processes are gone: once
    /// the rest of the group is gone too, the stop goes on.
    Stopping,
    /// A `Type=forking` parent exited: the daemon is what is left.
    ForkingMain,
    /// `ExecStartPost=` of a forking service done without a known main
    /// process: running if anything is left, else finished.
    ForkingSettled,
}

/// Whether a process is the unit's main process or a control process
/// (`ExecStartPre=`, `ExecStop=`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Main,
    Control,
}

/// Everything needed to start one command of a unit; the driver adds the
/// output pipe, the cgroup and the listening fds it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnRequest {
    pub unit: String,
    pub role: Role,
    pub path: String,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
    pub account: Option<Account>,
    pub group: GroupOptions,
    /// `TasksMax=` as a number, to warn when the pids controller is off.
    pub tasks_max: Option<u64>,
    pub oom_score_adjust: Option<i32>,
    pub limits: Vec<ResourceLimit>,
    /// The socket units whose fds the process gets as 3, 4, …, in order
    /// (`LISTEN_FDS` and `LISTEN_FDNAMES` are in `env` already).
    pub sockets: Vec<String>,
}

/// Which of a unit's processes a signal reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalRequest {
    pub unit: String,
    pub signal: Signal,
    /// The main and control processes, signalled one by one.
    pub pids: Vec<i32>,
    /// Every process of the unit too: its cgroup, or without cgroups its
    /// process group `pgid`.
    pub whole_group: bool,
    pub pgid: Option<i32>,
}

/// What the machine asks the world to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A line for the console.
    Console(String),
    /// A line for the unit's own log.
    Log {
        unit: String,
        text: String,
    },
    /// A fresh output pipe for a run of the unit (and its log, if none).
    PrepareOutput {
        unit: String,
    },
    /// Read what the unit's output pipe holds (before its exit is
    /// handled, so the last lines come before "main process exited").
    DrainOutput {
        unit: String,
        console: bool,
    },
    /// Start a command; answered by [`Event::Spawned`] or
    /// [`Event::SpawnFailed`].
    Spawn(Box<SpawnRequest>),
    Signal(SignalRequest),
    /// `SIGKILL` to the whole group (`cgroup.kill` where there is one).
    KillGroup(SignalRequest),
    /// Answered by [`Event::GroupChecked`].
    CheckGroup {
        unit: String,
        pgid: Option<i32>,
        check: GroupCheck,
    },
    /// Bind a socket unit's addresses; answered by [`Event::Listened`].
    Listen {
        unit: String,
        socket: Box<Socket>,
    },
    /// The unit became inactive: drain and close its pipe, flush its log,
    /// close its listening fds, remove its cgroup.
    Release {
        unit: String,
        console: bool,
    },
    /// The boot's health line, for [`super::HEALTH_FILE`].
    WriteHealth(String),
    /// Run the health hook with `healthy` or `unhealthy`, not waited for.
    RunHealthHook(&'static str),
    /// The answer to a [`Event::Request`] or [`Event::Reload`].
    Answer(Result<(), String>),
}

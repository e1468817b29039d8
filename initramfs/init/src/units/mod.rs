//! systemd-style unit files: loading, parsing, and start ordering, for
//! the subset real cloud-configs use (see `cloud-config/src/apply/units.rs`
//! for how they are written). Pure: the only I/O is reading files with
//! `std::fs` under a root directory (`/` on the running system, an image
//! tree in tests).
//!
//! # Loading ([`UnitSet::load`], [`load_unit`])
//!
//! - Unit files are looked up in [`UNIT_SEARCH_PATH`] (`/etc`, `/run`,
//!   `/usr/lib`, `/lib` `…/systemd/system`); the first directory with the
//!   file wins. For `foo@bar.service` the instance file is looked for
//!   first, then the template `foo@.service` in every directory.
//! - A first hit that is a link to `/dev/null` or an empty file masks the
//!   unit ([`LoadState::Masked`]); masking a template masks its instances.
//! - Drop-ins: `<name>.d/*.conf` (and `foo@.service.d/` for instances)
//!   from every search directory, applied in file-name order; a file name
//!   in an earlier directory hides the same name in later ones, and a
//!   drop-in that is a link to `/dev/null` or empty hides it for good.
//! - Symbolic links are followed inside the root ([`fs`]).
//! - Only regular files are read, of at most [`MAX_FILE`] (1 MiB): a
//!   unit file that is a FIFO, socket or device node, or larger, is a
//!   [`LoadState::Error`] naming it, such a drop-in a warning
//!   ([`read_regular`]; PID 1 must not block on a read).
//! - `<name>.wants/` and `<name>.requires/` entries add to the unit's
//!   `Wants=`/`Requires=` ([`units_wanted_by`], [`wanted_by_targets`]).
//! - [`UnitSet::load`] loads the named units and, transitively, what they
//!   want, require or are bound to. A `.target` without a file but with a
//!   `.wants/` or `.requires/` directory loads as an empty target. A unit
//!   pulled in without a file is a warning, and harmless to the unit
//!   pulling it in (as in systemd).
//!
//! # Parsing
//!
//! Sections and keys are case-sensitive. Unknown sections and keys, bad
//! lines and bad values are [`Level::Warning`]s naming the file and line,
//! and the line is ignored. An empty assignment resets a list
//! (`ExecStart=`, `Environment=`, `EnvironmentFile=`, `Condition*=`,
//! `WantedBy=`, `RequiredBy=`); as in systemd, dependencies (`After=`,
//! `Before=`, `Requires=`, `Wants=`) cannot be reset. A service that
//! cannot run (no `ExecStart=`, or several, without `Type=oneshot`; a
//! oneshot with `Restart=always`) is a [`Level::Error`] and
//! [`LoadState::Error`].
//!
//! # Keys
//!
//! - `[Unit]`: `Description=`, `Documentation=`, `After=`, `Before=`,
//!   `Requires=`, `Wants=`, `BindsTo=` (as `Requires=`, and the unit
//!   stops whenever that unit becomes inactive), `PartOf=` (stops and
//!   restarts of that unit reach this one), `Condition…=` (path kinds),
//!   `StartLimitIntervalSec=`, `StartLimitBurst=`.
//! - `[Service]`: `Type=` (`simple`, `exec`, `oneshot`, `forking`,
//!   `notify`/`notify-reload`: started on `READY=1` at `$NOTIFY_SOCKET`),
//!   `ExecStartPre/ExecStart/ExecStartPost/ExecReload/ExecStop/ExecStopPost=`,
//!   `Restart=`, `RestartSec=`, `TimeoutStartSec=`/`TimeoutStopSec=`/
//!   `TimeoutSec=` (`0`, `infinity` and spans past systemd's
//!   `USEC_INFINITY`, about 584,542 years: no limit), `Environment=`,
//!   `EnvironmentFile=`, `User=`, `Group=`, `WorkingDirectory=`,
//!   `RemainAfterExit=`, `StandardOutput=`/`StandardError=`,
//!   `StartLimitInterval[Sec]=`/`StartLimitBurst=` (also here, as
//!   systemd accepts), `KillMode=` (`control-group`, `mixed`, `process`,
//!   `none`), `Delegate=`, `OOMScoreAdjust=`, `LimitNOFILE=`,
//!   `LimitNPROC=`, `LimitCORE=` (`n`, `soft:hard`, `infinity`),
//!   `TasksMax=` (the cgroup's `pids.max`), `Sockets=`.
//! - `[Socket]` (`.socket` units, [`Socket`]): `ListenStream=` (a path,
//!   a port, or `addr:port`), `ListenDatagram=`, `SocketMode=`,
//!   `SocketUser=`, `SocketGroup=`, `DirectoryMode=`, `Service=`,
//!   `RemoveOnStop=`, `FileDescriptorName=`, `Accept=no` (`Accept=yes` is
//!   an error naming the file and line).
//! - `[Install]`: `WantedBy=`, `RequiredBy=`, `Alias=` (made a link by
//!   `enable`; [`alias_target`] resolves it).
//!
//! Specifiers (`%n %N %p %P %i %I %j %J %f %H %l %m %b %t %T %V %S %C %L
//! %E %%`) are expanded at load time in names, paths, descriptions,
//! commands and environment values; an unknown one is a warning and kept.
//! `$VAR`s in commands are kept for the supervisor: [`expand`].
//!
//! # Ordering ([`start_order`])
//!
//! `After=`/`Before=` order (as in systemd, `Wants=`/`Requires=` only pull
//! units in); units in an ordering cycle are not started and reported,
//! units that require a unit that will not start are skipped, the rest
//! come in batches that can start in parallel.

mod env;
mod exec;
mod fs;
mod load;
mod name;
mod order;
mod parse;
#[cfg(test)]
mod read_tests;
mod socket;
mod syntax;
mod time;
mod words;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::sys::regular::{read_regular, MAX_FILE};
pub use crate::sys::types::ExitOutcome;
pub use env::parse_env_file;
pub use exec::{expand, ExecCommand, Privilege, EXEC_SEARCH_PATH};
pub use fs::{alias_target, units_wanted_by, wanted_by_targets, UNIT_SEARCH_PATH};
pub use load::load_unit;
pub use name::UnitName;
pub use order::{start_order, Cycle, Skipped, StartOrder};
pub use socket::{Listen, ListenAddress, Socket};
pub use time::parse_timespan;

/// Values for specifiers that depend on the machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// `%H` (and `%l`, up to the first dot).
    pub hostname: String,
    /// `%m`, 32 hex digits.
    pub machine_id: String,
    /// `%b`, 32 hex digits.
    pub boot_id: String,
}

/// How bad a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// The unit cannot be started.
    Error,
    /// Something was ignored; the unit still loads.
    Warning,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Error => "error",
            Level::Warning => "warning",
        })
    }
}

/// A problem found while loading a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The unit being loaded.
    pub unit: String,
    /// The file, as a path on the target system
    /// (`/etc/systemd/system/foo.service`); the unit name when no file is
    /// involved (a unit not found).
    pub file: PathBuf,
    /// 1-based; `None` for the unit as a whole.
    pub line: Option<usize>,
    pub level: Level,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    /// `file:line: level: message` (`file: level: message` without line).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        write!(f, ": {}: {}", self.level, self.message)
    }
}

/// Whether a unit could be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadState {
    Loaded,
    /// Linked to `/dev/null` or empty; never started.
    Masked,
    /// No unit file (nor drop-ins) in any search directory.
    NotFound,
    /// A type other than `.service`, `.socket` and `.target` (`.timer`,
    /// `.mount`, …).
    Unsupported,
    /// Loaded but not startable; the message says why.
    Error(String),
}

/// What `Condition…=` checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionKind {
    PathExists,
    PathIsDirectory,
    PathIsSymbolicLink,
    FileNotEmpty,
    DirectoryNotEmpty,
    FileIsExecutable,
}

/// One `Condition…=` (`ConditionPathExists=|!/path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub kind: ConditionKind,
    /// Absolute, on the target system.
    pub path: String,
    /// `!`: the check must fail.
    pub negate: bool,
    /// `|`: a triggering condition; of all triggering conditions of a
    /// unit at least one must hold.
    pub trigger: bool,
}

impl Condition {
    /// Evaluates the condition against the tree at `root`.
    pub fn holds(&self, root: &Path) -> bool {
        use std::os::unix::fs::PermissionsExt;
        // Links are followed under the root; `/dev/null` exists, as a
        // (non-executable, empty) character device.
        let resolved = fs::resolve(root, Path::new(&self.path));
        let meta = match &resolved {
            fs::Resolved::Found(h) => std::fs::metadata(h).ok(),
            _ => None,
        };
        let result = match self.kind {
            ConditionKind::PathExists => resolved != fs::Resolved::Missing,
            ConditionKind::PathIsDirectory => meta.is_some_and(|m| m.is_dir()),
            ConditionKind::PathIsSymbolicLink => {
                std::fs::symlink_metadata(root.join(self.path.trim_start_matches('/')))
                    .is_ok_and(|m| m.file_type().is_symlink())
            }
            ConditionKind::FileNotEmpty => meta.is_some_and(|m| m.is_file() && m.len() > 0),
            ConditionKind::DirectoryNotEmpty => match &resolved {
                fs::Resolved::Found(h) => std::fs::read_dir(h)
                    .map(|mut d| d.next().is_some())
                    .unwrap_or(false),
                _ => false,
            },
            ConditionKind::FileIsExecutable => {
                meta.is_some_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            }
        };
        result != self.negate
    }
}

/// `Type=`. `notify-reload` loads as [`ServiceType::Notify`], `dbus` and
/// `idle` as [`ServiceType::Simple`] with a warning (`idle` without one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceType {
    /// Started as soon as forked.
    Simple,
    /// Started once `execve` succeeded.
    Exec,
    /// Started when `ExecStart=` commands have all exited successfully.
    Oneshot,
    /// Started when the main process exited (it forked a daemon).
    Forking,
    /// Started when the service sends `READY=1` to `$NOTIFY_SOCKET`.
    Notify,
}

/// `KillMode=`: which processes a stop signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KillMode {
    /// Every process of the unit's cgroup.
    #[default]
    ControlGroup,
    /// `SIGTERM` to the main process, `SIGKILL` to the whole group.
    Mixed,
    /// Only the main process; the rest stays in the group, and the unit
    /// is inactive once the main process is gone (containerd's shims
    /// survive a restart of containerd).
    Process,
    /// No process is signalled; only `ExecStop=` runs.
    None,
}

/// A limit that may be `infinity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Max {
    Infinity,
    Value(u64),
}

/// The resources of `Limit…=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// `LimitNOFILE=`: open files.
    Nofile,
    /// `LimitNPROC=`: processes of the user.
    Nproc,
    /// `LimitCORE=`: core file size in bytes.
    Core,
}

/// One `Limit…=soft[:hard]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceLimit {
    pub resource: Resource,
    pub soft: Max,
    pub hard: Max,
}

/// `Restart=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Restart {
    #[default]
    No,
    Always,
    OnSuccess,
    OnFailure,
    OnAbnormal,
    OnAbort,
    /// Accepted with a warning: there is no watchdog, so it never restarts.
    OnWatchdog,
}

impl Restart {
    /// systemd's table in `systemd.service(5)`: `SIGHUP`, `SIGINT`,
    /// `SIGTERM` and `SIGPIPE` count as a clean exit.
    pub fn restarts_after(self, outcome: ExitOutcome) -> bool {
        let clean_signal =
            |s: i32| [libc::SIGHUP, libc::SIGINT, libc::SIGTERM, libc::SIGPIPE].contains(&s);
        let clean = match outcome {
            ExitOutcome::Success => true,
            ExitOutcome::Signal(s) => clean_signal(s),
            _ => false,
        };
        match self {
            Restart::No => false,
            Restart::Always => true,
            Restart::OnSuccess => clean,
            Restart::OnFailure => !clean,
            Restart::OnAbnormal => {
                matches!(outcome, ExitOutcome::Timeout | ExitOutcome::Watchdog)
                    || matches!(outcome, ExitOutcome::Signal(s) if !clean_signal(s))
            }
            Restart::OnAbort => matches!(outcome, ExitOutcome::Signal(s) if !clean_signal(s)),
            Restart::OnWatchdog => outcome == ExitOutcome::Watchdog,
        }
    }
}

/// `EnvironmentFile=`: read by the supervisor at start
/// ([`parse_env_file`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentFile {
    /// Absolute, on the target system.
    pub path: String,
    /// `-` prefix: a missing file is not an error.
    pub optional: bool,
}

/// `WorkingDirectory=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkingDirectory {
    /// Absolute; `None` for `~`, the home directory of `User=`.
    pub path: Option<String>,
    /// `-` prefix: a missing directory is not an error.
    pub missing_ok: bool,
}

/// The `[Service]` section of a `.service` unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// `Type=`; without it `Simple`, or `Oneshot` when there is no
    /// `ExecStart=`.
    pub kind: ServiceType,
    pub exec_start_pre: Vec<ExecCommand>,
    /// Exactly one unless `Type=oneshot` (else the unit is an error).
    pub exec_start: Vec<ExecCommand>,
    pub exec_start_post: Vec<ExecCommand>,
    pub exec_reload: Vec<ExecCommand>,
    pub exec_stop: Vec<ExecCommand>,
    pub exec_stop_post: Vec<ExecCommand>,
    pub restart: Restart,
    /// `RestartSec=`, default 100 ms.
    pub restart_sec: Duration,
    /// `Environment=` assignments in order; later ones win.
    pub environment: Vec<(String, String)>,
    pub environment_files: Vec<EnvironmentFile>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub working_directory: Option<WorkingDirectory>,
    /// `TimeoutStartSec=`/`TimeoutSec=`, default 90 s; `None`: no limit
    /// (`infinity` or `0`).
    pub timeout_start: Option<Duration>,
    /// `TimeoutStopSec=`/`TimeoutSec=`, default 90 s; `None`: no limit.
    pub timeout_stop: Option<Duration>,
    pub remain_after_exit: bool,
    /// `StandardOutput=`/`StandardError=` naming the console (`journal+console`,
    /// `tty`): output is copied to the console, prefixed with the unit name.
    pub console: bool,
    pub kill_mode: KillMode,
    /// `Delegate=yes`: the service manages sub-cgroups of its own group.
    pub delegate: bool,
    /// `OOMScoreAdjust=`, -1000…1000.
    pub oom_score_adjust: Option<i32>,
    /// `LimitNOFILE=`, `LimitNPROC=`, `LimitCORE=`, last one per resource.
    pub limits: Vec<ResourceLimit>,
    /// `TasksMax=`: the cgroup's `pids.max`.
    pub tasks_max: Option<Max>,
    /// `Sockets=`: socket units whose fds the service gets, besides the
    /// ones naming it with `Service=` or by name.
    pub sockets: Vec<String>,
}

impl Service {
    /// `Environment=` as a map (the last assignment of a name wins), for
    /// [`expand`]; the supervisor adds `EnvironmentFile=` contents.
    pub fn environment_map(&self) -> BTreeMap<String, String> {
        self.environment.iter().cloned().collect()
    }
}

/// The `[Install]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Install {
    pub wanted_by: Vec<String>,
    pub required_by: Vec<String>,
    /// `Alias=`: other names, made links to the unit by `enable`.
    pub alias: Vec<String>,
}

/// A loaded unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// As requested, `foo@bar.service`.
    pub name: String,
    pub load: LoadState,
    pub description: Option<String>,
    pub after: Vec<String>,
    pub before: Vec<String>,
    /// `Requires=` plus `<name>.requires/` entries.
    pub requires: Vec<String>,
    /// `Wants=` plus `<name>.wants/` entries.
    pub wants: Vec<String>,
    /// `BindsTo=`: like `Requires=`, and this unit stops whenever one of
    /// them becomes inactive.
    pub binds_to: Vec<String>,
    /// `PartOf=`: stops and restarts of those units reach this one.
    pub part_of: Vec<String>,
    pub conditions: Vec<Condition>,
    /// `StartLimitIntervalSec=`, default 10 s; zero disables the limit.
    pub start_limit_interval: Duration,
    /// `StartLimitBurst=`, default 5.
    pub start_limit_burst: u32,
    /// `Some` for `.service` units.
    pub service: Option<Service>,
    /// `Some` for `.socket` units.
    pub socket: Option<Socket>,
    pub install: Install,
    /// The unit file and the drop-ins read, in order, as paths on the
    /// target system.
    pub sources: Vec<PathBuf>,
}

impl Unit {
    /// An empty unit in state `load`.
    pub fn new(name: &str, load: LoadState) -> Unit {
        Unit {
            name: name.to_string(),
            load,
            description: None,
            after: Vec::new(),
            before: Vec::new(),
            requires: Vec::new(),
            wants: Vec::new(),
            binds_to: Vec::new(),
            part_of: Vec::new(),
            conditions: Vec::new(),
            start_limit_interval: Duration::from_secs(10),
            start_limit_burst: 5,
            service: None,
            socket: None,
            install: Install::default(),
            sources: Vec::new(),
        }
    }

    /// The units starting this one starts too: `Requires=`, `Wants=`,
    /// `BindsTo=`.
    pub fn pulls(&self) -> impl Iterator<Item = &String> {
        self.requires
            .iter()
            .chain(&self.binds_to)
            .chain(&self.wants)
    }

    /// The units whose failure to start fails this one's start (when it
    /// is ordered after them): `Requires=` and `BindsTo=`.
    pub fn needs(&self) -> impl Iterator<Item = &String> {
        self.requires.iter().chain(&self.binds_to)
    }

    pub fn is_masked(&self) -> bool {
        self.load == LoadState::Masked
    }

    /// Loaded without errors.
    pub fn is_startable(&self) -> bool {
        self.load == LoadState::Loaded
    }

    /// All non-triggering conditions hold and, if there are triggering
    /// ones, at least one of them does. A unit whose conditions fail is
    /// skipped at start, which is not a failure.
    pub fn conditions_met(&self, root: &Path) -> bool {
        let (trig, plain): (Vec<&Condition>, Vec<&Condition>) =
            self.conditions.iter().partition(|c| c.trigger);
        plain.iter().all(|c| c.holds(root))
            && (trig.is_empty() || trig.iter().any(|c| c.holds(root)))
    }
}

/// Loaded units by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitSet {
    units: BTreeMap<String, Unit>,
}

impl UnitSet {
    /// Loads `names` and everything they want or require, transitively,
    /// from the tree at `root`. Every unit asked for or pulled in is in
    /// the set, whatever its [`LoadState`]; the diagnostics are in load
    /// order.
    pub fn load(root: &Path, names: &[String], ctx: &Context) -> (UnitSet, Vec<Diagnostic>) {
        load::load_set(root, names, ctx)
    }

    /// A set of already built units (a later unit of the same name
    /// replaces an earlier one).
    pub fn from_units(units: impl IntoIterator<Item = Unit>) -> UnitSet {
        UnitSet {
            units: units.into_iter().map(|u| (u.name.clone(), u)).collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Unit> {
        self.units.get(name)
    }

    /// Units sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &Unit> {
        self.units.values()
    }

    pub fn len(&self) -> usize {
        self.units.len()
    }

    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    pub(crate) fn insert(&mut self, unit: Unit) {
        self.units.insert(unit.name.clone(), unit);
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.units.contains_key(name)
    }
}

#[cfg(test)]
pub(crate) mod tests;

//! The service manager: starts the units of the boot transaction in
//! dependency order, supervises them (restart with backoff and a start
//! limit), stops them in reverse order, and judges the boot's health.
//!
//! It is event-driven and never blocks: the PID 1 loop
//! (`crate::supervise`) feeds it exits ([`Manager::on_exit`]), output
//! ([`Manager::on_output`]) and time ([`Manager::on_timer`]), and polls
//! until [`Manager::next_deadline`]. Each unit runs through the phases of
//! [`Phase`]; `active` (what `status` shows) follows from the phase.
//!
//! Ordering (`After=`/`Before=`) is applied when jobs run, not by
//! precomputed batches: a start job waits while any unit ordered before
//! it has a start job queued or is still activating; a stop job waits
//! while any unit ordered after it is still stopping. Independent units
//! therefore start (and stop) in parallel.

mod cgroup;
mod deps;
mod install;
mod logs;
mod notify;
mod socket;
mod spawn;
mod status;
mod watch;

pub use cgroup::{Cgroups, SERVICES_CGROUP};
pub use logs::{rfc3339_utc, UnitLog, DEFAULT_MAX_BYTES, LOG_DIR};
pub use notify::NOTIFY_SOCKET;
pub use spawn::{lookup_account, Account};
pub use status::{millis, ActiveState, Health, UnitStatus};

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::units::{
    self, start_order, Context, ExecCommand, ExitOutcome, KillMode, LoadState, Max, Privilege,
    ServiceType, Unit, UnitSet, EXEC_SEARCH_PATH,
};

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
/// How long PID 1 waits after SIGKILL for a group to empty before giving
/// up on it (a process stuck in the kernel cannot be helped).
const KILL_WAIT: Duration = Duration::from_secs(5);
/// How often a stopping unit's group is checked for emptiness once its
/// main process is gone.
const EMPTY_POLL: Duration = Duration::from_millis(20);
/// Restart delays double per failure in a row, up to this.
const MAX_RESTART_DELAY: Duration = Duration::from_secs(30);

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

/// An fd the PID 1 loop polls for the manager, besides output pipes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watch {
    /// The notification socket.
    Notify,
    /// A listening socket unit's fd.
    Socket(String),
}

/// Where a unit is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Dead,
    /// Its conditions did not hold: skipped, not a failure.
    Condition,
    StartPre,
    Start,
    StartPost,
    Running,
    /// The main process exited and `RemainAfterExit=yes` (or a oneshot).
    Exited,
    Stop,
    StopSigterm,
    StopSigkill,
    StopPost,
    AutoRestart,
    Failed,
}

impl Phase {
    pub fn sub(self) -> &'static str {
        match self {
            Phase::Dead => "dead",
            Phase::Condition => "condition-failed",
            Phase::StartPre => "start-pre",
            Phase::Start => "start",
            Phase::StartPost => "start-post",
            Phase::Running => "running",
            Phase::Exited => "exited",
            Phase::Stop => "stop",
            Phase::StopSigterm => "stop-sigterm",
            Phase::StopSigkill => "stop-sigkill",
            Phase::StopPost => "stop-post",
            Phase::AutoRestart => "auto-restart",
            Phase::Failed => "failed",
        }
    }

    pub fn active(self) -> ActiveState {
        match self {
            Phase::Dead | Phase::Condition => ActiveState::Inactive,
            Phase::StartPre | Phase::Start | Phase::StartPost | Phase::AutoRestart => {
                ActiveState::Activating
            }
            Phase::Running | Phase::Exited => ActiveState::Active,
            Phase::Stop | Phase::StopSigterm | Phase::StopSigkill | Phase::StopPost => {
                ActiveState::Deactivating
            }
            Phase::Failed => ActiveState::Failed,
        }
    }

    fn starting(self) -> bool {
        matches!(self, Phase::StartPre | Phase::Start | Phase::StartPost)
    }

    fn stopping(self) -> bool {
        matches!(
            self,
            Phase::Stop | Phase::StopSigterm | Phase::StopSigkill | Phase::StopPost
        )
    }
}

/// A queued request for a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    Start,
    Stop,
    Restart,
}

/// What happens once a stop has finished.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AfterStop {
    Dead,
    Start,
}

/// The running state of one unit.
#[derive(Debug)]
struct Runtime {
    phase: Phase,
    /// When the active state last changed (manager clock).
    since: Duration,
    main_pid: Option<i32>,
    control_pid: Option<i32>,
    /// `-` on the command the running process came from.
    running_ignores_failure: bool,
    /// Commands left in the current phase.
    queue: VecDeque<ExecCommand>,
    deadline: Option<Duration>,
    restarts: u32,
    failures_in_row: u32,
    starts: VecDeque<Duration>,
    result: Option<String>,
    log: Option<UnitLog>,
    pipe_r: Option<OwnedFd>,
    pipe_w: Option<OwnedFd>,
    env: Vec<(String, String)>,
    account: Option<Account>,
    cwd: Option<PathBuf>,
    after_stop: AfterStop,
    job: Option<Job>,
    /// The process group (the first process's pid) when there are no
    /// cgroups.
    pgid: Option<i32>,
    main_started: Duration,
    /// A socket unit's bound fds while it is started.
    listening: Option<socket::Listening>,
    /// The last `STATUS=` a notify service sent.
    status_text: Option<String>,
}

impl Runtime {
    fn new() -> Runtime {
        Runtime {
            phase: Phase::Dead,
            since: Duration::ZERO,
            main_pid: None,
            control_pid: None,
            running_ignores_failure: false,
            queue: VecDeque::new(),
            deadline: None,
            restarts: 0,
            failures_in_row: 0,
            starts: VecDeque::new(),
            result: None,
            log: None,
            pipe_r: None,
            pipe_w: None,
            env: Vec::new(),
            account: None,
            cwd: None,
            after_stop: AfterStop::Dead,
            job: None,
            pgid: None,
            main_started: Duration::ZERO,
            listening: None,
            status_text: None,
        }
    }
}

/// The service manager.
#[derive(Debug)]
pub struct Manager {
    cfg: Config,
    ctx: Context,
    units: UnitSet,
    rt: BTreeMap<String, Runtime>,
    cgroups: Option<Cgroups>,
    epoch: Instant,
    /// Units of the boot transaction: what health is judged on.
    boot_units: BTreeSet<String>,
    health: Health,
    health_detail: Option<String>,
    /// Health states the hook already ran for in this boot.
    health_hooks_run: std::collections::BTreeSet<&'static str>,
    /// Lines for the console.
    outbox: Vec<String>,
    /// Set once the boot's start jobs have all finished.
    boot_done: bool,
    /// Unit names whose output is copied to the console.
    console_units: BTreeSet<String>,
    /// Boot clock (`CLOCK_BOOTTIME`) when the manager was made: the
    /// manager's clock starts there.
    boot_epoch: Duration,
    /// Boot clock when stage 2 started, for the summary line.
    stage2_start: Option<Duration>,
    notify: Option<notify::NotifySocket>,
}

impl Manager {
    /// A manager with nothing loaded. Cgroup trouble is reported in the
    /// outbox and the manager goes on without them.
    pub fn new(cfg: Config, ctx: Context) -> Manager {
        let mut outbox = Vec::new();
        let cgroups = cfg
            .cgroup_parent
            .as_deref()
            .and_then(|p| match Cgroups::setup(p) {
                Ok(c) => Some(c),
                Err(e) => {
                    outbox.push(format!(
                        "slipway: services run without cgroups ({e}); stopping a service \
                         signals its process group only"
                    ));
                    None
                }
            });
        let notify =
            cfg.notify_socket
                .as_deref()
                .and_then(|p| match notify::NotifySocket::bind(p) {
                    Ok(n) => Some(n),
                    Err(e) => {
                        outbox.push(format!(
                        "slipway: no notification socket ({e}); Type=notify services will time out"
                    ));
                        None
                    }
                });
        Manager {
            notify,
            cfg,
            ctx,
            units: UnitSet::default(),
            rt: BTreeMap::new(),
            cgroups,
            epoch: Instant::now(),
            boot_units: BTreeSet::new(),
            health: Health::Starting,
            health_detail: None,
            health_hooks_run: Default::default(),
            outbox,
            boot_done: false,
            console_units: BTreeSet::new(),
            boot_epoch: boot_clock(),
            stage2_start: None,
        }
    }

    /// Boot clock at stage 2's start, so the summary line can say how
    /// long after it the services were up.
    pub fn set_stage2_start(&mut self, at: Duration) {
        self.stage2_start = Some(at);
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Lines for the console since the last call.
    pub fn take_output(&mut self) -> Vec<String> {
        std::mem::take(&mut self.outbox)
    }

    pub fn health(&self) -> (Health, Option<&str>) {
        (self.health, self.health_detail.as_deref())
    }

    /// Loads the boot target and what it pulls in, reports load problems
    /// and ordering cycles, and queues the start jobs, then the commands
    /// cloud-config queued (`<command> <unit>` lines).
    pub fn boot(&mut self, unit_commands: &str) {
        let target = self.cfg.target.clone();
        self.load(std::slice::from_ref(&target));
        let names: Vec<String> = self
            .units
            .iter()
            .filter(|u| u.load != LoadState::NotFound || u.name == target)
            .map(|u| u.name.clone())
            .collect();
        self.boot_units = names.iter().cloned().collect();
        self.report_order_problems();
        for name in names {
            if self.rt.get(&name).is_some_and(|r| r.phase == Phase::Failed) {
                continue;
            }
            self.queue_job(&name, Job::Start);
        }
        for line in unit_commands.lines() {
            let mut words = line.split_whitespace();
            let (Some(command), Some(unit), None) = (words.next(), words.next(), words.next())
            else {
                continue;
            };
            let job = match command {
                "start" => Job::Start,
                "stop" => Job::Stop,
                "restart" | "reload" | "reload-or-restart" => Job::Restart,
                "try-restart" | "reload-or-try-restart" => {
                    if self.is_active(unit) {
                        Job::Restart
                    } else {
                        continue;
                    }
                }
                _ => continue,
            };
            // `start etcd2.service` starts etcd.service, as `request` does.
            let canonical = units::alias_target(&self.cfg.root, unit);
            let unit = canonical.as_deref().unwrap_or(unit);
            self.load(&[unit.to_string()]);
            if job != Job::Stop {
                self.boot_units.insert(unit.to_string());
            }
            self.queue_job(unit, job);
            if job != Job::Stop {
                // What it pulls in starts with it (`start docker.service`
                // needs containerd.service, its Wants=), as for `request`.
                self.queue_deps(unit);
            }
            self.propagate(unit, job);
        }
        self.step();
    }

    /// Loads units that are not loaded yet (and what they pull in);
    /// prints their diagnostics.
    fn load(&mut self, names: &[String]) {
        let missing: Vec<String> = names
            .iter()
            .filter(|n| !self.units.contains(n))
            .cloned()
            .collect();
        if missing.is_empty() {
            return;
        }
        let (set, diags) = UnitSet::load(&self.cfg.root, &missing, &self.ctx);
        for d in diags {
            self.outbox.push(format!("slipway: {d}"));
        }
        for unit in set.iter() {
            if self.units.contains(&unit.name) {
                continue;
            }
            // A unit pulled in (Wants=/Requires=) without a file is
            // harmless, as in systemd; the loader warned about it.
            let harmless = unit.load == LoadState::NotFound && !names.contains(&unit.name);
            if let Some(reason) = load_failure(unit).filter(|_| !harmless) {
                let rt = self
                    .rt
                    .entry(unit.name.clone())
                    .or_insert_with(Runtime::new);
                rt.phase = Phase::Failed;
                rt.result = Some(reason.clone());
                if unit.load != LoadState::Masked {
                    self.outbox
                        .push(format!("slipway: {}: not started: {reason}", unit.name));
                }
            }
            if unit.service.as_ref().is_some_and(|s| s.console) {
                self.console_units.insert(unit.name.clone());
            }
            self.units.insert(unit.clone());
        }
    }

    /// Re-reads a unit's files before a fresh start, so edits take effect
    /// on `start`/`restart` (there is no separate reload).
    fn reload(&mut self, name: &str) {
        let (unit, diags) = units::load_unit(&self.cfg.root, name, &self.ctx);
        for d in diags {
            self.outbox.push(format!("slipway: {d}"));
        }
        if unit.service.as_ref().is_some_and(|s| s.console) {
            self.console_units.insert(name.to_string());
        } else {
            self.console_units.remove(name);
        }
        self.units.insert(unit);
    }

    fn report_order_problems(&mut self) {
        let order = start_order(&self.units);
        for cycle in order.cycles {
            let text = cycle.to_string();
            self.outbox
                .push(format!("slipway: {text}: none of these units is started"));
            for u in &cycle.units {
                let rt = self.rt.entry(u.clone()).or_insert_with(Runtime::new);
                rt.phase = Phase::Failed;
                rt.result = Some(text.clone());
            }
        }
    }

    fn is_active(&self, name: &str) -> bool {
        self.rt
            .get(name)
            .is_some_and(|r| r.phase.active() == ActiveState::Active)
    }

    /// Queues a job; a later job replaces an earlier one still waiting.
    pub fn queue_job(&mut self, name: &str, job: Job) {
        let rt = self.rt.entry(name.to_string()).or_insert_with(Runtime::new);
        rt.job = Some(job);
    }

    /// Queues a job from the control socket: loads the unit if needed.
    /// `Err` when the unit cannot be started at all.
    pub fn request(&mut self, name: &str, job: Job) -> Result<(), String> {
        // An alias (`etcd2.service`) is the unit it links to, as in
        // systemd: one unit, not two.
        let canonical = units::alias_target(&self.cfg.root, name);
        let name = canonical.as_deref().unwrap_or(name);
        if job != Job::Stop {
            let idle = self
                .rt
                .get(name)
                .is_none_or(|r| matches!(r.phase, Phase::Dead | Phase::Failed | Phase::Condition));
            // Re-read the unit so edits take effect on start/restart.
            self.reload(name);
            if idle {
                if let Some(rt) = self.rt.get_mut(name) {
                    // A fresh start by hand: forget the old failure and
                    // the start limit, as `systemctl start` after
                    // `reset-failed` would.
                    if rt.phase == Phase::Failed {
                        rt.phase = Phase::Dead;
                    }
                    rt.starts.clear();
                    rt.failures_in_row = 0;
                }
                self.queue_deps(name);
            }
            if let Some(u) = self.units.get(name) {
                if let Some(reason) = load_failure(u) {
                    return Err(reason);
                }
            }
        } else if !self.units.contains(name) {
            return Err("unit not loaded".to_string());
        }
        self.queue_job(name, job);
        self.propagate(name, job);
        self.step();
        Ok(())
    }

    /// Runs `ExecReload=` of a running service (`$MAINPID` is its main
    /// process) as control processes; the service stays running whatever
    /// they return.
    pub fn reload_unit(&mut self, name: &str) -> Result<(), String> {
        let commands = self
            .units
            .get(name)
            .and_then(|u| u.service.as_ref())
            .map(|s| s.exec_reload.clone())
            .ok_or_else(|| "unit not loaded or not a service".to_string())?;
        if commands.is_empty() {
            return Err("the unit has no ExecReload=".to_string());
        }
        let Some(rt) = self.rt.get_mut(name) else {
            return Err("unit not loaded".to_string());
        };
        if rt.phase != Phase::Running {
            return Err(format!("the unit is not running ({})", rt.phase.sub()));
        }
        if rt.control_pid.is_some() {
            return Err("a reload is already running".to_string());
        }
        rt.queue = commands.into_iter().collect();
        self.note(name, "reloading");
        self.run_next(name);
        Ok(())
    }

    /// Queues a stop of every unit that is not already stopped.
    pub fn stop_all(&mut self) {
        let names: Vec<String> = self.rt.keys().cloned().collect();
        for name in names {
            if let Some(rt) = self.rt.get_mut(&name) {
                match rt.phase {
                    Phase::Dead | Phase::Condition | Phase::Failed => rt.job = None,
                    _ => rt.job = Some(Job::Stop),
                }
            }
        }
        self.step();
    }

    /// Every unit is stopped and no job is left.
    pub fn all_stopped(&self) -> bool {
        self.rt.values().all(|r| {
            r.job.is_none() && matches!(r.phase, Phase::Dead | Phase::Condition | Phase::Failed)
        })
    }

    /// A job (queued or running) is pending for the unit.
    pub fn busy(&self, name: &str) -> bool {
        self.rt
            .get(name)
            .is_some_and(|r| r.job.is_some() || r.phase.starting() || r.phase.stopping())
    }

    /// Processes of ours: the main and control processes of all units.
    pub fn pids(&self) -> Vec<i32> {
        self.rt
            .values()
            .flat_map(|r| r.main_pid.into_iter().chain(r.control_pid))
            .collect()
    }

    /// The read ends of the output pipes, to poll.
    pub fn output_fds(&self) -> Vec<(String, BorrowedFd<'_>)> {
        self.rt
            .iter()
            .filter_map(|(n, r)| r.pipe_r.as_ref().map(|p| (n.clone(), p.as_fd())))
            .collect()
    }

    /// Reads what a unit's pipe has and logs it.
    pub fn on_output(&mut self, name: &str) {
        let console = self.console_units.contains(name);
        let Some(rt) = self.rt.get_mut(name) else {
            return;
        };
        drain_pipe(rt, name, console, &mut self.outbox);
    }

    /// The earliest time [`Manager::on_timer`] has work, as a delay from
    /// now.
    pub fn next_deadline(&self) -> Option<Duration> {
        let now = self.now();
        let mut next: Option<Duration> = None;
        for r in self.rt.values() {
            let mut at = r.deadline;
            if r.phase.stopping() && r.main_pid.is_none() && r.control_pid.is_none() {
                let poll_at = now.saturating_add(EMPTY_POLL);
                at = Some(at.map_or(poll_at, |d| d.min(poll_at)));
            }
            if let Some(at) = at {
                next = Some(next.map_or(at, |n: Duration| n.min(at)));
            }
        }
        // Only a check still ahead: while a unit is unsettled the check
        // time may be past, and waking for it would spin.
        if self.health == Health::Starting {
            if let Some(at) = self.health_check_at().filter(|at| *at > now) {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
            let settle = self.cfg.settle_timeout;
            if settle > now && self.cfg.health_hook.is_some() {
                next = Some(next.map_or(settle, |n| n.min(settle)));
            }
        }
        next.map(|at| at.saturating_sub(now))
    }

    /// Handles deadlines that have passed.
    pub fn on_timer(&mut self) {
        let now = self.now();
        let names: Vec<String> = self.rt.keys().cloned().collect();
        for name in names {
            let Some(rt) = self.rt.get(&name) else {
                continue;
            };
            let (phase, due, empty_check) = (
                rt.phase,
                rt.deadline.is_some_and(|d| d <= now),
                rt.phase.stopping() && rt.main_pid.is_none() && rt.control_pid.is_none(),
            );
            if due {
                if let Some(rt) = self.rt.get_mut(&name) {
                    rt.deadline = None;
                }
                self.deadline_passed(&name, phase);
            } else if empty_check && !self.group_alive(&name) {
                self.finish_stop(&name);
            }
        }
        self.step();
    }

    fn deadline_passed(&mut self, name: &str, phase: Phase) {
        match phase {
            Phase::StartPre | Phase::Start | Phase::StartPost => {
                self.note(name, "start timeout: stopping it");
                self.kill_group(name);
                self.failed(name, "start timeout".to_string(), ExitOutcome::Timeout);
            }
            Phase::Stop => self.send_sigterm(name),
            Phase::StopSigterm => {
                self.note(name, "did not stop in time: SIGKILL");
                self.set_phase(name, Phase::StopSigkill);
                self.kill_group(name);
                if let Some(rt) = self.rt.get_mut(name) {
                    rt.deadline = Some(self.epoch.elapsed().saturating_add(KILL_WAIT));
                    rt.result = Some("stop timeout: killed".to_string());
                }
            }
            Phase::StopSigkill => {
                self.note(name, "processes survived SIGKILL; giving up on them");
                self.finish_stop(name);
            }
            Phase::StopPost => self.finish_stop_post(name),
            Phase::AutoRestart => {
                if let Some(rt) = self.rt.get_mut(name) {
                    rt.restarts += 1;
                    rt.job = Some(Job::Start);
                    rt.phase = Phase::Dead;
                }
            }
            _ => {}
        }
    }

    /// A child exited. Children that are not ours (orphans) are ignored.
    pub fn on_exit(&mut self, pid: i32, outcome: ExitOutcome) {
        let Some(name) = self
            .rt
            .iter()
            .find(|(_, r)| r.main_pid == Some(pid) || r.control_pid == Some(pid))
            .map(|(n, _)| n.clone())
        else {
            return;
        };
        self.on_output(&name);
        let Some(rt) = self.rt.get_mut(&name) else {
            return;
        };
        let ignore = rt.running_ignores_failure;
        let phase = rt.phase;
        let ok = outcome == ExitOutcome::Success || ignore;
        if rt.control_pid == Some(pid) {
            rt.control_pid = None;
            match phase {
                Phase::StartPre | Phase::StartPost if !ok => {
                    let what = if phase == Phase::StartPre {
                        "ExecStartPre"
                    } else {
                        "ExecStartPost"
                    };
                    self.kill_group(&name);
                    self.failed(&name, format!("{what} {}", describe(outcome)), outcome);
                }
                _ => self.run_next(&name),
            }
        } else {
            rt.main_pid = None;
            let kind = self.service_kind(&name);
            match phase {
                Phase::Start if kind == Some(ServiceType::Oneshot) => {
                    if ok {
                        self.run_next(&name);
                    } else {
                        self.kill_group(&name);
                        self.failed(&name, describe(outcome), outcome);
                    }
                }
                Phase::Start if kind == Some(ServiceType::Forking) => {
                    if ok {
                        // The daemon is what is left in the group; with
                        // one process that is unambiguous.
                        let pids = self.group_pids(&name);
                        if let Some(rt) = self.rt.get_mut(&name) {
                            rt.main_pid = match pids.as_slice() {
                                [one] => Some(*one),
                                _ => None,
                            };
                        }
                        self.run_next(&name);
                    } else {
                        self.kill_group(&name);
                        self.failed(&name, describe(outcome), outcome);
                    }
                }
                Phase::Start if kind == Some(ServiceType::Notify) => {
                    // Gone before READY=1: a failed start whatever the
                    // exit status (systemd's "protocol" result).
                    let why = format!("main process {} before READY=1", describe(outcome));
                    let outcome = match outcome {
                        ExitOutcome::Success => ExitOutcome::ExitCode(1),
                        o => o,
                    };
                    self.kill_group(&name);
                    self.failed(&name, why, outcome);
                }
                Phase::StartPre | Phase::Start | Phase::StartPost | Phase::Running => {
                    self.main_ended(&name, outcome)
                }
                p if p.stopping()
                    && !self.group_alive(&name)
                    && self.rt.get(&name).is_some_and(|r| r.control_pid.is_none())
                    && p != Phase::StopPost =>
                {
                    self.finish_stop(&name);
                }
                _ => {}
            }
        }
        self.step();
    }

    /// The main process of a running service ended on its own.
    fn main_ended(&mut self, name: &str, outcome: ExitOutcome) {
        let (remain, restart, ran_for) = match (self.units.get(name), self.rt.get(name)) {
            (Some(u), Some(rt)) => (
                u.service.as_ref().is_some_and(|s| s.remain_after_exit),
                u.service.as_ref().map(|s| s.restart).unwrap_or_default(),
                self.now().saturating_sub(rt.main_started),
            ),
            _ => return,
        };
        self.note(name, &format!("main process {}", describe(outcome)));
        if outcome == ExitOutcome::Success && remain {
            self.set_phase(name, Phase::Exited);
            return;
        }
        self.kill_group(name);
        if let Some(rt) = self.rt.get_mut(name) {
            if ran_for >= Duration::from_secs(10) {
                rt.failures_in_row = 0;
            }
        }
        if restart.restarts_after(outcome) {
            self.schedule_restart(name);
        } else if outcome == ExitOutcome::Success {
            self.become_inactive(name, Phase::Dead);
        } else {
            self.failed(name, describe(outcome), outcome);
        }
    }

    /// A start or run failed: restart if the policy says so, else
    /// `failed`.
    fn failed(&mut self, name: &str, reason: String, outcome: ExitOutcome) {
        let restart = self
            .units
            .get(name)
            .and_then(|u| u.service.as_ref())
            .map(|s| s.restart)
            .unwrap_or_default();
        if let Some(rt) = self.rt.get_mut(name) {
            rt.result = Some(reason.clone());
            rt.queue.clear();
            rt.control_pid = None;
            rt.main_pid = None;
        }
        if restart.restarts_after(outcome)
            && !self.rt.get(name).is_some_and(|r| r.job == Some(Job::Stop))
        {
            self.schedule_restart(name);
            return;
        }
        self.outbox
            .push(format!("slipway: {name}: failed: {reason}"));
        self.note(name, &format!("failed: {reason}"));
        self.become_inactive(name, Phase::Failed);
    }

    fn schedule_restart(&mut self, name: &str) {
        let base = self
            .units
            .get(name)
            .and_then(|u| u.service.as_ref())
            .map_or(Duration::from_millis(100), |s| s.restart_sec);
        let now = self.now();
        if let Some(rt) = self.rt.get_mut(name) {
            rt.failures_in_row = rt.failures_in_row.saturating_add(1);
            let delay = restart_delay(base, rt.failures_in_row);
            rt.deadline = Some(now.saturating_add(delay));
            rt.queue.clear();
            self.note(name, &format!("restarting in {} ms", delay.as_millis()));
        }
        self.set_phase(name, Phase::AutoRestart);
    }

    fn become_inactive(&mut self, name: &str, phase: Phase) {
        self.set_phase(name, phase);
        let console = self.console_units.contains(name);
        if let Some(rt) = self.rt.get_mut(name) {
            rt.deadline = None;
            rt.queue.clear();
            rt.main_pid = None;
            rt.control_pid = None;
            drain_pipe(rt, name, console, &mut self.outbox);
            if let Some(log) = &mut rt.log {
                log.flush_partial();
            }
            rt.pipe_r = None;
            rt.pipe_w = None;
            // Closes a socket unit's fds (and removes its files with
            // RemoveOnStop=).
            rt.listening = None;
        }
        if let Some(cg) = &self.cgroups {
            cg.remove(name);
        }
        self.stop_bound(name);
    }

    fn set_phase(&mut self, name: &str, phase: Phase) {
        let now = self.now();
        if let Some(rt) = self.rt.get_mut(name) {
            if rt.phase.active() != phase.active() {
                rt.since = now;
            }
            rt.phase = phase;
        }
    }

    fn service_kind(&self, name: &str) -> Option<ServiceType> {
        self.units
            .get(name)
            .and_then(|u| u.service.as_ref())
            .map(|s| s.kind)
    }

    /// Runs jobs whose ordering allows it, until nothing changes.
    fn step(&mut self) {
        loop {
            let mut progressed = false;
            let pending: Vec<(String, Job)> = self
                .rt
                .iter()
                .filter_map(|(n, r)| r.job.map(|j| (n.clone(), j)))
                .collect();
            for (name, job) in pending {
                if self.try_job(&name, job) {
                    progressed = true;
                }
            }
            if !progressed {
                break;
            }
        }
        self.check_boot_done();
        self.update_health();
        self.check_settle_timeout();
    }

    /// Runs one job if it can run now; true if it did.
    fn try_job(&mut self, name: &str, job: Job) -> bool {
        let Some(phase) = self.rt.get(name).map(|r| r.phase) else {
            return false;
        };
        match job {
            Job::Stop => {
                if phase.starting() || phase.stopping() && phase != Phase::Stop {
                    // A start in progress is cut short below; a stop in
                    // progress finishes by itself.
                    if phase.stopping() {
                        self.clear_job(name);
                        return true;
                    }
                }
                if self.later_units_stopping(name) {
                    return false;
                }
                self.clear_job(name);
                self.begin_stop(name, AfterStop::Dead);
                true
            }
            Job::Restart => {
                if phase.stopping() {
                    return false;
                }
                match phase.active() {
                    ActiveState::Active | ActiveState::Activating
                        if phase != Phase::AutoRestart =>
                    {
                        if self.later_units_stopping(name) {
                            return false;
                        }
                        self.clear_job(name);
                        self.begin_stop(name, AfterStop::Start);
                        true
                    }
                    _ => {
                        if let Some(rt) = self.rt.get_mut(name) {
                            rt.job = Some(Job::Start);
                        }
                        true
                    }
                }
            }
            Job::Start => {
                if phase.stopping() {
                    return false;
                }
                if matches!(phase.active(), ActiveState::Active) || phase.starting() {
                    self.clear_job(name);
                    return true;
                }
                if self.earlier_units_starting(name) {
                    return false;
                }
                if let Some(dep) = self.failed_requirement(name) {
                    self.clear_job(name);
                    self.failed(
                        name,
                        format!("dependency failed: {dep}"),
                        ExitOutcome::ExitCode(1),
                    );
                    return true;
                }
                self.clear_job(name);
                self.begin_start(name);
                true
            }
        }
    }

    fn clear_job(&mut self, name: &str) {
        if let Some(rt) = self.rt.get_mut(name) {
            rt.job = None;
        }
    }

    /// `a` is ordered before `b` (`b After=a` or `a Before=b`, or `a` is
    /// the socket unit of service `b`, as systemd orders them implicitly).
    fn ordered_before(&self, a: &str, b: &str) -> bool {
        self.units
            .get(a)
            .and_then(|u| u.socket.as_ref())
            .is_some_and(|s| s.service_name(a) == b)
            || self
                .units
                .get(b)
                .is_some_and(|u| u.after.iter().any(|x| x == a))
            || self
                .units
                .get(a)
                .is_some_and(|u| u.before.iter().any(|x| x == b))
    }

    fn earlier_units_starting(&self, name: &str) -> bool {
        self.rt.iter().any(|(other, r)| {
            other != name
                && (matches!(r.job, Some(Job::Start | Job::Restart)) || r.phase.starting())
                && self.ordered_before(other, name)
        })
    }

    fn later_units_stopping(&self, name: &str) -> bool {
        self.rt.iter().any(|(other, r)| {
            other != name
                && (r.job == Some(Job::Stop) || r.phase.stopping())
                && self.ordered_before(name, other)
        })
    }

    /// A `Requires=`/`BindsTo=` unit this one is ordered after that
    /// failed or cannot start (systemd fails the start only with the
    /// ordering; a unit without a file is harmless).
    fn failed_requirement(&self, name: &str) -> Option<String> {
        let unit = self.units.get(name)?;
        unit.needs()
            .find(|dep| {
                self.ordered_before(dep, name)
                    && (self.rt.get(*dep).is_some_and(|r| r.phase == Phase::Failed)
                        || self.units.get(dep).is_some_and(|u| {
                            u.load != LoadState::NotFound && load_failure(u).is_some()
                        }))
            })
            .cloned()
    }

    fn begin_start(&mut self, name: &str) {
        let Some(unit) = self.units.get(name).cloned() else {
            return;
        };
        if let Some(reason) = load_failure(&unit) {
            self.failed(name, reason, ExitOutcome::ExitCode(1));
            return;
        }
        if let Some(rt) = self.rt.get_mut(name) {
            rt.result = None;
        }
        if !unit.conditions_met(&self.cfg.root) {
            self.note(name, "conditions not met, skipped");
            self.become_inactive(name, Phase::Condition);
            return;
        }
        if let Some(sock) = &unit.socket {
            match socket::open(sock, &self.cfg.root) {
                Ok(l) => {
                    if let Some(rt) = self.rt.get_mut(name) {
                        rt.listening = Some(l);
                    }
                    self.note(name, "listening");
                    self.set_phase(name, Phase::Running);
                }
                Err(e) => self.failed(name, e, ExitOutcome::ExitCode(1)),
            }
            return;
        }
        let Some(service) = unit.service.clone() else {
            // A target: reached once what it is ordered after has started.
            self.set_phase(name, Phase::Running);
            return;
        };
        let now = self.now();
        let limited = {
            let Some(rt) = self.rt.get_mut(name) else {
                return;
            };
            if !unit.start_limit_interval.is_zero() {
                while rt
                    .starts
                    .front()
                    .is_some_and(|t| now.saturating_sub(*t) > unit.start_limit_interval)
                {
                    rt.starts.pop_front();
                }
                if rt.starts.len() >= unit.start_limit_burst as usize {
                    true
                } else {
                    rt.starts.push_back(now);
                    false
                }
            } else {
                false
            }
        };
        if limited {
            if let Some(rt) = self.rt.get_mut(name) {
                rt.job = None;
            }
            self.failed_final(name, "start limit hit (restarting too often)".to_string());
            return;
        }
        if let Err(e) = self.prepare_run(name, &unit) {
            self.failed(name, e, ExitOutcome::ExitCode(1));
            return;
        }
        let timeout = service.timeout_start;
        if let Some(rt) = self.rt.get_mut(name) {
            rt.queue = service.exec_start_pre.iter().cloned().collect();
            rt.deadline = timeout.map(|t| now.saturating_add(t));
            rt.after_stop = AfterStop::Dead;
        }
        self.note(name, "starting");
        self.set_phase(name, Phase::StartPre);
        self.run_next(name);
    }

    /// Fails without looking at the restart policy.
    fn failed_final(&mut self, name: &str, reason: String) {
        self.outbox
            .push(format!("slipway: {name}: failed: {reason}"));
        if let Some(rt) = self.rt.get_mut(name) {
            rt.result = Some(reason.clone());
        }
        self.note(name, &format!("failed: {reason}"));
        self.become_inactive(name, Phase::Failed);
    }

    /// Environment, account, working directory, log and pipe for a run.
    fn prepare_run(&mut self, name: &str, unit: &Unit) -> Result<(), String> {
        let Some(service) = &unit.service else {
            return Ok(());
        };
        let root = &self.cfg.root;
        let account = match &service.user {
            Some(u) => Some(lookup_account(root, u, service.group.as_deref())?),
            None => match &service.group {
                Some(g) => Some(Account {
                    name: "root".into(),
                    uid: 0,
                    gid: spawn::lookup_group(root, g)?,
                    home: "/root".into(),
                    shell: "/bin/sh".into(),
                }),
                None => None,
            },
        };
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        env.insert("PATH".into(), EXEC_SEARCH_PATH.into());
        if let (ServiceType::Notify, Some(n)) = (service.kind, &self.notify) {
            env.insert("NOTIFY_SOCKET".into(), n.path().display().to_string());
        }
        env.insert("LANG".into(), "C.UTF-8".into());
        if let Some(a) = &account {
            env.insert("HOME".into(), a.home.clone());
            env.insert("USER".into(), a.name.clone());
            env.insert("LOGNAME".into(), a.name.clone());
            env.insert("SHELL".into(), a.shell.clone());
        }
        for f in &service.environment_files {
            let path = root.join(f.path.trim_start_matches('/'));
            match std::fs::read_to_string(&path) {
                Ok(text) => env.extend(units::parse_env_file(&text)),
                Err(_) if f.optional => {}
                Err(e) => return Err(format!("EnvironmentFile={}: {e}", f.path)),
            }
        }
        env.extend(service.environment.iter().cloned());
        let cwd = match &service.working_directory {
            None => None,
            Some(w) => {
                let dir = match &w.path {
                    Some(p) => p.clone(),
                    None => account
                        .as_ref()
                        .map_or("/root".to_string(), |a| a.home.clone()),
                };
                if Path::new(&dir).is_dir() {
                    Some(PathBuf::from(dir))
                } else if w.missing_ok {
                    None
                } else {
                    return Err(format!("WorkingDirectory={dir}: no such directory"));
                }
            }
        };
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| format!("creating the output pipe: {e}"))?;
        let _ = nix::fcntl::fcntl(
            &r,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
        let log_dir = self.cfg.log_dir.clone();
        let max = self.cfg.log_max_bytes;
        let Some(rt) = self.rt.get_mut(name) else {
            return Ok(());
        };
        rt.env = env.into_iter().collect();
        rt.account = account;
        rt.cwd = cwd;
        rt.pipe_r = Some(r);
        rt.pipe_w = Some(w);
        rt.pgid = None;
        rt.status_text = None;
        if rt.log.is_none() {
            rt.log = Some(UnitLog::new(&log_dir, name, max));
        }
        Ok(())
    }

    /// Runs the next queued command of the phase, or moves to the next
    /// phase when there is none.
    fn run_next(&mut self, name: &str) {
        loop {
            let Some(rt) = self.rt.get_mut(name) else {
                return;
            };
            let phase = rt.phase;
            if let Some(cmd) = rt.queue.pop_front() {
                let as_main = phase == Phase::Start;
                match self.spawn_command(name, &cmd, as_main) {
                    Ok(()) => return,
                    Err(e) if cmd.ignore_failure => {
                        self.note(name, &format!("{e} (ignored)"));
                        continue;
                    }
                    Err(e) => {
                        // A stop goes on; a failed reload leaves the
                        // service running, as in systemd.
                        if phase.stopping() || phase == Phase::Running {
                            self.note(name, &e);
                            continue;
                        }
                        self.kill_group(name);
                        self.failed(name, e, ExitOutcome::ExitCode(127));
                        return;
                    }
                }
            }
            // The phase's commands are done.
            let Some(service) = self.units.get(name).and_then(|u| u.service.clone()) else {
                return;
            };
            match phase {
                Phase::StartPre => {
                    self.set_phase(name, Phase::Start);
                    if let Some(rt) = self.rt.get_mut(name) {
                        rt.queue = service.exec_start.iter().cloned().collect();
                    }
                    if service.kind == ServiceType::Oneshot && service.exec_start.is_empty() {
                        continue;
                    }
                    // Start the main command; for simple/exec it is up.
                    let Some(rt) = self.rt.get_mut(name) else {
                        return;
                    };
                    let Some(cmd) = rt.queue.pop_front() else {
                        continue;
                    };
                    if let Err(e) = self.spawn_command(name, &cmd, true) {
                        self.kill_group(name);
                        self.failed(name, e, ExitOutcome::ExitCode(127));
                        return;
                    }
                    if matches!(service.kind, ServiceType::Simple | ServiceType::Exec) {
                        self.enter_start_post(name, &service);
                    }
                    // Type=notify waits for READY=1 (on_notify), under
                    // TimeoutStartSec=.
                    return;
                }
                Phase::Start => {
                    // Oneshot commands all done, or forking's parent exited.
                    self.enter_start_post(name, &service);
                    return;
                }
                Phase::StartPost => {
                    if let Some(rt) = self.rt.get_mut(name) {
                        rt.deadline = None;
                    }
                    let main_alive = self.rt.get(name).is_some_and(|r| r.main_pid.is_some());
                    if service.kind == ServiceType::Oneshot
                        || (service.kind == ServiceType::Forking
                            && !main_alive
                            && !self.group_alive(name))
                    {
                        if service.remain_after_exit {
                            self.set_phase(name, Phase::Exited);
                        } else {
                            self.note(name, "finished");
                            self.become_inactive(name, Phase::Dead);
                        }
                    } else {
                        self.set_phase(name, Phase::Running);
                        self.outbox_started(name);
                    }
                    return;
                }
                Phase::Stop => {
                    self.send_sigterm(name);
                    return;
                }
                Phase::StopPost => {
                    self.finish_stop_post(name);
                    return;
                }
                _ => return,
            }
        }
    }

    fn outbox_started(&mut self, name: &str) {
        self.note(name, "started");
        if self.boot_done {
            self.outbox.push(format!("slipway: started {name}"));
        }
    }

    fn enter_start_post(&mut self, name: &str, service: &units::Service) {
        self.set_phase(name, Phase::StartPost);
        if let Some(rt) = self.rt.get_mut(name) {
            rt.queue = service.exec_start_post.iter().cloned().collect();
        }
        self.run_next(name);
    }

    fn spawn_command(
        &mut self,
        name: &str,
        cmd: &ExecCommand,
        as_main: bool,
    ) -> Result<(), String> {
        let service = self.units.get(name).and_then(|u| u.service.clone());
        let group_opts = cgroup::GroupOptions {
            pids_max: service.as_ref().and_then(|s| s.tasks_max).map(|m| match m {
                Max::Infinity => "max".to_string(),
                Max::Value(n) => n.to_string(),
            }),
            delegate_to: match (&service, self.rt.get(name).and_then(|r| r.account.as_ref())) {
                (Some(s), Some(a)) if s.delegate && a.uid != 0 => Some((a.uid, a.gid)),
                _ => None,
            },
        };
        let procs = match &self.cgroups {
            Some(cg) => Some(cg.prepare(name, &group_opts)?),
            None => None,
        };
        let tasks_max = service.as_ref().and_then(|s| s.tasks_max);
        if let (Some(Max::Value(n)), Some(cg)) = (tasks_max, &self.cgroups) {
            if !cg.path(name).join("pids.max").exists() {
                self.note(
                    name,
                    &format!("TasksMax={n} ignored: the pids controller is not enabled"),
                );
            }
        }
        // The main process gets the fds of the socket units naming the
        // service, whether traffic or a dependency started it.
        let (listen_fds, fd_names) = if as_main {
            self.socket_fds_for(name)
        } else {
            (Vec::new(), Vec::new())
        };
        let now = self.now();
        let Some(rt) = self.rt.get_mut(name) else {
            return Err("unit vanished".into());
        };
        let Some(pipe) = rt.pipe_w.as_ref() else {
            return Err("no output pipe".into());
        };
        let mut env = rt.env.clone();
        if let Some(main) = rt.main_pid {
            env.push(("MAINPID".into(), main.to_string()));
        }
        if !listen_fds.is_empty() {
            env.retain(|(k, _)| !k.starts_with("LISTEN_"));
            env.push(("LISTEN_FDS".into(), listen_fds.len().to_string()));
            env.push(("LISTEN_FDNAMES".into(), fd_names.join(":")));
        }
        let env_map: BTreeMap<String, String> = env.iter().cloned().collect();
        let argv = cmd.expanded_argv(&env_map);
        let account = match cmd.privilege {
            Privilege::Normal => rt.account.as_ref(),
            _ => None,
        };
        let pid = spawn::spawn(&spawn::Spawn {
            path: &cmd.path,
            argv: &argv,
            env: &env,
            cwd: rt.cwd.clone(),
            account,
            output: pipe,
            cgroup_procs: procs.as_ref(),
            oom_score_adjust: service.as_ref().and_then(|s| s.oom_score_adjust),
            limits: service.as_ref().map_or(&[], |s| s.limits.as_slice()),
            listen_fds,
        })?;
        rt.running_ignores_failure = cmd.ignore_failure;
        if rt.pgid.is_none() {
            rt.pgid = Some(pid);
        }
        if as_main {
            rt.main_pid = Some(pid);
            rt.main_started = now;
        } else {
            rt.control_pid = Some(pid);
        }
        Ok(())
    }

    fn begin_stop(&mut self, name: &str, then: AfterStop) {
        let Some(phase) = self.rt.get(name).map(|r| r.phase) else {
            return;
        };
        let service = self.units.get(name).and_then(|u| u.service.clone());
        match phase {
            Phase::Dead | Phase::Condition | Phase::Failed => {
                if then == AfterStop::Start {
                    self.queue_job(name, Job::Start);
                }
                return;
            }
            Phase::AutoRestart => {
                self.become_inactive(name, Phase::Dead);
                if then == AfterStop::Start {
                    self.queue_job(name, Job::Start);
                }
                return;
            }
            _ => {}
        }
        let Some(service) = service else {
            // A target.
            self.become_inactive(name, Phase::Dead);
            if then == AfterStop::Start {
                self.queue_job(name, Job::Start);
            }
            return;
        };
        let now = self.now();
        let running = matches!(phase, Phase::Running | Phase::Exited);
        if let Some(rt) = self.rt.get_mut(name) {
            rt.after_stop = then;
            rt.queue = if running {
                service.exec_stop.iter().cloned().collect()
            } else {
                VecDeque::new()
            };
            rt.deadline = service.timeout_stop.map(|t| now.saturating_add(t));
        }
        self.note(name, "stopping");
        self.set_phase(name, Phase::Stop);
        if !running {
            // Cut a start short.
            if let Some(pid) = self.rt.get(name).and_then(|r| r.control_pid) {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
            self.send_sigterm(name);
            return;
        }
        self.run_next(name);
    }

    fn send_sigterm(&mut self, name: &str) {
        let timeout = self
            .units
            .get(name)
            .and_then(|u| u.service.as_ref())
            .and_then(|s| s.timeout_stop);
        let now = self.now();
        self.set_phase(name, Phase::StopSigterm);
        if let Some(rt) = self.rt.get_mut(name) {
            rt.deadline = timeout.map(|t| now.saturating_add(t));
        }
        self.signal_group(name, Signal::SIGTERM);
        self.signal_group(name, Signal::SIGCONT);
        if !self.group_alive(name) {
            self.finish_stop(name);
        }
    }

    /// The group is empty: run `ExecStopPost=`, then settle.
    fn finish_stop(&mut self, name: &str) {
        let post = self
            .units
            .get(name)
            .and_then(|u| u.service.as_ref())
            .map(|s| s.exec_stop_post.clone())
            .unwrap_or_default();
        let now = self.now();
        self.set_phase(name, Phase::StopPost);
        if let Some(rt) = self.rt.get_mut(name) {
            rt.main_pid = None;
            rt.queue = post.into_iter().collect();
            rt.deadline = Some(now.saturating_add(Duration::from_secs(10)));
        }
        self.run_next(name);
    }

    fn finish_stop_post(&mut self, name: &str) {
        let then = self
            .rt
            .get(name)
            .map_or(AfterStop::Dead, |r| r.after_stop.clone());
        self.note(name, "stopped");
        match then {
            AfterStop::Dead => {
                let killed = self
                    .rt
                    .get(name)
                    .and_then(|r| r.result.clone())
                    .filter(|r| r.starts_with("stop timeout"));
                self.become_inactive(name, Phase::Dead);
                if let (Some(rt), Some(k)) = (self.rt.get_mut(name), killed) {
                    rt.result = Some(k);
                }
            }
            AfterStop::Start => {
                self.become_inactive(name, Phase::Dead);
                self.queue_job(name, Job::Start);
            }
        }
    }

    fn group_pids(&self, name: &str) -> Vec<i32> {
        match &self.cgroups {
            Some(cg) => cg.pids(name),
            None => Vec::new(),
        }
    }

    fn kill_mode(&self, name: &str) -> KillMode {
        self.units
            .get(name)
            .and_then(|u| u.service.as_ref())
            .map(|s| s.kill_mode)
            .unwrap_or_default()
    }

    /// Whether any process of the unit is left (that a stop waits for:
    /// with `KillMode=process` or `none`, only the main and control
    /// processes).
    fn group_alive(&self, name: &str) -> bool {
        let Some(rt) = self.rt.get(name) else {
            return false;
        };
        if rt.main_pid.is_some() || rt.control_pid.is_some() {
            return true;
        }
        if matches!(self.kill_mode(name), KillMode::Process | KillMode::None) {
            return false;
        }
        match &self.cgroups {
            Some(cg) => !cg.pids(name).is_empty(),
            None => rt.pgid.is_some_and(|g| {
                nix::sys::signal::killpg(Pid::from_raw(g), None).is_ok() && !group_only_zombies(g)
            }),
        }
    }

    fn signal_group(&self, name: &str, signal: Signal) {
        let Some(rt) = self.rt.get(name) else {
            return;
        };
        match kill_targets(self.kill_mode(name), signal) {
            Targets::Nothing => return,
            Targets::Main => {
                for pid in rt.main_pid.iter().chain(&rt.control_pid) {
                    let _ = nix::sys::signal::kill(Pid::from_raw(*pid), signal);
                }
                return;
            }
            Targets::Group => {}
        }
        match &self.cgroups {
            Some(cg) => {
                for pid in cg.pids(name) {
                    let _ = nix::sys::signal::kill(Pid::from_raw(pid), signal);
                }
            }
            None => {
                if let Some(g) = rt.pgid {
                    let _ = nix::sys::signal::killpg(Pid::from_raw(g), signal);
                }
            }
        }
        for pid in rt.main_pid.iter().chain(&rt.control_pid) {
            let _ = nix::sys::signal::kill(Pid::from_raw(*pid), signal);
        }
    }

    fn kill_group(&self, name: &str) {
        if kill_targets(self.kill_mode(name), Signal::SIGKILL) != Targets::Group {
            self.signal_group(name, Signal::SIGKILL);
            return;
        }
        match &self.cgroups {
            Some(cg) => cg.kill_all(name),
            None => self.signal_group(name, Signal::SIGKILL),
        }
    }

    /// A line for the unit's own log.
    fn note(&mut self, name: &str, text: &str) {
        let dir = self.cfg.log_dir.clone();
        let max = self.cfg.log_max_bytes;
        if let Some(rt) = self.rt.get_mut(name) {
            rt.log
                .get_or_insert_with(|| UnitLog::new(&dir, name, max))
                .note(text);
        }
    }

    fn check_boot_done(&mut self) {
        if self.boot_done {
            return;
        }
        let waiting = self.boot_units.iter().any(|n| {
            self.rt
                .get(n)
                .is_some_and(|r| r.job.is_some() || r.phase.starting())
        });
        if waiting {
            return;
        }
        self.boot_done = true;
        let started = self
            .boot_units
            .iter()
            .filter(|n| self.units.get(n).is_some_and(|u| u.service.is_some()))
            .filter(|n| {
                self.rt.get(*n).is_some_and(|r| {
                    r.phase.active() == ActiveState::Active
                        || r.phase == Phase::Dead && r.result.is_none()
                })
            })
            .count();
        let failed = self
            .boot_units
            .iter()
            .filter(|n| {
                self.rt
                    .get(*n)
                    .is_some_and(|r| r.phase == Phase::Failed || r.phase == Phase::AutoRestart)
            })
            .count();
        let since_stage2 = self
            .stage2_start
            .map(|s2| {
                format!(
                    " (stage 2 start +{} ms)",
                    (self.boot_epoch + self.now())
                        .saturating_sub(s2)
                        .as_millis()
                )
            })
            .unwrap_or_default();
        self.outbox.push(format!(
            "slipway: services started: {started} in {} ms, {failed} failed{since_stage2}",
            self.now().as_millis()
        ));
    }

    /// When the boot could next turn healthy.
    fn health_check_at(&self) -> Option<Duration> {
        if !self.boot_done {
            return None;
        }
        let latest = self
            .boot_units
            .iter()
            .filter_map(|n| self.rt.get(n))
            .map(|r| r.since)
            .max()
            .unwrap_or_default();
        Some(latest + self.cfg.health_grace)
    }

    /// The hook hears `unhealthy` for a boot that has not settled in time.
    fn check_settle_timeout(&mut self) {
        if self.health != Health::Starting || self.now() < self.cfg.settle_timeout {
            return;
        }
        if self.cfg.health_hook.is_some() && !self.health_hooks_run.contains("unhealthy") {
            self.outbox.push(format!(
                "slipway: health: still starting after {} s: reporting the boot as unhealthy \
                 to the update engine",
                self.cfg.settle_timeout.as_secs()
            ));
            self.run_health_hook(Health::Unhealthy);
        }
    }

    /// Once per boot for each settled state. The hook is not waited for:
    /// the supervise loop reaps it like any orphan, and it may itself ask
    /// PID 1 to reboot through the control socket.
    fn run_health_hook(&mut self, health: Health) {
        let state = match health {
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
            Health::Starting => return,
        };
        let Some(hook) = &self.cfg.health_hook else {
            return;
        };
        if !self.health_hooks_run.insert(state) {
            return;
        }
        if let Err(e) = std::process::Command::new(hook)
            .args(["on-health", state])
            .stdin(std::process::Stdio::null())
            .spawn()
        {
            self.outbox
                .push(format!("slipway: health hook {}: {e}", hook.display()));
        }
    }

    fn update_health(&mut self) {
        if self.health == Health::Healthy || !self.boot_done {
            return;
        }
        let mut bad = Vec::new();
        let mut unsettled = false;
        for name in &self.boot_units {
            let Some(rt) = self.rt.get(name) else {
                continue;
            };
            match rt.phase {
                Phase::Failed => bad.push(format!(
                    "{name} failed ({})",
                    rt.result.as_deref().unwrap_or("unknown")
                )),
                Phase::Running | Phase::Exited | Phase::Condition => {}
                Phase::Dead if rt.result.is_none() => {}
                _ => unsettled = true,
            }
        }
        let (health, detail) = if !bad.is_empty() {
            (Health::Unhealthy, Some(bad.join(", ")))
        } else if unsettled || self.health_check_at().is_some_and(|t| t > self.now()) {
            (Health::Starting, None)
        } else {
            (Health::Healthy, None)
        };
        if health != self.health || detail != self.health_detail {
            self.health = health;
            self.health_detail = detail;
            let text = match &self.health_detail {
                Some(d) => format!("{}: {d}", health.as_str()),
                None => health.as_str().to_string(),
            };
            self.outbox.push(format!("slipway: health: {text}"));
            self.run_health_hook(health);
            if let Some(path) = &self.cfg.health_file {
                if let Some(dir) = path.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                let tmp = path.with_extension("tmp");
                if std::fs::write(&tmp, format!("{text}\n")).is_ok() {
                    let _ = std::fs::rename(&tmp, path);
                }
            }
        }
    }
}

/// `CLOCK_BOOTTIME`: time since boot, the clock status reports in.
pub fn boot_clock() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(Duration::from)
        .unwrap_or_default()
}

/// Why a loaded unit cannot be started, if it cannot.
fn load_failure(unit: &Unit) -> Option<String> {
    match &unit.load {
        LoadState::Loaded => None,
        LoadState::Masked => Some("masked".into()),
        LoadState::NotFound => Some("unit file not found".into()),
        LoadState::Unsupported => Some("unit type not supported".into()),
        LoadState::Error(e) => Some(format!("bad unit: {e}")),
    }
}

fn load_word(l: &LoadState) -> &'static str {
    match l {
        LoadState::Loaded => "loaded",
        LoadState::Masked => "masked",
        LoadState::NotFound => "not-found",
        LoadState::Unsupported => "unsupported",
        LoadState::Error(_) => "error",
    }
}

/// `exit status 1`, `killed by SIGKILL`.
pub fn describe(outcome: ExitOutcome) -> String {
    match outcome {
        ExitOutcome::Success => "exited successfully".into(),
        ExitOutcome::ExitCode(c) => format!("exit status {c}"),
        ExitOutcome::Signal(s) => match Signal::try_from(s) {
            Ok(sig) => format!("killed by {}", sig.as_str()),
            Err(_) => format!("killed by signal {s}"),
        },
        ExitOutcome::Timeout => "timeout".into(),
        ExitOutcome::Watchdog => "watchdog".into(),
    }
}

/// Which processes of a unit a signal goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Targets {
    /// The main and control processes only.
    Main,
    /// Every process of the group.
    Group,
    Nothing,
}

/// systemd's `KillMode=`: `mixed` sends `SIGTERM` to the main process
/// and `SIGKILL` to all; `process` only ever signals the main process;
/// `none` signals nothing.
pub fn kill_targets(mode: KillMode, signal: Signal) -> Targets {
    match mode {
        KillMode::ControlGroup => Targets::Group,
        KillMode::Mixed if signal == Signal::SIGKILL => Targets::Group,
        KillMode::Mixed | KillMode::Process => Targets::Main,
        KillMode::None => Targets::Nothing,
    }
}

/// `RestartSec=` doubled per failure in a row after the first, capped.
pub fn restart_delay(base: Duration, failures_in_row: u32) -> Duration {
    let shift = failures_in_row.saturating_sub(1).min(16);
    let delay = base.saturating_mul(1u32 << shift);
    delay.min(MAX_RESTART_DELAY.max(base))
}

/// True when every member of process group `pgid` is a zombie (exited,
/// not yet reaped): without cgroups, that group is as good as empty.
fn group_only_zombies(pgid: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    for e in entries.flatten() {
        let Ok(text) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp …; comm may hold spaces and parens.
        let Some(after) = text.rsplit_once(')').map(|(_, a)| a) else {
            continue;
        };
        let f: Vec<&str> = after.split_whitespace().collect();
        if let (Some(state), Some(pgrp)) = (f.first(), f.get(2)) {
            if pgrp.parse() == Ok(pgid) && *state != "Z" {
                return false;
            }
        }
    }
    true
}

/// Reads a unit's pipe until it would block; logs lines, copies them to
/// the console if asked.
fn drain_pipe(rt: &mut Runtime, name: &str, console: bool, outbox: &mut Vec<String>) {
    let Some(pipe) = rt.pipe_r.as_ref() else {
        return;
    };
    let mut buf = [0u8; 8192];
    // Bounded, so a service that writes without pause cannot starve
    // PID 1's other work; the rest is read on the next poll.
    for _ in 0..16 {
        match nix::unistd::read(pipe, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let lines = match (&mut rt.log, buf.get(..n)) {
                    (Some(log), Some(bytes)) => log.feed(bytes),
                    _ => Vec::new(),
                };
                if console {
                    outbox.extend(lines.into_iter().map(|l| format!("{name}: {l}")));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;

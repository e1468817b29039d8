//! The service manager's state machine, pure: it is driven by
//! [`Event`]s that come with the current time, and answers with
//! [`Action`]s (spawn, signal, log, write the health file, …) that the
//! driver ([`super::Manager`]) carries out. It never forks, signals,
//! sleeps or reads a clock, so tests drive it with made-up pids and times
//! (`machine_tests.rs`).
//!
//! It does read configuration under [`Config::root`]: unit files, their
//! drop-ins and links, `/etc/passwd` and `/etc/group` for `User=`,
//! `EnvironmentFile=`, conditions. Tests give it a temporary root.
//!
//! Each unit runs through the phases of [`Phase`]; `active` (what
//! `status` shows) follows from the phase. Ordering (`After=`/`Before=`)
//! is applied when jobs run, not by precomputed batches: a start job
//! waits while any unit ordered before it has a start job queued or is
//! still activating; a stop job waits while any unit ordered after it is
//! still stopping. Independent units therefore start (and stop) in
//! parallel.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;

use super::cgroup;
use super::config::Config;
use super::event::{Action, Event, GroupCheck, Role, SpawnRequest};
use super::phase::{Job, Phase};
use super::spawn::{self, lookup_account, Account};
use crate::units::{
    self, start_order, Context, ExecCommand, ExitOutcome, KillMode, LoadState, Max, Privilege,
    ServiceType, Unit, UnitSet, EXEC_SEARCH_PATH,
};
use slipway_control::{ActiveState, Health};

/// How long PID 1 waits after SIGKILL for a group to empty before giving
/// up on it (a process stuck in the kernel cannot be helped).
const KILL_WAIT: Duration = Duration::from_secs(5);
/// How often a stopping unit's group is checked for emptiness once its
/// main process is gone.
const EMPTY_POLL: Duration = Duration::from_millis(20);
/// Restart delays double per failure in a row, up to this.
const MAX_RESTART_DELAY: Duration = Duration::from_secs(30);

/// The time `d` after `now`, or `None` (never) when that is past the end
/// of the clock. Every deadline the machine sets is made here: a time-out
/// from a unit file may be any length, `now + d` panics where the sum
/// does not fit, and a time-out that long is no time-out (systemd's
/// `infinity`).
pub(super) fn deadline(now: Duration, d: Duration) -> Option<Duration> {
    now.checked_add(d)
}

/// What happens once a stop has finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum AfterStop {
    Dead,
    Start,
}

/// A spawn asked for and not answered yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Spawning {
    role: Role,
    /// `-` on the command.
    ignore_failure: bool,
    /// The first `ExecStart=`, spawned as the start-pre phase ends: a
    /// failure fails the start whatever its `-`, and a simple service is
    /// up once it runs.
    first_main: bool,
}

/// The running state of one unit.
#[derive(Debug)]
pub(super) struct Runtime {
    pub(super) phase: Phase,
    /// When the active state last changed (manager clock).
    pub(super) since: Duration,
    pub(super) main_pid: Option<i32>,
    pub(super) control_pid: Option<i32>,
    /// `-` on the command the running process came from.
    pub(super) running_ignores_failure: bool,
    /// Commands left in the current phase.
    pub(super) queue: VecDeque<ExecCommand>,
    pub(super) deadline: Option<Duration>,
    pub(super) restarts: u32,
    pub(super) failures_in_row: u32,
    pub(super) starts: VecDeque<Duration>,
    pub(super) result: Option<String>,
    /// The unit's log exists (a line was noted or a run prepared).
    pub(super) logged: bool,
    pub(super) env: Vec<(String, String)>,
    pub(super) account: Option<Account>,
    pub(super) cwd: Option<PathBuf>,
    pub(super) after_stop: AfterStop,
    pub(super) job: Option<Job>,
    /// The process group (the first process's pid) when there are no
    /// cgroups.
    pub(super) pgid: Option<i32>,
    pub(super) main_started: Duration,
    /// A socket unit's fds are bound (the driver holds them).
    pub(super) listening: bool,
    /// The last `STATUS=` a notify service sent.
    pub(super) status_text: Option<String>,
    pub(super) spawning: Option<Spawning>,
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
            logged: false,
            env: Vec::new(),
            account: None,
            cwd: None,
            after_stop: AfterStop::Dead,
            job: None,
            pgid: None,
            main_started: Duration::ZERO,
            listening: false,
            status_text: None,
            spawning: None,
        }
    }
}

/// The service manager's state.
#[derive(Debug)]
pub struct Machine {
    pub(super) cfg: Config,
    pub(super) ctx: Context,
    pub(super) units: UnitSet,
    pub(super) rt: BTreeMap<String, Runtime>,
    /// Units of the boot transaction: what health is judged on.
    pub(super) boot_units: BTreeSet<String>,
    pub(super) health: Health,
    pub(super) health_detail: Option<String>,
    /// Health states the hook already ran for in this boot.
    pub(super) health_hooks_run: BTreeSet<&'static str>,
    /// Set once the boot's start jobs have all finished.
    pub(super) boot_done: bool,
    /// Unit names whose output is copied to the console.
    pub(super) console_units: BTreeSet<String>,
    /// Boot clock (`CLOCK_BOOTTIME`) when the manager was made: the
    /// manager's clock starts there.
    pub(super) boot_epoch: Duration,
    /// Boot clock when stage 2 started, for the summary line.
    pub(super) stage2_start: Option<Duration>,
    /// The notification socket, when it could be bound.
    pub(super) notify_path: Option<PathBuf>,
    /// The time of the event being handled.
    pub(super) now: Duration,
    /// What the event being handled asks for.
    pub(super) actions: Vec<Action>,
}

impl Machine {
    /// A machine with nothing loaded. `boot_epoch` is the boot clock at
    /// its time zero; `notify_path` the bound notification socket.
    pub fn new(
        cfg: Config,
        ctx: Context,
        boot_epoch: Duration,
        notify_path: Option<PathBuf>,
    ) -> Machine {
        Machine {
            cfg,
            ctx,
            units: UnitSet::default(),
            rt: BTreeMap::new(),
            boot_units: BTreeSet::new(),
            health: Health::Starting,
            health_detail: None,
            health_hooks_run: BTreeSet::new(),
            boot_done: false,
            console_units: BTreeSet::new(),
            boot_epoch,
            stage2_start: None,
            notify_path,
            now: Duration::ZERO,
            actions: Vec::new(),
        }
    }

    /// Boot clock at stage 2's start, so the summary line can say how
    /// long after it the services were up.
    pub fn set_stage2_start(&mut self, at: Duration) {
        self.stage2_start = Some(at);
    }

    /// Handles one event at `now` (time since the machine's start) and
    /// returns what to do, in order.
    pub fn handle(&mut self, event: Event, now: Duration) -> Vec<Action> {
        self.now = self.now.max(now);
        match event {
            Event::Boot { unit_commands } => self.boot(&unit_commands),
            Event::Exited { pid, outcome } => self.on_exit(pid, outcome),
            Event::Timer => self.on_timer(),
            Event::Request { unit, job } => {
                let answer = self.request(&unit, job);
                self.actions.push(Action::Answer(answer));
            }
            Event::Reload { unit } => {
                let answer = self.reload_unit(&unit);
                self.actions.push(Action::Answer(answer));
            }
            Event::StopAll => self.stop_all(),
            Event::Notify {
                pid,
                cgroup_unit,
                message,
            } => self.on_notify(pid, cgroup_unit, &message),
            Event::SocketReadable { unit } => self.on_socket(&unit),
            Event::Spawned { unit, pid } => self.on_spawned(&unit, pid),
            Event::SpawnFailed { unit, error } => self.on_spawn_failed(&unit, error),
            Event::GroupChecked {
                unit,
                check,
                alive,
                pids,
            } => self.on_group_checked(&unit, check, alive, &pids),
            Event::Listened { unit, result } => self.on_listened(&unit, result),
        }
        self.step();
        std::mem::take(&mut self.actions)
    }

    pub fn health(&self) -> (Health, Option<&str>) {
        (self.health, self.health_detail.as_deref())
    }

    /// Whether the unit's output is copied to the console.
    pub fn copies_to_console(&self, name: &str) -> bool {
        self.console_units.contains(name)
    }

    /// Loads the boot target and what it pulls in, reports load problems
    /// and ordering cycles, and queues the start jobs, then the commands
    /// cloud-config queued (`<command> <unit>` lines).
    fn boot(&mut self, unit_commands: &str) {
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
            // `start etcd2.service` starts etcd.service, as `request` does;
            // `try-restart etcd2.service` asks whether etcd.service runs.
            let canonical = self.canonical_name(unit);
            let unit = canonical.as_str();
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
    }

    /// The unit an alias links to (`etcd2.service` → `etcd.service`), or
    /// the name itself: one unit, not two, as in systemd.
    pub(super) fn canonical_name(&self, name: &str) -> String {
        units::alias_target(&self.cfg.root, name).unwrap_or_else(|| name.to_string())
    }

    /// Loads units that are not loaded yet (and what they pull in);
    /// prints their diagnostics.
    pub(super) fn load(&mut self, names: &[String]) {
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
            self.console(format!("slipway: {d}"));
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
                    self.console(format!("slipway: {}: not started: {reason}", unit.name));
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
            self.console(format!("slipway: {d}"));
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
            self.console(format!("slipway: {text}: none of these units is started"));
            for u in &cycle.units {
                let rt = self.rt.entry(u.clone()).or_insert_with(Runtime::new);
                rt.phase = Phase::Failed;
                rt.result = Some(text.clone());
            }
        }
    }

    pub(super) fn is_active(&self, name: &str) -> bool {
        self.rt
            .get(name)
            .is_some_and(|r| r.phase.active() == ActiveState::Active)
    }

    /// Queues a job; a later job replaces an earlier one still waiting.
    pub(super) fn queue_job(&mut self, name: &str, job: Job) {
        let rt = self.rt.entry(name.to_string()).or_insert_with(Runtime::new);
        rt.job = Some(job);
    }

    /// Queues a job from the control socket: loads the unit if needed.
    /// `Err` when the unit cannot be started at all.
    fn request(&mut self, name: &str, job: Job) -> Result<(), String> {
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
        Ok(())
    }

    /// Runs `ExecReload=` of a running service (`$MAINPID` is its main
    /// process) as control processes; the service stays running whatever
    /// they return.
    fn reload_unit(&mut self, name: &str) -> Result<(), String> {
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
        if rt.control_pid.is_some() || rt.spawning.is_some() {
            return Err("a reload is already running".to_string());
        }
        rt.queue = commands.into_iter().collect();
        self.note(name, "reloading");
        self.run_next(name);
        Ok(())
    }

    /// Queues a stop of every unit that is not already stopped.
    fn stop_all(&mut self) {
        for rt in self.rt.values_mut() {
            match rt.phase {
                Phase::Dead | Phase::Condition | Phase::Failed => rt.job = None,
                _ => rt.job = Some(Job::Stop),
            }
        }
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

    /// The earliest time [`Event::Timer`] has work, as a delay from `now`.
    pub fn next_deadline(&self, now: Duration) -> Option<Duration> {
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
    fn on_timer(&mut self) {
        let now = self.now;
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
            } else if empty_check {
                self.when_group_empty(&name, GroupCheck::Stopping);
            }
        }
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
                let now = self.now;
                if let Some(rt) = self.rt.get_mut(name) {
                    rt.deadline = deadline(now, KILL_WAIT);
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
    fn on_exit(&mut self, pid: i32, outcome: ExitOutcome) {
        let Some(name) = self.unit_of_pid(pid) else {
            return;
        };
        let console = self.copies_to_console(&name);
        self.actions.push(Action::DrainOutput {
            unit: name.clone(),
            console,
        });
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
            return;
        }
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
                    // The daemon is what is left in the group; asked of
                    // the driver, which knows the group.
                    self.check_group(&name, GroupCheck::ForkingMain);
                } else {
                    self.kill_group(&name);
                    self.failed(&name, describe(outcome), outcome);
                }
            }
            Phase::Start if kind == Some(ServiceType::Notify) => {
                // Gone before READY=1: a failed start whatever the exit
                // status (systemd's "protocol" result).
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
                && p != Phase::StopPost
                && self.rt.get(&name).is_some_and(|r| r.control_pid.is_none()) =>
            {
                self.when_group_empty(&name, GroupCheck::Stopping);
            }
            _ => {}
        }
    }

    /// The unit whose main or control process `pid` is.
    fn unit_of_pid(&self, pid: i32) -> Option<String> {
        self.rt
            .iter()
            .find(|(_, r)| r.main_pid == Some(pid) || r.control_pid == Some(pid))
            .map(|(n, _)| n.clone())
    }

    /// The main process of a running service ended on its own.
    fn main_ended(&mut self, name: &str, outcome: ExitOutcome) {
        let (remain, restart, ran_for) = match (self.units.get(name), self.rt.get(name)) {
            (Some(u), Some(rt)) => (
                u.service.as_ref().is_some_and(|s| s.remain_after_exit),
                u.service.as_ref().map(|s| s.restart).unwrap_or_default(),
                self.now.saturating_sub(rt.main_started),
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
    pub(super) fn failed(&mut self, name: &str, reason: String, outcome: ExitOutcome) {
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
        self.console(format!("slipway: {name}: failed: {reason}"));
        self.note(name, &format!("failed: {reason}"));
        self.become_inactive(name, Phase::Failed);
    }

    fn schedule_restart(&mut self, name: &str) {
        let base = self
            .units
            .get(name)
            .and_then(|u| u.service.as_ref())
            .map_or(Duration::from_millis(100), |s| s.restart_sec);
        let now = self.now;
        let Some(rt) = self.rt.get_mut(name) else {
            return;
        };
        rt.failures_in_row = rt.failures_in_row.saturating_add(1);
        let delay = restart_delay(base, rt.failures_in_row);
        rt.deadline = deadline(now, delay);
        rt.queue.clear();
        self.note(name, &format!("restarting in {} ms", delay.as_millis()));
        self.set_phase(name, Phase::AutoRestart);
    }

    pub(super) fn become_inactive(&mut self, name: &str, phase: Phase) {
        self.set_phase(name, phase);
        if let Some(rt) = self.rt.get_mut(name) {
            rt.deadline = None;
            rt.queue.clear();
            rt.main_pid = None;
            rt.control_pid = None;
            // The driver closes a socket unit's fds (and removes its files
            // with RemoveOnStop=).
            rt.listening = false;
        }
        let console = self.copies_to_console(name);
        self.actions.push(Action::Release {
            unit: name.to_string(),
            console,
        });
        self.stop_bound(name);
    }

    pub(super) fn set_phase(&mut self, name: &str, phase: Phase) {
        let now = self.now;
        if let Some(rt) = self.rt.get_mut(name) {
            if rt.phase.active() != phase.active() {
                rt.since = now;
            }
            rt.phase = phase;
        }
    }

    pub(super) fn service_kind(&self, name: &str) -> Option<ServiceType> {
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
                if phase.stopping() && phase != Phase::Stop {
                    // A stop in progress finishes by itself.
                    self.clear_job(name);
                    return true;
                }
                // A start in progress is cut short by the stop.
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
            // Activating until the driver answers, so what is ordered
            // after the socket waits for it.
            self.set_phase(name, Phase::Start);
            self.actions.push(Action::Listen {
                unit: name.to_string(),
                socket: Box::new(sock.clone()),
            });
            return;
        }
        let Some(service) = unit.service.clone() else {
            // A target: reached once what it is ordered after has started.
            self.set_phase(name, Phase::Running);
            return;
        };
        let now = self.now;
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
            rt.deadline = timeout.and_then(|t| deadline(now, t));
            rt.after_stop = AfterStop::Dead;
        }
        self.note(name, "starting");
        self.set_phase(name, Phase::StartPre);
        self.run_next(name);
    }

    /// A socket unit's addresses are bound, or could not be.
    fn on_listened(&mut self, name: &str, result: Result<(), String>) {
        match result {
            Ok(()) => {
                if let Some(rt) = self.rt.get_mut(name) {
                    rt.listening = true;
                }
                self.note(name, "listening");
                self.set_phase(name, Phase::Running);
            }
            Err(e) => self.failed(name, e, ExitOutcome::ExitCode(1)),
        }
    }

    /// Fails without looking at the restart policy.
    pub(super) fn failed_final(&mut self, name: &str, reason: String) {
        self.console(format!("slipway: {name}: failed: {reason}"));
        if let Some(rt) = self.rt.get_mut(name) {
            rt.result = Some(reason.clone());
        }
        self.note(name, &format!("failed: {reason}"));
        self.become_inactive(name, Phase::Failed);
    }

    /// Environment, account and working directory for a run; the driver
    /// makes the output pipe.
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
        if let (ServiceType::Notify, Some(n)) = (service.kind, &self.notify_path) {
            env.insert("NOTIFY_SOCKET".into(), n.display().to_string());
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
            // Never a FIFO or device, never more than units::MAX_FILE:
            // this runs in PID 1.
            match units::read_regular(&path) {
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
        let Some(rt) = self.rt.get_mut(name) else {
            return Ok(());
        };
        rt.env = env.into_iter().collect();
        rt.account = account;
        rt.cwd = cwd;
        rt.pgid = None;
        rt.status_text = None;
        rt.logged = true;
        self.actions.push(Action::PrepareOutput {
            unit: name.to_string(),
        });
        Ok(())
    }

    /// Runs the next queued command of the phase, or moves to the next
    /// phase when there is none. A spawn's outcome arrives as its own
    /// event ([`Machine::on_spawned`], [`Machine::on_spawn_failed`]).
    pub(super) fn run_next(&mut self, name: &str) {
        loop {
            let Some(rt) = self.rt.get_mut(name) else {
                return;
            };
            let phase = rt.phase;
            if let Some(cmd) = rt.queue.pop_front() {
                let role = if phase == Phase::Start {
                    Role::Main
                } else {
                    Role::Control
                };
                self.spawn_command(name, &cmd, role, false);
                return;
            }
            // The phase's commands are done.
            let Some(service) = self.units.get(name).and_then(|u| u.service.clone()) else {
                return;
            };
            match phase {
                Phase::StartPre => {
                    self.set_phase(name, Phase::Start);
                    let Some(rt) = self.rt.get_mut(name) else {
                        return;
                    };
                    rt.queue = service.exec_start.iter().cloned().collect();
                    if service.kind == ServiceType::Oneshot && service.exec_start.is_empty() {
                        continue;
                    }
                    // Start the main command; for simple/exec it is up
                    // once it runs.
                    let Some(cmd) = rt.queue.pop_front() else {
                        continue;
                    };
                    self.spawn_command(name, &cmd, Role::Main, true);
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
                    if service.kind == ServiceType::Oneshot {
                        self.start_finished(name, &service, false);
                    } else if service.kind == ServiceType::Forking && !main_alive {
                        self.when_group_empty(name, GroupCheck::ForkingSettled);
                    } else {
                        self.start_finished(name, &service, true);
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

    /// The start is over: running while something of it is `left`, else
    /// exited (`RemainAfterExit=`) or done.
    pub(super) fn start_finished(&mut self, name: &str, service: &units::Service, left: bool) {
        if left {
            self.set_phase(name, Phase::Running);
            self.note(name, "started");
            if self.boot_done {
                self.console(format!("slipway: started {name}"));
            }
        } else if service.remain_after_exit {
            self.set_phase(name, Phase::Exited);
        } else {
            self.note(name, "finished");
            self.become_inactive(name, Phase::Dead);
        }
    }

    pub(super) fn enter_start_post(&mut self, name: &str, service: &units::Service) {
        self.set_phase(name, Phase::StartPost);
        if let Some(rt) = self.rt.get_mut(name) {
            rt.queue = service.exec_start_post.iter().cloned().collect();
        }
        self.run_next(name);
    }

    /// Asks the driver to start one command.
    fn spawn_command(&mut self, name: &str, cmd: &ExecCommand, role: Role, first_main: bool) {
        let service = self.units.get(name).and_then(|u| u.service.clone());
        // The main process gets the fds of the socket units naming the
        // service, whether traffic or a dependency started it.
        let (sockets, fd_names) = if role == Role::Main {
            self.sockets_for(name)
        } else {
            (Vec::new(), Vec::new())
        };
        let Some(rt) = self.rt.get_mut(name) else {
            return;
        };
        let mut env = rt.env.clone();
        if let Some(main) = rt.main_pid {
            env.push(("MAINPID".into(), main.to_string()));
        }
        if !fd_names.is_empty() {
            env.retain(|(k, _)| !k.starts_with("LISTEN_"));
            env.push(("LISTEN_FDS".into(), fd_names.len().to_string()));
            env.push(("LISTEN_FDNAMES".into(), fd_names.join(":")));
        }
        let env_map: BTreeMap<String, String> = env.iter().cloned().collect();
        let argv = cmd.expanded_argv(&env_map);
        let account = match cmd.privilege {
            Privilege::Normal => rt.account.clone(),
            _ => None,
        };
        let delegate_to = match (&service, &rt.account) {
            (Some(s), Some(a)) if s.delegate && a.uid != 0 => Some((a.uid, a.gid)),
            _ => None,
        };
        rt.spawning = Some(Spawning {
            role,
            ignore_failure: cmd.ignore_failure,
            first_main,
        });
        let tasks_max = service.as_ref().and_then(|s| s.tasks_max);
        self.actions.push(Action::Spawn(Box::new(SpawnRequest {
            unit: name.to_string(),
            role,
            path: cmd.path.clone(),
            argv,
            env,
            cwd: rt.cwd.clone(),
            account,
            group: cgroup::GroupOptions {
                pids_max: tasks_max.map(|m| match m {
                    Max::Infinity => "max".to_string(),
                    Max::Value(n) => n.to_string(),
                }),
                delegate_to,
            },
            tasks_max: match tasks_max {
                Some(Max::Value(n)) => Some(n),
                _ => None,
            },
            oom_score_adjust: service.as_ref().and_then(|s| s.oom_score_adjust),
            limits: service.map(|s| s.limits).unwrap_or_default(),
            sockets,
        })));
    }

    /// The command asked for runs as `pid`.
    fn on_spawned(&mut self, name: &str, pid: i32) {
        let now = self.now;
        let Some(rt) = self.rt.get_mut(name) else {
            return;
        };
        let Some(spawning) = rt.spawning.take() else {
            return;
        };
        rt.running_ignores_failure = spawning.ignore_failure;
        if rt.pgid.is_none() {
            rt.pgid = Some(pid);
        }
        match spawning.role {
            Role::Main => {
                rt.main_pid = Some(pid);
                rt.main_started = now;
            }
            Role::Control => rt.control_pid = Some(pid),
        }
        if spawning.first_main {
            let Some(service) = self.units.get(name).and_then(|u| u.service.clone()) else {
                return;
            };
            // Type=notify waits for READY=1 (on_notify), forking for its
            // parent to exit, under TimeoutStartSec=.
            if matches!(service.kind, ServiceType::Simple | ServiceType::Exec) {
                self.enter_start_post(name, &service);
            }
        }
    }

    /// The command asked for could not be started.
    fn on_spawn_failed(&mut self, name: &str, error: String) {
        let Some(rt) = self.rt.get_mut(name) else {
            return;
        };
        let Some(spawning) = rt.spawning.take() else {
            return;
        };
        let phase = rt.phase;
        if spawning.first_main {
            self.kill_group(name);
            self.failed(name, error, ExitOutcome::ExitCode(127));
        } else if spawning.ignore_failure {
            self.note(name, &format!("{error} (ignored)"));
            self.run_next(name);
        } else if phase.stopping() || phase == Phase::Running {
            // A stop goes on; a failed reload leaves the service
            // running, as in systemd.
            self.note(name, &error);
            self.run_next(name);
        } else {
            self.kill_group(name);
            self.failed(name, error, ExitOutcome::ExitCode(127));
        }
    }

    /// A line for the console.
    pub(super) fn console(&mut self, line: String) {
        self.actions.push(Action::Console(line));
    }

    /// A line for the unit's own log.
    pub(super) fn note(&mut self, name: &str, text: &str) {
        if let Some(rt) = self.rt.get_mut(name) {
            rt.logged = true;
            self.actions.push(Action::Log {
                unit: name.to_string(),
                text: text.to_string(),
            });
        }
    }
}

/// Why a loaded unit cannot be started, if it cannot.
pub(super) fn load_failure(unit: &Unit) -> Option<String> {
    match &unit.load {
        LoadState::Loaded => None,
        LoadState::Masked => Some("masked".into()),
        LoadState::NotFound => Some("unit file not found".into()),
        LoadState::Unsupported => Some("unit type not supported".into()),
        LoadState::Error(e) => Some(format!("bad unit: {e}")),
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

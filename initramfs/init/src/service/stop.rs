//! Stopping a unit: `ExecStop=`, then `SIGTERM` and `SIGCONT` to what
//! `KillMode=` reaches, `SIGKILL` after `TimeoutStopSec=`, waiting for the
//! group to empty (asked of the driver when only it can know), then
//! `ExecStopPost=`; and the signals a failed start sends.

use std::collections::VecDeque;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::event::{Action, GroupCheck, SignalRequest};
use super::machine::{deadline, kill_targets, AfterStop, Machine, Targets};
use super::phase::{Job, Phase};
use crate::units::KillMode;

/// How long `ExecStopPost=` may take.
const STOP_POST_TIMEOUT: Duration = Duration::from_secs(10);

impl Machine {
    pub(super) fn begin_stop(&mut self, name: &str, then: AfterStop) {
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
        let now = self.now;
        let running = matches!(phase, Phase::Running | Phase::Exited);
        if let Some(rt) = self.rt.get_mut(name) {
            rt.after_stop = then;
            rt.queue = if running {
                service.exec_stop.iter().cloned().collect()
            } else {
                VecDeque::new()
            };
            rt.deadline = service.timeout_stop.and_then(|t| deadline(now, t));
        }
        self.note(name, "stopping");
        self.set_phase(name, Phase::Stop);
        if !running {
            // Cut a start short.
            if let Some(pid) = self.rt.get(name).and_then(|r| r.control_pid) {
                self.actions.push(Action::Signal(SignalRequest {
                    unit: name.to_string(),
                    signal: Signal::SIGTERM,
                    pids: vec![pid],
                    whole_group: false,
                    pgid: None,
                }));
            }
            self.send_sigterm(name);
            return;
        }
        self.run_next(name);
    }

    pub(super) fn send_sigterm(&mut self, name: &str) {
        let timeout = self
            .units
            .get(name)
            .and_then(|u| u.service.as_ref())
            .and_then(|s| s.timeout_stop);
        let now = self.now;
        self.set_phase(name, Phase::StopSigterm);
        if let Some(rt) = self.rt.get_mut(name) {
            rt.deadline = timeout.and_then(|t| deadline(now, t));
        }
        self.signal_group(name, Signal::SIGTERM);
        self.signal_group(name, Signal::SIGCONT);
        self.when_group_empty(name, GroupCheck::Stopping);
    }

    /// The group is empty: run `ExecStopPost=`, then settle.
    pub(super) fn finish_stop(&mut self, name: &str) {
        let post = self
            .units
            .get(name)
            .and_then(|u| u.service.as_ref())
            .map(|s| s.exec_stop_post.clone())
            .unwrap_or_default();
        let now = self.now;
        self.set_phase(name, Phase::StopPost);
        if let Some(rt) = self.rt.get_mut(name) {
            rt.main_pid = None;
            rt.queue = post.into_iter().collect();
            rt.deadline = deadline(now, STOP_POST_TIMEOUT);
        }
        self.run_next(name);
    }

    pub(super) fn finish_stop_post(&mut self, name: &str) {
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

    fn kill_mode(&self, name: &str) -> KillMode {
        self.units
            .get(name)
            .and_then(|u| u.service.as_ref())
            .map(|s| s.kill_mode)
            .unwrap_or_default()
    }

    /// Whether any process of the unit is left that a stop waits for,
    /// when that is known without asking: the main or control process
    /// runs, or with `KillMode=process` or `none` only they count.
    fn known_alive(&self, name: &str) -> Option<bool> {
        let rt = self.rt.get(name)?;
        if rt.main_pid.is_some() || rt.control_pid.is_some() {
            return Some(true);
        }
        if matches!(self.kill_mode(name), KillMode::Process | KillMode::None) {
            return Some(false);
        }
        None
    }

    /// Goes on as `check` says once the unit's group is empty: at once
    /// when that is known, else after asking the driver.
    pub(super) fn when_group_empty(&mut self, name: &str, check: GroupCheck) {
        match self.known_alive(name) {
            Some(alive) => self.on_group_checked(name, check, alive, &[]),
            None => self.check_group(name, check),
        }
    }

    pub(super) fn check_group(&mut self, name: &str, check: GroupCheck) {
        let pgid = self.rt.get(name).and_then(|r| r.pgid);
        self.actions.push(Action::CheckGroup {
            unit: name.to_string(),
            pgid,
            check,
        });
    }

    /// What is left of a unit's group is known.
    pub(super) fn on_group_checked(
        &mut self,
        name: &str,
        check: GroupCheck,
        alive: bool,
        pids: &[i32],
    ) {
        let Some(rt) = self.rt.get_mut(name) else {
            return;
        };
        let phase = rt.phase;
        match check {
            GroupCheck::Stopping => {
                if !alive
                    && phase.stopping()
                    && phase != Phase::StopPost
                    && rt.main_pid.is_none()
                    && rt.control_pid.is_none()
                {
                    self.finish_stop(name);
                }
            }
            GroupCheck::ForkingMain => {
                if phase != Phase::Start {
                    return;
                }
                // With one process left, the daemon is unambiguous.
                rt.main_pid = match pids {
                    [one] => Some(*one),
                    _ => None,
                };
                self.run_next(name);
            }
            GroupCheck::ForkingSettled => {
                if phase != Phase::StartPost {
                    return;
                }
                if let Some(service) = self.units.get(name).and_then(|u| u.service.clone()) {
                    self.start_finished(name, &service, alive);
                }
            }
        }
    }

    /// The signal to the unit's processes that its `KillMode=` reaches.
    fn signal_request(&self, name: &str, signal: Signal) -> Option<SignalRequest> {
        let rt = self.rt.get(name)?;
        let whole_group = match kill_targets(self.kill_mode(name), signal) {
            Targets::Nothing => return None,
            Targets::Main => false,
            Targets::Group => true,
        };
        Some(SignalRequest {
            unit: name.to_string(),
            signal,
            pids: rt.main_pid.into_iter().chain(rt.control_pid).collect(),
            whole_group,
            pgid: rt.pgid,
        })
    }

    fn signal_group(&mut self, name: &str, signal: Signal) {
        if let Some(request) = self.signal_request(name, signal) {
            self.actions.push(Action::Signal(request));
        }
    }

    pub(super) fn kill_group(&mut self, name: &str) {
        match self.signal_request(name, Signal::SIGKILL) {
            Some(request) if request.whole_group => self.actions.push(Action::KillGroup(request)),
            Some(request) => self.actions.push(Action::Signal(request)),
            None => {}
        }
    }
}

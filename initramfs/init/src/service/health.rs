//! The boot's end and its health: the summary line once the boot's start
//! jobs are done, `healthy` once its units stayed up for the grace period,
//! `unhealthy` while one failed or when it never settles, and the hook
//! that tells the update engine.

use std::time::Duration;

use slipway_control::{ActiveState, Health};

use super::event::Action;
use super::machine::Machine;
use super::phase::Phase;

impl Machine {
    pub(super) fn check_boot_done(&mut self) {
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
                    self.boot_epoch
                        .saturating_add(self.now)
                        .saturating_sub(s2)
                        .as_millis()
                )
            })
            .unwrap_or_default();
        self.console(format!(
            "slipway: services started: {started} in {} ms, {failed} failed{since_stage2}",
            self.now.as_millis()
        ));
    }

    /// When the boot could next turn healthy.
    pub(super) fn health_check_at(&self) -> Option<Duration> {
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
        // Saturating: the grace comes from the command line and may be any
        // length; one past the end of the clock is a check never reached.
        Some(latest.saturating_add(self.cfg.health_grace))
    }

    /// The hook hears `unhealthy` for a boot that has not settled in time.
    pub(super) fn check_settle_timeout(&mut self) {
        if self.health != Health::Starting || self.now < self.cfg.settle_timeout {
            return;
        }
        if self.cfg.health_hook.is_some() && !self.health_hooks_run.contains("unhealthy") {
            self.console(format!(
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
    pub(super) fn run_health_hook(&mut self, health: Health) {
        let state = match health {
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
            Health::Starting => return,
        };
        if self.cfg.health_hook.is_none() || !self.health_hooks_run.insert(state) {
            return;
        }
        self.actions.push(Action::RunHealthHook(state));
    }

    pub(super) fn update_health(&mut self) {
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
        } else if unsettled || self.health_check_at().is_some_and(|t| t > self.now) {
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
            self.console(format!("slipway: health: {text}"));
            self.run_health_hook(health);
            if self.cfg.health_file.is_some() {
                self.actions.push(Action::WriteHealth(text));
            }
        }
    }
}

//! Dependencies between units at run time: what a start pulls in, and
//! how stops and restarts reach the units that `Requires=`, `BindsTo=` or
//! are `PartOf=` another (systemd's semantics).

use std::collections::BTreeSet;

use slipway_control::ActiveState;

use super::machine::Machine;
use super::phase::Job;
use crate::units::LoadState;

impl Machine {
    /// Queues starts of what `name` pulls in (`Requires=`, `BindsTo=`,
    /// `Wants=`), transitively, loading them; units without a file are
    /// skipped (harmless, as in systemd).
    pub(super) fn queue_deps(&mut self, name: &str) {
        let mut todo = vec![name.to_string()];
        let mut seen = BTreeSet::new();
        while let Some(n) = todo.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            let deps: Vec<String> = self
                .units
                .get(&n)
                .map(|u| u.pulls().cloned().collect())
                .unwrap_or_default();
            self.load(&deps);
            for d in deps {
                let found = self
                    .units
                    .get(&d)
                    .is_some_and(|u| u.load != LoadState::NotFound);
                let idle = self
                    .rt
                    .get(&d)
                    .is_none_or(|r| r.job.is_none() && !r.phase.starting() && !self.is_active(&d));
                if found && idle {
                    self.queue_job(&d, Job::Start);
                    todo.push(d);
                }
            }
        }
    }

    /// An explicit stop or restart of `name` reaches the units that
    /// `Requires=`, `BindsTo=` or are `PartOf=` it (transitively), as in
    /// systemd; a restart only restarts those that are up.
    pub(super) fn propagate(&mut self, name: &str, job: Job) {
        if job == Job::Start {
            return;
        }
        let mut todo = vec![name.to_string()];
        let mut seen = BTreeSet::new();
        while let Some(n) = todo.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            let dependents: Vec<String> = self
                .units
                .iter()
                .filter(|u| u.needs().chain(&u.part_of).any(|d| *d == n))
                .map(|u| u.name.clone())
                .collect();
            for d in dependents {
                let up = self.rt.get(&d).is_some_and(|r| {
                    matches!(
                        r.phase.active(),
                        ActiveState::Active | ActiveState::Activating
                    ) || r.job.is_some()
                });
                if up {
                    self.note(
                        &d,
                        &format!(
                            "{} with {n}",
                            match job {
                                Job::Stop => "stopping",
                                _ => "restarting",
                            }
                        ),
                    );
                    self.queue_job(&d, job);
                    todo.push(d);
                }
            }
        }
    }

    /// `BindsTo=`: the units bound to `name`, which just became inactive,
    /// are stopped.
    pub(super) fn stop_bound(&mut self, name: &str) {
        let bound: Vec<String> = self
            .units
            .iter()
            .filter(|u| u.binds_to.iter().any(|d| d == name))
            .map(|u| u.name.clone())
            .collect();
        for b in bound {
            let up = self.rt.get(&b).is_some_and(|r| {
                r.job != Some(Job::Stop)
                    && matches!(
                        r.phase.active(),
                        ActiveState::Active | ActiveState::Activating
                    )
                    && !r.phase.stopping()
            });
            if up {
                self.note(
                    &b,
                    &format!("stopping: it is bound to {name}, which stopped"),
                );
                self.queue_job(&b, Job::Stop);
            }
        }
    }
}

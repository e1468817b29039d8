//! What the manager reports, in the control protocol's own types: what
//! `slipctl` shows is what the manager decides.
//!
//! `Health`: `healthy` once every unit of the boot has started and stayed
//! up for the grace period (then it stays so for this boot), `unhealthy`
//! while one of them has failed.

use std::collections::BTreeSet;
use std::time::Duration;

pub use slipway_control::{ActiveState, Health, UnitStatus};

use super::machine::Machine;
use super::phase::Phase;
use crate::units;
use crate::units::LoadState;

impl Machine {
    /// The status of every loaded unit, by name (without its cgroup's
    /// figures).
    pub fn unit_infos(&self) -> Vec<UnitStatus> {
        let mut names: BTreeSet<&String> = self.rt.keys().collect();
        names.extend(self.units.iter().map(|u| &u.name));
        names
            .into_iter()
            .map(|name| {
                let unit = self.units.get(name);
                let rt = self.rt.get(name);
                let phase = rt.map_or(Phase::Dead, |r| r.phase);
                let running =
                    rt.is_some_and(|r| r.phase != Phase::Dead && r.phase != Phase::Failed);
                UnitStatus {
                    name: name.clone(),
                    description: unit.and_then(|u| u.description.clone()),
                    load: unit.map_or("not-found".to_string(), |u| load_word(&u.load).to_string()),
                    enabled: !units::wanted_by_targets(&self.cfg.root, name).is_empty(),
                    active: phase.active(),
                    sub: match unit.and_then(|u| u.socket.as_ref()) {
                        // systemd's words for a socket unit that is up.
                        Some(_) if phase == Phase::Running => {
                            if self.socket_watched(name) {
                                "listening".to_string()
                            } else {
                                "running".to_string()
                            }
                        }
                        _ => phase.sub().to_string(),
                    },
                    main_pid: rt.and_then(|r| r.main_pid),
                    since_ms: millis(
                        self.boot_epoch
                            .saturating_add(rt.map_or(Duration::ZERO, |r| r.since)),
                    ),
                    restarts: rt.map_or(0, |r| r.restarts),
                    result: rt.and_then(|r| r.result.clone()),
                    // The driver fills these in from the unit's cgroup.
                    memory_bytes: None,
                    tasks: None,
                    log: rt.filter(|r| r.logged).map(|_| {
                        self.cfg
                            .log_dir
                            .join(format!("{name}.log"))
                            .display()
                            .to_string()
                    }),
                    status_text: rt.filter(|_| running).and_then(|r| r.status_text.clone()),
                }
            })
            .collect()
    }
}

impl Machine {
    /// The last `STATUS=` a notify service sent, while it runs.
    pub fn status_text(&self, name: &str) -> Option<String> {
        self.rt.get(name).and_then(|r| r.status_text.clone())
    }
}

/// systemd's word for a load state.
fn load_word(l: &LoadState) -> &'static str {
    match l {
        LoadState::Loaded => "loaded",
        LoadState::Masked => "masked",
        LoadState::NotFound => "not-found",
        LoadState::Unsupported => "unsupported",
        LoadState::Error(_) => "error",
    }
}

/// Milliseconds, saturating.
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

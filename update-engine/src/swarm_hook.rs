//! The update's reboot and Docker's swarm agree: before the reboot the
//! machine's swarm tasks move elsewhere (`slipway-swarm drain`), after the
//! healthy boot the node takes work again (`slipway-swarm activate`),
//! before the reboot lock is freed so the next machine's drain has
//! somewhere to go.
//!
//! The engine runs the agent as a program rather than linking it: the
//! agent talks to dockerd and etcd, the engine need not know how. Machines
//! without `coreos.swarm` (no swarm.conf) skip both steps.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The agent, as the image installs it.
pub const SWARM: &str = "/usr/bin/slipway-swarm";
/// Written by cloud-config from `coreos.swarm`.
pub const SWARM_CONF: &str = "/etc/slipway/swarm.conf";
/// The agent's record of a drain it made for a reboot
/// (`slipway_swarm::drain::RECORD`).
pub const DRAIN_RECORD: &str = "/var/lib/slipway/swarm/drained-for-update";
/// `slipway-swarm drain`'s exit status for "rebooting now would lose
/// the managers' quorum".
const MUST_WAIT: i32 = 75;
/// Between two tries while the quorum forbids the reboot.
const QUORUM_RETRY: Duration = Duration::from_secs(30);

fn configured() -> bool {
    Path::new(SWARM_CONF).exists() && Path::new(SWARM).exists()
}

/// Before an update's reboot: drains this node, waiting as long as its
/// reboot would cost the swarm's managers their quorum. Any other failure
/// of the agent is said and the reboot goes ahead: a broken container
/// engine must not stop the OS from updating (the update may be its fix).
pub fn drain_before_reboot(say: &dyn Fn(&str)) {
    if !configured() {
        return;
    }
    loop {
        match Command::new(SWARM).arg("drain").status() {
            Ok(s) if s.success() => return,
            Ok(s) if s.code() == Some(MUST_WAIT) => std::thread::sleep(QUORUM_RETRY),
            Ok(s) => {
                say(&format!("swarm drain failed ({s}); rebooting anyway"));
                return;
            }
            Err(e) => {
                say(&format!("running {SWARM} drain: {e}; rebooting anyway"));
                return;
            }
        }
    }
}

/// After a blessed boot: undoes the agent's drain if it made one. Errors
/// are said, not fatal: the reboot lock must not stay held because the
/// container engine is unwell.
pub fn activate_after_boot(say: &dyn Fn(&str)) {
    if !configured() || !Path::new(DRAIN_RECORD).exists() {
        return;
    }
    match Command::new(SWARM).arg("activate").status() {
        Ok(s) if s.success() => {}
        Ok(s) => say(&format!(
            "swarm activate failed ({s}); the node stays drained"
        )),
        Err(e) => say(&format!("running {SWARM} activate: {e}")),
    }
}

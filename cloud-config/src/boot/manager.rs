//! `coreos.units` commands from the network stage. The local stage queues
//! them in `/run/slipway/unit-commands`, which the service manager reads
//! when it starts; by the network stage it is running, so the commands go
//! to it over its control socket, as `slipctl start` would send them (and
//! as coreos-cloudinit asked systemd over D-Bus).

use std::path::Path;
use std::time::Duration;

use slipway_control::{ActiveState, Request, SOCKET_PATH};

use crate::apply::UnitCommand;

/// How long to wait for one answer. The manager answers a start when the
/// job has finished; a unit still starting after this (etcd waiting for
/// its peers) goes on starting, and is noted as such, not as a failure.
const TIMEOUT: Duration = Duration::from_secs(5);

/// What one command turns into: the request, or `None` when there is
/// nothing to do (`try-restart` of a unit that is not running).
fn request_for(cmd: &UnitCommand, is_active: impl Fn(&str) -> bool) -> Option<Request> {
    let unit = cmd.unit.clone();
    match cmd.command.as_str() {
        "start" => Some(Request::Start { unit }),
        "stop" => Some(Request::Stop { unit }),
        // The manager has no separate reload of unit files: a restart
        // re-reads them, as the boot-time queue does.
        "restart" | "reload" | "reload-or-restart" => Some(Request::Restart { unit }),
        "try-restart" | "reload-or-try-restart" => {
            is_active(&cmd.unit).then_some(Request::Restart { unit })
        }
        _ => None,
    }
}

/// What became of the commands: lines for the log.
#[derive(Debug, Default)]
pub(super) struct Sent {
    pub failures: Vec<String>,
    /// Commands whose job was still running when the answer was due.
    pub still_running: Vec<String>,
}

/// Sends every command, in order.
pub(super) fn send(commands: &[UnitCommand]) -> Sent {
    send_to(Path::new(SOCKET_PATH), commands)
}

fn send_to(socket: &Path, commands: &[UnitCommand]) -> Sent {
    let mut sent = Sent::default();
    let is_active = |unit: &str| {
        let req = Request::Status {
            unit: Some(unit.to_string()),
        };
        slipway_control::call(socket, &req, TIMEOUT)
            .ok()
            .and_then(|r| r.status)
            .is_some_and(|s| {
                s.units
                    .iter()
                    .any(|u| u.name == unit && u.active == ActiveState::Active)
            })
    };
    for cmd in commands {
        let Some(req) = request_for(cmd, is_active) else {
            continue;
        };
        let what = format!("{} {}", cmd.command, cmd.unit);
        match slipway_control::call(socket, &req, TIMEOUT) {
            Ok(r) if r.ok => {}
            Ok(r) => sent.failures.push(format!(
                "{what}: {}",
                r.error.unwrap_or_else(|| "refused".to_string())
            )),
            Err(slipway_control::ProtoError::Timeout(_)) => sent.still_running.push(what),
            Err(e) => sent.failures.push(format!("{what}: {e}")),
        }
    }
    sent
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cmd(command: &str, unit: &str) -> UnitCommand {
        UnitCommand {
            command: command.into(),
            unit: unit.into(),
        }
    }

    #[test]
    fn commands_map_to_requests_as_the_boot_queue_reads_them() {
        let active = |u: &str| u == "up.service";
        let r = |c: &str, u: &str| request_for(&cmd(c, u), active);
        assert_eq!(
            r("start", "a.service"),
            Some(Request::Start {
                unit: "a.service".into()
            })
        );
        assert_eq!(
            r("reload-or-restart", "a.service"),
            Some(Request::Restart {
                unit: "a.service".into()
            })
        );
        assert_eq!(r("try-restart", "down.service"), None);
        assert_eq!(
            r("try-restart", "up.service"),
            Some(Request::Restart {
                unit: "up.service".into()
            })
        );
        assert_eq!(r("frobnicate", "a.service"), None);
    }

    #[test]
    fn a_manager_that_is_not_there_is_a_failure_naming_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let sent = send_to(&dir.path().join("none.sock"), &[cmd("start", "a.service")]);
        assert_eq!(sent.failures.len(), 1);
        assert!(
            sent.failures[0].starts_with("start a.service: "),
            "{sent:?}"
        );
    }
}

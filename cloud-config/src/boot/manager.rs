//! `coreos.units` commands from the network stage. The local stage queues
//! them in `/run/slipway/unit-commands`, which the service manager reads
//! when it starts; by the network stage it is running, so the commands go
//! to it over its control socket, as `slipctl start` would send them (and
//! as coreos-cloudinit asked systemd over D-Bus).

use std::path::Path;
use std::time::Duration;

use slipway_control::{ActiveState, Request, SOCKET_PATH};

use crate::apply::UnitCommand;

/// Per request; a start is only queued, not waited for.
const TIMEOUT: Duration = Duration::from_secs(10);

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

/// Sends every command, in order; one line per failure, for the log.
pub(super) fn send(commands: &[UnitCommand]) -> Vec<String> {
    send_to(Path::new(SOCKET_PATH), commands)
}

fn send_to(socket: &Path, commands: &[UnitCommand]) -> Vec<String> {
    let mut failures = Vec::new();
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
            Ok(r) => failures.push(format!(
                "{what}: {}",
                r.error.unwrap_or_else(|| "refused".to_string())
            )),
            Err(e) => failures.push(format!("{what}: {e}")),
        }
    }
    failures
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
        let failures = send_to(&dir.path().join("none.sock"), &[cmd("start", "a.service")]);
        assert_eq!(failures.len(), 1);
        assert!(failures[0].starts_with("start a.service: "), "{failures:?}");
    }
}

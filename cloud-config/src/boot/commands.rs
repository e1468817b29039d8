//! Running `bootcmd`/`runcmd` entries and `#!` scripts: each in its own
//! process group, its output into the log, and stopped (the whole group)
//! at its own limit or when the stage's time is up, whichever comes first.
//! The stage stops its children itself, before whoever runs the stage (the
//! init, or the service manager for the unit) gives up on it: a command
//! that hangs never outlives the step that started it.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::log::Log;

/// The longest one `runcmd`/`bootcmd` entry or script may run.
pub(super) const COMMAND_LIMIT: Duration = Duration::from_secs(120);

/// When the stage must be done.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadline {
    at: Instant,
    limit: Duration,
}

impl Deadline {
    pub(super) fn after(limit: Duration) -> Deadline {
        let now = Instant::now();
        Deadline {
            at: now.checked_add(limit).unwrap_or(now),
            limit,
        }
    }

    fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    pub(super) fn is_spent(&self) -> bool {
        self.remaining().is_zero()
    }
}

/// Runs one command; false if it failed, was stopped or could not run.
pub(super) fn run_command(step: &str, argv: &[String], log: &mut Log, deadline: &Deadline) -> bool {
    let Some((program, args)) = argv.split_first() else {
        return true;
    };
    let limit = COMMAND_LIMIT.min(deadline.remaining());
    if limit.is_zero() {
        log.say(&format!(
            "{step}: not run: the stage's {} s are used up",
            deadline.limit.as_secs()
        ));
        return false;
    }
    log.note(&format!("{step}: {}", argv.join(" ")));
    let child = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(log.output())
        .stderr(log.output())
        .process_group(0)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            log.say(&format!("{step}: cannot run {program}: {e}"));
            return false;
        }
    };
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => {
                log.note(&format!("{step}: done"));
                return true;
            }
            Ok(Some(status)) => {
                log.say(&format!("{step}: failed ({status})"));
                return false;
            }
            Ok(None) if start.elapsed() >= limit => {
                if let Ok(pid) = i32::try_from(child.id()) {
                    // The group: what the command started goes with it.
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                let _ = child.wait();
                let why = if limit < COMMAND_LIMIT {
                    format!("the stage's {} s were used up", deadline.limit.as_secs())
                } else {
                    format!("it ran for {} s", COMMAND_LIMIT.as_secs())
                };
                log.say(&format!("{step}: stopped: {why}"));
                return false;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => {
                log.say(&format!("{step}: waiting for it: {e}"));
                return false;
            }
        }
    }
}

/// Writes a `#!` script owner-only (0700) from the moment it exists: user
/// scripts carry secrets as often as `runcmd` does. A fresh file renamed
/// over the old one, whose permissions may have been wider.
pub(super) fn write_script(path: &Path, body: &[u8]) -> std::io::Result<()> {
    use slipway_boot_contract::atomic::{self, Durability};
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    atomic::write_atomic_mode(path, body, 0o700, Durability::Durable)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_script_is_owner_only_even_over_an_older_world_readable_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s/user-data-script");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_script(&path, b"#!/bin/sh\necho hi\n").unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o700);
        assert_eq!(std::fs::read(&path).unwrap(), b"#!/bin/sh\necho hi\n");
    }

    #[test]
    fn a_used_up_deadline_runs_nothing_and_a_short_one_stops_the_whole_group() {
        let mut log = Log::console_only();
        let spent = Deadline::after(Duration::ZERO);
        let argv = |s: &str| vec!["/bin/sh".to_string(), "-c".to_string(), s.to_string()];
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let cmd = format!("touch {}", marker.display());
        assert!(!run_command("runcmd[0]", &argv(&cmd), &mut log, &spent));
        assert!(!marker.exists());

        // A background child that would write after the stage's end: it is
        // killed with the group, so the file never appears.
        let late = dir.path().join("late");
        let cmd = format!("(sleep 2; touch {}) & sleep 30", late.display());
        let start = Instant::now();
        let short = Deadline::after(Duration::from_millis(400));
        assert!(!run_command("runcmd[1]", &argv(&cmd), &mut log, &short));
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(2500));
        assert!(!late.exists(), "the command's child outlived the stage");
    }
}

//! The rescue shell on the serial console.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::fcntl::{fcntl, FcntlArg, OFlag};

use crate::error::{io_errno, Context, Error};
use crate::ioctl::spawn_in_new_session_on_stdin_tty;

pub const SHELL: &str = "/bin/sh";
pub const SHELL_ENV: [(&str, &str); 3] = [
    ("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
    ("HOME", "/root"),
    // The lowest common denominator: right for a serial line whatever is
    // at the other end.
    ("TERM", "vt100"),
];

/// Starts `/bin/sh` as a login shell (`-sh`) on `tty`, in its own session
/// with `tty` as controlling terminal. Returns its pid.
pub fn spawn_rescue_shell(tty: &str) -> Result<i32, Error> {
    // O_NONBLOCK for the open only: opening a serial port without CLOCAL
    // blocks until carrier detect, and PID 1 must not block. O_NOCTTY: the
    // terminal is for the shell's session, not init's.
    let terminal = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(tty)
        .map_err(|e| io_errno(&e))
        .context(|| format!("opening {tty}"))?;
    // The shell reads its stdin blocking (the flag belongs to the open
    // file, which the shell shares).
    let flags =
        fcntl(&terminal, FcntlArg::F_GETFL).context(|| format!("reading flags of {tty}"))?;
    let flags = OFlag::from_bits_truncate(flags) - OFlag::O_NONBLOCK;
    fcntl(&terminal, FcntlArg::F_SETFL(flags))
        .context(|| format!("clearing O_NONBLOCK on {tty}"))?;
    let stdout = terminal
        .try_clone()
        .map_err(|e| io_errno(&e))
        .context(|| format!("duplicating {tty}"))?;
    let stderr = terminal
        .try_clone()
        .map_err(|e| io_errno(&e))
        .context(|| format!("duplicating {tty}"))?;

    let mut command = Command::new(SHELL);
    command
        .arg0("-sh")
        .env_clear()
        .envs(SHELL_ENV)
        .current_dir("/")
        .stdin(Stdio::from(terminal))
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr));
    spawn_in_new_session_on_stdin_tty(&mut command);
    let child = command
        .spawn()
        .map_err(|e| io_errno(&e))
        .context(|| format!("starting {SHELL} on {tty}"))?;
    // PID 1 reaps every child with waitpid(-1); the handle is not needed.
    i32::try_from(child.id())
        .map_err(|_| Error::sys(format!("starting {SHELL}"), nix::errno::Errno::EOVERFLOW))
}

/// When the rescue shell may be started again: not more than once a
/// second (a shell that exits at once, e.g. on a dead terminal, would
/// otherwise spin), and after a failed start only every ten seconds, so the
/// error does not flood the console.
#[derive(Debug, Clone, Default)]
pub struct RespawnPolicy {
    next_allowed: Duration,
}

impl RespawnPolicy {
    pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
    pub const AFTER_FAILURE: Duration = Duration::from_secs(10);

    /// How long to wait from `now` before the next start.
    pub fn delay(&self, now: Duration) -> Duration {
        self.next_allowed.saturating_sub(now)
    }

    pub fn started(&mut self, now: Duration) {
        self.next_allowed = now.saturating_add(Self::MIN_INTERVAL);
    }

    pub fn failed(&mut self, now: Duration) {
        self.next_allowed = now.saturating_add(Self::AFTER_FAILURE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_is_immediate_then_at_most_once_a_second() {
        let mut p = RespawnPolicy::default();
        let t = Duration::from_secs(12);
        assert_eq!(p.delay(t), Duration::ZERO);
        p.started(t);
        // The shell exits 200 ms later: wait the rest of the second.
        assert_eq!(
            p.delay(t + Duration::from_millis(200)),
            Duration::from_millis(800)
        );
        // A shell that ran for minutes restarts at once.
        assert_eq!(p.delay(t + Duration::from_secs(300)), Duration::ZERO);
    }

    #[test]
    fn failed_start_backs_off() {
        let mut p = RespawnPolicy::default();
        p.failed(Duration::from_secs(1));
        assert_eq!(p.delay(Duration::from_secs(1)), Duration::from_secs(10));
    }

    /// The clock is the `Sys`'s: whatever it says, no sum panics PID 1.
    #[test]
    fn a_clock_at_its_end_does_not_overflow() {
        let mut p = RespawnPolicy::default();
        p.started(Duration::MAX);
        p.failed(Duration::MAX);
        assert_eq!(p.delay(Duration::MAX), Duration::ZERO);
    }

    #[test]
    fn spawn_on_a_missing_tty_names_it() {
        let err = spawn_rescue_shell("/nonexistent/ttyS9").unwrap_err();
        assert_eq!(
            err.to_string(),
            "opening /nonexistent/ttyS9: No such file or directory"
        );
    }
}

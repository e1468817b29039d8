//! Stage 2's main loop: one `poll(2)` over a signalfd, the power-button
//! event devices, the control socket and the services' output pipes. Synchronous on purpose: PID 1 waits for a handful of
//! event sources and a timer, which needs no runtime.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::console::say;
use crate::control::Control;
use crate::error::{chain, Context, Error};
use crate::ioctl::input_device_name;
use crate::power::{action_for_signal, power_key_pressed, PowerAction, INPUT_EVENT_SIZE};
use crate::service::{Manager, Watch};
use crate::shell::{spawn_rescue_shell, RespawnPolicy};
use crate::sys::{Reaped, Sys};

const POWER_BUTTON_NAME: &str = "Power Button";
const DEV_INPUT: &str = "/dev/input";

/// The signals PID 1 takes through its signalfd.
pub fn supervised_signals() -> SigSet {
    let mut set = SigSet::empty();
    for signal in [
        Signal::SIGCHLD,
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ] {
        set.add(signal);
    }
    set
}

/// How long a shutdown waits for the services to stop (each also has its
/// own `TimeoutStopSec=`) before the remaining processes are killed.
const STOP_SERVICES_LIMIT: Duration = Duration::from_secs(180);

/// The rescue shell, the service manager and its control socket, and
/// the loop around them. Kept across re-entries of [`Supervisor::run`]
/// (after an internal error) so nothing is started twice.
#[derive(Debug)]
pub struct Supervisor {
    shell_tty: String,
    shell_pid: Option<i32>,
    respawn: RespawnPolicy,
    manager: Option<Manager>,
    control: Option<Control>,
    /// Set once a power request came: services are being stopped.
    stopping: Option<(PowerAction, Duration)>,
}

impl Supervisor {
    pub fn new(shell_tty: String, manager: Option<Manager>, control: Option<Control>) -> Self {
        Supervisor {
            shell_tty,
            shell_pid: None,
            respawn: RespawnPolicy::default(),
            manager,
            control,
            stopping: None,
        }
    }

    /// Drops the service manager and the control socket: their log files
    /// on `/var` must be closed, or `/var` cannot be unmounted (nor even
    /// remounted read-only) at shutdown and needs a journal replay.
    pub fn close_services(&mut self) {
        self.manager = None;
        self.control = None;
    }

    /// The rescue shell's pid (its session id), if it is running.
    pub fn shell_pid(&self) -> Option<i32> {
        self.shell_pid
    }

    /// Supervises until a reboot or poweroff is requested and the
    /// services have stopped.
    pub fn run(&mut self, sys: &mut dyn Sys) -> Result<PowerAction, Error> {
        let signals = supervised_signals();
        // Blocked signals stay pending for the signalfd instead of being
        // delivered, and for PID 1 a blocked signal is queued even where
        // the default action would have it dropped.
        signals
            .thread_block()
            .context(|| "blocking signals".to_string())?;
        let signalfd =
            SignalFd::with_flags(&signals, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
                .context(|| "creating a signalfd".to_string())?;
        let mut buttons = open_power_buttons(sys);

        // Children that exited before the signalfd existed sent a SIGCHLD
        // nobody will read.
        self.reap_all(sys);

        loop {
            self.flush_console(sys);
            if let Some((action, deadline)) = self.stopping {
                let done = self.manager.as_ref().is_none_or(Manager::all_stopped);
                if done || sys.now() >= deadline {
                    if !done {
                        say(
                            sys,
                            "slipway: services did not stop in time; killing what is left",
                        );
                    }
                    return Ok(action);
                }
            }
            let now = sys.now();
            if self.stopping.is_none()
                && self.shell_pid.is_none()
                && self.respawn.delay(now).is_zero()
            {
                self.start_shell(sys, now);
            }
            let mut wait: Option<Duration> = match self.shell_pid {
                Some(_) => None,
                None if self.stopping.is_some() => None,
                // Round up so we do not wake a moment early and spin.
                None => Some(
                    self.respawn
                        .delay(sys.now())
                        .saturating_add(Duration::from_millis(1)),
                ),
            };
            if let Some(m) = &self.manager {
                if let Some(d) = m.next_deadline() {
                    // Saturating: a deadline may lie near the end of the
                    // clock (a unit's time-out, the health grace).
                    let d = d.saturating_add(Duration::from_millis(1));
                    wait = Some(wait.map_or(d, |w| w.min(d)));
                }
            }
            if self.stopping.is_some() {
                wait = Some(wait.map_or(Duration::from_millis(200), |w| {
                    w.min(Duration::from_millis(200))
                }));
            }
            let timeout = match wait {
                None => PollTimeout::NONE,
                Some(d) => PollTimeout::try_from(d).unwrap_or(PollTimeout::MAX),
            };

            let outputs: Vec<String>;
            let watches: Vec<Watch>;
            let (signal_ready, buttons_ready, control_ready, outputs_ready, watches_ready) = {
                let mut fds = Vec::with_capacity(2 + buttons.len());
                fds.push(PollFd::new(signalfd.as_fd(), PollFlags::POLLIN));
                for (_, file) in &buttons {
                    fds.push(PollFd::new(file.as_fd(), PollFlags::POLLIN));
                }
                let control_index = fds.len();
                if let Some(c) = &self.control {
                    fds.push(PollFd::new(c.listener.as_fd(), PollFlags::POLLIN));
                }
                let outputs_index = fds.len();
                let out_fds = self
                    .manager
                    .as_ref()
                    .map(Manager::output_fds)
                    .unwrap_or_default();
                outputs = out_fds.iter().map(|(n, _)| n.clone()).collect();
                for (_, fd) in &out_fds {
                    fds.push(PollFd::new(*fd, PollFlags::POLLIN));
                }
                // The notification socket and the listening socket units.
                let watches_index = fds.len();
                let watch_fds = self
                    .manager
                    .as_ref()
                    .map(Manager::watch_fds)
                    .unwrap_or_default();
                watches = watch_fds.iter().map(|(w, _)| w.clone()).collect();
                for (_, fd) in &watch_fds {
                    fds.push(PollFd::new(*fd, PollFlags::POLLIN));
                }
                match poll(&mut fds, timeout) {
                    Ok(_) => {}
                    Err(Errno::EINTR) => continue,
                    Err(errno) => return Err(Error::sys("waiting for events (poll)", errno)),
                }
                let ready: Vec<bool> = fds
                    .iter()
                    .map(|fd| fd.revents().is_some_and(|r| !r.is_empty()))
                    .collect();
                let signal_ready = ready.first().copied().unwrap_or(false);
                let buttons_ready: Vec<bool> =
                    ready.iter().skip(1).take(buttons.len()).copied().collect();
                let control_ready =
                    self.control.is_some() && ready.get(control_index).copied().unwrap_or(false);
                let outputs_ready: Vec<bool> = ready
                    .iter()
                    .skip(outputs_index)
                    .take(watches_index.saturating_sub(outputs_index))
                    .copied()
                    .collect();
                let watches_ready: Vec<bool> = ready.iter().skip(watches_index).copied().collect();
                (
                    signal_ready,
                    buttons_ready,
                    control_ready,
                    outputs_ready,
                    watches_ready,
                )
            };

            for (name, ready) in outputs.iter().zip(outputs_ready) {
                if ready {
                    if let Some(m) = &mut self.manager {
                        m.on_output(name);
                    }
                }
            }

            for (w, ready) in watches.iter().zip(watches_ready) {
                if ready {
                    if let Some(m) = &mut self.manager {
                        m.on_watch(w);
                    }
                }
            }

            if signal_ready {
                while let Ok(Some(info)) = signalfd.read_signal() {
                    let Ok(signal) = i32::try_from(info.ssi_signo)
                        .map_err(|_| Errno::EINVAL)
                        .and_then(Signal::try_from)
                    else {
                        continue;
                    };
                    if signal == Signal::SIGCHLD {
                        self.reap_all(sys);
                    } else if let Some(action) = action_for_signal(signal) {
                        self.begin_stop(sys, action);
                    }
                }
            }

            let mut gone = Vec::new();
            for (index, ((path, file), ready)) in buttons.iter_mut().zip(buttons_ready).enumerate()
            {
                if !ready {
                    continue;
                }
                match read_events(file) {
                    Ok(events) if power_key_pressed(&events) => {
                        self.begin_stop(sys, PowerAction::PowerOff)
                    }
                    Ok(_) | Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
                    Err(errno) => {
                        say(
                            sys,
                            &format!(
                                "slipway: {}",
                                chain(&Error::sys(format!("reading {path}"), errno))
                            ),
                        );
                        gone.push(index);
                    }
                }
            }
            for index in gone.into_iter().rev() {
                if index < buttons.len() {
                    buttons.remove(index);
                }
            }

            if let Some(m) = &mut self.manager {
                m.on_timer();
            }
            if let (Some(control), Some(manager)) = (&mut self.control, &mut self.manager) {
                if control_ready {
                    if let Some(action) = control.accept(manager, self.stopping.is_some()) {
                        self.begin_stop(sys, action);
                    }
                }
                if let Some(control) = &mut self.control {
                    if let Some(manager) = &self.manager {
                        control.answer_waiters(manager);
                    }
                }
            }
        }
    }

    /// A power request: stop the services (in reverse order), then
    /// [`Supervisor::run`] returns the action.
    fn begin_stop(&mut self, sys: &mut dyn Sys, action: PowerAction) {
        if self.stopping.is_some() {
            return;
        }
        self.stopping = Some((action, sys.now().saturating_add(STOP_SERVICES_LIMIT)));
        if let Some(m) = &mut self.manager {
            let what = match action {
                PowerAction::Reboot => "reboot",
                PowerAction::PowerOff => "poweroff",
            };
            say(sys, &format!("slipway: stopping services for {what}"));
            m.stop_all();
        }
    }

    fn flush_console(&mut self, sys: &mut dyn Sys) {
        if let Some(m) = &mut self.manager {
            for line in m.take_output() {
                say(sys, &line);
            }
        }
    }

    fn start_shell(&mut self, sys: &mut dyn Sys, now: Duration) {
        say(sys, &format!("slipway: rescue shell on {}", self.shell_tty));
        match spawn_rescue_shell(&self.shell_tty) {
            Ok(pid) => {
                self.shell_pid = Some(pid);
                self.respawn.started(now);
            }
            Err(e) => {
                say(sys, &format!("slipway: rescue shell: {}", chain(&e)));
                self.respawn.failed(now);
            }
        }
    }

    /// Reaps every exited child: ours, and the orphans PID 1 inherits.
    fn reap_all(&mut self, sys: &mut dyn Sys) {
        while let Reaped::Child(pid, outcome) = sys.reap() {
            if self.shell_pid == Some(pid) {
                self.shell_pid = None;
            }
            if let Some(m) = &mut self.manager {
                m.on_exit(pid, outcome);
            }
        }
    }
}

/// Reads what is available from an evdev device (whole events only).
fn read_events(file: &mut File) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; INPUT_EVENT_SIZE * 32];
    let n = file
        .read(&mut buf)
        .map_err(|e| crate::error::io_errno(&e))?;
    if n == 0 {
        return Err(Errno::ENODEV);
    }
    buf.truncate(n);
    Ok(buf)
}

/// Opens every input device named "Power Button" (the ACPI button driver's
/// name; QEMU's `system_powerdown` presses it).
fn open_power_buttons(sys: &mut dyn Sys) -> Vec<(String, File)> {
    let Ok(names) = sys.read_dir(DEV_INPUT) else {
        return Vec::new();
    };
    let mut buttons = Vec::new();
    for name in names.iter().filter(|n| n.starts_with("event")) {
        let path = format!("{DEV_INPUT}/{name}");
        let Ok(file) = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
            .open(&path)
        else {
            continue;
        };
        if input_device_name(&file).is_ok_and(|n| n == POWER_BUTTON_NAME) {
            buttons.push((path, file));
        }
    }
    buttons
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_power_signals_and_sigchld() {
        let set = supervised_signals();
        for s in [
            Signal::SIGCHLD,
            Signal::SIGINT,
            Signal::SIGTERM,
            Signal::SIGUSR1,
            Signal::SIGUSR2,
        ] {
            assert!(set.contains(s), "{s}");
        }
        assert!(!set.contains(Signal::SIGHUP));
    }
}

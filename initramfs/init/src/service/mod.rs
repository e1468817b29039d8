//! The service manager: starts the units of the boot transaction in
//! dependency order, supervises them (restart with backoff and a start
//! limit), stops them in reverse order, and judges the boot's health.
//!
//! It is event-driven and never blocks: the PID 1 loop
//! (`crate::supervise`) feeds it exits ([`Manager::on_exit`]), output
//! ([`Manager::on_output`]) and time ([`Manager::on_timer`]), and polls
//! until [`Manager::next_deadline`].
//!
//! Two halves: [`machine::Machine`] is the state machine, pure (events and
//! the time in, [`event::Action`]s out; `event.rs` is the whole
//! vocabulary), and `host.rs` carries the actions out on Linux and holds
//! the fds. [`Manager`] joins them for the PID 1 loop. The machine's
//! methods are spread by concern over `machine.rs` (events, jobs, starts),
//! `stop.rs`, `health.rs`, `deps.rs`, `watch.rs` (socket and notify
//! events), `status.rs` and `install.rs`. `phase.rs` (the phases and jobs)
//! and `config.rs` are leaves the others share; only this file imports the
//! others' items, to re-export them. A new unit setting is read in `units/`
//! and acted on in `machine.rs`; only a new kind of effect on the world
//! needs a new [`event::Action`].

mod cgroup;
mod config;
mod deps;
pub mod event;
mod health;
mod host;
mod install;
mod logs;
pub mod machine;
mod notify;
mod phase;
mod socket;
mod spawn;
mod status;
mod stop;
mod watch;

pub use cgroup::{Cgroups, SERVICES_CGROUP};
pub use config::{
    Config, DEFAULT_HEALTH_GRACE, DEFAULT_SETTLE_TIMEOUT, DEFAULT_TARGET, HEALTH_FILE,
    UNIT_COMMANDS,
};
pub use logs::{rfc3339_utc, UnitLog, DEFAULT_MAX_BYTES, LOG_DIR};
pub use machine::{describe, kill_targets, restart_delay, Machine, Targets};
pub use notify::Message;
pub use notify::NOTIFY_SOCKET;
pub use phase::{Job, Phase};
pub use spawn::{lookup_account, Account};
pub use status::{millis, ActiveState, Health, UnitStatus};

use std::collections::VecDeque;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use crate::units::{Context, ExitOutcome};

use event::{Action, Event};
use host::Host;

/// An fd the PID 1 loop polls for the manager, besides output pipes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watch {
    /// The notification socket.
    Notify,
    /// A listening socket unit's fd.
    Socket(String),
}

/// The service manager as the PID 1 loop sees it: the state machine and
/// the host that carries out its actions.
#[derive(Debug)]
pub struct Manager {
    machine: Machine,
    host: Host,
    /// The manager's clock starts here.
    epoch: Instant,
    /// Lines for the console.
    outbox: Vec<String>,
}

impl Manager {
    /// A manager with nothing loaded. Cgroup trouble is reported in the
    /// outbox and the manager goes on without them.
    pub fn new(cfg: Config, ctx: Context) -> Manager {
        let mut outbox = Vec::new();
        let host = Host::new(&cfg, &mut outbox);
        let machine = Machine::new(cfg, ctx, boot_clock(), host.notify_path());
        Manager {
            machine,
            host,
            epoch: Instant::now(),
            outbox,
        }
    }

    /// Boot clock at stage 2's start, so the summary line can say how
    /// long after it the services were up.
    pub fn set_stage2_start(&mut self, at: Duration) {
        self.machine.set_stage2_start(at);
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Hands an event to the machine and carries out what it asks, each
    /// answer fed back before the rest (see [`event`]); returns the
    /// answer to a request, if the event was one.
    fn feed(&mut self, event: Event) -> Option<Result<(), String>> {
        let mut answer = None;
        let mut todo: VecDeque<Action> = self.machine.handle(event, self.now()).into();
        while let Some(action) = todo.pop_front() {
            if let Action::Answer(a) = action {
                answer = Some(a);
                continue;
            }
            if let Some(reply) = self.host.execute(action, &mut self.outbox) {
                let more = self.machine.handle(reply, self.now());
                for a in more.into_iter().rev() {
                    todo.push_front(a);
                }
            }
        }
        answer
    }

    /// Lines for the console since the last call.
    pub fn take_output(&mut self) -> Vec<String> {
        std::mem::take(&mut self.outbox)
    }

    pub fn health(&self) -> (Health, Option<&str>) {
        self.machine.health()
    }

    /// Loads the boot target and what it pulls in, reports load problems
    /// and ordering cycles, and queues the start jobs, then the commands
    /// cloud-config queued (`<command> <unit>` lines).
    pub fn boot(&mut self, unit_commands: &str) {
        self.feed(Event::Boot {
            unit_commands: unit_commands.to_string(),
        });
    }

    /// Queues a job from the control socket: loads the unit if needed.
    /// `Err` when the unit cannot be started at all.
    pub fn request(&mut self, name: &str, job: Job) -> Result<(), String> {
        self.feed(Event::Request {
            unit: name.to_string(),
            job,
        })
        .unwrap_or(Ok(()))
    }

    /// Runs `ExecReload=` of a running service (`$MAINPID` is its main
    /// process); the service stays running whatever it returns.
    pub fn reload_unit(&mut self, name: &str) -> Result<(), String> {
        self.feed(Event::Reload {
            unit: name.to_string(),
        })
        .unwrap_or(Ok(()))
    }

    /// Queues a stop of every unit that is not already stopped.
    pub fn stop_all(&mut self) {
        self.feed(Event::StopAll);
    }

    /// Every unit is stopped and no job is left.
    pub fn all_stopped(&self) -> bool {
        self.machine.all_stopped()
    }

    /// A job (queued or running) is pending for the unit.
    pub fn busy(&self, name: &str) -> bool {
        self.machine.busy(name)
    }

    /// Processes of ours: the main and control processes of all units.
    pub fn pids(&self) -> Vec<i32> {
        self.machine.pids()
    }

    /// The read ends of the output pipes, to poll.
    pub fn output_fds(&self) -> Vec<(String, BorrowedFd<'_>)> {
        self.host.output_fds()
    }

    /// Reads what a unit's pipe has and logs it.
    pub fn on_output(&mut self, name: &str) {
        let console = self.machine.copies_to_console(name);
        self.host.drain(name, console, &mut self.outbox);
    }

    /// The notification socket and the socket units' fds to watch now.
    pub fn watch_fds(&self) -> Vec<(Watch, BorrowedFd<'_>)> {
        let mut out = Vec::new();
        if let Some(fd) = self.host.notify_fd() {
            out.push((Watch::Notify, fd));
        }
        for name in self.machine.watched_sockets() {
            let fds = self.host.listening_fds(&name);
            out.extend(fds.into_iter().map(|fd| (Watch::Socket(name.clone()), fd)));
        }
        out
    }

    /// A watched fd is readable.
    pub fn on_watch(&mut self, w: &Watch) {
        match w {
            Watch::Notify => {
                for event in self.host.notifications() {
                    self.feed(event);
                }
            }
            Watch::Socket(name) => {
                self.feed(Event::SocketReadable { unit: name.clone() });
            }
        }
    }

    /// The earliest time [`Manager::on_timer`] has work, as a delay from
    /// now.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.machine.next_deadline(self.now())
    }

    /// Handles deadlines that have passed.
    pub fn on_timer(&mut self) {
        self.feed(Event::Timer);
    }

    /// A child exited. Children that are not ours (orphans) are ignored.
    pub fn on_exit(&mut self, pid: i32, outcome: ExitOutcome) {
        self.feed(Event::Exited { pid, outcome });
    }

    /// The unit an alias names (`etcd2.service` → `etcd.service`), or the
    /// name itself.
    pub fn canonical_name(&self, name: &str) -> String {
        self.machine.canonical_name(name)
    }

    /// The status of every loaded unit, by name.
    pub fn unit_infos(&self) -> Vec<UnitStatus> {
        let mut infos = self.machine.unit_infos();
        for info in &mut infos {
            if matches!(info.sub.as_str(), "dead" | "failed") {
                continue;
            }
            info.memory_bytes = self.host.memory(&info.name);
            info.tasks = self.host.tasks(&info.name);
        }
        infos
    }

    /// The last `STATUS=` a notify service sent.
    pub fn status_text(&self, name: &str) -> Option<String> {
        self.machine.status_text(name)
    }

    /// Enables a unit (`systemctl enable`).
    pub fn enable(&mut self, name: &str) -> Result<String, String> {
        self.machine.enable(name)
    }

    /// Disables a unit (`systemctl disable`).
    pub fn disable(&mut self, name: &str) -> Result<String, String> {
        self.machine.disable(name)
    }
}

/// `CLOCK_BOOTTIME`: time since boot, the clock status reports in.
pub fn boot_clock() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(Duration::from)
        .unwrap_or_default()
}

#[cfg(test)]
mod e2e_tests;
#[cfg(test)]
mod machine_tests;
#[cfg(test)]
pub(crate) mod test_root;

//! The world side of the service manager: carries out the state machine's
//! [`Action`]s on Linux (fork and exec, signals, cgroups, pipes, logs,
//! sockets, the health file and hook) and holds the resources that come
//! with them (fds, open logs). The answers to questions (a spawn's pid, a
//! group's emptiness, a socket's bind) go back as [`Event`]s.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use nix::unistd::Pid;

use super::cgroup::Cgroups;
use super::config::Config;
use super::event::{Action, Event, SignalRequest, SpawnRequest};
use super::logs::UnitLog;
use super::notify::NotifySocket;
use super::socket::{self, Listening};
use super::spawn;

/// The resources of the units and the means to act on them.
#[derive(Debug)]
pub(super) struct Host {
    cfg: Config,
    cgroups: Option<Cgroups>,
    notify: Option<NotifySocket>,
    logs: BTreeMap<String, UnitLog>,
    /// Each unit's output pipe (read end, write end) for its current run.
    pipes: BTreeMap<String, (OwnedFd, OwnedFd)>,
    /// The bound fds of started socket units.
    listening: BTreeMap<String, Listening>,
}

impl Host {
    /// Sets up the cgroup parent and the notification socket; trouble
    /// with either is a console line, and the manager goes on without.
    pub fn new(cfg: &Config, outbox: &mut Vec<String>) -> Host {
        let cgroups = cfg
            .cgroup_parent
            .as_deref()
            .and_then(|p| match Cgroups::setup(p) {
                Ok(c) => Some(c),
                Err(e) => {
                    outbox.push(format!(
                        "slipway: services run without cgroups ({e}); stopping a service \
                         signals its process group only"
                    ));
                    None
                }
            });
        let notify = cfg
            .notify_socket
            .as_deref()
            .and_then(|p| match NotifySocket::bind(p) {
                Ok(n) => Some(n),
                Err(e) => {
                    outbox.push(format!(
                        "slipway: no notification socket ({e}); Type=notify services will time out"
                    ));
                    None
                }
            });
        Host {
            cfg: cfg.clone(),
            cgroups,
            notify,
            logs: BTreeMap::new(),
            pipes: BTreeMap::new(),
            listening: BTreeMap::new(),
        }
    }

    /// The bound notification socket's path, for `NOTIFY_SOCKET`.
    pub fn notify_path(&self) -> Option<PathBuf> {
        self.notify.as_ref().map(|n| n.path().to_path_buf())
    }

    /// Carries out one action; the answer, for those that have one.
    pub fn execute(&mut self, action: Action, outbox: &mut Vec<String>) -> Option<Event> {
        match action {
            Action::Console(line) => outbox.push(line),
            Action::Log { unit, text } => self.log(&unit).note(&text),
            Action::PrepareOutput { unit } => self.prepare_output(&unit, outbox),
            Action::DrainOutput { unit, console } => self.drain(&unit, console, outbox),
            Action::Spawn(request) => return Some(self.spawn(&request)),
            Action::Signal(request) => self.signal(&request),
            Action::KillGroup(request) => match &self.cgroups {
                Some(cg) => cg.kill_all(&request.unit),
                None => self.signal(&request),
            },
            Action::CheckGroup { unit, pgid, check } => {
                let (alive, pids) = match &self.cgroups {
                    Some(cg) => {
                        let pids = cg.pids(&unit);
                        (!pids.is_empty(), pids)
                    }
                    None => (pgid.is_some_and(group_alive), Vec::new()),
                };
                return Some(Event::GroupChecked {
                    unit,
                    check,
                    alive,
                    pids,
                });
            }
            Action::Listen { unit, socket } => {
                let result = socket::open(&socket, &self.cfg.root).map(|l| {
                    self.listening.insert(unit.clone(), l);
                });
                return Some(Event::Listened { unit, result });
            }
            Action::Release { unit, console } => self.release(&unit, console, outbox),
            Action::WriteHealth(text) => self.write_health(&text),
            Action::RunHealthHook(state) => self.run_health_hook(state, outbox),
            // For the driver, which takes it before the host sees it.
            Action::Answer(_) => {}
        }
        None
    }

    fn log(&mut self, unit: &str) -> &mut UnitLog {
        let (dir, max) = (&self.cfg.log_dir, self.cfg.log_max_bytes);
        self.logs
            .entry(unit.to_string())
            .or_insert_with(|| UnitLog::new(dir, unit, max))
    }

    /// A fresh pipe for a run; a failure shows when the command is
    /// spawned ("no output pipe").
    fn prepare_output(&mut self, unit: &str, outbox: &mut Vec<String>) {
        self.log(unit);
        self.pipes.remove(unit);
        match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
            Ok((r, w)) => {
                let _ = nix::fcntl::fcntl(
                    &r,
                    nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
                );
                self.pipes.insert(unit.to_string(), (r, w));
            }
            Err(e) => outbox.push(format!("slipway: {unit}: creating the output pipe: {e}")),
        }
    }

    fn spawn(&mut self, s: &SpawnRequest) -> Event {
        match self.try_spawn(s) {
            Ok(pid) => Event::Spawned {
                unit: s.unit.clone(),
                pid,
            },
            Err(error) => Event::SpawnFailed {
                unit: s.unit.clone(),
                error,
            },
        }
    }

    fn try_spawn(&mut self, s: &SpawnRequest) -> Result<i32, String> {
        let procs = match &self.cgroups {
            Some(cg) => Some(cg.prepare(&s.unit, &s.group)?),
            None => None,
        };
        if let (Some(n), Some(cg)) = (s.tasks_max, &self.cgroups) {
            if !cg.path(&s.unit).join("pids.max").exists() {
                let text = format!("TasksMax={n} ignored: the pids controller is not enabled");
                self.log(&s.unit).note(&text);
            }
        }
        let listen_fds = s
            .sockets
            .iter()
            .filter_map(|u| self.listening.get(u))
            .flat_map(|l| l.fds.iter().map(|fd| fd.as_raw_fd()))
            .collect();
        let Some((_, pipe)) = self.pipes.get(&s.unit) else {
            return Err("no output pipe".into());
        };
        spawn::spawn(&spawn::Spawn {
            path: &s.path,
            argv: &s.argv,
            env: &s.env,
            cwd: s.cwd.clone(),
            account: s.account.as_ref(),
            output: pipe,
            cgroup_procs: procs.as_ref(),
            oom_score_adjust: s.oom_score_adjust,
            limits: &s.limits,
            listen_fds,
        })
    }

    fn signal(&self, s: &SignalRequest) {
        if s.whole_group {
            match &self.cgroups {
                Some(cg) => {
                    for pid in cg.pids(&s.unit) {
                        let _ = nix::sys::signal::kill(Pid::from_raw(pid), s.signal);
                    }
                }
                None => {
                    if let Some(g) = s.pgid {
                        let _ = nix::sys::signal::killpg(Pid::from_raw(g), s.signal);
                    }
                }
            }
        }
        for pid in &s.pids {
            let _ = nix::sys::signal::kill(Pid::from_raw(*pid), s.signal);
        }
    }

    /// Reads a unit's pipe until it would block; logs lines, copies them
    /// to the console if asked.
    pub fn drain(&mut self, unit: &str, console: bool, outbox: &mut Vec<String>) {
        let Some((pipe, _)) = self.pipes.get(unit) else {
            return;
        };
        let Some(log) = self.logs.get_mut(unit) else {
            return;
        };
        let mut buf = [0u8; 8192];
        // Bounded, so a service that writes without pause cannot starve
        // PID 1's other work; the rest is read on the next poll.
        for _ in 0..16 {
            match nix::unistd::read(pipe, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let lines = buf.get(..n).map(|b| log.feed(b)).unwrap_or_default();
                    if console {
                        outbox.extend(lines.into_iter().map(|l| format!("{unit}: {l}")));
                    }
                }
            }
        }
    }

    fn release(&mut self, unit: &str, console: bool, outbox: &mut Vec<String>) {
        self.drain(unit, console, outbox);
        if let Some(log) = self.logs.get_mut(unit) {
            log.flush_partial();
        }
        self.pipes.remove(unit);
        // Closes a socket unit's fds (and removes its files with
        // RemoveOnStop=).
        self.listening.remove(unit);
        if let Some(cg) = &self.cgroups {
            cg.remove(unit);
        }
    }

    fn write_health(&self, text: &str) {
        let Some(path) = &self.cfg.health_file else {
            return;
        };
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        // In /run: readers see the old state or the new, and nothing
        // survives a power cut anyway.
        use slipway_boot_contract::atomic::{write_atomic, Durability};
        let _ = write_atomic(path, format!("{text}\n").as_bytes(), Durability::Atomic);
    }

    fn run_health_hook(&self, state: &str, outbox: &mut Vec<String>) {
        let Some(hook) = &self.cfg.health_hook else {
            return;
        };
        if let Err(e) = std::process::Command::new(hook)
            .args(["on-health", state])
            .stdin(std::process::Stdio::null())
            .spawn()
        {
            outbox.push(format!("slipway: health hook {}: {e}", hook.display()));
        }
    }

    /// The read ends of the output pipes, to poll.
    pub fn output_fds(&self) -> Vec<(String, BorrowedFd<'_>)> {
        self.pipes
            .iter()
            .map(|(n, (r, _))| (n.clone(), r.as_fd()))
            .collect()
    }

    pub fn notify_fd(&self) -> Option<BorrowedFd<'_>> {
        self.notify.as_ref().map(NotifySocket::fd)
    }

    /// A started socket unit's fds.
    pub fn listening_fds(&self, unit: &str) -> Vec<BorrowedFd<'_>> {
        self.listening
            .get(unit)
            .map(|l| l.borrowed().collect())
            .unwrap_or_default()
    }

    /// The notifications waiting, as events.
    pub fn notifications(&self) -> Vec<Event> {
        let Some(n) = &self.notify else {
            return Vec::new();
        };
        n.receive()
            .into_iter()
            .filter_map(|(pid, message)| {
                let pid = pid?;
                Some(Event::Notify {
                    pid,
                    cgroup_unit: self.cgroups.as_ref().and_then(|c| c.unit_of(pid)),
                    message,
                })
            })
            .collect()
    }

    pub fn memory(&self, unit: &str) -> Option<u64> {
        self.cgroups.as_ref().and_then(|c| c.memory(unit))
    }

    pub fn tasks(&self, unit: &str) -> Option<u32> {
        self.cgroups.as_ref().and_then(|c| c.tasks(unit))
    }
}

/// Whether process group `pgid` has a member that is not a zombie:
/// without cgroups, a group of zombies (exited, not yet reaped) is as
/// good as empty.
fn group_alive(pgid: i32) -> bool {
    nix::sys::signal::killpg(Pid::from_raw(pgid), None).is_ok() && !group_only_zombies(pgid)
}

/// True when every member of process group `pgid` is a zombie.
fn group_only_zombies(pgid: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    for e in entries.flatten() {
        let Ok(text) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp …; comm may hold spaces and parens.
        let Some(after) = text.rsplit_once(')').map(|(_, a)| a) else {
            continue;
        };
        let f: Vec<&str> = after.split_whitespace().collect();
        if let (Some(state), Some(pgrp)) = (f.first(), f.get(2)) {
            if pgrp.parse() == Ok(pgid) && *state != "Z" {
                return false;
            }
        }
    }
    true
}

//! The state machine alone: no process, no clock. A fake world answers
//! its questions (pids counted from 100, groups as the test says) and
//! writes down what it was asked to do, one readable line per action;
//! time moves only when a test says so.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use super::event::{Action, Event, Role};
use super::machine::{kill_targets, restart_delay, Machine, Targets};
use super::notify;
use super::phase::Job;
use super::test_root::{test_config, unit_root};
use super::{describe, ActiveState, Config, Health};
use crate::units::{Context, ExitOutcome};

const MS: Duration = Duration::from_millis(1);

struct World {
    _dir: tempfile::TempDir,
    m: Machine,
    now: Duration,
    next_pid: i32,
    /// What the machine asked for, in order.
    did: Vec<String>,
    /// The live processes of each unit's group.
    groups: BTreeMap<String, BTreeSet<i32>>,
    /// Programs whose exec fails.
    missing: BTreeSet<String>,
    /// What the last spawn of each unit was given, for inspection.
    env: BTreeMap<String, Vec<(String, String)>>,
}

fn world(units: &[(&str, &str)]) -> World {
    world_with(units, |_| {})
}

fn world_with(units: &[(&str, &str)], adjust: impl FnOnce(&mut Config)) -> World {
    let dir = unit_root(units);
    let mut cfg = test_config(dir.path());
    adjust(&mut cfg);
    let notify = cfg.notify_socket.clone();
    let m = Machine::new(cfg, Context::default(), Duration::from_secs(2), notify);
    World {
        _dir: dir,
        m,
        now: Duration::ZERO,
        next_pid: 100,
        did: Vec::new(),
        groups: BTreeMap::new(),
        missing: BTreeSet::new(),
        env: BTreeMap::new(),
    }
}

impl World {
    /// Feeds an event and carries out the actions as the real driver
    /// does: each answer before the rest of the batch.
    fn feed(&mut self, event: Event) -> Option<Result<(), String>> {
        let mut answer = None;
        let mut todo: VecDeque<Action> = self.m.handle(event, self.now).into();
        while let Some(action) = todo.pop_front() {
            if let Action::Answer(a) = action {
                answer = Some(a);
                continue;
            }
            if let Some(reply) = self.act(action) {
                for a in self.m.handle(reply, self.now).into_iter().rev() {
                    todo.push_front(a);
                }
            }
        }
        answer
    }

    fn act(&mut self, action: Action) -> Option<Event> {
        let line = match action {
            Action::Console(line) => format!("console {line}"),
            Action::Log { unit, text } => format!("log {unit}: {text}"),
            Action::PrepareOutput { unit } => format!("pipe {unit}"),
            Action::DrainOutput { .. } => return None,
            Action::Spawn(s) => {
                let role = match s.role {
                    Role::Main => "main",
                    Role::Control => "control",
                };
                self.did
                    .push(format!("spawn {} {role}: {}", s.unit, s.argv.join(" ")));
                self.env.insert(s.unit.clone(), s.env.clone());
                if self.missing.contains(&s.path) {
                    return Some(Event::SpawnFailed {
                        unit: s.unit.clone(),
                        error: format!("exec {}: No such file or directory", s.path),
                    });
                }
                let pid = self.next_pid;
                self.next_pid += 1;
                self.groups.entry(s.unit.clone()).or_default().insert(pid);
                return Some(Event::Spawned {
                    unit: s.unit.clone(),
                    pid,
                });
            }
            Action::Signal(s) => format!(
                "signal {} {} {:?}{}",
                s.unit,
                s.signal.as_str(),
                s.pids,
                if s.whole_group { " and group" } else { "" }
            ),
            Action::KillGroup(s) => format!("kill group {}", s.unit),
            Action::CheckGroup { unit, check, .. } => {
                let pids: Vec<i32> = self
                    .groups
                    .get(&unit)
                    .map(|g| g.iter().copied().collect())
                    .unwrap_or_default();
                self.did.push(format!("check group {unit}: {pids:?}"));
                return Some(Event::GroupChecked {
                    unit,
                    check,
                    alive: !pids.is_empty(),
                    pids,
                });
            }
            Action::Listen { unit, .. } => {
                self.did.push(format!("listen {unit}"));
                return Some(Event::Listened {
                    unit,
                    result: Ok(()),
                });
            }
            Action::Release { unit, .. } => format!("release {unit}"),
            Action::WriteHealth(text) => format!("health file {text}"),
            Action::RunHealthHook(state) => format!("hook {state}"),
            Action::Answer(_) => return None,
        };
        self.did.push(line);
        None
    }

    fn boot(&mut self) {
        self.feed(Event::Boot {
            unit_commands: String::new(),
        });
    }

    /// Moves the clock and fires the timer, as PID 1 does when the
    /// machine's deadline comes.
    fn wait(&mut self, d: Duration) {
        self.now += d;
        self.feed(Event::Timer);
    }

    /// Moves the clock to the machine's next deadline and fires it.
    fn wait_deadline(&mut self) -> Duration {
        let d = self.m.next_deadline(self.now).expect("a deadline");
        self.wait(d);
        d
    }

    /// Process `pid` ends.
    fn exit(&mut self, pid: i32, outcome: ExitOutcome) {
        for g in self.groups.values_mut() {
            g.remove(&pid);
        }
        self.feed(Event::Exited { pid, outcome });
    }

    fn request(&mut self, unit: &str, job: Job) -> Result<(), String> {
        self.feed(Event::Request {
            unit: unit.into(),
            job,
        })
        .unwrap()
    }

    fn state(&self, unit: &str) -> (ActiveState, String) {
        let info = self.info(unit);
        (info.active, info.sub)
    }

    fn info(&self, unit: &str) -> slipway_control::UnitStatus {
        self.m
            .unit_infos()
            .into_iter()
            .find(|u| u.name == unit)
            .unwrap_or_else(|| panic!("{unit} not loaded"))
    }

    fn main_pid(&self, unit: &str) -> i32 {
        self.info(unit).main_pid.expect("a main process")
    }

    /// The lines since the last call.
    fn take(&mut self) -> Vec<String> {
        std::mem::take(&mut self.did)
    }

    /// The lines since the last call that start with `prefix`.
    fn take_only(&mut self, prefix: &str) -> Vec<String> {
        self.take()
            .into_iter()
            .filter(|l| l.starts_with(prefix))
            .collect()
    }
}

fn running() -> (ActiveState, String) {
    (ActiveState::Active, "running".into())
}

#[test]
fn starts_in_order_reports_and_turns_healthy_after_the_grace() {
    let mut w = world(&[
        ("a.service", "[Service]\nExecStart=/bin/a --serve\n"),
        (
            "b.service",
            "[Unit]\nAfter=a.service\nRequires=a.service\n[Service]\nExecStart=/bin/b\n",
        ),
    ]);
    w.boot();
    assert_eq!(
        w.take_only("spawn"),
        [
            "spawn a.service main: /bin/a --serve",
            "spawn b.service main: /bin/b"
        ]
    );
    assert_eq!(w.state("a.service"), running());
    assert_eq!(w.state("b.service"), running());
    assert_eq!(w.m.health().0, Health::Starting);
    // Up for the grace period (300 ms): healthy, once.
    assert_eq!(w.m.next_deadline(w.now), Some(300 * MS));
    w.wait(299 * MS);
    assert_eq!(w.m.health().0, Health::Starting);
    w.wait(MS);
    assert_eq!(w.m.health().0, Health::Healthy);
    let lines = w.take();
    assert!(
        lines.contains(&"health file healthy".to_string()),
        "{lines:#?}"
    );
    assert_eq!(w.m.next_deadline(w.now), None);
}

#[test]
fn the_summary_line_counts_started_and_failed_services() {
    let mut w = world(&[
        ("ok.service", "[Service]\nExecStart=/bin/ok\n"),
        ("bad.service", "[Service]\nExecStart=/bin/missing\n"),
    ]);
    w.m.set_stage2_start(Duration::from_millis(1500));
    w.missing.insert("/bin/missing".into());
    w.now = 40 * MS;
    w.boot();
    let lines = w.take_only("console");
    assert_eq!(
        lines,
        [
            "console slipway: bad.service: failed: exec /bin/missing: No such file or directory",
            "console slipway: services started: 1 in 40 ms, 1 failed (stage 2 start +540 ms)",
            "console slipway: health: unhealthy: bad.service failed (exec /bin/missing: No such \
             file or directory)",
        ]
    );
}

#[test]
fn pre_start_main_and_post_run_in_turn_for_a_oneshot() {
    let mut w = world(&[(
        "o.service",
        "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStartPre=/bin/pre\n\
         ExecStart=/bin/one\nExecStart=/bin/two\nExecStartPost=/bin/post\n",
    )]);
    w.boot();
    assert_eq!(w.take_only("spawn"), ["spawn o.service control: /bin/pre"]);
    assert_eq!(
        w.state("o.service"),
        (ActiveState::Activating, "start-pre".into())
    );
    w.exit(100, ExitOutcome::Success);
    assert_eq!(w.take_only("spawn"), ["spawn o.service main: /bin/one"]);
    w.exit(101, ExitOutcome::Success);
    assert_eq!(w.take_only("spawn"), ["spawn o.service main: /bin/two"]);
    w.exit(102, ExitOutcome::Success);
    assert_eq!(w.take_only("spawn"), ["spawn o.service control: /bin/post"]);
    w.exit(103, ExitOutcome::Success);
    assert_eq!(w.state("o.service"), (ActiveState::Active, "exited".into()));
}

#[test]
fn a_failing_pre_start_fails_the_unit_unless_it_is_ignored() {
    let mut w = world(&[
        (
            "p.service",
            "[Service]\nExecStartPre=/bin/false\nExecStart=/bin/p\n",
        ),
        (
            "q.service",
            "[Service]\nExecStartPre=-/bin/false\nExecStart=/bin/q\n",
        ),
    ]);
    w.boot();
    w.exit(100, ExitOutcome::ExitCode(1));
    w.exit(101, ExitOutcome::ExitCode(1));
    assert_eq!(w.state("p.service"), (ActiveState::Failed, "failed".into()));
    assert_eq!(
        w.info("p.service").result.as_deref(),
        Some("ExecStartPre exit status 1")
    );
    assert_eq!(w.state("q.service"), running());
}

#[test]
fn crash_loops_back_off_then_hit_the_start_limit() {
    let mut w = world(&[(
        "crash.service",
        "[Unit]\nStartLimitBurst=3\nStartLimitIntervalSec=60\n\
         [Service]\nExecStart=/bin/crash\nRestart=always\nRestartSec=100ms\n",
    )]);
    w.boot();
    let mut delays = Vec::new();
    for _ in 0..3 {
        let pid = w.main_pid("crash.service");
        w.exit(pid, ExitOutcome::ExitCode(2));
        assert_eq!(
            w.state("crash.service"),
            (ActiveState::Activating, "auto-restart".into())
        );
        let notes = w.take_only("log crash.service: restarting in ");
        delays.push(notes.join(""));
        w.wait(Duration::from_secs(1));
    }
    // Doubling; the fourth start is over the limit.
    assert_eq!(
        delays,
        [100, 200, 400].map(|ms| format!("log crash.service: restarting in {ms} ms"))
    );
    assert_eq!(
        w.state("crash.service"),
        (ActiveState::Failed, "failed".into())
    );
    let info = w.info("crash.service");
    assert_eq!(info.restarts, 3);
    assert_eq!(
        info.result.as_deref(),
        Some("start limit hit (restarting too often)")
    );
}

#[test]
fn a_service_ignoring_sigterm_is_killed_after_its_stop_timeout() {
    let mut w = world(&[(
        "stubborn.service",
        "[Service]\nExecStart=/bin/stubborn\nTimeoutStopSec=500ms\n",
    )]);
    w.boot();
    let pid = w.main_pid("stubborn.service");
    w.take();
    w.request("stubborn.service", Job::Stop).unwrap();
    assert_eq!(
        w.take_only("signal"),
        [
            "signal stubborn.service SIGTERM [100] and group",
            "signal stubborn.service SIGCONT [100] and group",
        ]
    );
    // The health check at 300 ms comes first; the stop timeout at 500.
    w.wait(499 * MS);
    assert!(w.take_only("kill").is_empty());
    w.wait(MS);
    let lines = w.take();
    assert!(lines.contains(&"kill group stubborn.service".to_string()));
    assert!(lines.contains(&"log stubborn.service: did not stop in time: SIGKILL".to_string()));
    w.exit(pid, ExitOutcome::Signal(9));
    assert_eq!(
        w.state("stubborn.service"),
        (ActiveState::Inactive, "dead".into())
    );
    assert_eq!(
        w.info("stubborn.service").result.as_deref(),
        Some("stop timeout: killed")
    );
}

#[test]
fn a_stop_waits_for_the_rest_of_the_group() {
    let mut w = world(&[("g.service", "[Service]\nExecStart=/bin/g\n")]);
    w.boot();
    let pid = w.main_pid("g.service");
    // A child of the service outlives the main process.
    w.groups.get_mut("g.service").unwrap().insert(555);
    w.request("g.service", Job::Stop).unwrap();
    w.exit(pid, ExitOutcome::Signal(15));
    assert_eq!(
        w.state("g.service"),
        (ActiveState::Deactivating, "stop-sigterm".into())
    );
    // Polled every 20 ms until the group is empty.
    assert_eq!(w.wait_deadline(), 20 * MS);
    assert_eq!(
        w.state("g.service"),
        (ActiveState::Deactivating, "stop-sigterm".into())
    );
    w.groups.get_mut("g.service").unwrap().clear();
    w.wait_deadline();
    assert_eq!(w.state("g.service"), (ActiveState::Inactive, "dead".into()));
}

#[test]
fn kill_mode_process_signals_the_main_process_and_leaves_the_rest() {
    let mut w = world(&[(
        "k.service",
        "[Service]\nExecStart=/bin/k\nKillMode=process\n",
    )]);
    w.boot();
    let pid = w.main_pid("k.service");
    w.groups.get_mut("k.service").unwrap().insert(555);
    w.take();
    w.request("k.service", Job::Stop).unwrap();
    assert_eq!(
        w.take_only("signal"),
        [
            "signal k.service SIGTERM [100]",
            "signal k.service SIGCONT [100]"
        ]
    );
    w.exit(pid, ExitOutcome::Signal(15));
    // Not waited for, not even asked about.
    assert!(w.take_only("check").is_empty());
    assert_eq!(w.state("k.service"), (ActiveState::Inactive, "dead".into()));
}

#[test]
fn kill_mode_none_signals_nothing_and_mixed_kills_the_group() {
    let mut w = world(&[
        ("n.service", "[Service]\nExecStart=/bin/n\nKillMode=none\n"),
        (
            "x.service",
            "[Service]\nExecStart=/bin/x\nKillMode=mixed\nTimeoutStopSec=1s\n",
        ),
    ]);
    w.boot();
    w.take();
    w.request("n.service", Job::Stop).unwrap();
    assert!(w.take_only("signal").is_empty());
    w.request("x.service", Job::Stop).unwrap();
    assert_eq!(
        w.take_only("signal"),
        [
            "signal x.service SIGTERM [101]",
            "signal x.service SIGCONT [101]"
        ]
    );
    w.wait(Duration::from_secs(1));
    assert_eq!(w.take_only("kill"), ["kill group x.service"]);
}

#[test]
fn stop_runs_in_reverse_order() {
    let mut w = world(&[
        ("first.service", "[Service]\nExecStart=/bin/first\n"),
        (
            "second.service",
            "[Unit]\nAfter=first.service\n[Service]\nExecStart=/bin/second\n",
        ),
    ]);
    w.boot();
    w.take();
    w.feed(Event::StopAll);
    // first waits until second has stopped.
    assert_eq!(
        w.take_only("signal second.service SIGTERM").len(),
        1,
        "second is signalled first"
    );
    assert_eq!(
        w.state("first.service"),
        running(),
        "first waits for second"
    );
    w.exit(101, ExitOutcome::Signal(15));
    assert_eq!(
        w.take_only("signal first.service SIGTERM"),
        ["signal first.service SIGTERM [100] and group"]
    );
    w.exit(100, ExitOutcome::Signal(15));
    assert!(w.m.all_stopped());
}

#[test]
fn notify_service_is_active_only_after_ready() {
    let mut w = world(&[(
        "n.service",
        "[Service]\nType=notify\nExecStart=/bin/n\nExecStartPost=/bin/post\n",
    )]);
    w.boot();
    assert_eq!(
        w.state("n.service"),
        (ActiveState::Activating, "start".into())
    );
    let socket = w._dir.path().join("run/slipway/notify");
    assert!(
        w.env["n.service"].contains(&("NOTIFY_SOCKET".to_string(), socket.display().to_string()))
    );
    // A helper in the service's cgroup may speak for it.
    w.feed(Event::Notify {
        pid: 4242,
        cgroup_unit: Some("n.service".into()),
        message: notify::parse("STATUS=warming up"),
    });
    assert_eq!(
        w.state("n.service"),
        (ActiveState::Activating, "start".into())
    );
    w.feed(Event::Notify {
        pid: 100,
        cgroup_unit: None,
        message: notify::parse("READY=1\nSTATUS=serving"),
    });
    assert_eq!(
        w.take_only("spawn"),
        [
            "spawn n.service main: /bin/n",
            "spawn n.service control: /bin/post"
        ]
    );
    w.exit(101, ExitOutcome::Success);
    assert_eq!(w.state("n.service"), running());
    assert_eq!(w.m.status_text("n.service").as_deref(), Some("serving"));
}

#[test]
fn notify_service_without_ready_times_out_and_one_exiting_before_ready_fails() {
    let mut w = world(&[
        (
            "slow.service",
            "[Service]\nType=notify\nExecStart=/bin/slow\nTimeoutStartSec=2s\n",
        ),
        (
            "quit.service",
            "[Service]\nType=notify\nExecStart=/bin/quit\n",
        ),
    ]);
    w.boot();
    let quit = w.main_pid("quit.service");
    w.exit(quit, ExitOutcome::Success);
    assert_eq!(
        w.info("quit.service").result.as_deref(),
        Some("main process exited successfully before READY=1")
    );
    assert_eq!(w.wait_deadline(), Duration::from_secs(2));
    assert_eq!(
        w.state("slow.service"),
        (ActiveState::Failed, "failed".into())
    );
    assert_eq!(
        w.info("slow.service").result.as_deref(),
        Some("start timeout")
    );
    assert!(w.take().contains(&"kill group slow.service".to_string()));
}

#[test]
fn forking_service_runs_as_the_process_its_parent_left() {
    let mut w = world(&[(
        "f.service",
        "[Service]\nType=forking\nExecStart=/bin/daemonize\n",
    )]);
    w.boot();
    w.groups.get_mut("f.service").unwrap().insert(777);
    w.exit(100, ExitOutcome::Success);
    assert_eq!(w.state("f.service"), running());
    assert_eq!(w.main_pid("f.service"), 777);
    // The daemon's end is the service's end.
    w.exit(777, ExitOutcome::Success);
    assert_eq!(w.state("f.service"), (ActiveState::Inactive, "dead".into()));
}

#[test]
fn socket_unit_starts_its_service_on_traffic_with_the_fds() {
    let mut w = world(&[
        (
            "echo.socket",
            "[Socket]\nListenStream=/run/echo.sock\nListenDatagram=/run/echo.dgram\n\
             [Install]\nWantedBy=sockets.target\n",
        ),
        ("!echo.service", "[Service]\nExecStart=/bin/echo-server\n"),
    ]);
    w.boot();
    assert_eq!(w.take_only("listen"), ["listen echo.socket"]);
    assert_eq!(
        w.state("echo.socket"),
        (ActiveState::Active, "listening".into())
    );
    assert_eq!(w.m.watched_sockets(), ["echo.socket"]);
    w.feed(Event::SocketReadable {
        unit: "echo.socket".into(),
    });
    assert_eq!(
        w.take_only("spawn"),
        ["spawn echo.service main: /bin/echo-server"]
    );
    let env = &w.env["echo.service"];
    assert!(env.contains(&("LISTEN_FDS".into(), "2".into())), "{env:?}");
    assert!(env.contains(&("LISTEN_FDNAMES".into(), "echo.socket:echo.socket".into())));
    assert_eq!(
        w.state("echo.socket"),
        (ActiveState::Active, "running".into())
    );
    assert!(w.m.watched_sockets().is_empty());
    // Down again: watched again.
    let pid = w.main_pid("echo.service");
    w.exit(pid, ExitOutcome::Success);
    assert_eq!(w.m.watched_sockets(), ["echo.socket"]);
}

#[test]
fn binds_to_stops_with_the_other_unit_and_part_of_restarts_with_it() {
    let mut w = world(&[
        ("a.service", "[Service]\nExecStart=/bin/a\n"),
        (
            "bound.service",
            "[Unit]\nBindsTo=a.service\nAfter=a.service\n[Service]\nExecStart=/bin/bound\n",
        ),
        (
            "part.service",
            "[Unit]\nPartOf=a.service\nAfter=a.service\n[Service]\nExecStart=/bin/part\n",
        ),
    ]);
    w.boot();
    let (a, part) = (w.main_pid("a.service"), w.main_pid("part.service"));
    w.take();
    w.request("a.service", Job::Restart).unwrap();
    // PartOf= and BindsTo= units restart with it.
    assert_eq!(
        w.take_only("signal"),
        [
            "signal a.service SIGTERM [100] and group",
            "signal a.service SIGCONT [100] and group",
            "signal bound.service SIGTERM [101] and group",
            "signal bound.service SIGCONT [101] and group",
            "signal part.service SIGTERM [102] and group",
            "signal part.service SIGCONT [102] and group",
        ]
    );
    w.exit(a, ExitOutcome::Signal(15));
    w.exit(101, ExitOutcome::Signal(15));
    w.exit(part, ExitOutcome::Signal(15));
    assert_eq!(
        w.take_only("spawn"),
        [
            "spawn a.service main: /bin/a",
            "spawn bound.service main: /bin/bound",
            "spawn part.service main: /bin/part",
        ]
    );
    // a ends on its own: what is bound to it stops, PartOf= does not.
    let a = w.main_pid("a.service");
    w.exit(a, ExitOutcome::Success);
    assert_eq!(
        w.state("bound.service"),
        (ActiveState::Deactivating, "stop-sigterm".into())
    );
    assert_eq!(w.state("part.service"), running());
}

#[test]
fn a_missing_program_fails_the_start_with_the_exec_error() {
    let mut w = world(&[
        ("gone.service", "[Service]\nExecStart=/bin/gone\n"),
        (
            "dep.service",
            "[Unit]\nRequires=gone.service\nAfter=gone.service\n[Service]\nExecStart=/bin/dep\n",
        ),
    ]);
    w.missing.insert("/bin/gone".into());
    w.boot();
    assert_eq!(
        w.info("gone.service").result.as_deref(),
        Some("exec /bin/gone: No such file or directory")
    );
    assert_eq!(
        w.info("dep.service").result.as_deref(),
        Some("dependency failed: gone.service")
    );
    assert_eq!(w.take_only("spawn"), ["spawn gone.service main: /bin/gone"]);
}

#[test]
fn the_health_hook_hears_unhealthy_once_and_of_a_boot_that_never_settles() {
    let mut w = world_with(&[("bad.service", "[Service]\nExecStart=/bin/bad\n")], |c| {
        c.health_hook = Some("/usr/bin/engine".into());
        c.settle_timeout = Duration::from_secs(60);
    });
    w.boot();
    w.take();
    let bad = w.main_pid("bad.service");
    w.exit(bad, ExitOutcome::ExitCode(1));
    assert_eq!(w.take_only("hook"), ["hook unhealthy"]);
    // Settle timeout: the hook already heard it; not again.
    w.wait(Duration::from_secs(60));
    assert!(w.take_only("hook").is_empty());

    let mut w = world_with(
        &[(
            "hang.service",
            "[Service]\nType=notify\nExecStart=/bin/hang\n",
        )],
        |c| {
            c.health_hook = Some("/usr/bin/engine".into());
            c.settle_timeout = Duration::from_secs(60);
        },
    );
    w.boot();
    assert_eq!(w.m.next_deadline(w.now), Some(Duration::from_secs(60)));
    w.wait_deadline();
    assert_eq!(w.m.health().0, Health::Starting);
    assert_eq!(w.take_only("hook"), ["hook unhealthy"]);
}

#[test]
fn a_stop_cuts_a_start_short() {
    let mut w = world(&[(
        "s.service",
        "[Service]\nExecStartPre=/bin/slow-setup\nExecStart=/bin/s\n",
    )]);
    w.boot();
    w.take();
    w.request("s.service", Job::Stop).unwrap();
    assert_eq!(
        w.take_only("signal"),
        [
            "signal s.service SIGTERM [100]",
            "signal s.service SIGTERM [100] and group",
            "signal s.service SIGCONT [100] and group",
        ]
    );
    w.exit(100, ExitOutcome::Signal(15));
    // The group is looked at on the next poll.
    assert_eq!(w.wait_deadline(), 20 * MS);
    assert_eq!(w.state("s.service"), (ActiveState::Inactive, "dead".into()));
    assert!(w.take_only("spawn").is_empty());
}

#[test]
fn the_same_events_give_the_same_actions() {
    let run = || {
        let mut w = world(&[
            (
                "a.service",
                "[Service]\nExecStart=/bin/a\nRestart=on-failure\n",
            ),
            (
                "b.service",
                "[Unit]\nAfter=a.service\n[Service]\nExecStart=/bin/b\n",
            ),
        ]);
        w.boot();
        w.exit(100, ExitOutcome::Signal(11));
        w.wait_deadline();
        w.feed(Event::StopAll);
        w.exit(101, ExitOutcome::Signal(15));
        w.exit(102, ExitOutcome::Signal(15));
        (w.take(), w.m.all_stopped())
    };
    let (first, stopped) = run();
    assert!(stopped);
    assert_eq!(first, run().0);
    assert!(first.contains(&"log a.service: restarting in 100 ms".to_string()));
}

#[test]
fn group_checks_are_only_asked_when_the_machine_cannot_know() {
    let mut w = world(&[("t.service", "[Service]\nExecStart=/bin/t\n")]);
    w.boot();
    w.request("t.service", Job::Stop).unwrap();
    // The main process still runs: nothing to ask.
    assert!(w.take_only("check").is_empty());
    w.exit(100, ExitOutcome::Signal(15));
    assert_eq!(w.take_only("check"), ["check group t.service: []"]);
}

#[test]
fn a_drop_in_resets_exec_start_and_a_restart_by_hand_rereads_the_files() {
    let mut w = world(&[
        ("app.service", "[Service]\nExecStart=/bin/original\n"),
        (
            "!app.service.d/override.conf",
            "[Service]\nExecStart=\nExecStart=/bin/from-drop-in\n",
        ),
    ]);
    w.boot();
    assert_eq!(
        w.take_only("spawn"),
        ["spawn app.service main: /bin/from-drop-in"]
    );
    std::fs::write(
        w._dir
            .path()
            .join("etc/systemd/system/app.service.d/override.conf"),
        "[Service]\nExecStart=\nExecStart=/bin/edited\n",
    )
    .unwrap();
    w.request("app.service", Job::Restart).unwrap();
    w.exit(100, ExitOutcome::Signal(15));
    assert_eq!(
        w.take_only("spawn"),
        ["spawn app.service main: /bin/edited"]
    );
    assert_eq!(w.state("app.service"), running());
}

#[test]
fn enable_and_disable_link_into_wants() {
    let mut w = world(&[(
        "!late.service",
        "[Service]\nExecStart=/bin/late\n[Install]\nWantedBy=multi-user.target\n",
    )]);
    let msg = w.m.enable("late.service").unwrap();
    assert!(
        msg.contains("/etc/systemd/system/multi-user.target.wants/late.service"),
        "{msg}"
    );
    let link = w
        ._dir
        .path()
        .join("etc/systemd/system/multi-user.target.wants/late.service");
    assert_eq!(
        std::fs::read_link(link).unwrap(),
        std::path::Path::new("/etc/systemd/system/late.service")
    );
    w.m.load(&["late.service".to_string()]);
    assert!(w.info("late.service").enabled);
    assert_eq!(
        w.m.disable("late.service").unwrap(),
        "removed /etc/systemd/system/multi-user.target.wants/late.service"
    );
    assert_eq!(w.m.disable("late.service").unwrap(), "not enabled");
}

#[test]
fn an_alias_names_the_same_unit_by_hand_and_in_cloud_configs_queue() {
    let mut w = world(&[(
        "!etcd.service",
        "[Service]\nExecStart=/bin/etcd\n[Install]\nWantedBy=multi-user.target\n\
         Alias=etcd2.service\n",
    )]);
    let msg = w.m.enable("etcd.service").unwrap();
    assert!(
        msg.contains("/etc/systemd/system/etcd2.service → /etc/systemd/system/etcd.service"),
        "{msg}"
    );
    assert_eq!(w.m.canonical_name("etcd2.service"), "etcd.service");
    assert_eq!(w.m.canonical_name("other.service"), "other.service");
    // Starting the alias starts the unit itself.
    w.request("etcd2.service", Job::Start).unwrap();
    assert_eq!(w.state("etcd.service"), running());
    assert!(w.m.unit_infos().iter().all(|u| u.name != "etcd2.service"));
    w.feed(Event::StopAll);
    w.exit(100, ExitOutcome::Signal(15));
    assert!(w.m.all_stopped());
    // cloud-config's queue (`coreos.units` with `command: start`) names
    // the alias too.
    w.feed(Event::Boot {
        unit_commands: "start etcd2.service\n".into(),
    });
    assert_eq!(w.state("etcd.service"), running());
    assert!(w.m.unit_infos().iter().all(|u| u.name != "etcd2.service"));
    // `try-restart` by the alias sees that the unit runs: it is stopped
    // to be started again.
    let seen = w.did.len();
    w.feed(Event::Boot {
        unit_commands: "try-restart etcd2.service\n".into(),
    });
    assert!(
        w.did[seen..]
            .iter()
            .any(|l| l.starts_with("signal etcd.service SIGTERM")),
        "try-restart by the alias stopped nothing: {:?}",
        &w.did[seen..]
    );
    let msg = w.m.disable("etcd.service").unwrap();
    assert!(msg.contains("/etc/systemd/system/etcd2.service"), "{msg}");
}

#[test]
fn a_queued_start_pulls_in_what_the_unit_wants_and_missing_wants_are_harmless() {
    // Neither is enabled: only cloud-config's queue names the engine, as
    // `coreos.units: [{name: docker.service, command: start}]` does.
    let mut w = world(&[
        (
            "!engine.service",
            "[Unit]\nWants=runtime.service nowhere.service\nAfter=runtime.service\n\
             [Service]\nExecStart=/bin/engine\n",
        ),
        ("!runtime.service", "[Service]\nExecStart=/bin/runtime\n"),
    ]);
    w.feed(Event::Boot {
        unit_commands: "start engine.service\n".into(),
    });
    assert_eq!(
        w.take_only("spawn"),
        [
            "spawn runtime.service main: /bin/runtime",
            "spawn engine.service main: /bin/engine"
        ]
    );
    assert_eq!(w.m.health().0, Health::Starting);
    assert_ne!(w.state("nowhere.service").0, ActiveState::Failed);
}

#[test]
fn restart_delays_double_and_are_capped() {
    let b = Duration::from_millis(100);
    assert_eq!(restart_delay(b, 1), b);
    assert_eq!(restart_delay(b, 3), Duration::from_millis(400));
    assert_eq!(restart_delay(b, 30), Duration::from_secs(30));
    assert_eq!(
        restart_delay(Duration::from_secs(60), 3),
        Duration::from_secs(60)
    );
}

#[test]
fn exits_are_described_like_systemctl() {
    assert_eq!(describe(ExitOutcome::ExitCode(3)), "exit status 3");
    assert_eq!(describe(ExitOutcome::Signal(9)), "killed by SIGKILL");
}

#[test]
fn kill_targets_follow_systemd() {
    use crate::units::KillMode;
    use nix::sys::signal::Signal;
    let cases = [
        (KillMode::ControlGroup, Signal::SIGTERM, Targets::Group),
        (KillMode::Mixed, Signal::SIGTERM, Targets::Main),
        (KillMode::Mixed, Signal::SIGKILL, Targets::Group),
        (KillMode::Process, Signal::SIGKILL, Targets::Main),
        (KillMode::None, Signal::SIGTERM, Targets::Nothing),
    ];
    for (mode, signal, want) in cases {
        assert_eq!(kill_targets(mode, signal), want, "{mode:?} {signal:?}");
    }
}

/// `TimeoutStartSec=`/`TimeoutStopSec=` past the end of the clock are no
/// time-out: no deadline at all (PID 1 never wakes for one), however long
/// the unit takes, and no `now + timeout` overflow.
#[test]
fn time_outs_too_long_to_count_never_expire() {
    let mut w = world(&[(
        "slow.service",
        "[Service]\nType=notify\nExecStart=/bin/slow\n\
         TimeoutStartSec=18446744073709551615\nTimeoutStopSec=99999999999999999999s\n",
    )]);
    w.now = 5 * MS;
    w.boot();
    // The boot waits for the unit: no health check, no start deadline.
    assert_eq!(w.m.next_deadline(w.now), None);
    w.wait(Duration::from_secs(1 << 62));
    assert_eq!(
        w.state("slow.service"),
        (ActiveState::Activating, "start".into())
    );
    w.take();
    w.request("slow.service", Job::Stop).unwrap();
    // Only the boot's health check, 300 ms after the unit's change; no
    // stop deadline.
    assert_eq!(w.m.next_deadline(w.now), Some(300 * MS));
    w.wait(Duration::from_secs(1 << 62));
    assert_eq!(w.m.next_deadline(w.now), None);
    assert!(w.take_only("kill").is_empty());
    assert_eq!(
        w.state("slow.service"),
        (ActiveState::Deactivating, "stop-sigterm".into())
    );
}

/// A health grace from the command line (`slipway.health_grace=`) past
/// the end of the clock: the boot never turns healthy, and working out
/// when to check does not overflow.
#[test]
fn a_health_grace_too_long_to_count_never_passes() {
    let mut w = world_with(&[("a.service", "[Service]\nExecStart=/bin/a\n")], |c| {
        c.health_grace = Duration::MAX;
    });
    w.now = 5 * MS;
    w.boot();
    assert_eq!(w.state("a.service"), running());
    assert_eq!(w.m.next_deadline(w.now), Some(Duration::MAX - 5 * MS));
    w.wait(Duration::from_secs(1 << 62));
    assert_eq!(w.m.health().0, Health::Starting);
}

/// An `EnvironmentFile=` that is a FIFO (no writer: an ordinary read
/// would block PID 1 for good) fails the start at once, naming the file;
/// with `-` it is ignored, as any unreadable optional file.
#[test]
fn a_fifo_as_an_environment_file_fails_the_start_without_blocking() {
    let mut w = world(&[
        (
            "env.service",
            "[Service]\nEnvironmentFile=/etc/env\nExecStart=/bin/env\n",
        ),
        (
            "opt.service",
            "[Service]\nEnvironmentFile=-/etc/env\nExecStart=/bin/opt\n",
        ),
    ]);
    let fifo = w._dir.path().join("etc/env");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    // On another thread, so that a blocked read fails the test instead of
    // hanging it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        w.boot();
        let _ = tx.send(w);
    });
    let mut w = rx
        .recv_timeout(Duration::from_secs(2))
        .expect("the start blocked on the FIFO");
    assert_eq!(
        w.state("env.service"),
        (ActiveState::Failed, "failed".into())
    );
    assert_eq!(
        w.info("env.service").result.as_deref(),
        Some("EnvironmentFile=/etc/env: a FIFO, not a regular file: refusing to read it")
    );
    assert_eq!(w.state("opt.service"), running());
    assert_eq!(w.take_only("spawn"), ["spawn opt.service main: /bin/opt"]);
}

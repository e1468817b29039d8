//! End to end: the manager with real processes (`/bin/sh`) in a
//! temporary root, without cgroups (process groups instead), driven like
//! PID 1 drives it, through the real host. The state machine's own
//! behaviour is tested without processes in `machine_tests.rs`; these
//! check what only real processes show (exec, environment, fds passed,
//! signals, the notification socket).

use super::test_root::{test_config, unit_root};
use super::*;
use std::path::{Path, PathBuf};
use std::time::Instant;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};

struct Fixture {
    dir: tempfile::TempDir,
    m: Manager,
}

fn fixture(units: &[(&str, &str)]) -> Fixture {
    fixture_with(units, |_| {})
}

fn fixture_with(units: &[(&str, &str)], adjust: impl FnOnce(&mut Config)) -> Fixture {
    let dir = unit_root(units);
    let cfg = test_config(dir.path());
    let mut cfg = cfg;
    adjust(&mut cfg);
    let m = Manager::new(cfg, Context::default());
    Fixture { dir, m }
}

impl Fixture {
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// One turn of the PID 1 loop.
    fn turn(&mut self) {
        let names: Vec<String> = self.m.output_fds().into_iter().map(|(n, _)| n).collect();
        for n in names {
            self.m.on_output(&n);
        }
        // The notification socket and listening sockets, as PID 1 polls
        // them.
        let ready: Vec<Watch> = {
            use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
            let watches = self.m.watch_fds();
            let mut fds: Vec<PollFd> = watches
                .iter()
                .map(|(_, fd)| PollFd::new(*fd, PollFlags::POLLIN))
                .collect();
            poll(&mut fds, PollTimeout::ZERO).unwrap();
            watches
                .iter()
                .zip(&fds)
                .filter(|(_, f)| f.revents().is_some_and(|r| !r.is_empty()))
                .map(|((w, _), _)| w.clone())
                .collect()
        };
        for w in ready {
            self.m.on_watch(&w);
        }
        for pid in self.m.pids() {
            match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, 0)) => self.m.on_exit(p.as_raw(), ExitOutcome::Success),
                Ok(WaitStatus::Exited(p, c)) => {
                    self.m.on_exit(p.as_raw(), ExitOutcome::ExitCode(c))
                }
                Ok(WaitStatus::Signaled(p, s, _)) => {
                    self.m.on_exit(p.as_raw(), ExitOutcome::Signal(s as i32))
                }
                _ => {}
            }
        }
        self.m.on_timer();
        std::thread::sleep(Duration::from_millis(5));
    }

    fn until(&mut self, what: &str, limit: Duration, mut done: impl FnMut(&Manager) -> bool) {
        let start = Instant::now();
        while !done(&self.m) {
            assert!(
                start.elapsed() < limit,
                "timed out waiting for {what}; units: {:#?}",
                self.m.unit_infos()
            );
            self.turn();
        }
    }

    /// Makes `<root>/out` and puts its path in place of `%OUT%` (not a
    /// specifier) in the named unit files.
    fn out_dir(&self, units: &[&str]) -> PathBuf {
        let out = self.path("out");
        std::fs::create_dir_all(&out).unwrap();
        for u in units {
            let p = self.path(&format!("etc/systemd/system/{u}"));
            let t = std::fs::read_to_string(&p)
                .unwrap()
                .replace("%OUT%", out.to_str().unwrap());
            std::fs::write(p, t).unwrap();
        }
        out
    }

    fn info(&self, name: &str) -> UnitStatus {
        self.m
            .unit_infos()
            .into_iter()
            .find(|u| u.name == name)
            .unwrap_or_else(|| panic!("{name} not in {:#?}", self.m.unit_infos()))
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(&format!("var/log/services/{name}.log")))
            .unwrap_or_default()
    }
}

fn state(m: &Manager, name: &str) -> (ActiveState, String) {
    m.unit_infos()
        .into_iter()
        .find(|u| u.name == name)
        .map(|u| (u.active, u.sub))
        .unwrap_or((ActiveState::Inactive, "unknown".into()))
}

const SECS: Duration = Duration::from_secs(10);

/// A health hook that appends its arguments to `calls`: (its folder, the
/// hook, calls).
fn recording_hook() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let hook = dir.path().join("hook");
    let calls = dir.path().join("calls");
    std::fs::write(
        &hook,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", calls.display()),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    (dir, hook, calls)
}

/// The update engine's hook runs once per settled state, with the state.
#[test]
fn health_hook_runs_once_for_unhealthy() {
    let (_hook_dir, hook, calls) = recording_hook();
    let mut f = fixture_with(
        &[("bad.service", "[Service]\nExecStart=/bin/sh -c 'exit 3'\n")],
        |c| c.health_hook = Some(hook.clone()),
    );
    f.m.boot("");
    f.until("unhealthy", SECS, |m| m.health().0 == Health::Unhealthy);
    f.until("hook ran", SECS, |_| {
        std::fs::read_to_string(&calls).is_ok_and(|t| t.ends_with('\n'))
    });
    // More turns of the loop must not run it again.
    let until = Instant::now() + Duration::from_millis(500);
    f.until("a while", SECS, |_| Instant::now() > until);
    assert_eq!(
        std::fs::read_to_string(&calls).unwrap(),
        "on-health unhealthy\n"
    );
}

/// A boot that never settles is reported unhealthy to the hook in time.
#[test]
fn starts_in_order_logs_output_and_turns_healthy() {
    let mut f = fixture(&[
        (
            "db.service",
            "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/sh -c 'sleep 0.2; echo db ready; date +%%s%%N > $OUT/db'\nEnvironment=OUT=%OUT%\n",
        ),
        (
            "web.service",
            "[Unit]\nAfter=db.service\nRequires=db.service\n[Service]\nExecStartPre=/bin/sh -c 'date +%%s%%N > $OUT/web'\nExecStart=/bin/sh -c 'echo web up; echo to stderr >&2; exec sleep 100'\nEnvironment=OUT=%OUT%\n",
        ),
    ]);
    let out = f.out_dir(&["db.service", "web.service"]);
    f.m.boot("");
    f.until("web running", SECS, |m| {
        state(m, "web.service").1 == "running"
    });
    let db: u128 = std::fs::read_to_string(out.join("db"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let web: u128 = std::fs::read_to_string(out.join("web"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(web > db, "web started before db finished");
    assert_eq!(
        state(&f.m, "db.service"),
        (ActiveState::Active, "exited".into())
    );
    f.until("health", SECS, |m| m.health().0 == Health::Healthy);
    assert_eq!(
        std::fs::read_to_string(f.path("run/slipway/health")).unwrap(),
        "healthy\n"
    );
    let log = f.log("web.service");
    assert!(
        log.contains("Z web up\n") && log.contains("Z to stderr\n"),
        "{log}"
    );
    assert!(f.log("db.service").contains(" db ready\n"));
    let out = f.m.take_output();
    assert!(
        out.iter()
            .any(|l| l.starts_with("slipway: services started: 2 in ")),
        "{out:?}"
    );

    f.m.stop_all();
    f.until("all stopped", SECS, |m| m.all_stopped());
    assert_eq!(
        state(&f.m, "web.service"),
        (ActiveState::Inactive, "dead".into())
    );
}

#[test]
fn failures_are_reported_by_unit_and_cause_and_the_rest_comes_up() {
    let mut f = fixture(&[
        ("missing.service", "[Service]\nExecStart=/nonexistent/daemon\n"),
        ("bad.service", "[Service]\nType=simple\n"),
        ("cycle-a.service", "[Unit]\nAfter=cycle-b.service\n[Service]\nExecStart=/bin/sh -c 'sleep 100'\n"),
        ("cycle-b.service", "[Unit]\nAfter=cycle-a.service\n[Service]\nExecStart=/bin/sh -c 'sleep 100'\n"),
        ("needs.service", "[Unit]\nRequires=missing.service\nAfter=missing.service\n[Service]\nExecStart=/bin/sh -c 'sleep 100'\n"),
        ("fine.service", "[Service]\nExecStart=/bin/sh -c 'sleep 100'\n"),
        ("skip.service", "[Unit]\nConditionPathExists=/nope\n[Service]\nExecStart=/bin/sh -c 'sleep 100'\n"),
    ]);
    f.m.boot("");
    f.until("fine running", SECS, |m| {
        state(m, "fine.service").1 == "running"
    });
    f.until("boot settled", SECS, |m| m.health().0 == Health::Unhealthy);
    let r = |f: &Fixture, n: &str| f.info(n).result.unwrap_or_default();
    assert_eq!(
        r(&f, "missing.service"),
        "exec /nonexistent/daemon: No such file or directory"
    );
    assert!(
        r(&f, "bad.service").starts_with("bad unit: "),
        "{}",
        r(&f, "bad.service")
    );
    assert_eq!(
        r(&f, "cycle-a.service"),
        "ordering cycle: cycle-a.service → cycle-b.service → cycle-a.service"
    );
    assert_eq!(r(&f, "needs.service"), "dependency failed: missing.service");
    assert_eq!(f.info("skip.service").sub, "condition-failed");
    assert_eq!(f.info("fine.service").active, ActiveState::Active);
    let (_, detail) = f.m.health();
    assert!(
        detail
            .unwrap()
            .contains("missing.service failed (exec /nonexistent/daemon"),
        "{detail:?}"
    );
    let out = f.m.take_output();
    assert!(
        out.iter().any(|l| l == "slipway: missing.service: failed: exec /nonexistent/daemon: No such file or directory"),
        "{out:?}"
    );
    f.m.stop_all();
    f.until("all stopped", SECS, |m| m.all_stopped());
}

#[test]
fn a_service_ignoring_sigterm_is_killed_after_its_stop_timeout() {
    let mut f = fixture(&[(
        "stubborn.service",
        "[Service]\nExecStart=/bin/sh -c 'trap \"echo got TERM\" TERM; while true; do sleep 0.05; done'\nTimeoutStopSec=500ms\n",
    )]);
    f.m.boot("");
    f.until("running", SECS, |m| {
        state(m, "stubborn.service").1 == "running"
    });
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    f.m.request("stubborn.service", Job::Stop).unwrap();
    f.until("stopped", SECS, |m| !m.busy("stubborn.service"));
    assert_eq!(
        state(&f.m, "stubborn.service"),
        (ActiveState::Inactive, "dead".into())
    );
    assert!(t.elapsed() >= Duration::from_millis(500));
    let info = f.info("stubborn.service");
    assert_eq!(info.result.as_deref(), Some("stop timeout: killed"));
    assert!(f
        .log("stubborn.service")
        .contains("did not stop in time: SIGKILL"));
}

#[test]
fn limits_and_oom_score_reach_the_service() {
    let mut f = fixture(&[(
        "l.service",
        "[Service]\nType=oneshot\nLimitNOFILE=1234:5678\nLimitCORE=infinity\nOOMScoreAdjust=500\nExecStart=/bin/sh -c 'ulimit -Sn > %OUT%/soft; ulimit -Hn > %OUT%/hard; ulimit -c > %OUT%/core; cat /proc/self/oom_score_adj > %OUT%/oom'\n",
    )]);
    let out = f.out_dir(&["l.service"]);
    f.m.boot("");
    f.until("l done", Duration::from_secs(5), |m| {
        m.all_stopped()
            || m.unit_infos()
                .iter()
                .any(|u| u.name == "l.service" && u.sub == "dead" && u.result.is_none())
    });
    let read = |n: &str| {
        std::fs::read_to_string(out.join(n))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(f.info("l.service").result, None);
    assert_eq!(read("soft"), "1234");
    assert_eq!(read("hard"), "5678");
    assert_eq!(read("core"), "unlimited");
    // Positive: lowering it needs CAP_SYS_RESOURCE, which PID 1 has but
    // a test sandbox may not.
    assert_eq!(read("oom"), "500");
}

#[test]
fn a_service_started_directly_gets_its_sockets_fds() {
    let Some(py) = python() else {
        panic!("python3 is needed for the socket test");
    };
    // As docker.service: Requires= and After= its socket, not enabled.
    let mut f = fixture(&[
        (
            "!d.service",
            "[Unit]\nRequires=d.socket\nAfter=d.socket\nWants=missing-containerd.service\n[Service]\nExecStart=@PY@ %OUT%/echo.py\n",
        ),
        (
            "!d.socket",
            "[Socket]\nListenStream=%OUT%/d.sock\nFileDescriptorName=api\n",
        ),
    ]);
    let out = f.out_dir(&["d.service", "d.socket"]);
    std::fs::write(out.join("echo.py"), LISTEN_PY).unwrap();
    let p = f.path("etc/systemd/system/d.service");
    let t = std::fs::read_to_string(&p).unwrap().replace("@PY@", &py);
    std::fs::write(p, t).unwrap();
    f.m.boot("");
    f.m.request("d.service", Job::Start).unwrap();
    f.until("d up", Duration::from_secs(10), |m| {
        m.unit_infos()
            .iter()
            .any(|u| u.name == "d.service" && u.active == ActiveState::Active)
    });
    let pid = f.info("d.service").main_pid.unwrap();
    let mut conn = std::os::unix::net::UnixStream::connect(out.join("d.sock")).unwrap();
    let mut text = String::new();
    use std::io::Read;
    conn.read_to_string(&mut text).unwrap();
    assert_eq!(text, format!("hello from {pid}\n"));
    let log_path = f.path("var/log/services/d.service.log");
    f.until("the names in the log", Duration::from_secs(5), |_| {
        std::fs::read_to_string(&log_path).is_ok_and(|l| l.contains("names api"))
    });
    f.m.stop_all();
    f.until("stopped", Duration::from_secs(10), |m| m.all_stopped());
}

/// A notify service in Python: READY=1 and a STATUS after a short delay,
/// through `$NOTIFY_SOCKET`, as `sd_notify(3)` sends it.
const NOTIFY_PY: &str = "import os,socket,time\ntime.sleep(0.3)\ns=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ns.sendto(b'READY=1\\nSTATUS=serving', os.environ['NOTIFY_SOCKET'])\ntime.sleep(60)\n";

fn python() -> Option<String> {
    ["/usr/bin/python3", "/bin/python3"]
        .iter()
        .find(|p| Path::new(p).exists())
        .map(|p| p.to_string())
}

#[test]
fn notify_service_is_active_only_after_ready() {
    let Some(py) = python() else {
        panic!("python3 is needed for the notify test");
    };
    let mut f = fixture(&[(
        "n.service",
        "[Service]\nType=notify\nExecStart=@PY@ %OUT%/n.py\nTimeoutStartSec=0\n",
    )]);
    let out = f.out_dir(&["n.service"]);
    std::fs::write(out.join("n.py"), NOTIFY_PY).unwrap();
    let p = f.path("etc/systemd/system/n.service");
    let t = std::fs::read_to_string(&p).unwrap().replace("@PY@", &py);
    std::fs::write(p, t).unwrap();
    f.m.boot("");
    f.until("n activating", Duration::from_secs(5), |m| {
        m.unit_infos()
            .iter()
            .any(|u| u.name == "n.service" && u.sub == "start")
    });
    assert_eq!(f.info("n.service").active, ActiveState::Activating);
    f.until("n ready", Duration::from_secs(10), |m| {
        m.unit_infos()
            .iter()
            .any(|u| u.name == "n.service" && u.active == ActiveState::Active)
    });
    assert_eq!(f.m.status_text("n.service").as_deref(), Some("serving"));
    // What slipctl status shows.
    assert_eq!(f.info("n.service").status_text.as_deref(), Some("serving"));
    f.m.stop_all();
    f.until("n stopped", Duration::from_secs(10), |m| m.all_stopped());
}

/// A socket-activated service in Python that checks what
/// `sd_listen_fds(3)` checks and answers on the passed fd.
const LISTEN_PY: &str = "import os,socket,sys\nassert os.environ['LISTEN_PID']==str(os.getpid()), os.environ['LISTEN_PID']\nassert os.environ['LISTEN_FDS']=='1'\nprint('names', os.environ['LISTEN_FDNAMES'], flush=True)\ns=socket.socket(fileno=3)\nwhile True:\n    c,_=s.accept()\n    c.sendall(b'hello from %d\\n' % os.getpid())\n    c.close()\n";

#[test]
fn socket_unit_starts_its_service_on_traffic_with_the_fd() {
    let Some(py) = python() else {
        panic!("python3 is needed for the socket test");
    };
    let mut f = fixture(&[
        (
            "!echo.service",
            "[Unit]\nRequires=echo.socket\nAfter=echo.socket\n[Service]\nExecStart=@PY@ %OUT%/echo.py\n",
        ),
        (
            "echo.socket",
            "[Socket]\nListenStream=%OUT%/run/echo.sock\nSocketMode=0600\nRemoveOnStop=yes\n",
        ),
    ]);
    let out = f.out_dir(&["echo.service", "echo.socket"]);
    std::fs::write(out.join("echo.py"), LISTEN_PY).unwrap();
    let p = f.path("etc/systemd/system/echo.service");
    let t = std::fs::read_to_string(&p).unwrap().replace("@PY@", &py);
    std::fs::write(p, t).unwrap();
    f.m.boot("");
    f.until("socket listening", Duration::from_secs(5), |m| {
        m.unit_infos()
            .iter()
            .any(|u| u.name == "echo.socket" && u.sub == "listening")
    });
    // Nothing started the service yet: boot does not wait for it.
    assert!(f
        .m
        .unit_infos()
        .iter()
        .all(|u| u.name != "echo.service" || u.active == ActiveState::Inactive));
    let sock = out.join("run/echo.sock");
    let mut conn = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    f.until("service running", Duration::from_secs(10), |m| {
        m.unit_infos()
            .iter()
            .any(|u| u.name == "echo.service" && u.active == ActiveState::Active)
    });
    assert_eq!(
        f.m.unit_infos()
            .iter()
            .find(|u| u.name == "echo.socket")
            .unwrap()
            .sub,
        "running"
    );
    conn.set_nonblocking(true).unwrap();
    let mut text = String::new();
    let start = Instant::now();
    use std::io::Read;
    while !text.ends_with('\n') {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no answer: {text:?}"
        );
        let mut buf = [0u8; 64];
        match conn.read(&mut buf) {
            Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(_) => f.turn(),
        }
    }
    let pid = f.info("echo.service").main_pid.unwrap();
    assert_eq!(text, format!("hello from {pid}\n"));
    // The service exits: the socket listens again, and the next
    // connection starts it again.
    nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    f.until("listening again", Duration::from_secs(10), |m| {
        m.unit_infos()
            .iter()
            .any(|u| u.name == "echo.socket" && u.sub == "listening")
    });
    let _again = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    f.until("service again", Duration::from_secs(10), |m| {
        m.unit_infos().iter().any(|u| {
            u.name == "echo.service" && u.active == ActiveState::Active && u.main_pid != Some(pid)
        })
    });
    let log =
        std::fs::read_to_string(f.path("var/log/services/echo.service.log")).unwrap_or_default();
    assert!(log.contains("names echo.socket"), "{log}");
    // Stopping the socket stops the service that requires it, and
    // RemoveOnStop= removes the file.
    f.m.request("echo.socket", Job::Stop).unwrap();
    f.until("both stopped", Duration::from_secs(10), |m| {
        m.unit_infos()
            .iter()
            .all(|u| !u.name.starts_with("echo.") || u.active == ActiveState::Inactive)
    });
    assert!(!sock.exists());
}

/// A stand-in for dockerd (Debian's docker.service runs it with
/// `-H fd://`): checks what go-systemd's activation checks, that
/// containerd was ready first, tells READY=1, and answers on fd 3.
const FAKE_DOCKERD: &str = "import os,socket,sys\nassert os.environ['LISTEN_PID']==str(os.getpid())\nassert os.environ['LISTEN_FDS']=='1'\nassert os.environ['LISTEN_FDNAMES']=='docker.socket'\nassert os.path.exists(sys.argv[1]+'/containerd-ready')\nn=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\nn.sendto(b'READY=1\\nSTATUS=Processing requests', os.environ['NOTIFY_SOCKET'])\ns=socket.socket(fileno=3)\nwhile True:\n    c,_=s.accept()\n    c.sendall(b'HTTP/1.0 200 OK\\r\\n\\r\\nOK')\n    c.close()\n";
const FAKE_CONTAINERD: &str = "import os,socket,sys,time\ntime.sleep(0.2)\nopen(sys.argv[1]+'/containerd-ready','w').close()\nn=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\nn.sendto(b'READY=1', os.environ['NOTIFY_SOCKET'])\ntime.sleep(60)\n";

#[test]
fn debians_docker_units_socket_activate_dockerd_after_containerd() {
    let Some(py) = python() else {
        panic!("python3 is needed for the docker-shaped test");
    };
    use crate::units::tests::{
        DEBIAN_CONTAINERD_SERVICE, DEBIAN_DOCKER_SERVICE, DEBIAN_DOCKER_SOCKET,
    };
    let mut f = fixture(&[("sockets.target", "[Unit]\nDescription=Sockets\n")]);
    let root = f.dir.path().to_path_buf();
    let out = f.path("out");
    std::fs::create_dir_all(&out).unwrap();
    let lib = root.join("lib/systemd/system");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::write(lib.join("docker.service"), DEBIAN_DOCKER_SERVICE).unwrap();
    std::fs::write(lib.join("docker.socket"), DEBIAN_DOCKER_SOCKET).unwrap();
    std::fs::write(lib.join("containerd.service"), DEBIAN_CONTAINERD_SERVICE).unwrap();
    let etc = root.join("etc/systemd/system");
    std::fs::create_dir_all(etc.join("sockets.target.wants")).unwrap();
    std::os::unix::fs::symlink(
        "/lib/systemd/system/docker.socket",
        etc.join("sockets.target.wants/docker.socket"),
    )
    .unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\ndocker:x:233:\n").unwrap();
    // Drop-ins put the daemons' stand-ins and the socket in the test's
    // tree, and keep limits a test sandbox may not raise (PID 1 can).
    let o = out.display();
    // This process's hard limit on processes: a sandbox may not raise it
    // to infinity (PID 1 can).
    let nproc = std::fs::read_to_string("/proc/self/limits")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Max processes"))
        .and_then(|l| l.split_whitespace().nth(3).map(str::to_string))
        .unwrap();
    let nproc = if nproc == "unlimited" {
        "infinity".to_string()
    } else {
        nproc
    };
    let drop_in = |unit: &str, text: String| {
        let d = etc.join(format!("{unit}.d"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("test.conf"), text).unwrap();
    };
    std::fs::write(out.join("dockerd.py"), FAKE_DOCKERD).unwrap();
    std::fs::write(out.join("containerd.py"), FAKE_CONTAINERD).unwrap();
    drop_in(
        "docker.service",
        format!("[Service]\nExecStart=\nExecStart={py} {o}/dockerd.py {o}\nLimitNOFILE=1024\nLimitNPROC={nproc}\n"),
    );
    drop_in(
        "containerd.service",
        format!("[Service]\nExecStartPre=\nExecStart=\nExecStart={py} {o}/containerd.py {o}\nOOMScoreAdjust=0\nLimitNOFILE=1024\nLimitNPROC={nproc}\n"),
    );
    drop_in(
        "docker.socket",
        format!("[Socket]\nListenStream=\nListenStream={o}/docker.sock\n"),
    );

    f.m.boot("");
    f.until("docker.socket listening", Duration::from_secs(5), |m| {
        m.unit_infos()
            .iter()
            .any(|u| u.name == "docker.socket" && u.sub == "listening")
    });
    // The boot does not wait for dockerd: it is not even started.
    f.until("boot done", Duration::from_secs(5), |m| m.machine.boot_done);
    assert!(f
        .m
        .unit_infos()
        .iter()
        .all(|u| !u.name.ends_with(".service") || u.active == ActiveState::Inactive));
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(out.join("docker.sock")).unwrap();
    assert_eq!((meta.mode() & 0o777, meta.gid()), (0o660, 233));

    // `docker ps`: the first connection starts containerd, then dockerd.
    let mut conn = std::os::unix::net::UnixStream::connect(out.join("docker.sock")).unwrap();
    f.until("dockerd ready", Duration::from_secs(15), |m| {
        m.unit_infos()
            .iter()
            .any(|u| u.name == "docker.service" && u.active == ActiveState::Active)
    });
    assert_eq!(f.info("containerd.service").active, ActiveState::Active);
    assert_eq!(
        f.info("docker.service").status_text.as_deref(),
        Some("Processing requests")
    );
    use std::io::Read;
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.ends_with("OK"), "{answer}");
    f.m.stop_all();
    f.until("all stopped", Duration::from_secs(15), |m| m.all_stopped());
}

#[test]
fn reload_signals_the_main_process_through_mainpid() {
    let mut f = fixture(&[(
        "r.service",
        "[Service]\nExecStart=/bin/sh -c 'trap \"echo hup >> %OUT%/hups\" HUP; while true; do sleep 0.05; done'\nExecReload=/bin/kill -s HUP $MAINPID\n",
    )]);
    let out = f.out_dir(&["r.service"]);
    f.m.boot("");
    f.until("r up", Duration::from_secs(5), |m| {
        m.unit_infos()
            .iter()
            .any(|u| u.name == "r.service" && u.active == ActiveState::Active)
    });
    // Let the shell set its trap.
    std::thread::sleep(Duration::from_millis(200));
    f.m.reload_unit("r.service").unwrap();
    f.until("the HUP arrived", Duration::from_secs(5), |_| {
        std::fs::read_to_string(out.join("hups")).is_ok_and(|t| t == "hup\n")
    });
    assert_eq!(f.info("r.service").active, ActiveState::Active);
    f.m.stop_all();
    f.until("stopped", Duration::from_secs(10), |m| m.all_stopped());
    let mut g = fixture(&[(
        "x.service",
        "[Service]\nExecStart=/bin/sh -c 'exec sleep 10'\n",
    )]);
    g.m.boot("");
    assert_eq!(
        g.m.reload_unit("x.service"),
        Err("the unit has no ExecReload=".to_string())
    );
    g.m.stop_all();
    g.until("stopped", Duration::from_secs(10), |m| m.all_stopped());
}

//! `slipctl` end to end: the binary against a fake service manager on a
//! temporary socket (`SLIPWAY_CONTROL_SOCKET`) and temporary log files
//! (`SLIPWAY_LOG_DIR`).

use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::thread;

use slipway_control::*;

struct Fake {
    dir: tempfile::TempDir,
    socket: PathBuf,
    requests: Arc<Mutex<Vec<Request>>>,
}

fn unit(name: &str, active: ActiveState, sub: &str, log: Option<&Path>) -> UnitStatus {
    UnitStatus {
        name: name.into(),
        description: Some(format!("The {name}")),
        load: "loaded".into(),
        enabled: true,
        active,
        sub: sub.into(),
        main_pid: (active == ActiveState::Active).then_some(42),
        since_ms: 1_000,
        restarts: 0,
        result: (active == ActiveState::Failed).then(|| "exit status 1".into()),
        memory_bytes: None,
        tasks: None,
        log: log.map(|p| p.display().to_string()),
        status_text: None,
    }
}

fn fixture(log_dir: &Path) -> SystemStatus {
    SystemStatus {
        health: Health::Unhealthy,
        health_detail: Some("web.service failed".into()),
        uptime_ms: 31_000,
        units: vec![
            unit("sshd.service", ActiveState::Active, "running", None),
            unit(
                "web.service",
                ActiveState::Failed,
                "failed",
                Some(&log_path(log_dir, "web.service")),
            ),
        ],
    }
}

impl Fake {
    fn start() -> Fake {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("control.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let status = fixture(dir.path());
        let seen = requests.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let stream = stream.unwrap();
                let status = status.clone();
                let seen = seen.clone();
                let _ = serve_connection(&stream, move |req| {
                    seen.lock().unwrap().push(req.clone());
                    match &req {
                        Request::Status { .. } => Response::with_status(status),
                        Request::Start { unit } if unit == "bad.service" => {
                            Response::err("unit bad.service not found")
                        }
                        Request::Reboot => Response::ok("rebooting"),
                        other => Response::ok(format!(
                            "{} {}: done",
                            other.command(),
                            other.unit().unwrap_or("-")
                        )),
                    }
                });
            }
        });
        Fake {
            dir,
            socket,
            requests,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_slipctl"))
            .args(args)
            .env("SLIPWAY_CONTROL_SOCKET", &self.socket)
            .env("SLIPWAY_LOG_DIR", self.dir.path())
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[test]
fn status_table() {
    let fake = Fake::start();
    for args in [&["status"][..], &[]] {
        let o = fake.run(args);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert_eq!(
            stdout(&o),
            "  UNIT         LOAD   ACTIVE SUB     ENABLED RESTARTS DESCRIPTION\n\
             \x20 sshd.service loaded active running enabled 0        The sshd.service\n\
             ● web.service  loaded FAILED failed  enabled 0        The web.service\n\
             \n\
             health: unhealthy: web.service failed\n\
             2 units listed, 1 failed.\n"
        );
    }
    assert_eq!(fake.requests(), vec![Request::Status { unit: None }; 2]);
}

#[test]
fn status_of_one_unit_with_its_log_and_exit_codes() {
    let fake = Fake::start();
    let lines: String = (1..=15).map(|i| format!("web line {i}\n")).collect();
    std::fs::write(log_path(fake.dir.path(), "web.service"), lines).unwrap();
    let o = fake.run(&["status", "web"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with("● web.service - The web.service\n"),
        "{out}"
    );
    assert!(
        out.contains("      Active: failed (failed) since 30 s\n"),
        "{out}"
    );
    assert!(out.contains("      Result: exit status 1\n"), "{out}");
    let tail: Vec<&str> = out.lines().rev().take(11).collect();
    assert_eq!(tail[0], "web line 15");
    assert_eq!(tail[9], "web line 6");
    assert_eq!(tail[10], "");
    assert_eq!(
        fake.requests(),
        [Request::Status {
            unit: Some("web.service".into())
        }]
    );

    let o = fake.run(&["status", "sshd.service"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("    Main PID: 42\n"));

    let o = fake.run(&["status", "ghost"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "slipctl: ghost.service: unit could not be found\n"
    );
}

#[test]
fn status_json_is_the_servers_status() {
    let fake = Fake::start();
    let o = fake.run(&["status", "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let got: SystemStatus = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(got, fixture(fake.dir.path()));
    assert!(
        stdout(&o).contains("\n  \"health\": \"unhealthy\",\n"),
        "pretty"
    );
}

#[test]
fn unit_actions_one_request_each() {
    let fake = Fake::start();
    let o = fake.run(&["start", "a", "bad", "c.socket"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "start a.service: done\nstart c.socket: done\n");
    assert_eq!(
        stderr(&o),
        "slipctl: bad.service: unit bad.service not found\n"
    );
    let o = fake.run(&["enable", "--now", "x"]);
    assert_eq!(o.status.code(), Some(0));
    let o = fake.run(&["disable", "y.service"]);
    assert_eq!(o.status.code(), Some(0));
    let o = fake.run(&["restart", "z"]);
    assert_eq!(o.status.code(), Some(0));
    let o = fake.run(&["stop", "z"]);
    assert_eq!(o.status.code(), Some(0));
    let o = fake.run(&["reboot"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "rebooting\n");
    let o = fake.run(&["poweroff"]);
    assert_eq!(o.status.code(), Some(0));
    let s = |u: &str| u.to_string();
    assert_eq!(
        fake.requests(),
        [
            Request::Start {
                unit: s("a.service")
            },
            Request::Start {
                unit: s("bad.service")
            },
            Request::Start {
                unit: s("c.socket")
            },
            Request::Enable {
                unit: s("x.service"),
                now: true
            },
            Request::Disable {
                unit: s("y.service"),
                now: false
            },
            Request::Restart {
                unit: s("z.service")
            },
            Request::Stop {
                unit: s("z.service")
            },
            Request::Reboot,
            Request::Poweroff,
        ]
    );
}

#[test]
fn no_service_manager() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("absent.sock");
    for args in [&["status"][..], &["start", "a", "b"], &["reboot"]] {
        let o = Command::new(env!("CARGO_BIN_EXE_slipctl"))
            .args(args)
            .env("SLIPWAY_CONTROL_SOCKET", &socket)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1));
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(&format!(
                "cannot reach the service manager at {}: ",
                socket.display()
            )),
            "{err}"
        );
        assert!(
            err.trim_end().ends_with("is this a Slipway machine?"),
            "{err}"
        );
    }
}

#[test]
fn logs_reads_files_directly() {
    let fake = Fake::start();
    let dir = fake.dir.path();
    std::fs::write(previous_log_path(dir, "web.service"), "a\nb\nc\n").unwrap();
    std::fs::write(log_path(dir, "web.service"), "d\ne\n").unwrap();
    let o = fake.run(&["logs", "web", "-n", "3"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "c\nd\ne\n");
    let o = fake.run(&["logs", "web"]);
    assert_eq!(stdout(&o), "a\nb\nc\nd\ne\n");
    let o = fake.run(&["logs", "nothing"]);
    assert_eq!(o.status.code(), Some(1));
    let missing = log_path(dir, "nothing.service");
    assert!(
        stderr(&o).contains(&missing.display().to_string()),
        "{}",
        stderr(&o)
    );
    assert!(fake.requests().is_empty(), "logs does not use the socket");
}

#[test]
fn help_and_version() {
    let o = Command::new(env!("CARGO_BIN_EXE_slipctl"))
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let help = stdout(&o);
    for word in [
        "status",
        "start",
        "stop",
        "restart",
        "enable",
        "disable",
        "reboot",
        "poweroff",
        "logs",
        "/run/slipway/control.sock",
        "SLIPWAY_CONTROL_SOCKET",
        "SLIPWAY_LOG_DIR",
    ] {
        assert!(help.contains(word), "{word} missing from --help:\n{help}");
    }
    let o = Command::new(env!("CARGO_BIN_EXE_slipctl"))
        .args(["logs", "--help"])
        .output()
        .unwrap();
    let help = stdout(&o);
    assert!(
        help.contains("--follow") && help.contains("--lines"),
        "{help}"
    );
    let o = Command::new(env!("CARGO_BIN_EXE_slipctl"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        stdout(&o),
        format!("slipctl {}\n", env!("CARGO_PKG_VERSION"))
    );
}

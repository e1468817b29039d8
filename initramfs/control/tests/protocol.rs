//! The wire format is a contract between the PID 1 and its clients: these
//! tests pin the exact JSON, the framing and its limits.

use std::io::{BufReader, Cursor, Read};

use serde_json::{json, Value};
use slipway_control::*;

fn unit_fixture() -> UnitStatus {
    UnitStatus {
        name: "sshd.service".into(),
        description: Some("OpenSSH server".into()),
        load: "loaded".into(),
        enabled: true,
        active: ActiveState::Active,
        sub: "running".into(),
        main_pid: Some(312),
        since_ms: 2100,
        restarts: 0,
        result: None,
        memory_bytes: Some(4_612_096),
        tasks: Some(1),
        log: Some("/var/log/services/sshd.service.log".into()),
        status_text: Some("Ready to serve".into()),
    }
}

fn all_requests() -> Vec<(Request, Value)> {
    let u = || "sshd.service".to_string();
    vec![
        (
            Request::Status { unit: None },
            json!({"command": "status", "unit": null}),
        ),
        (
            Request::Status { unit: Some(u()) },
            json!({"command": "status", "unit": "sshd.service"}),
        ),
        (
            Request::Start { unit: u() },
            json!({"command": "start", "unit": "sshd.service"}),
        ),
        (
            Request::Stop { unit: u() },
            json!({"command": "stop", "unit": "sshd.service"}),
        ),
        (
            Request::Restart { unit: u() },
            json!({"command": "restart", "unit": "sshd.service"}),
        ),
        (
            Request::Enable {
                unit: u(),
                now: true,
            },
            json!({"command": "enable", "unit": "sshd.service", "now": true}),
        ),
        (
            Request::Disable {
                unit: u(),
                now: false,
            },
            json!({"command": "disable", "unit": "sshd.service", "now": false}),
        ),
        (Request::Reboot, json!({"command": "reboot"})),
        (Request::Poweroff, json!({"command": "poweroff"})),
    ]
}

#[test]
fn requests_have_the_documented_json() {
    for (req, expected) in all_requests() {
        let value = serde_json::to_value(&req).unwrap();
        assert_eq!(value, expected, "{req:?}");
        let back: Request = serde_json::from_value(expected).unwrap();
        assert_eq!(back, req);
        assert_eq!(value["command"], req.command());
    }
    // Exact bytes of one.
    assert_eq!(
        serde_json::to_string(&Request::Enable {
            unit: "a.service".into(),
            now: true
        })
        .unwrap(),
        r#"{"command":"enable","unit":"a.service","now":true}"#
    );
}

#[test]
fn requests_read_leniently_but_not_blindly() {
    let r: Request = serde_json::from_str(r#"{"command":"status"}"#).unwrap();
    assert_eq!(r, Request::Status { unit: None });
    let r: Request = serde_json::from_str(r#"{"command":"enable","unit":"x.service"}"#).unwrap();
    assert_eq!(
        r,
        Request::Enable {
            unit: "x.service".into(),
            now: false
        }
    );
    let r: Request =
        serde_json::from_str(r#"{"command":"start","unit":"x.service","future":1}"#).unwrap();
    assert_eq!(
        r,
        Request::Start {
            unit: "x.service".into()
        }
    );
    for bad in [
        r#"{"command":"explode"}"#,
        r#"{"command":"Start","unit":"x"}"#,
        r#"{"command":"start"}"#,
        r#"{"unit":"x"}"#,
        r#"{"command":"start","unit":5}"#,
        "[]",
    ] {
        assert!(serde_json::from_str::<Request>(bad).is_err(), "{bad}");
    }
    assert_eq!(Request::Reboot.unit(), None);
    assert_eq!(Request::Stop { unit: "a".into() }.unit(), Some("a"));
}

#[test]
fn responses_have_the_documented_json() {
    assert_eq!(
        serde_json::to_string(&Response::ok("started sshd.service")).unwrap(),
        r#"{"ok":true,"message":"started sshd.service","error":null,"status":null}"#
    );
    assert_eq!(
        serde_json::to_string(&Response::err("unit x.service not found")).unwrap(),
        r#"{"ok":false,"message":null,"error":"unit x.service not found","status":null}"#
    );
    let status = SystemStatus {
        health: Health::Healthy,
        health_detail: None,
        uptime_ms: 81234,
        units: vec![unit_fixture()],
    };
    assert_eq!(
        serde_json::to_value(Response::with_status(status)).unwrap(),
        json!({"ok": true, "message": null, "error": null, "status": {
            "health": "healthy", "health_detail": null, "uptime_ms": 81234, "units": [{
                "name": "sshd.service", "description": "OpenSSH server", "load": "loaded",
                "enabled": true, "active": "active", "sub": "running", "main_pid": 312,
                "since_ms": 2100, "restarts": 0, "result": null, "memory_bytes": 4612096,
                "tasks": 1, "log": "/var/log/services/sshd.service.log",
                "status_text": "Ready to serve"}]}})
    );
}

#[test]
fn responses_round_trip() {
    let mut failed = unit_fixture();
    failed.name = "web.service".into();
    failed.active = ActiveState::Failed;
    failed.sub = "failed".into();
    failed.result = Some("exit status 1".into());
    failed.main_pid = None;
    failed.memory_bytes = None;
    failed.tasks = None;
    failed.log = None;
    failed.description = None;
    let mut units = vec![unit_fixture(), failed];
    for (i, state) in [
        ActiveState::Inactive,
        ActiveState::Activating,
        ActiveState::Deactivating,
    ]
    .into_iter()
    .enumerate()
    {
        let mut u = unit_fixture();
        u.name = format!("u{i}.service");
        u.active = state;
        units.push(u);
    }
    let mut responses = vec![Response::ok("done"), Response::err("no")];
    for health in [Health::Starting, Health::Healthy, Health::Unhealthy] {
        responses.push(Response::with_status(SystemStatus {
            health,
            health_detail: Some("web.service failed".into()),
            uptime_ms: u64::MAX,
            units: units.clone(),
        }));
    }
    responses.push(Response {
        ok: true,
        message: None,
        error: None,
        status: None,
    });
    for resp in responses {
        let text = serde_json::to_string(&resp).unwrap();
        let back: Response = serde_json::from_str(&text).unwrap();
        assert_eq!(back, resp);
    }
    for (state, name) in [
        (ActiveState::Inactive, "inactive"),
        (ActiveState::Activating, "activating"),
        (ActiveState::Active, "active"),
        (ActiveState::Deactivating, "deactivating"),
        (ActiveState::Failed, "failed"),
    ] {
        assert_eq!(serde_json::to_value(state).unwrap(), json!(name));
        assert_eq!(state.to_string(), name);
    }
    for (h, name) in [
        (Health::Starting, "starting"),
        (Health::Healthy, "healthy"),
        (Health::Unhealthy, "unhealthy"),
    ] {
        assert_eq!(serde_json::to_value(h).unwrap(), json!(name));
        assert_eq!(h.to_string(), name);
    }
}

#[test]
fn minimal_response_reads_with_defaults() {
    let r: Response = serde_json::from_str(r#"{"ok":true}"#).unwrap();
    assert_eq!(
        r,
        Response {
            ok: true,
            message: None,
            error: None,
            status: None
        }
    );
    let r: Response = serde_json::from_str(
        r#"{"ok":true,"status":{"health":"starting","uptime_ms":5,"units":[
            {"name":"a.service","load":"loaded","enabled":false,"active":"activating",
             "sub":"start-pre","since_ms":1}]}}"#,
    )
    .unwrap();
    let unit = &r.status.unwrap().units[0];
    assert_eq!(unit.restarts, 0);
    assert_eq!(unit.main_pid, None);
    assert!(serde_json::from_str::<Response>(
        r#"{"ok":true,"status":{"health":"fine","uptime_ms":1}}"#
    )
    .is_err());
}

#[test]
fn framing_writes_one_line_and_reads_it_back() {
    let mut buf = Vec::new();
    let req = Request::Start {
        unit: "new\nline.service".into(),
    };
    write_message(&mut buf, &req).unwrap();
    write_message(&mut buf, &Request::Reboot).unwrap();
    assert_eq!(buf.iter().filter(|&&b| b == b'\n').count(), 2);
    assert!(buf.ends_with(b"\n"));
    // Tiny buffer: lines span many fill_buf calls.
    let mut r = BufReader::with_capacity(3, Cursor::new(buf));
    assert_eq!(read_message::<Request>(&mut r).unwrap(), req);
    assert_eq!(read_message::<Request>(&mut r).unwrap(), Request::Reboot);
    assert!(matches!(
        read_message::<Request>(&mut r),
        Err(ProtoError::Eof)
    ));
}

#[test]
fn framing_edge_cases() {
    // No final newline: accepted. CRLF: accepted.
    let mut r = Cursor::new(&br#"{"command":"reboot"}"#[..]);
    assert_eq!(read_message::<Request>(&mut r).unwrap(), Request::Reboot);
    let mut r = Cursor::new(&b"{\"command\":\"reboot\"}\r\n"[..]);
    assert_eq!(read_message::<Request>(&mut r).unwrap(), Request::Reboot);
    // Nothing at all.
    let mut r = Cursor::new(&b""[..]);
    assert!(matches!(
        read_message::<Request>(&mut r),
        Err(ProtoError::Eof)
    ));
    // Empty line, garbage, binary, truncated JSON, wrong shape.
    for bad in [
        &b"\n"[..],
        b"hello\n",
        b"\xff\xfe\x00\x01\n",
        b"{\"command\":\"reb",
        b"{\"command\":\"reboot\"} trailing\n",
        b"{\"ok\":true}\n",
    ] {
        let mut r = Cursor::new(bad);
        let err = read_message::<Request>(&mut r).unwrap_err();
        assert!(matches!(err, ProtoError::Json(_)), "{bad:?}: {err:?}");
    }
}

/// A reader that yields `len` bytes of `b'x'` and counts what was read.
struct Endless {
    left: usize,
    read: usize,
}

impl Read for Endless {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.left);
        buf[..n].fill(b' ');
        self.left -= n;
        self.read += n;
        Ok(n)
    }
}

#[test]
fn framing_refuses_oversized_lines_without_reading_them_all() {
    // Exactly the limit is fine (whitespace around a small object).
    let mut line = vec![b' '; MAX_MESSAGE - 20];
    line.extend_from_slice(br#"{"command":"reboot"}"#);
    assert_eq!(line.len(), MAX_MESSAGE);
    line.push(b'\n');
    let mut r = Cursor::new(line.clone());
    assert_eq!(read_message::<Request>(&mut r).unwrap(), Request::Reboot);
    // One more byte is refused.
    line.insert(0, b' ');
    let mut r = Cursor::new(line);
    let err = read_message::<Request>(&mut r).unwrap_err();
    assert!(
        matches!(err, ProtoError::TooLong { limit: MAX_MESSAGE }),
        "{err:?}"
    );
    assert!(err.to_string().contains("65536"), "{err}");
    // A never-ending line stops near the limit.
    let mut src = Endless {
        left: usize::MAX,
        read: 0,
    };
    let mut r = BufReader::new(&mut src);
    assert!(matches!(
        read_message::<Request>(&mut r),
        Err(ProtoError::TooLong { .. })
    ));
    drop(r);
    assert!(src.read <= MAX_MESSAGE + 8192, "read {} bytes", src.read);
    // A custom limit.
    let mut r = Cursor::new(&b"{\"command\":\"reboot\"}\n"[..]);
    assert!(matches!(
        read_message_with_limit::<Request>(&mut r, 10),
        Err(ProtoError::TooLong { limit: 10 })
    ));
}

#[test]
fn paths_and_names() {
    use std::path::Path;
    assert_eq!(SOCKET_PATH, "/run/slipway/control.sock");
    assert_eq!(LOG_DIR, "/var/log/services");
    let dir = Path::new(LOG_DIR);
    assert_eq!(
        log_path(dir, "sshd.service"),
        Path::new("/var/log/services/sshd.service.log")
    );
    assert_eq!(
        previous_log_path(dir, "sshd.service"),
        Path::new("/var/log/services/sshd.service.log.1")
    );
    assert_eq!(
        log_path(dir, "../../etc/passwd"),
        Path::new("/var/log/services/..-..-etc-passwd.log")
    );
    assert_eq!(unit_name("sshd"), "sshd.service");
    assert_eq!(unit_name("sshd.service"), "sshd.service");
    assert_eq!(unit_name("multi-user.target"), "multi-user.target");
    assert_eq!(unit_name("getty@tty1"), "getty@tty1.service");
    assert_eq!(unit_name("foo.bar"), "foo.bar.service");
    assert_eq!(unit_name(".service"), ".service.service");
}

//! `call` and `serve_connection` over a real unix socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::thread;
use std::time::Duration;

use slipway_control::*;

#[test]
fn call_and_serve_connection_talk() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("control.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let server = thread::spawn(move || {
        for _ in 0..2 {
            let (stream, _) = listener.accept().unwrap();
            serve_connection(&stream, |req| match req {
                Request::Start { unit } => Response::ok(format!("started {unit}")),
                other => Response::err(format!("cannot {}", other.command())),
            })
            .unwrap();
        }
    });
    let t = Duration::from_secs(5);
    let r = call(
        &sock,
        &Request::Start {
            unit: "a.service".into(),
        },
        t,
    )
    .unwrap();
    assert_eq!(r, Response::ok("started a.service"));
    let r = call(&sock, &Request::Reboot, t).unwrap();
    assert_eq!(r, Response::err("cannot reboot"));
    server.join().unwrap();
}

#[test]
fn serve_connection_answers_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("control.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let result = serve_connection(&stream, |_| Response::ok("never"));
        assert!(matches!(result, Err(ProtoError::Json(_))), "{result:?}");
    });
    let mut client = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    client.write_all(b"{\"command\":\"explode\"}\n").unwrap();
    let mut answer = String::new();
    BufReader::new(&client).read_line(&mut answer).unwrap();
    let resp: Response = serde_json::from_str(&answer).unwrap();
    assert!(!resp.ok);
    assert!(resp.error.unwrap().starts_with("bad request: "));
    server.join().unwrap();
}

#[test]
fn connect_error_is_clear() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("missing.sock");
    let err = call(&sock, &Request::Reboot, Duration::from_secs(1)).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "cannot reach the service manager at {}: ",
            sock.display()
        )),
        "{text}"
    );
    assert!(text.ends_with("; is this a Slipway machine?"), "{text}");
    assert!(matches!(err, ProtoError::Connect { .. }));
}

fn one_shot_server(sock: &Path, answer: &'static [u8], delay: Duration) -> thread::JoinHandle<()> {
    let listener = UnixListener::bind(sock).unwrap();
    thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line).unwrap();
        thread::sleep(delay);
        let _ = stream.write_all(answer);
    })
}

#[test]
fn call_reports_silence_garbage_and_hangups() {
    let dir = tempfile::tempdir().unwrap();
    let t = Duration::from_millis(300);

    let sock = dir.path().join("slow.sock");
    let server = one_shot_server(&sock, b"{\"ok\":true}\n", Duration::from_secs(2));
    let err = call(&sock, &Request::Reboot, t).unwrap_err();
    assert!(matches!(err, ProtoError::Timeout(_)), "{err:?}");
    assert!(
        err.to_string().contains("did not answer within 0.3 s"),
        "{err}"
    );
    server.join().unwrap();

    let sock = dir.path().join("garbage.sock");
    let server = one_shot_server(&sock, b"<html>\n", Duration::ZERO);
    let err = call(&sock, &Request::Reboot, Duration::from_secs(5)).unwrap_err();
    assert!(matches!(err, ProtoError::Json(_)), "{err:?}");
    server.join().unwrap();

    let sock = dir.path().join("hangup.sock");
    let server = one_shot_server(&sock, b"", Duration::ZERO);
    let err = call(&sock, &Request::Reboot, Duration::from_secs(5)).unwrap_err();
    assert!(matches!(err, ProtoError::Eof), "{err:?}");
    server.join().unwrap();
}

#[test]
fn big_status_fits_the_client_limit() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("big.sock");
    let units: Vec<UnitStatus> = (0..1000)
        .map(|i| UnitStatus {
            name: format!("unit-number-{i}.service"),
            description: Some("a unit with a longish description for size".into()),
            load: "loaded".into(),
            enabled: true,
            active: ActiveState::Active,
            sub: "running".into(),
            main_pid: Some(1000 + i),
            since_ms: 1,
            restarts: 0,
            result: None,
            memory_bytes: Some(1 << 20),
            tasks: Some(1),
            log: Some(format!("/var/log/services/unit-number-{i}.service.log")),
            status_text: None,
        })
        .collect();
    let status = SystemStatus {
        health: Health::Healthy,
        health_detail: None,
        uptime_ms: 5,
        units,
    };
    let expected = Response::with_status(status);
    let sent = expected.clone();
    let listener = UnixListener::bind(&sock).unwrap();
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        serve_connection(&stream, move |_| sent).unwrap();
    });
    let got = call(
        &sock,
        &Request::Status { unit: None },
        Duration::from_secs(5),
    )
    .unwrap();
    assert!(serde_json::to_vec(&got).unwrap().len() > MAX_MESSAGE);
    assert_eq!(got, expected);
    server.join().unwrap();
}

//! Zincati's FleetLock protocol (coreos/zincati
//! `docs/development/fleetlock/protocol.md`), for fleets that run a lock
//! server (airlock and the like) instead of giving machines etcd access.
//!
//! `POST <base>/v1/pre-reboot` takes a slot before rebooting,
//! `POST <base>/v1/steady-state` frees it once the machine is up again;
//! both carry the header `fleet-lock-protocol: true` and the body
//! `{"client_params":{"id":"<node>","group":"<group>"}}`. Only 200 is
//! success; a server explains a refusal as `{"kind":…,"value":…}`. Locks
//! are recursive per ID, so asking again after a crash is harmless.

use serde::Deserialize;
use serde_json::json;

use super::{check_url, LockError, RebootLock};

/// The group when none is configured (Zincati's default).
pub const DEFAULT_GROUP: &str = "default";

pub struct FleetLock {
    base: String,
    group: String,
    agent: ureq::Agent,
}

impl std::fmt::Debug for FleetLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetLock")
            .field("base", &self.base)
            .field("group", &self.group)
            .finish()
    }
}

impl FleetLock {
    /// `base` is the server's URL (the `/v1/...` paths go under it);
    /// `group` must match the protocol's `^[a-zA-Z0-9.-]+$`.
    pub fn new(base: &str, group: Option<&str>) -> Result<FleetLock, LockError> {
        let base = check_url("FleetLock base URL", base)?;
        let group = group.filter(|g| !g.is_empty()).unwrap_or(DEFAULT_GROUP);
        if !group
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            return Err(LockError::Config(format!(
                "FleetLock group {group:?}: only letters, digits, '.' and '-' are allowed"
            )));
        }
        Ok(FleetLock {
            base,
            group: group.to_owned(),
            agent: super::agent(),
        })
    }

    /// Takes a reboot slot for `id` (already holding one: success).
    pub fn pre_reboot(&self, id: &str) -> Result<(), LockError> {
        self.call("/v1/pre-reboot", id)
    }

    /// Frees `id`'s slot (holding none: success, per the protocol).
    pub fn steady_state(&self, id: &str) -> Result<(), LockError> {
        self.call("/v1/steady-state", id)
    }

    fn call(&self, path: &str, id: &str) -> Result<(), LockError> {
        let url = format!("{}{path}", self.base);
        let body = json!({ "client_params": { "id": id, "group": self.group } }).to_string();
        let mut response = self
            .agent
            .post(&url)
            .header("fleet-lock-protocol", "true")
            .header("content-type", "application/json")
            .send(body.as_str())
            .map_err(|e| LockError::Unreachable {
                what: "FleetLock server",
                tried: vec![(url.clone(), e.to_string())],
            })?;
        let status = response.status().as_u16();
        if status == 200 {
            return Ok(());
        }
        let text = response
            .body_mut()
            .with_config()
            .limit(64 << 10)
            .read_to_string()
            .unwrap_or_default();
        let reason = match serde_json::from_str::<ServerError>(&text) {
            Ok(e) => format!("{}: {}", e.kind, e.value),
            Err(_) if text.trim().is_empty() => "no explanation".to_owned(),
            Err(_) => format!("{:?}", text.trim().chars().take(200).collect::<String>()),
        };
        Err(LockError::Refused {
            url,
            status,
            reason,
        })
    }
}

impl RebootLock for FleetLock {
    fn acquire(&self, id: &str) -> Result<(), LockError> {
        self.pre_reboot(id)
    }

    fn release(&self, id: &str) -> Result<(), LockError> {
        self.steady_state(id)
    }
}

/// The protocol's error body.
#[derive(Debug, Deserialize)]
struct ServerError {
    kind: String,
    value: String,
}

#[cfg(test)]
mod tests {
    //! Against a small but real HTTP server on loopback that implements the
    //! protocol's semantics: one slot per group, recursive per ID, the
    //! header required, 200 only on success.

    use std::collections::BTreeMap;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::lock::semaphore::Semaphore;

    #[derive(Debug, Clone)]
    struct Seen {
        path: String,
        header: Option<String>,
        body: serde_json::Value,
    }

    struct Server {
        base: String,
        seen: Arc<Mutex<Vec<Seen>>>,
    }

    /// Starts the server; it runs until the test process ends.
    fn server() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            let mut groups: BTreeMap<String, Semaphore> = BTreeMap::new();
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                serve(stream, &mut groups, &log);
            }
        });
        Server { base, seen }
    }

    fn serve(stream: TcpStream, groups: &mut BTreeMap<String, Semaphore>, log: &Mutex<Vec<Seen>>) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let path = parts.next().unwrap_or_default().to_owned();
        let mut header = None;
        let mut length = 0;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (name, value) = h.split_once(':').unwrap();
            match name.to_ascii_lowercase().as_str() {
                "fleet-lock-protocol" => header = Some(value.trim().to_owned()),
                "content-length" => length = value.trim().parse().unwrap(),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        log.lock().unwrap().push(Seen {
            path: path.clone(),
            header: header.clone(),
            body: body.clone(),
        });
        let id = body["client_params"]["id"].as_str().unwrap_or_default();
        let group = body["client_params"]["group"].as_str().unwrap_or_default();
        let (status, answer) = if method != "POST" {
            (405, json!({"kind": "bad_method", "value": method}))
        } else if header.as_deref() != Some("true") {
            (
                400,
                json!({"kind": "missing_header", "value": "fleet-lock-protocol"}),
            )
        } else if id.is_empty() || group.is_empty() {
            (
                400,
                json!({"kind": "bad_body", "value": "client_params.id and .group required"}),
            )
        } else {
            let sem = groups.entry(group.to_owned()).or_default();
            match path.as_str() {
                "/fleet/v1/pre-reboot" => match sem.lock(id) {
                    Ok(_) => (200, json!({})),
                    Err(e) => (409, json!({"kind": "failed_lock", "value": e.to_string()})),
                },
                "/fleet/v1/steady-state" => {
                    let _ = sem.unlock(id);
                    (200, json!({}))
                }
                "/fleet/v1/plain-error" => (500, json!(null)),
                _ => (404, json!({"kind": "not_found", "value": path})),
            }
        };
        let text = if answer.is_null() {
            "internal trouble".to_owned()
        } else {
            answer.to_string()
        };
        let mut stream = stream;
        write!(
            stream,
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
            text.len()
        )
        .unwrap();
    }

    #[test]
    fn one_machine_at_a_time_recursive_per_id() {
        let s = server();
        let base = format!("{}/fleet/", s.base);
        let a = FleetLock::new(&base, None).unwrap();
        a.pre_reboot("node-a").unwrap();
        // Recursive: asking again while holding is success.
        a.pre_reboot("node-a").unwrap();
        let e = a.pre_reboot("node-b").unwrap_err();
        assert!(e.is_busy());
        let text = e.to_string();
        assert!(
            text.contains("/fleet/v1/pre-reboot: the lock server refused with HTTP 409")
                && text.contains("failed_lock: the reboot lock is busy: 1 of 1 held by node-a"),
            "{text}"
        );
        a.steady_state("node-a").unwrap();
        // Freeing what one does not hold is success too.
        a.steady_state("node-a").unwrap();
        a.acquire("node-b").unwrap();
        // Another group has its own slot.
        let web = FleetLock::new(&base, Some("web-1.eu")).unwrap();
        web.acquire("node-c").unwrap();
        a.release("node-b").unwrap();

        let seen = s.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 8);
        for r in &seen {
            assert_eq!(r.header.as_deref(), Some("true"), "{r:?}");
        }
        assert_eq!(seen[0].path, "/fleet/v1/pre-reboot");
        assert_eq!(
            seen[0].body,
            json!({"client_params": {"id": "node-a", "group": "default"}})
        );
        assert_eq!(seen[3].path, "/fleet/v1/steady-state");
        assert_eq!(seen[6].body["client_params"]["group"], "web-1.eu");
    }

    #[test]
    fn a_refusal_without_json_shows_status_and_text() {
        let s = server();
        let l = FleetLock::new(&format!("{}/fleet", s.base), None).unwrap();
        let e = l.call("/v1/plain-error", "n").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}/fleet/v1/plain-error: the lock server refused with HTTP 500: \"internal trouble\"",
                s.base
            )
        );
        let e = l.call("/v1/nothing", "n").unwrap_err();
        assert!(
            e.to_string()
                .contains("HTTP 404: not_found: /fleet/v1/nothing"),
            "{e}"
        );
    }

    #[test]
    fn a_dead_server_is_named() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let l = FleetLock::new(&format!("http://127.0.0.1:{port}"), None).unwrap();
        let e = l.pre_reboot("n").unwrap_err();
        assert!(!e.is_busy());
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "no FleetLock server answered (tried http://127.0.0.1:{port}/v1/pre-reboot: "
            )),
            "{text}"
        );
    }

    #[test]
    fn groups_are_checked() {
        for bad in ["web servers", "a/b", "é"] {
            let e = FleetLock::new("http://h", Some(bad)).unwrap_err();
            assert!(e.to_string().contains("only letters, digits"), "{e}");
        }
        assert_eq!(
            FleetLock::new("http://h/", Some("")).unwrap().group,
            "default"
        );
        assert_eq!(FleetLock::new("http://h/", None).unwrap().base, "http://h");
    }
}

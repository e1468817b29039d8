//! locksmith's reboot lock in etcd, spoken through etcd's v3 JSON gateway
//! (`POST /v3/kv/range`, `POST /v3/kv/txn`) over plain HTTP.
//!
//! Upstream locksmith used the v2 API (`/v2/keys/coreos.com/...`, a
//! `prevIndex` compare-and-swap). etcd 3.4, which Debian ships, serves v2
//! only with `--enable-v2`, and v2 and v3 are separate keyspaces: a v2
//! key is invisible to v3 clients and the other way round. This client
//! keeps locksmith's key names and JSON value in the v3 keyspace, where
//! `etcdctl get` (v3) reads them; a fleet must not mix it with v2-only
//! locksmith machines, which would see a different (empty) lock.
//!
//! Every change is read, apply, compare-and-swap: a txn whose compare is
//! the key's `VERSION` as read (0 when the key is absent, so the first
//! writer creates it) and whose success branch puts the new value. A
//! failed compare means another machine wrote in between: read again, up
//! to [`ATTEMPTS`] times. The gateway's JSON carries keys and values as
//! base64 and int64 fields as strings, and leaves out fields at their
//! default (`"succeeded"` is absent when false, `"kvs"` when nothing
//! matched, `"value"` when empty).

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::codec::{base64_decode, base64_encode, query_escape};
use super::semaphore::{Change, Semaphore, SemaphoreError};
use super::{check_url, LockError, RebootLock};

/// locksmith's key prefix (`lock/etcd.go`).
pub const KEY_PREFIX: &str = "coreos.com/updateengine/rebootlock";

/// Compare-and-swap rounds before a change gives up. Each lost round means
/// another machine's change went through, so running out takes a
/// sustained storm of writers, not bad luck.
pub const ATTEMPTS: u32 = 20;

/// The semaphore's key: the fleet's, or a group's (escaped as Go's
/// `url.QueryEscape`, as locksmith did).
pub fn semaphore_key(group: Option<&str>) -> String {
    match group {
        None => format!("{KEY_PREFIX}/semaphore"),
        Some(g) => format!("{KEY_PREFIX}/groups/{}/semaphore", query_escape(g)),
    }
}

/// The semaphore with the key's version (0: the key is absent, and
/// `semaphore` is the default a first change would create).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub semaphore: Semaphore,
    pub version: i64,
}

impl Read {
    pub fn exists(&self) -> bool {
        self.version != 0
    }
}

/// A client of one semaphore key on a list of endpoints.
pub struct EtcdLock {
    endpoints: Vec<String>,
    key: String,
    agent: ureq::Agent,
}

impl std::fmt::Debug for EtcdLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdLock")
            .field("endpoints", &self.endpoints)
            .field("key", &self.key)
            .finish()
    }
}

impl EtcdLock {
    /// `endpoints` are tried in order for every request; an empty `group`
    /// is no group.
    pub fn new(endpoints: &[String], group: Option<&str>) -> Result<EtcdLock, LockError> {
        if endpoints.is_empty() {
            return Err(LockError::Config("no etcd endpoint given".into()));
        }
        let endpoints = endpoints
            .iter()
            .map(|e| check_url("etcd endpoint", e))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EtcdLock {
            endpoints,
            key: semaphore_key(group.filter(|g| !g.is_empty())),
            agent: super::agent(),
        })
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// The semaphore now. An absent key reads as the default and is not
    /// created: looking must not write.
    pub fn read(&self) -> Result<Read, LockError> {
        let answer: RangeResponse = self.post("/v3/kv/range", &json!({ "key": b64(&self.key) }))?;
        let Some(kv) = answer.kvs.first() else {
            return Ok(Read {
                semaphore: Semaphore::default(),
                version: 0,
            });
        };
        let value = base64_decode(&kv.value).map_err(|e| LockError::Protocol {
            url: self.key.clone(),
            message: format!("etcd sent a value that is not base64: {e}"),
        })?;
        let semaphore = Semaphore::parse(&value).map_err(|error| LockError::Semaphore {
            key: self.key.clone(),
            error,
        })?;
        Ok(Read {
            semaphore,
            version: kv.version.0,
        })
    }

    /// The value of any `key` on the same endpoints (`None`: absent).
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, LockError> {
        let answer: RangeResponse = self.post("/v3/kv/range", &json!({ "key": b64(key) }))?;
        let Some(kv) = answer.kvs.first() else {
            return Ok(None);
        };
        base64_decode(&kv.value)
            .map(Some)
            .map_err(|e| LockError::Protocol {
                url: key.to_owned(),
                message: format!("etcd sent a value that is not base64: {e}"),
            })
    }

    /// Creates `key` with `value` unless it exists (then it is left as it
    /// is); true when this call created it.
    pub fn create(&self, key: &str, value: &[u8]) -> Result<bool, LockError> {
        let k = b64(key);
        let txn = json!({
            "compare": [{ "key": k, "result": "EQUAL", "target": "VERSION", "version": "0" }],
            "success": [{ "request_put": { "key": k, "value": base64_encode(value) } }],
        });
        let answer: TxnResponse = self.post("/v3/kv/txn", &txn)?;
        Ok(answer.succeeded)
    }

    /// Takes a slot for `id` (holding one already: no change).
    pub fn lock(&self, id: &str) -> Result<(Read, Change), LockError> {
        self.modify(|s| s.lock(id))
    }

    /// Frees `id`'s slot; an error naming the holders if it has none.
    pub fn unlock(&self, id: &str) -> Result<(Read, Change), LockError> {
        self.modify(|s| s.unlock(id))
    }

    /// Sets how many machines may hold the lock at once.
    pub fn set_max(&self, max: i64) -> Result<(Read, Change), LockError> {
        self.modify(|s| s.set_max(max))
    }

    /// Read, apply `change`, compare-and-swap; again on a lost race.
    /// Returns the value now (as written, or as read when nothing changed).
    fn modify(
        &self,
        change: impl Fn(&mut Semaphore) -> Result<Change, SemaphoreError>,
    ) -> Result<(Read, Change), LockError> {
        for attempt in 0..ATTEMPTS {
            let read = self.read()?;
            let mut next = read.semaphore.clone();
            let what = change(&mut next).map_err(|error| LockError::Semaphore {
                key: self.key.clone(),
                error,
            })?;
            if what == Change::Unchanged {
                return Ok((read, what));
            }
            let key = b64(&self.key);
            let txn = json!({
                "compare": [{
                    "key": key,
                    "result": "EQUAL",
                    "target": "VERSION",
                    "version": read.version.to_string(),
                }],
                "success": [{
                    "request_put": { "key": key, "value": base64_encode(next.to_json().as_bytes()) }
                }],
            });
            let answer: TxnResponse = self.post("/v3/kv/txn", &txn)?;
            if answer.succeeded {
                // A put creates a key at version 1 and adds one after.
                let now = Read {
                    semaphore: next,
                    version: read.version + 1,
                };
                return Ok((now, what));
            }
            // Someone else's change landed first. Wait a little, at random
            // so that machines which collided do not collide again.
            std::thread::sleep(backoff(attempt));
        }
        Err(LockError::Conflict {
            key: self.key.clone(),
            attempts: ATTEMPTS,
        })
    }

    /// POSTs `body` to `path` on the first endpoint that answers 200 with
    /// JSON of the expected shape. Trying the next endpoint after a lost
    /// answer is safe: reads change nothing, and a txn that did land the
    /// first time fails its compare the second time and is re-read.
    fn post<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, LockError> {
        let body = body.to_string();
        let mut tried = Vec::new();
        for endpoint in &self.endpoints {
            let url = format!("{endpoint}{path}");
            match self.post_one(&url, &body) {
                Ok(v) => return Ok(v),
                Err(why) => tried.push((endpoint.clone(), why)),
            }
        }
        Err(LockError::Unreachable {
            what: "etcd endpoint",
            tried,
        })
    }

    fn post_one<T: for<'de> Deserialize<'de>>(&self, url: &str, body: &str) -> Result<T, String> {
        let mut response = self
            .agent
            .post(url)
            .header("content-type", "application/json")
            .send(body)
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .map_err(|e| format!("HTTP {status}, reading the answer: {e}"))?;
        if status != 200 {
            // The gateway's errors are {"error":…,"message":…,"code":N}.
            let message = serde_json::from_str::<GatewayError>(&text)
                .ok()
                .map(|e| e.message)
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| text.chars().take(200).collect());
            return Err(format!("HTTP {status}: {}", message.trim()));
        }
        serde_json::from_str(&text).map_err(|e| {
            format!(
                "not etcd's v3 JSON gateway ({e}): {:?}",
                text.chars().take(200).collect::<String>()
            )
        })
    }
}

impl RebootLock for EtcdLock {
    fn acquire(&self, id: &str) -> Result<(), LockError> {
        self.lock(id).map(|_| ())
    }

    fn release(&self, id: &str) -> Result<(), LockError> {
        match self.unlock(id) {
            Ok(_) => Ok(()),
            Err(LockError::Semaphore {
                error: SemaphoreError::NotHolder { .. },
                ..
            }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn b64(s: &str) -> String {
    base64_encode(s.as_bytes())
}

/// 5 ms doubling to 320 ms, a random part of it.
fn backoff(attempt: u32) -> Duration {
    let ceiling_ms = 5u64 << attempt.min(6);
    let mut b = [0u8; 4];
    let r = if getrandom::fill(&mut b).is_ok() {
        u64::from(u32::from_le_bytes(b))
    } else {
        u64::from(attempt) * 7919
    };
    Duration::from_millis(1 + r % ceiling_ms)
}

#[derive(Debug, Deserialize)]
struct RangeResponse {
    #[serde(default)]
    kvs: Vec<KeyValue>,
}

#[derive(Debug, Deserialize)]
struct KeyValue {
    #[serde(default)]
    value: String,
    #[serde(default)]
    version: Int64,
}

#[derive(Debug, Deserialize)]
struct TxnResponse {
    #[serde(default)]
    succeeded: bool,
}

#[derive(Debug, Deserialize)]
struct GatewayError {
    #[serde(default)]
    message: String,
}

/// Protobuf's JSON int64: a string, though parsers also take a number.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Int64(i64);

impl<'de> Deserialize<'de> for Int64 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Int64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Number(i64),
            Text(String),
        }
        match Either::deserialize(d)? {
            Either::Number(n) => Ok(Int64(n)),
            Either::Text(t) => t
                .parse()
                .map(Int64)
                .map_err(|_| serde::de::Error::custom(format!("{t:?} is not an int64"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_locksmiths() {
        assert_eq!(
            semaphore_key(None),
            "coreos.com/updateengine/rebootlock/semaphore"
        );
        assert_eq!(
            semaphore_key(Some("web servers/eu")),
            "coreos.com/updateengine/rebootlock/groups/web+servers%2Feu/semaphore"
        );
        let l = EtcdLock::new(&["http://127.0.0.1:2379/".into()], Some("")).unwrap();
        assert_eq!(l.key(), "coreos.com/updateengine/rebootlock/semaphore");
        assert_eq!(l.endpoints(), ["http://127.0.0.1:2379"]);
    }

    #[test]
    fn new_refuses_no_endpoint_and_https() {
        assert!(EtcdLock::new(&[], None)
            .unwrap_err()
            .to_string()
            .contains("no etcd endpoint"));
        let e = EtcdLock::new(&["http://a:1".into(), "https://b:2".into()], None).unwrap_err();
        assert!(e.to_string().contains("https://b:2"), "{e}");
    }

    #[test]
    fn gateway_json_is_read_with_defaults_left_out() {
        // Answers as etcd 3.4 gives them (taken from a real one).
        let r: RangeResponse = serde_json::from_str(
            r#"{"header":{"revision":"2"},"kvs":[{"key":"Y29yZW9zLmNvbS94","create_revision":"2","mod_revision":"2","version":"1","value":"eyJzZW1hcGhvcmUiOjF9"}],"count":"1"}"#,
        )
        .unwrap();
        assert_eq!(r.kvs.len(), 1);
        assert_eq!(r.kvs[0].version, Int64(1));
        assert_eq!(
            base64_decode(&r.kvs[0].value).unwrap(),
            br#"{"semaphore":1}"#
        );
        let r: RangeResponse =
            serde_json::from_str(r#"{"header":{"revision":"1","raft_term":"2"}}"#).unwrap();
        assert!(r.kvs.is_empty());
        let kv: KeyValue = serde_json::from_str(r#"{"key":"eA==","version":7}"#).unwrap();
        assert_eq!((kv.version, kv.value.as_str()), (Int64(7), ""));
        let t: TxnResponse =
            serde_json::from_str(r#"{"header":{"revision":"2"},"succeeded":true,"responses":[]}"#)
                .unwrap();
        assert!(t.succeeded);
        let t: TxnResponse = serde_json::from_str(r#"{"header":{"revision":"2"}}"#).unwrap();
        assert!(!t.succeeded);
        assert!(serde_json::from_str::<KeyValue>(r#"{"version":"x"}"#).is_err());
    }

    #[test]
    fn dead_endpoints_are_skipped_and_named() {
        // Two ports nobody listens on: bound, then freed.
        let ports: Vec<u16> = (0..2)
            .map(|_| {
                std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port()
            })
            .collect();
        let eps: Vec<String> = ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect();
        let l = EtcdLock::new(&eps, None).unwrap();
        let e = l.read().unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, LockError::Unreachable { ref tried, .. } if tried.len() == 2));
        for ep in &eps {
            assert!(text.contains(ep.as_str()), "{text}");
        }
    }

    #[test]
    fn backoff_is_bounded() {
        for attempt in 0..30 {
            let b = backoff(attempt);
            assert!(b >= Duration::from_millis(1) && b <= Duration::from_millis(320));
        }
    }
}

//! The few etcd v3 operations the agent needs (get, get a prefix, put,
//! create-if-absent, delete), over the JSON gateway (`POST /v3/kv/…`)
//! with plain HTTP: the endpoints are on the private network, as the
//! cluster's own etcd2 section puts them.
//!
//! The update engine has its own client for locksmith's semaphore; this
//! one is separate so the agent does not carry the engine (and the engine
//! calls the agent as a program, not as a library).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

/// The keys, under one prefix. Documented in the README's swarm section.
pub const PREFIX: &str = "slipway/swarm/";

pub fn key(rest: &str) -> String {
    format!("{PREFIX}{rest}")
}

pub struct Etcd {
    endpoints: Vec<String>,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd")
            .field("endpoints", &self.endpoints)
            .finish()
    }
}

#[derive(Deserialize)]
struct Kv {
    key: String,
    #[serde(default)]
    value: String,
}

#[derive(Deserialize)]
struct Range {
    #[serde(default)]
    kvs: Vec<Kv>,
}

#[derive(Deserialize)]
struct Txn {
    #[serde(default)]
    succeeded: bool,
}

fn b64(s: &[u8]) -> String {
    B64.encode(s)
}

/// The end of a prefix range: the prefix with its last byte plus one.
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

impl Etcd {
    pub fn new(endpoints: &[String]) -> Result<Etcd> {
        if endpoints.is_empty() {
            bail!("no etcd endpoint configured (ETCD_ENDPOINTS in swarm.conf)");
        }
        for e in endpoints {
            if !e.starts_with("http://") {
                bail!("etcd endpoint `{e}`: only http:// is supported (a private network)");
            }
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .build()
            .new_agent();
        Ok(Etcd {
            endpoints: endpoints
                .iter()
                .map(|e| e.trim_end_matches('/').to_string())
                .collect(),
            agent,
        })
    }

    /// POSTs to each endpoint in turn until one answers 200.
    fn post(&self, path: &str, body: &Value) -> Result<Value> {
        let mut errors = Vec::new();
        for e in &self.endpoints {
            let url = format!("{e}{path}");
            let sent = self
                .agent
                .post(&url)
                .header("content-type", "application/json")
                .send(body.to_string());
            match sent {
                Ok(mut r) if r.status() == 200 => {
                    let text = r
                        .body_mut()
                        .read_to_string()
                        .with_context(|| format!("{url}: reading the answer"))?;
                    return serde_json::from_str(&text)
                        .with_context(|| format!("{url}: answer is not JSON"));
                }
                Ok(mut r) => {
                    let text = r.body_mut().read_to_string().unwrap_or_default();
                    errors.push(format!("{url}: HTTP {}: {}", r.status(), text.trim()));
                }
                Err(err) => errors.push(format!("{url}: {err}")),
            }
        }
        bail!("etcd: {}", errors.join("; "))
    }

    fn decode(kv: &Kv) -> Result<(String, String)> {
        let k = B64
            .decode(&kv.key)
            .context("etcd sent a key that is not base64")?;
        let v = B64
            .decode(&kv.value)
            .context("etcd sent a value that is not base64")?;
        Ok((
            String::from_utf8_lossy(&k).into_owned(),
            String::from_utf8_lossy(&v).into_owned(),
        ))
    }

    pub fn get(&self, key: &str) -> Result<Option<String>> {
        let answer: Range = serde_json::from_value(
            self.post("/v3/kv/range", &json!({ "key": b64(key.as_bytes()) }))?,
        )
        .context("etcd range answer")?;
        answer
            .kvs
            .first()
            .map(Self::decode)
            .transpose()
            .map(|o| o.map(|(_, v)| v))
    }

    /// Every `(key, value)` under `prefix`, sorted by key.
    pub fn get_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        let body = json!({
            "key": b64(prefix.as_bytes()),
            "range_end": b64(&prefix_end(prefix)),
        });
        let answer: Range = serde_json::from_value(self.post("/v3/kv/range", &body)?)
            .context("etcd range answer")?;
        answer.kvs.iter().map(Self::decode).collect()
    }

    pub fn put(&self, key: &str, value: &str) -> Result<()> {
        let body = json!({ "key": b64(key.as_bytes()), "value": b64(value.as_bytes()) });
        self.post("/v3/kv/put", &body).map(drop)
    }

    /// Creates `key` unless it exists; true when this call created it.
    pub fn create(&self, key: &str, value: &str) -> Result<bool> {
        let k = b64(key.as_bytes());
        let txn = json!({
            "compare": [{ "key": k, "result": "EQUAL", "target": "VERSION", "version": "0" }],
            "success": [{ "request_put": { "key": k, "value": b64(value.as_bytes()) } }],
        });
        let answer: Txn =
            serde_json::from_value(self.post("/v3/kv/txn", &txn)?).context("etcd txn answer")?;
        Ok(answer.succeeded)
    }

    pub fn delete(&self, key: &str) -> Result<()> {
        self.post("/v3/kv/deleterange", &json!({ "key": b64(key.as_bytes()) }))
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_range_ends_after_the_prefix() {
        assert_eq!(prefix_end("slipway/swarm/"), b"slipway/swarm0");
        assert_eq!(prefix_end("a\u{7f}"), b"a\x80");
    }

    #[test]
    fn only_plain_http_endpoints() {
        assert!(Etcd::new(&[]).is_err());
        let e = Etcd::new(&["https://10.0.0.1:2379".into()]).unwrap_err();
        assert!(e.to_string().contains("only http://"), "{e}");
        assert!(Etcd::new(&["http://127.0.0.1:2379/".into()]).is_ok());
    }

    #[test]
    fn an_unreachable_etcd_is_an_error_naming_it() {
        // Port 9 (discard) on loopback: nothing listens in the test sandbox.
        let etcd = Etcd::new(&["http://127.0.0.1:9".into()]).unwrap();
        let e = etcd.get("k").unwrap_err();
        assert!(
            e.to_string().contains("http://127.0.0.1:9/v3/kv/range"),
            "{e}"
        );
    }
}

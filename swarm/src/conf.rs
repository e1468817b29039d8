//! `/etc/slipway/swarm.conf`, written by cloud-config from `coreos.swarm`
//! (format: `cloud-config/src/apply/generated.rs`). `KEY=value` lines,
//! `#` comments; unknown keys are reported, not fatal, so an older agent
//! reads a newer file.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};

pub const PATH: &str = "/etc/slipway/swarm.conf";

/// The port managers listen on for joins.
pub const MANAGER_PORT: u16 = 2377;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Manager,
    Worker,
}

impl Role {
    /// The word docker uses (`join-token manager|worker`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Manager => "manager",
            Role::Worker => "worker",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmConf {
    pub role: Role,
    /// `--advertise-addr`: an address or an interface name.
    pub advertise_addr: Option<String>,
    /// `host:port` of managers named in user-data.
    pub managers: Vec<String>,
    pub etcd_endpoints: Vec<String>,
    pub join_token: Option<String>,
    /// Node labels, sorted by key.
    pub labels: BTreeMap<String, String>,
    /// Keys this agent does not know (file line, key).
    pub unknown: Vec<(usize, String)>,
}

/// `None` when the file does not exist: swarm is not configured.
pub fn load(path: &Path) -> Result<Option<SwarmConf>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    parse(&text)
        .with_context(|| format!("{}", path.display()))
        .map(Some)
}

fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

pub fn parse(text: &str) -> Result<SwarmConf> {
    let mut role = None;
    let mut conf = SwarmConf {
        role: Role::Worker,
        advertise_addr: None,
        managers: Vec::new(),
        etcd_endpoints: Vec::new(),
        join_token: None,
        labels: BTreeMap::new(),
        unknown: Vec::new(),
    };
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let n = i + 1;
        let Some((key, value)) = line.split_once('=') else {
            bail!("line {n}: `{line}` is not KEY=value");
        };
        let value = value.trim();
        match key.trim() {
            "ROLE" => {
                role = Some(match value {
                    "manager" => Role::Manager,
                    "worker" => Role::Worker,
                    other => bail!("line {n}: ROLE is `{other}`, not manager or worker"),
                })
            }
            "ADVERTISE_ADDR" => {
                conf.advertise_addr = Some(value.to_string()).filter(|v| !v.is_empty())
            }
            "MANAGERS" => conf.managers = list(value).into_iter().map(|m| with_port(&m)).collect(),
            "ETCD_ENDPOINTS" => conf.etcd_endpoints = list(value),
            "JOIN_TOKEN" => conf.join_token = Some(value.to_string()).filter(|v| !v.is_empty()),
            "LABELS" => {
                for pair in list(value) {
                    let Some((k, v)) = pair.split_once('=') else {
                        bail!("line {n}: label `{pair}` is not key=value");
                    };
                    conf.labels.insert(k.to_string(), v.to_string());
                }
            }
            other => conf.unknown.push((n, other.to_string())),
        }
    }
    conf.role = role.context("no ROLE= line (manager or worker)")?;
    Ok(conf)
}

/// `host` → `host:2377`; `host:port` and `[v6]:port` as given.
pub fn with_port(addr: &str) -> String {
    let has_port = if let Some(rest) = addr.strip_prefix('[') {
        rest.contains("]:")
    } else {
        addr.matches(':').count() == 1
    };
    if has_port {
        addr.to_string()
    } else if addr.contains(':') {
        format!("[{addr}]:{MANAGER_PORT}")
    } else {
        format!("{addr}:{MANAGER_PORT}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_key() {
        let c = parse(
            "# Written by slipway cloud-config from coreos.swarm\nROLE=manager\n\
             ADVERTISE_ADDR=10.77.0.1\nMANAGERS=10.77.0.2:2377,10.77.0.3\n\
             ETCD_ENDPOINTS=http://127.0.0.1:2379\nJOIN_TOKEN=SWMTKN-1-x\n\
             LABELS=disk=ssd,region=west\nNEWER=1\n",
        )
        .unwrap();
        assert_eq!(c.role, Role::Manager);
        assert_eq!(c.advertise_addr.as_deref(), Some("10.77.0.1"));
        assert_eq!(c.managers, ["10.77.0.2:2377", "10.77.0.3:2377"]);
        assert_eq!(c.etcd_endpoints, ["http://127.0.0.1:2379"]);
        assert_eq!(c.join_token.as_deref(), Some("SWMTKN-1-x"));
        assert_eq!(c.labels["region"], "west");
        assert_eq!(c.unknown, [(8, "NEWER".to_string())]);
    }

    #[test]
    fn refuses_what_it_cannot_act_on() {
        let e = parse("ADVERTISE_ADDR=1.2.3.4\n").unwrap_err();
        assert!(format!("{e:#}").contains("no ROLE="), "{e:#}");
        let e = parse("ROLE=boss\n").unwrap_err();
        assert!(format!("{e:#}").contains("line 1: ROLE is `boss`"), "{e:#}");
        let e = parse("ROLE=worker\nLABELS=a\n").unwrap_err();
        assert!(format!("{e:#}").contains("line 2: label `a`"), "{e:#}");
        let e = parse("ROLE=worker\njunk\n").unwrap_err();
        assert!(format!("{e:#}").contains("line 2"), "{e:#}");
    }

    #[test]
    fn manager_addresses_get_the_default_port() {
        assert_eq!(with_port("10.0.0.1"), "10.0.0.1:2377");
        assert_eq!(with_port("m1.example:4000"), "m1.example:4000");
        assert_eq!(with_port("fd00::1"), "[fd00::1]:2377");
        assert_eq!(with_port("[fd00::1]:9"), "[fd00::1]:9");
    }

    #[test]
    fn a_missing_file_is_not_configured() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(&dir.path().join("swarm.conf")).unwrap(), None);
    }
}

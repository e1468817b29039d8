//! The Docker engine, through its own CLI (`/usr/bin/docker`, Debian's
//! docker.io): the swarm API is large and versioned, the CLI's `--format
//! '{{json …}}'` output is stable, and the engine is reached exactly as a
//! person would reach it (the socket activates dockerd on first use).
//!
//! Parsing is separate from running, so what the agent decides from the
//! engine's answers is tested without an engine.

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

pub const DOCKER: &str = "/usr/bin/docker";

/// `docker info --format '{{json .Swarm}}'`, the fields used.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct SwarmInfo {
    #[serde(rename = "NodeID", default)]
    pub node_id: String,
    #[serde(default)]
    pub node_addr: String,
    /// `inactive`, `pending`, `active`, `error`, `locked`.
    #[serde(default)]
    pub local_node_state: String,
    /// This node is a manager.
    #[serde(default)]
    pub control_available: bool,
    #[serde(default)]
    pub error: String,
}

impl SwarmInfo {
    pub fn is_member(&self) -> bool {
        self.local_node_state == "active"
    }
}

/// A line of `docker node ls --format '{{json .}}'`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct NodeLine {
    #[serde(rename = "ID")]
    pub id: String,
    pub hostname: String,
    /// `Ready`, `Down`, `Unknown`.
    pub status: String,
    /// `Active`, `Pause`, `Drain`.
    pub availability: String,
    /// Empty for workers; `Leader`, `Reachable`, `Unreachable`.
    #[serde(default)]
    pub manager_status: String,
}

/// A line of `docker service ls --format '{{json .}}'`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceLine {
    pub name: String,
    /// `replicated`, `global`, …
    pub mode: String,
    /// `running/desired`, possibly followed by ` (max N per node)`.
    pub replicas: String,
}

impl ServiceLine {
    /// `(running, desired)`.
    pub fn counts(&self) -> Option<(u64, u64)> {
        let head = self.replicas.split_whitespace().next()?;
        let (r, d) = head.split_once('/')?;
        Some((r.parse().ok()?, d.parse().ok()?))
    }
}

/// Parses JSON lines, naming the command on a bad one.
pub fn json_lines<T: for<'de> Deserialize<'de>>(what: &str, text: &str) -> Result<Vec<T>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("{what}: unexpected line `{l}`")))
        .collect()
}

/// Whether taking this manager down still leaves the managers a quorum:
/// `Ok` when it does (or this is the only manager: nothing better will
/// come by waiting), `Err(why)` otherwise. Raft needs a majority of all
/// managers, reachable ones counted with this one.
pub fn quorum_survives_without_self(managers: &[NodeLine]) -> Result<(), String> {
    let total = managers.len();
    if total <= 1 {
        return Ok(());
    }
    let reachable = managers
        .iter()
        .filter(|m| matches!(m.manager_status.as_str(), "Leader" | "Reachable"))
        .count();
    let quorum = total / 2 + 1;
    if reachable.saturating_sub(1) >= quorum {
        Ok(())
    } else {
        let down: Vec<&str> = managers
            .iter()
            .filter(|m| !matches!(m.manager_status.as_str(), "Leader" | "Reachable"))
            .map(|m| m.hostname.as_str())
            .collect();
        Err(format!(
            "{reachable} of {total} managers reachable{}; without this one {} would be left, \
             below the quorum of {quorum}",
            if down.is_empty() {
                String::new()
            } else {
                format!(" (not: {})", down.join(", "))
            },
            reachable.saturating_sub(1)
        ))
    }
}

/// Runs `docker args…`; stdout on success, an error with its stderr
/// otherwise.
pub fn docker(args: &[&str]) -> Result<String> {
    let out = Command::new(DOCKER)
        .args(args)
        .output()
        .with_context(|| format!("running {DOCKER}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!("`docker {}` failed: {}", redact(args).join(" "), err.trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Arguments as they may be shown: a join token is a secret.
fn redact<'a>(args: &[&'a str]) -> Vec<&'a str> {
    args.iter()
        .map(|a| {
            if a.starts_with("SWMTKN-") {
                "<token>"
            } else {
                a
            }
        })
        .collect()
}

pub fn swarm_info() -> Result<SwarmInfo> {
    let out = docker(&["info", "--format", "{{json .Swarm}}"])?;
    serde_json::from_str(out.trim())
        .with_context(|| format!("docker info: unexpected swarm section `{}`", out.trim()))
}

/// Waits until the engine answers (its socket starts it on first use).
pub fn wait_engine(say: &dyn Fn(&str)) -> SwarmInfo {
    let mut wait = Duration::from_secs(2);
    let mut said = false;
    loop {
        match swarm_info() {
            Ok(info) => return info,
            Err(e) => {
                if !said {
                    say(&format!("waiting for the Docker engine: {e:#}"));
                    said = true;
                }
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        }
    }
}

pub fn nodes() -> Result<Vec<NodeLine>> {
    json_lines(
        "docker node ls",
        &docker(&["node", "ls", "--format", "{{json .}}"])?,
    )
}

pub fn services() -> Result<Vec<ServiceLine>> {
    json_lines(
        "docker service ls",
        &docker(&["service", "ls", "--format", "{{json .}}"])?,
    )
}

/// IDs of the tasks the swarm wants running on `node`.
pub fn tasks_on(node: &str) -> Result<Vec<String>> {
    let out = docker(&[
        "node",
        "ps",
        node,
        "--filter",
        "desired-state=running",
        "--format",
        "{{.ID}}",
    ])?;
    Ok(out
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect())
}

/// Swarm task containers running on this engine (what a worker can see).
pub fn local_task_containers() -> Result<Vec<String>> {
    let out = docker(&[
        "ps",
        "--quiet",
        "--filter",
        "label=com.docker.swarm.task.id",
    ])?;
    Ok(out
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect())
}

pub fn set_availability(node: &str, availability: &str) -> Result<()> {
    docker(&["node", "update", "--availability", availability, node]).map(drop)
}

pub fn add_labels(node: &str, labels: &std::collections::BTreeMap<String, String>) -> Result<()> {
    if labels.is_empty() {
        return Ok(());
    }
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut args = vec!["node", "update"];
    for p in &pairs {
        args.extend(["--label-add", p.as_str()]);
    }
    args.push(node);
    docker(&args).map(drop)
}

pub fn join_token(role: &str) -> Result<String> {
    Ok(docker(&["swarm", "join-token", "--quiet", role])?
        .trim()
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manager(host: &str, status: &str) -> NodeLine {
        NodeLine {
            id: format!("id-{host}"),
            hostname: host.into(),
            status: "Ready".into(),
            availability: "Active".into(),
            manager_status: status.into(),
        }
    }

    #[test]
    fn reads_the_engines_json() {
        let info: SwarmInfo = serde_json::from_str(
            r#"{"NodeID":"abc","NodeAddr":"10.77.0.1","LocalNodeState":"active","ControlAvailable":true,"Error":"","RemoteManagers":null,"Nodes":3}"#,
        )
        .unwrap();
        assert!(info.is_member() && info.control_available);
        let inactive: SwarmInfo = serde_json::from_str(
            r#"{"NodeID":"","NodeAddr":"","LocalNodeState":"inactive","ControlAvailable":false,"Error":"","RemoteManagers":null}"#,
        )
        .unwrap();
        assert!(!inactive.is_member());
        let nodes: Vec<NodeLine> = json_lines(
            "node ls",
            r#"{"Availability":"Active","EngineVersion":"20.10.24","Hostname":"node1","ID":"x1","ManagerStatus":"Leader","Self":true,"Status":"Ready","TLSStatus":"Ready"}
{"Availability":"Drain","EngineVersion":"20.10.24","Hostname":"node2","ID":"x2","ManagerStatus":"","Self":false,"Status":"Down","TLSStatus":"Ready"}
"#,
        )
        .unwrap();
        assert_eq!(nodes[1].availability, "Drain");
        assert_eq!(nodes[1].manager_status, "");
        let s: Vec<ServiceLine> = json_lines(
            "service ls",
            r#"{"ID":"s","Image":"r/web:1","Mode":"replicated","Name":"web","Ports":"*:8080->80/tcp","Replicas":"2/3 (max 1 per node)"}"#,
        )
        .unwrap();
        assert_eq!(s[0].counts(), Some((2, 3)));
        assert!(json_lines::<NodeLine>("node ls", "not json").is_err());
    }

    #[test]
    fn quorum_is_a_majority_of_all_managers() {
        let up = |n| {
            (0..n)
                .map(|i| manager(&format!("m{i}"), "Reachable"))
                .collect::<Vec<_>>()
        };
        // Three managers, all up: one may go.
        assert!(quorum_survives_without_self(&up(3)).is_ok());
        // Three with one already down: the second to go loses quorum.
        let mut three = up(3);
        three[2].manager_status = "Unreachable".into();
        let why = quorum_survives_without_self(&three).unwrap_err();
        assert!(why.contains("2 of 3 managers reachable (not: m2)"), "{why}");
        // Two managers: either going loses quorum.
        assert!(quorum_survives_without_self(&up(2)).is_err());
        // Five with one down: still fine.
        let mut five = up(5);
        five[0].manager_status = "Unreachable".into();
        assert!(quorum_survives_without_self(&five).is_ok());
        // A lone manager: waiting cannot help.
        assert!(quorum_survives_without_self(&up(1)).is_ok());
    }

    #[test]
    fn tokens_never_reach_an_error_message() {
        assert_eq!(
            redact(&["swarm", "join", "--token", "SWMTKN-1-secret", "m:2377"]),
            ["swarm", "join", "--token", "<token>", "m:2377"]
        );
    }
}

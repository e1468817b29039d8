//! `slipway-swarm agent`, the service: become a member (retrying with
//! backoff and saying why each attempt failed), set this node's labels,
//! then keep watch: rejoin if the node stops being a member, and on a
//! manager publish the join tokens and carry out the workers' requests
//! (availability, labels) that arrive through etcd.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::conf::{Role, SwarmConf};
use crate::docker::{self, SwarmInfo};
use crate::etcd::{key, Etcd};
use crate::membership::{self, MAX_RETRY};

/// How often a member looks again.
const WATCH: Duration = Duration::from_secs(10);
/// How often a manager republishes the tokens (a rotation shows up).
const PUBLISH: Duration = Duration::from_secs(60);

fn etcd_of(conf: &SwarmConf) -> Result<Option<Etcd>> {
    if conf.etcd_endpoints.is_empty() {
        return Ok(None);
    }
    Etcd::new(&conf.etcd_endpoints).map(Some)
}

/// How long a join this agent started may stay unfinished ("pending", or
/// "error" while the engine retries it in the background) before it is
/// abandoned and tried afresh. Seen under TCG with three guests on two
/// cores: the engine's own 20 s join timeout ran out, the background
/// attempt never completed, and every later `docker swarm join` was
/// refused with "This node is already part of a swarm".
const STUCK_JOIN: Duration = Duration::from_secs(240);

/// Whether a join the engine has not completed should be abandoned with
/// `docker swarm leave --force`: only one this agent started (a machine
/// found pending or in error, e.g. a member whose managers are away, is
/// the engine's to recover), and only after [`STUCK_JOIN`].
fn abandon_join(state: &str, unfinished_for: Duration, started_here: bool) -> bool {
    matches!(state, "pending" | "error") && started_here && unfinished_for >= STUCK_JOIN
}

/// Blocks until the node is a member.
fn become_member(conf: &SwarmConf, etcd: Option<&Etcd>, say: &dyn Fn(&str)) -> SwarmInfo {
    let mut retry = membership::FIRST_RETRY;
    let mut last = String::new();
    let mut unfinished_since = None::<Instant>;
    // A join this agent ran that the engine went on with in the background.
    let mut joining = false;
    loop {
        let info = docker::wait_engine(say);
        if info.is_member() {
            if joining {
                say(&format!(
                    "joined the swarm as a {} (the engine finished the join in the background)",
                    conf.role.as_str()
                ));
            }
            return info;
        }
        let state = info.local_node_state.as_str();
        if !matches!(state, "pending" | "error") {
            unfinished_since = None;
            joining = false;
        }
        let outcome = match state {
            "pending" | "error" => {
                let since = *unfinished_since.get_or_insert_with(Instant::now);
                if abandon_join(state, since.elapsed(), joining) {
                    say(&format!(
                        "a join unfinished after {} s (engine state {state}{}) is abandoned \
                         (`docker swarm leave --force`) and tried again",
                        since.elapsed().as_secs(),
                        if info.error.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", info.error)
                        }
                    ));
                    unfinished_since = None;
                    joining = false;
                    docker::docker(&["swarm", "leave", "--force"])
                        .map(|_| false)
                        .map_err(|e| format!("{e:#}"))
                } else if state == "pending" {
                    Err("a join is in progress".to_string())
                } else {
                    Err(format!("the engine's swarm state is error: {}", info.error))
                }
            }
            "locked" => Err("the swarm is locked (autolock): `docker swarm unlock` needed".into()),
            _ => membership::next_step(conf, etcd)
                .and_then(|step| {
                    let join = matches!(step, membership::Step::Join { .. });
                    let done = membership::run_step(&step, conf, say)?;
                    // A join that returned without completing went on in
                    // the background (see `membership::run_step`).
                    joining = join && !done;
                    Ok(done)
                })
                .map_err(|e| format!("{e:#}")),
        };
        match outcome {
            Ok(true) => {
                retry = membership::FIRST_RETRY;
                continue;
            }
            Ok(false) => {}
            Err(why) => {
                // Said once per distinct reason, not every few seconds.
                if why != last {
                    say(&format!(
                        "not a member yet, retrying (every ≤ {} s): {why}",
                        MAX_RETRY.as_secs()
                    ));
                    last = why;
                }
            }
        }
        std::thread::sleep(retry);
        retry = (retry * 2).min(MAX_RETRY);
    }
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    text.split(',')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn labels_text(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// This node's labels: set directly on a manager, asked of the managers
/// on a worker.
fn set_own_labels(conf: &SwarmConf, info: &SwarmInfo, etcd: Option<&Etcd>) -> Result<()> {
    if conf.labels.is_empty() {
        return Ok(());
    }
    if info.control_available {
        return docker::add_labels(&info.node_id, &conf.labels);
    }
    match etcd {
        Some(etcd) => etcd.put(
            &key(&format!("labels/{}", info.node_id)),
            &labels_text(&conf.labels),
        ),
        None => anyhow::bail!("a worker's labels need a manager to set them: no etcd configured"),
    }
}

/// On a manager: carries out the workers' requests, then deletes them.
fn serve_requests(etcd: &Etcd, say: &dyn Fn(&str)) -> Result<()> {
    for (k, value) in etcd.get_prefix(&key("requests/"))? {
        let node = k.rsplit('/').next().unwrap_or_default();
        match value.as_str() {
            "drain" | "active" => {
                docker::set_availability(node, &value)?;
                say(&format!("node {node} set to {value} at its request"));
            }
            other => say(&format!("ignoring request `{other}` for node {node} ({k})")),
        }
        etcd.delete(&k)?;
    }
    for (k, value) in etcd.get_prefix(&key("labels/"))? {
        let node = k.rsplit('/').next().unwrap_or_default();
        docker::add_labels(node, &parse_labels(&value))?;
        etcd.delete(&k)?;
    }
    Ok(())
}

pub fn run(conf: &SwarmConf, say: &dyn Fn(&str)) -> Result<()> {
    for (line, k) in &conf.unknown {
        say(&format!("swarm.conf line {line}: unknown key {k}, ignored"));
    }
    let etcd = etcd_of(conf)?;
    loop {
        let info = become_member(conf, etcd.as_ref(), say);
        say(&format!(
            "member: node {} ({}), address {}",
            info.node_id,
            if info.control_available {
                "manager"
            } else {
                "worker"
            },
            info.node_addr
        ));
        if conf.role == Role::Manager && !info.control_available {
            say("user-data asks for a manager but this node is a worker; promote it with `docker node promote`");
        }
        // Right after a join the managers may not know the node yet:
        // labels are tried again on every round until they are set.
        let mut labelled = false;
        let mut label_error = String::new();
        let mut published = None::<Instant>;
        loop {
            if !labelled {
                match set_own_labels(conf, &info, etcd.as_ref()) {
                    Ok(()) => labelled = true,
                    Err(e) => {
                        let e = format!("{e:#}");
                        if e != label_error {
                            say(&format!("labels not set yet: {e}"));
                            label_error = e;
                        }
                    }
                }
            }
            let now = match docker::swarm_info() {
                Ok(i) => i,
                Err(e) => {
                    eprintln!("slipway-swarm: {e:#}");
                    std::thread::sleep(WATCH);
                    continue;
                }
            };
            if !now.is_member() {
                say(&format!(
                    "no longer a member (state {}): joining again",
                    now.local_node_state
                ));
                break;
            }
            if let (true, Some(etcd)) = (now.control_available, etcd.as_ref()) {
                if published.is_none_or(|t| t.elapsed() >= PUBLISH) {
                    match membership::publish(etcd, &now) {
                        Ok(()) => published = Some(Instant::now()),
                        Err(e) => eprintln!("slipway-swarm: publishing: {e:#}"),
                    }
                }
                if let Err(e) = serve_requests(etcd, say) {
                    eprintln!("slipway-swarm: requests: {e:#}");
                }
            }
            std::thread::sleep(WATCH);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_join_started_here_and_left_unfinished_long_enough_is_abandoned() {
        let long = STUCK_JOIN;
        let short = STUCK_JOIN - Duration::from_secs(1);
        assert!(abandon_join("pending", long, true));
        assert!(abandon_join("error", long + long, true));
        assert!(!abandon_join("pending", short, true));
        // Found pending or in error (a member whose managers are away):
        // the engine's to recover.
        assert!(!abandon_join("error", long, false));
        assert!(!abandon_join("pending", long + long, false));
        assert!(!abandon_join("inactive", long, true));
        assert!(!abandon_join("locked", long, true));
    }

    #[test]
    fn labels_round_trip() {
        let l = parse_labels("disk=ssd, region=west");
        assert_eq!(labels_text(&l), "disk=ssd,region=west");
    }
}

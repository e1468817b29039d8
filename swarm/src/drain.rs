//! Taking this machine's work elsewhere before an update's reboot, and
//! back after the healthy boot.
//!
//! A manager drains itself (`docker node update --availability drain`);
//! a worker cannot (the engine refuses node changes on workers), so it
//! asks the managers through etcd (`requests/<node id>` = `drain` or
//! `active`), which their agents carry out ([`crate::agent`]).
//!
//! Only a drain this agent made is undone: the record
//! [`RECORD`] says so, so a node a person drained stays drained.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::conf::SwarmConf;
use crate::docker::{self, NodeLine, ServiceLine};
use crate::etcd::{key, Etcd};

/// Written when this agent drained the node for a reboot; removed when it
/// made it active again. The update engine looks for it (by this path).
pub const RECORD: &str = "/var/lib/slipway/swarm/drained-for-update";

const POLL: Duration = Duration::from_secs(3);
/// How long `activate` keeps asking before it gives up (the update engine
/// holds the reboot lock meanwhile, so not for ever).
const ACTIVATE_FOR: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drained {
    /// Not a swarm member (or the engine is not running): nothing to move.
    NotMember,
    /// Every task this node ran is running elsewhere.
    Done { seconds: u64 },
    /// The time ran out with tasks still not placed elsewhere (a
    /// constraint only this node meets, say): the reboot goes ahead.
    TimedOut(String),
    /// Rebooting now would cost the managers their quorum: wait.
    MustWait(String),
}

/// Whether the swarm has placed everything it wants running: no task
/// left on `node`, every service at its desired count.
pub fn settled_elsewhere(tasks_here: &[String], services: &[ServiceLine]) -> Result<(), String> {
    if !tasks_here.is_empty() {
        return Err(format!("{} task(s) still on this node", tasks_here.len()));
    }
    let short: Vec<String> = services
        .iter()
        .filter(|s| s.counts().is_none_or(|(r, d)| r < d))
        .map(|s| format!("{} {}", s.name, s.replicas))
        .collect();
    if short.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "services not yet at their count: {}",
            short.join(", ")
        ))
    }
}

fn managers(nodes: &[NodeLine]) -> Vec<NodeLine> {
    nodes
        .iter()
        .filter(|n| !n.manager_status.is_empty())
        .cloned()
        .collect()
}

fn write_record(node: &str) -> Result<()> {
    let path = Path::new(RECORD);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, format!("{node}\n")).with_context(|| format!("writing {RECORD}"))
}

pub fn drain(conf: &SwarmConf, timeout: Duration, say: &dyn Fn(&str)) -> Result<Drained> {
    let info = match docker::swarm_info() {
        Ok(i) => i,
        Err(e) => {
            say(&format!("engine not answering ({e:#}): nothing to drain"));
            return Ok(Drained::NotMember);
        }
    };
    if !info.is_member() {
        return Ok(Drained::NotMember);
    }
    let node = info.node_id.clone();
    let started = Instant::now();
    if info.control_available {
        if let Err(why) = docker::quorum_survives_without_self(&managers(&docker::nodes()?)) {
            return Ok(Drained::MustWait(why));
        }
        docker::set_availability(&node, "drain")?;
    } else {
        let etcd = Etcd::new(&conf.etcd_endpoints)
            .context("a worker drains through the managers, over etcd")?;
        etcd.put(&key(&format!("requests/{node}")), "drain")?;
    }
    write_record(&node)?;
    say(&format!(
        "draining node {node} ({}) before the reboot",
        if info.control_available {
            "manager"
        } else {
            "worker"
        }
    ));
    loop {
        let state = if info.control_available {
            docker::tasks_on(&node)
                .and_then(|t| Ok((t, docker::services()?)))
                .map_err(|e| format!("{e:#}"))
                .and_then(|(t, s)| settled_elsewhere(&t, &s))
        } else {
            // A worker sees only its own containers.
            match docker::local_task_containers() {
                Ok(c) if c.is_empty() => Ok(()),
                Ok(c) => Err(format!("{} task container(s) still running here", c.len())),
                Err(e) => Err(format!("{e:#}")),
            }
        };
        match state {
            Ok(()) => {
                let seconds = started.elapsed().as_secs();
                say(&format!(
                    "node {node} drained in {seconds} s: its tasks run elsewhere"
                ));
                return Ok(Drained::Done { seconds });
            }
            Err(why) if started.elapsed() >= timeout => {
                return Ok(Drained::TimedOut(format!(
                    "after {} s: {why}",
                    timeout.as_secs()
                )))
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// After the healthy boot: undo this agent's drain, if it made one.
/// `Ok(false)` when there was none.
pub fn activate(conf: &SwarmConf, say: &dyn Fn(&str)) -> Result<bool> {
    let node = match std::fs::read_to_string(RECORD) {
        Ok(n) => n.trim().to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).context(RECORD),
    };
    let info = docker::wait_engine(say);
    if !info.is_member() {
        // The agent rejoins it (as a new node if it left); nothing to undo.
        std::fs::remove_file(RECORD).with_context(|| format!("removing {RECORD}"))?;
        return Ok(false);
    }
    // Right after the boot the change can be refused for a while: the
    // agent's own `node update` (labels) races it ("update out of
    // sequence"), or the restarted manager has not caught up with the raft
    // log yet. Seen in the VM fleet test under TCG; so it is retried until
    // ACTIVATE_FOR has passed, and the last refusal is the error.
    let deadline = Instant::now() + ACTIVATE_FOR;
    let mut tries = 0u32;
    loop {
        tries += 1;
        let done = if info.control_available {
            docker::set_availability(&node, "active")
        } else {
            Etcd::new(&conf.etcd_endpoints)
                .and_then(|etcd| etcd.put(&key(&format!("requests/{node}")), "active"))
        };
        match done {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline => {
                if tries == 1 {
                    say(&format!("node {node} not active yet, retrying: {e:#}"));
                }
                std::thread::sleep(POLL);
            }
            Err(e) => {
                return Err(e.context(format!(
                    "making node {node} active again ({tries} tries in {} s)",
                    ACTIVATE_FOR.as_secs()
                )))
            }
        }
    }
    std::fs::remove_file(RECORD).with_context(|| format!("removing {RECORD}"))?;
    say(&format!("node {node} active again after the update"));
    if info.control_available {
        wait_whole(deadline, say);
    }
    Ok(true)
}

/// Waits (until `deadline`) for every service to be back at its count
/// before the update engine frees the reboot lock: the next machine's
/// drain then takes its tasks to a whole swarm, not to one still missing
/// the tasks this machine's reboot displaced. Only managers see services.
fn wait_whole(deadline: Instant, say: &dyn Fn(&str)) {
    let started = Instant::now();
    loop {
        let state = docker::services()
            .map_err(|e| format!("{e:#}"))
            .and_then(|s| settled_elsewhere(&[], &s));
        match state {
            Ok(()) => {
                say(&format!(
                    "every service at its count again after {} s",
                    started.elapsed().as_secs()
                ));
                return;
            }
            Err(why) if Instant::now() >= deadline => {
                say(&format!("not waiting longer for the services: {why}"));
                return;
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str, replicas: &str) -> ServiceLine {
        ServiceLine {
            name: name.into(),
            mode: "replicated".into(),
            replicas: replicas.into(),
        }
    }

    #[test]
    fn drained_means_nothing_here_and_every_service_full() {
        assert!(settled_elsewhere(&[], &[service("web", "3/3")]).is_ok());
        let e = settled_elsewhere(&["t1".into()], &[service("web", "3/3")]).unwrap_err();
        assert!(e.contains("1 task(s)"), "{e}");
        let e = settled_elsewhere(&[], &[service("web", "2/3 (max 1 per node)")]).unwrap_err();
        assert!(e.contains("web 2/3"), "{e}");
        // An answer the agent cannot read is not taken as settled.
        assert!(settled_elsewhere(&[], &[service("web", "?")]).is_err());
    }

    #[test]
    fn without_a_record_activation_does_nothing() {
        // RECORD is an absolute path on the machine; on a build host it
        // does not exist.
        if Path::new(RECORD).exists() {
            return;
        }
        let conf = crate::conf::parse("ROLE=worker\n").unwrap();
        assert!(!activate(&conf, &|_| {}).unwrap());
    }
}

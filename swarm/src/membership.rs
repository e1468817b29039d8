//! Becoming a member of the swarm `swarm.conf` describes, once per boot
//! and again whenever the engine says this node is not one.
//!
//! Who initialises: with etcd, the first manager to create
//! `slipway/swarm/init-claim` (a compare-and-swap on the key's absence)
//! runs `docker swarm init`, then publishes the join tokens
//! (`join-token/manager`, `join-token/worker`) and its address
//! (`managers/<hostname>`); every other machine waits for the token of its
//! role and joins any published (or user-data–named) manager. Without
//! etcd, a manager that names no other manager starts a swarm of its own;
//! anyone else joins the named managers with the token from user-data.
//!
//! A machine that is already a member does nothing but refresh what it
//! publishes; the engine keeps swarm state in /var/lib/docker, on /var.

use std::time::Duration;

use anyhow::{bail, Result};

use crate::conf::{Role, SwarmConf, MANAGER_PORT};
use crate::docker::{self, SwarmInfo};
use crate::etcd::{key, Etcd};

/// The backoff between join attempts: from `FIRST` doubling up to `MAX`.
pub const FIRST_RETRY: Duration = Duration::from_secs(5);
pub const MAX_RETRY: Duration = Duration::from_secs(60);

/// What to do next, decided from the configuration and what etcd holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `docker swarm init`.
    Init,
    /// `docker swarm join --token T` to the first of these that answers.
    Join {
        token: String,
        managers: Vec<String>,
    },
    /// Not possible yet (no token or no manager known): the reason.
    Wait(String),
}

/// The join step from a token and the managers known (user-data's first,
/// then those published in etcd, without repeats).
pub fn join_step(
    role: Role,
    token: Option<String>,
    named: &[String],
    published: &[String],
) -> Step {
    let mut managers: Vec<String> = named.to_vec();
    for m in published {
        if !managers.contains(m) {
            managers.push(m.clone());
        }
    }
    match (token, managers.is_empty()) {
        (None, _) => Step::Wait(format!(
            "no {} join token yet (user-data gives none; etcd has no {})",
            role.as_str(),
            key(&format!("join-token/{}", role.as_str()))
        )),
        (Some(_), true) => Step::Wait("no manager address known yet".into()),
        (Some(token), false) => Step::Join { token, managers },
    }
}

/// `hostname` of this machine, for keys and claims.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Whether this manager initialises the swarm: it has just won the claim,
/// or it holds the claim from an earlier boot whose init never finished
/// (no manager ever published a join token). A claim holder whose swarm
/// exists joins it like any other machine: after it left the swarm, an
/// init would start a second swarm beside the first (seen in vm_fleet
/// when the machine that left was the one that had initialised).
fn initialises(claimed: bool, holder: &str, me: &str, swarm_exists: bool) -> bool {
    claimed || (holder == me && !swarm_exists)
}

/// Decides the next step for a machine that is not a member.
pub fn next_step(conf: &SwarmConf, etcd: Option<&Etcd>) -> Result<Step> {
    let role = conf.role;
    let Some(etcd) = etcd else {
        if role == Role::Manager && conf.managers.is_empty() && conf.join_token.is_none() {
            return Ok(Step::Init);
        }
        return Ok(join_step(
            role,
            conf.join_token.clone(),
            &conf.managers,
            &[],
        ));
    };
    let me = hostname();
    if role == Role::Manager {
        let claimed = etcd.create(&key("init-claim"), &me)?;
        let holder = etcd.get(&key("init-claim"))?.unwrap_or_default();
        let swarm_exists = etcd.get(&key("join-token/manager"))?.is_some();
        if initialises(claimed, &holder, &me, swarm_exists) {
            return Ok(Step::Init);
        }
    }
    let published: Vec<String> = etcd
        .get_prefix(&key("managers/"))?
        .into_iter()
        .map(|(_, addr)| addr)
        .collect();
    let token = etcd
        .get(&key(&format!("join-token/{}", role.as_str())))?
        .or_else(|| conf.join_token.clone());
    Ok(join_step(role, token, &conf.managers, &published))
}

/// `--advertise-addr A --listen-addr A:2377` when an address is set: the
/// swarm's ports then listen on the private network only.
fn address_args(conf: &SwarmConf) -> Vec<String> {
    let Some(addr) = &conf.advertise_addr else {
        return Vec::new();
    };
    // An IPv6 address takes brackets before its port.
    let listen = if addr.contains(':') {
        format!("[{addr}]:{MANAGER_PORT}")
    } else {
        format!("{addr}:{MANAGER_PORT}")
    };
    vec![
        "--advertise-addr".into(),
        addr.clone(),
        "--listen-addr".into(),
        listen,
    ]
}

/// The start of dockerd's answer to a join it stopped waiting for.
const BACKGROUND_JOIN: &str = "Timeout was reached before node joined";

/// Runs a step; `Ok(true)` when the node should now be a member, `Ok(false)`
/// after a join the engine goes on with in the background.
pub fn run_step(step: &Step, conf: &SwarmConf, say: &dyn Fn(&str)) -> Result<bool> {
    match step {
        Step::Wait(why) => {
            say(&format!("not joined yet: {why}"));
            Ok(false)
        }
        Step::Init => {
            let mut args: Vec<String> = vec!["swarm".into(), "init".into()];
            args.extend(address_args(conf));
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            docker::docker(&refs)?;
            say("initialised a new swarm as its first manager");
            Ok(true)
        }
        Step::Join { token, managers } => {
            let mut errors = Vec::new();
            for m in managers {
                let mut args: Vec<String> = vec!["swarm".into(), "join".into()];
                args.extend(address_args(conf));
                args.extend(["--token".into(), token.clone(), m.clone()]);
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                match docker::docker(&refs) {
                    Ok(_) => {
                        say(&format!(
                            "joined the swarm as a {} through {m}",
                            conf.role.as_str()
                        ));
                        return Ok(true);
                    }
                    // The engine waits 20 s for a join, then goes on with
                    // it in the background: not a failure, and another
                    // join now would be refused ("already part of a swarm").
                    Err(e) if format!("{e:#}").contains(BACKGROUND_JOIN) => {
                        say(&format!(
                            "joining through {m}: the engine's wait ran out; \
                             the join goes on in the background"
                        ));
                        return Ok(false);
                    }
                    Err(e) => errors.push(format!("{m}: {e:#}")),
                }
            }
            bail!("joining failed: {}", errors.join("; "))
        }
    }
}

/// What a manager publishes for the others: the join tokens and its
/// address. Only written when different, so a steady swarm does not
/// churn etcd's revisions.
pub fn publish(etcd: &Etcd, info: &SwarmInfo) -> Result<()> {
    for role in ["manager", "worker"] {
        let token = docker::join_token(role)?;
        let k = key(&format!("join-token/{role}"));
        if etcd.get(&k)?.as_deref() != Some(token.as_str()) {
            etcd.put(&k, &token)?;
        }
    }
    if !info.node_addr.is_empty() {
        let k = key(&format!("managers/{}", hostname()));
        let addr = crate::conf::with_port(&info.node_addr);
        if etcd.get(&k)?.as_deref() != Some(addr.as_str()) {
            etcd.put(&k, &addr)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_claim_holder_joins_the_swarm_it_made() {
        // Just won the race.
        assert!(initialises(true, "node1", "node1", false));
        // Held from a boot whose init never finished.
        assert!(initialises(false, "node1", "node1", false));
        // Its swarm exists (tokens published): it left, and joins again.
        assert!(!initialises(false, "node1", "node1", true));
        // Somebody else's claim.
        assert!(!initialises(false, "node2", "node1", false));
        assert!(!initialises(false, "node2", "node1", true));
    }

    #[test]
    fn a_joiner_needs_a_token_and_a_manager() {
        let step = join_step(Role::Worker, None, &[], &["10.0.0.1:2377".into()]);
        assert!(
            matches!(&step, Step::Wait(w) if w.contains("slipway/swarm/join-token/worker")),
            "{step:?}"
        );
        let step = join_step(Role::Manager, Some("SWMTKN-1-a".into()), &[], &[]);
        assert_eq!(step, Step::Wait("no manager address known yet".into()));
        let step = join_step(
            Role::Manager,
            Some("SWMTKN-1-a".into()),
            &["10.0.0.9:2377".into()],
            &["10.0.0.1:2377".into(), "10.0.0.9:2377".into()],
        );
        assert_eq!(
            step,
            Step::Join {
                token: "SWMTKN-1-a".into(),
                managers: vec!["10.0.0.9:2377".into(), "10.0.0.1:2377".into()]
            }
        );
    }

    #[test]
    fn without_etcd_a_lone_manager_initialises() {
        let mut conf = crate::conf::parse("ROLE=manager\n").unwrap();
        assert_eq!(next_step(&conf, None).unwrap(), Step::Init);
        conf.managers = vec!["10.0.0.1:2377".into()];
        conf.join_token = Some("SWMTKN-1-x".into());
        assert!(matches!(next_step(&conf, None).unwrap(), Step::Join { .. }));
        let worker = crate::conf::parse("ROLE=worker\n").unwrap();
        assert!(matches!(next_step(&worker, None).unwrap(), Step::Wait(_)));
    }

    #[test]
    fn the_swarm_listens_on_the_advertised_address_only() {
        let conf = crate::conf::parse("ROLE=manager\nADVERTISE_ADDR=10.77.0.1\n").unwrap();
        assert_eq!(
            address_args(&conf),
            [
                "--advertise-addr",
                "10.77.0.1",
                "--listen-addr",
                "10.77.0.1:2377"
            ]
        );
        let conf = crate::conf::parse("ROLE=manager\nADVERTISE_ADDR=fd00::1\n").unwrap();
        assert_eq!(address_args(&conf)[3], "[fd00::1]:2377");
        let conf = crate::conf::parse("ROLE=manager\n").unwrap();
        assert!(address_args(&conf).is_empty());
    }
}

//! `/etc/slipway/swarm.conf`, from `coreos.swarm` (with
//! `coreos.fleet.metadata`, `coreos.locksmith.endpoint` and
//! `coreos.etcd2`), read by the agent `slipway-swarm`. Written once per
//! instance, like `update.conf`, atomically, mode 0600 (it may hold a join
//! token, and whoever has one can join the swarm).
//!
//! Format: UTF-8 lines `KEY=value`; the value runs verbatim to the end of
//! the line (no quotes, no escapes, never a line break); lines starting
//! with `#` are comments (the first line is
//! `# Written by slipway cloud-config from coreos.swarm`); keys without a
//! value are left out. Keys, in this order:
//!
//! | key | from |
//! |---|---|
//! | `ROLE` | `swarm.role`: `manager` or `worker` (always there) |
//! | `ADVERTISE_ADDR` | `swarm.advertise_addr` substituted (default `$private_ipv4`): an IP address or an interface name; left out when a variable in it had no value (docker then chooses) |
//! | `MANAGERS` | `swarm.managers` as `host:port` (`:2377` added when absent, IPv6 as `[v6]:port`), joined by `,` |
//! | `ETCD_ENDPOINTS` | `swarm.etcd_endpoints`, else `locksmith.endpoint`'s list, else `http://127.0.0.1:2379` when `coreos.etcd2` has keys; trailing `/` removed, joined by `,` |
//! | `JOIN_TOKEN` | `swarm.join_token` (`SWMTKN-1-…`) |
//! | `LABELS` | node labels `key=value` sorted by key, joined by `,`: `fleet.metadata`'s pairs, then `swarm.labels` over them (a value may be empty and may contain `=`, never `,`) |
//!
//! For example:
//!
//! ```text
//! # Written by slipway cloud-config from coreos.swarm
//! ROLE=manager
//! ADVERTISE_ADDR=10.77.0.1
//! MANAGERS=10.77.0.1:2377,10.77.0.2:2377
//! ETCD_ENDPOINTS=http://127.0.0.1:2379
//! LABELS=disk=ssd,region=west
//! ```

use crate::schema::Coreos;
use crate::swarm;

pub(crate) const SWARM_CONF: &str = "/etc/slipway/swarm.conf";
/// Readable by root only: it may hold a join token.
pub(crate) const SWARM_CONF_MODE: u32 = 0o600;

/// The text of `swarm.conf`, `None` without `coreos.swarm`.
pub(crate) fn swarm_conf(coreos: &Coreos) -> Result<Option<String>, String> {
    let Some(s) = &coreos.swarm else {
        return Ok(None);
    };
    let role = s
        .role
        .as_deref()
        .ok_or("coreos.swarm has no role (manager or worker)")?;
    let advertise = s
        .advertise_addr
        .as_deref()
        .filter(|a| !a.is_empty() && !swarm::has_literal_variable(a));
    // An entry validation could not judge (a variable without a value) is
    // passed on as written: the agent reports it.
    let managers: Vec<String> = s
        .managers
        .iter()
        .map(|m| swarm::manager_address(m).unwrap_or_else(|_| m.trim().to_string()))
        .collect();
    let labels: Vec<String> = swarm::node_labels(coreos)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let pairs = [
        ("ROLE", Some(role.to_string())),
        ("ADVERTISE_ADDR", advertise.map(str::to_string)),
        ("MANAGERS", joined(&managers)),
        ("ETCD_ENDPOINTS", joined(&swarm::etcd_endpoints(coreos))),
        ("JOIN_TOKEN", s.join_token.clone()),
        ("LABELS", joined(&labels)),
    ];
    let mut text = String::from("# Written by slipway cloud-config from coreos.swarm\n");
    for (key, value) in pairs {
        if let Some(v) = value {
            if v.contains(['\n', '\r']) {
                return Err(format!("{key}: value {v:?} must be a single line"));
            }
            text.push_str(&format!("{key}={v}\n"));
        }
    }
    Ok(Some(text))
}

fn joined(items: &[String]) -> Option<String> {
    (!items.is_empty()).then(|| items.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Locksmith, Swarm};

    const HEADER: &str = "# Written by slipway cloud-config from coreos.swarm\n";

    fn coreos(swarm: Swarm) -> Coreos {
        Coreos {
            swarm: Some(swarm),
            ..Coreos::default()
        }
    }

    #[test]
    fn every_key_in_order() {
        let mut c = coreos(Swarm {
            role: Some("manager".into()),
            advertise_addr: Some("10.77.0.1".into()),
            managers: vec![
                "10.77.0.1".into(),
                "10.77.0.2:2377".into(),
                "fd00::3".into(),
            ],
            etcd_endpoints: vec!["http://127.0.0.1:2379/".into()],
            join_token: Some("SWMTKN-1-abc-def".into()),
            labels: vec![("region".into(), "west".into())],
            ..Swarm::default()
        });
        c.fleet = vec![("metadata".into(), "region=east,disk=ssd".into())];
        assert_eq!(
            swarm_conf(&c).unwrap().unwrap(),
            format!(
                "{HEADER}ROLE=manager\nADVERTISE_ADDR=10.77.0.1\n\
                 MANAGERS=10.77.0.1:2377,10.77.0.2:2377,[fd00::3]:2377\n\
                 ETCD_ENDPOINTS=http://127.0.0.1:2379\nJOIN_TOKEN=SWMTKN-1-abc-def\n\
                 LABELS=disk=ssd,region=west\n"
            )
        );
    }

    #[test]
    fn labels_from_yaml_reach_the_file() {
        let yaml =
            "#cloud-config\ncoreos:\n  etcd2:\n    name: n1\n  swarm:\n    role: manager\n    \
                    labels:\n      machine: \"1\"\n      disk: ssd\n";
        let report = crate::validate(yaml.as_bytes());
        let config = report.config.as_ref().expect("parsed");
        let text = swarm_conf(&config.coreos).unwrap().unwrap();
        assert!(text.contains("LABELS=disk=ssd,machine=1\n"), "{text}");
    }

    #[test]
    fn keys_without_a_value_are_left_out() {
        let c = coreos(Swarm {
            role: Some("worker".into()),
            ..Swarm::default()
        });
        assert_eq!(
            swarm_conf(&c).unwrap().unwrap(),
            format!("{HEADER}ROLE=worker\n")
        );
        assert_eq!(swarm_conf(&Coreos::default()).unwrap(), None);
        // An address whose variable had no value: docker chooses.
        let c = coreos(Swarm {
            role: Some("manager".into()),
            advertise_addr: Some("$private_ipv4".into()),
            ..Swarm::default()
        });
        assert_eq!(
            swarm_conf(&c).unwrap().unwrap(),
            format!("{HEADER}ROLE=manager\n")
        );
    }

    #[test]
    fn etcd_endpoints_defaults() {
        let mut c = coreos(Swarm {
            role: Some("worker".into()),
            ..Swarm::default()
        });
        c.etcd2 = vec![("name".into(), "node1".into())];
        assert!(swarm_conf(&c)
            .unwrap()
            .unwrap()
            .ends_with("ETCD_ENDPOINTS=http://127.0.0.1:2379\n"));
        c.locksmith = Some(Locksmith {
            endpoint: Some("http://10.77.0.1:2379,http://10.77.0.2:2379".into()),
            ..Locksmith::default()
        });
        assert!(swarm_conf(&c)
            .unwrap()
            .unwrap()
            .ends_with("ETCD_ENDPOINTS=http://10.77.0.1:2379,http://10.77.0.2:2379\n"));
        c.swarm.as_mut().unwrap().etcd_endpoints = vec!["http://10.77.0.9:2379".into()];
        assert!(swarm_conf(&c)
            .unwrap()
            .unwrap()
            .ends_with("ETCD_ENDPOINTS=http://10.77.0.9:2379\n"));
    }

    #[test]
    fn fleet_metadata_alone_makes_labels() {
        let mut c = coreos(Swarm {
            role: Some("worker".into()),
            managers: vec!["m1".into()],
            join_token: Some("SWMTKN-1-x".into()),
            ..Swarm::default()
        });
        c.fleet = vec![("metadata".into(), "region=west, disk=ssd".into())];
        assert_eq!(
            swarm_conf(&c).unwrap().unwrap(),
            format!(
                "{HEADER}ROLE=worker\nMANAGERS=m1:2377\nJOIN_TOKEN=SWMTKN-1-x\nLABELS=disk=ssd,region=west\n"
            )
        );
    }

    #[test]
    fn a_line_break_is_refused() {
        let c = coreos(Swarm {
            role: Some("worker".into()),
            join_token: Some("SWMTKN-1-a\nROLE=manager".into()),
            ..Swarm::default()
        });
        assert!(swarm_conf(&c).unwrap_err().contains("JOIN_TOKEN"));
    }
}

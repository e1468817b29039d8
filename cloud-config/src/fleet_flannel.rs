//! `coreos.fleet` and `coreos.flannel`: Container Linux's scheduler and
//! overlay network. Neither program is on Slipway's image (fleet's project
//! ended in 2018; Docker's swarm mode does both jobs here, `coreos.swarm`,
//! which also takes `coreos.fleet.metadata` as node labels): the validator
//! says so once per section (an info), and checks the keys against what coreos-cloudinit knew, so a
//! typo is named as one (the keys still become the environment variables
//! coreos-cloudinit would write, in a drop-in, for a unit the user brings).

/// coreos-cloudinit's `config/fleet.go`, as written in user-data.
const FLEET_KEYS: [&str; 11] = [
    "agent_ttl",
    "engine_reconcile_interval",
    "etcd_cafile",
    "etcd_certfile",
    "etcd_keyfile",
    "etcd_key_prefix",
    "etcd_request_timeout",
    "etcd_servers",
    "metadata",
    "public_ip",
    "verbosity",
];

/// coreos-cloudinit's `config/flannel.go`, its last version and the first
/// one's `etcd_endpoint`.
const FLANNEL_KEYS: [&str; 12] = [
    "etcd_endpoint",
    "etcd_endpoints",
    "etcd_cafile",
    "etcd_certfile",
    "etcd_keyfile",
    "etcd_prefix",
    "etcd_username",
    "etcd_password",
    "ip_masq",
    "subnet_file",
    "interface",
    "public_ip",
];

/// What the section's presence means here (an info on its key).
pub fn section_hint(section: &str) -> Option<&'static str> {
    match section {
        "fleet" => Some(
            "\"coreos.fleet\": fleet is not on this image (its project ended in 2018); Docker's \
             swarm mode (\"coreos.swarm\") schedules containers across machines here, and with \
             it fleet's \"metadata\" becomes the node's labels; the other keys reach no program",
        ),
        "flannel" => Some(
            "\"coreos.flannel\": flanneld is not on this image, so these settings reach no \
             program; swarm mode's overlay networks (\"coreos.swarm\") connect containers \
             across machines",
        ),
        _ => None,
    }
}

pub fn fleet_key_problem(key: &str) -> Option<String> {
    key_problem("fleet", &FLEET_KEYS, key)
}

pub fn flannel_key_problem(key: &str) -> Option<String> {
    key_problem("flannel", &FLANNEL_KEYS, key)
}

/// A key coreos-cloudinit did not know (a warning, as its validator gave),
/// with the nearest known one.
fn key_problem(section: &str, known: &[&str], key: &str) -> Option<String> {
    let name = key.replace('-', "_").to_ascii_lowercase();
    if known.contains(&name.as_str()) {
        return None;
    }
    let mut msg = format!("\"coreos.{section}\" has no key {key:?}");
    if let Some(near) = crate::similar::suggestion(&name, known) {
        msg.push_str(&format!(" (did you mean {near:?}?)"));
    }
    Some(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_keys_in_either_spelling_pass() {
        for k in ["public-ip", "public_ip", "etcd-servers", "Metadata"] {
            assert_eq!(fleet_key_problem(k), None, "{k}");
        }
        for k in ["interface", "ip-masq", "etcd_endpoints"] {
            assert_eq!(flannel_key_problem(k), None, "{k}");
        }
    }

    #[test]
    fn typos_are_named_with_the_nearest_key() {
        assert_eq!(
            fleet_key_problem("publc-ip").as_deref(),
            Some("\"coreos.fleet\" has no key \"publc-ip\" (did you mean \"public_ip\"?)")
        );
        assert_eq!(
            flannel_key_problem("iface").as_deref(),
            Some("\"coreos.flannel\" has no key \"iface\"")
        );
    }
}

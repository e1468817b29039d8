//! End-to-end validation over realistic user-data files, asserting the
//! exact rendered findings (file:line:column).

use std::path::PathBuf;

use cloud_config::{validate, validate_with, Substitutions, UserDataKind};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn rendered(name: &str) -> Vec<String> {
    validate(&fixture(name))
        .render_text(name)
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn full_coreos_config_is_clean() {
    let subs = Substitutions {
        private_ipv4: Some("10.0.0.11".into()),
        ..Substitutions::default()
    };
    let report = validate_with(&fixture("full-coreos.yaml"), &subs);
    // Clean but for two hints: fleet and flanneld are not on the image.
    let text = report.render_text("full-coreos.yaml");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with(
            "full-coreos.yaml:46:3: info: \"coreos.fleet\": fleet is not on this image"
        ),
        "{text}"
    );
    assert!(
        lines[1].starts_with(
            "full-coreos.yaml:49:3: info: \"coreos.flannel\": flanneld is not on this image"
        ),
        "{text}"
    );
    assert_eq!(report.kind, UserDataKind::CloudConfig);
    let config = report.config.unwrap();
    assert_eq!(config.hostname.as_deref(), Some("node-1"));
    assert_eq!(config.users.len(), 2);
    assert_eq!(config.users[0].ssh_authorized_keys.len(), 1);
    assert_eq!(config.users[1].uid, Some(990));
    assert_eq!(config.write_files[0].permissions.as_deref(), Some("0644"));
    assert_eq!(config.write_files[0].line, 22);
    assert_eq!(
        config.write_files[1].decoded_content().unwrap(),
        b"{\"loglevel\": \"info\"}\n"
    );
    let etcd2 = &config.coreos.etcd2;
    assert_eq!(etcd2[2].0, "advertise_client_urls");
    assert_eq!(etcd2[2].1, "http://10.0.0.11:2379");
    assert_eq!(etcd2[6].1, "100");
    assert_eq!(config.coreos.units.len(), 5);
    assert_eq!(
        config.coreos.units[2].drop_ins[0].name,
        "50-insecure-registry.conf"
    );
    assert!(config.coreos.units[3].is_network());
    let update = config.coreos.update.unwrap();
    assert_eq!(update.reboot_strategy.as_deref(), Some("etcd-lock"));
    // The whole config serialises (it gets logged as JSON).
    assert!(serde_json::to_string(&config.coreos.units).is_ok());
}

#[test]
fn full_coreos_config_without_metadata_warns_where_etcd_gets_a_variable() {
    // No metadata and no static address: etcd would be handed the text.
    let why = "which has no value: no metadata gives it and no .network unit of the user-data has an IPv4 Address=; etcd would get the literal text \"$private_ipv4\"";
    assert_eq!(
        rendered("full-coreos.yaml")
            .into_iter()
            .filter(|l| !l.contains(": info: "))
            .collect::<Vec<_>>(),
        [
            format!("full-coreos.yaml:41:28: warning: \"coreos.etcd2.advertise-client-urls\" uses $private_ipv4, {why}"),
            format!("full-coreos.yaml:42:34: warning: \"coreos.etcd2.initial-advertise-peer-urls\" uses $private_ipv4, {why}"),
            format!("full-coreos.yaml:44:23: warning: \"coreos.etcd2.listen-peer-urls\" uses $private_ipv4, {why}"),
        ]
    );
    // fleet and flannel get the text too, as with coreos-cloudinit; only
    // etcd is judged.
    assert!(!validate(&fixture("full-coreos.yaml")).has_errors());
}

#[test]
fn a_static_member_takes_private_ipv4_from_its_network_unit() {
    let report = validate(&fixture("cluster-member.yaml"));
    assert_eq!(
        report.render_text("cluster-member.yaml"),
        "cluster-member.yaml:29:13: info: $private_ipv4 is 10.77.0.2: no metadata gives one, and this is the first IPv4 Address= of the user-data's .network units (\"10-cluster.network\")\n"
    );
    let config = report.config.unwrap();
    let env: std::collections::BTreeMap<_, _> = config.coreos.etcd2.into_iter().collect();
    assert_eq!(
        env["listen_client_urls"],
        "http://10.77.0.2:2379,http://127.0.0.1:2379"
    );
    assert_eq!(env["initial_advertise_peer_urls"], "http://10.77.0.2:2380");
    let update = config.coreos.update.unwrap();
    assert_eq!(update.reboot_strategy.as_deref(), Some("fleetlock"));
    assert_eq!(
        update.fleetlock_url.as_deref(),
        Some("http://10.0.2.2:8080")
    );
    assert_eq!(update.fleetlock_group.as_deref(), Some("workers"));

    // Metadata still wins, silently; here it contradicts the cluster.
    let subs = Substitutions {
        private_ipv4: Some("10.0.0.9".into()),
        ..Substitutions::default()
    };
    let report = validate_with(&fixture("cluster-member.yaml"), &subs);
    assert_eq!(
        report.render_text("cluster-member.yaml"),
        "cluster-member.yaml:11:34: error: \"coreos.etcd2.initial-advertise-peer-urls\" (http://10.0.0.9:2380) differs from \"node-2\" in \"initial-cluster\" (http://10.77.0.2:2380); etcd would not start\n"
    );

    // Without a static address, an interface's address (on the machine).
    let dhcp_only = String::from_utf8(fixture("cluster-member.yaml"))
        .unwrap()
        .replace("Address=10.77.0.2/24", "DHCP=yes");
    let subs = Substitutions {
        interface_ipv4: Some("10.77.0.2".into()),
        ..Substitutions::default()
    };
    let report = validate_with(dhcp_only.as_bytes(), &subs);
    assert_eq!(
        report.render_text("u"),
        "u:11:41: info: $private_ipv4 is 10.77.0.2: no metadata gives one and no .network unit of the user-data has an IPv4 Address=, so it is the address of a network interface\n"
    );
}

#[test]
fn broken_etcd2() {
    assert_eq!(
        rendered("broken-etcd2.yaml"),
        [
            "broken-etcd2.yaml:5:5: warning: \"coreos.etcd2\" key \"ca-file\" was removed in etcd 3.4; write \"trusted-ca-file\" and \"client-cert-auth: true\"",
            "broken-etcd2.yaml:6:5: warning: \"coreos.etcd2\" key \"listen-client-url\" is not a flag of etcd 3.4; etcd ignores it (did you mean \"listen-client-urls\"?)",
            "broken-etcd2.yaml:7:23: error: invalid value \"http://node-1:2380\" for \"coreos.etcd2.listen-peer-urls\": \"http://node-1:2380\": etcd listens on an IP address (or localhost), not a host name; etcd would not start",
            "broken-etcd2.yaml:8:28: error: invalid value \"http://10.0.0.1:2379/\" for \"coreos.etcd2.advertise-client-urls\": \"http://10.0.0.1:2379/\" must not have a path (not even \"/\"); etcd would not start",
            "broken-etcd2.yaml:9:22: error: \"coreos.etcd2.initial-cluster\" has no member named \"node-1\" (this machine's \"name\"); etcd would not start",
            "broken-etcd2.yaml:10:16: error: \"coreos.etcd2\" sets initial-cluster and discovery: etcd takes one way to bootstrap (initial-cluster, discovery or discovery-srv) and would not start",
            "broken-etcd2.yaml:11:28: error: invalid value \"fresh\" for \"coreos.etcd2.initial-cluster-state\": expected one of new, existing; etcd would not start",
            "broken-etcd2.yaml:12:25: error: \"coreos.etcd2.election-timeout\" 1000 (the default) must be at least 5 × \"heartbeat-interval\" 300 = 1500; etcd would not start",
            "broken-etcd2.yaml:13:23: error: invalid value \"maybe\" for \"coreos.etcd2.client-cert-auth\": expected true or false; etcd would not start",
            "broken-etcd2.yaml:14:12: warning: \"coreos.etcd2.proxy: on\": etcd 3.4's proxy mode serves only the v2 API, which etcdctl 3.4 and the update engine's lock do not use; make this machine a member (or run `etcd grpc-proxy`)",
            "broken-etcd2.yaml:15:15: warning: \"coreos.etcd2.data-dir\" \"/var/lib/etcd2\" is outside /var/lib/etcd: etcd runs as the user etcd, which can create its data only under /var/lib/etcd (the default is /var/lib/etcd/default)",
            "broken-etcd2.yaml:16:34: warning: \"coreos.etcd2.initial-advertise-peer-urls\" uses $public_ipv4, which has no value: no metadata gives it (as in coreos-cloudinit, it does not fall back to $private_ipv4); etcd would get the literal text \"$public_ipv4\"",
            "broken-etcd2.yaml:18:22: error: \"reboot_strategy: fleetlock\" needs \"coreos.update.fleetlock_url\", the base URL of the FleetLock server (e.g. http://10.0.0.1:8080)",
            "broken-etcd2.yaml:19:22: error: invalid value \"web servers\" for \"coreos.update.fleetlock_group\": a FleetLock group is letters, digits, '.' and '-'",
        ]
    );
}

#[test]
fn broken_values() {
    let ro = "is on the read-only root filesystem; files can only be written under /etc, /var, /home, /root, /opt, /run, /tmp";
    assert_eq!(
        rendered("broken-values.yaml"),
        [
            "broken-values.yaml:2:11: error: invalid hostname \"web_01\": use letters, digits and '-' in dot-separated labels of at most 63 characters".to_string(),
            "broken-values.yaml:5:22: error: invalid value \"always\" for \"coreos.update.reboot_strategy\": expected one of reboot, etcd-lock, fleetlock, best-effort, off".into(),
            "broken-values.yaml:7:19: error: invalid value \"Thu 25:00\" for \"coreos.locksmith.window_start\": \"25:00\" is not a time of day (expected H:MM, 00:00 to 23:59)".into(),
            "broken-values.yaml:8:20: error: invalid value \"90 minutes\" for \"coreos.locksmith.window_length\": expected a duration such as \"1h30m\"".into(),
            "broken-values.yaml:11:16: error: invalid value \"lol\" for \"coreos.units[0].command\": expected one of start, stop, restart, reload, try-restart, reload-or-restart, reload-or-try-restart".into(),
            "broken-values.yaml:12:13: error: unit name \"app\" for \"coreos.units[1].name\" has no known type suffix (one of .service .socket .timer .target .path .mount .automount .network .netdev .link .slice .scope .swap .device)".into(),
            "broken-values.yaml:14:7: warning: \"coreos.units[2]\" has no content and none of enable, mask, command or drop_ins: it does nothing".into(),
            format!("broken-values.yaml:16:11: error: \"write_files[0].path\": /usr/local/bin/tool {ro}"),
            "broken-values.yaml:18:11: error: \"write_files[1].path\": path \"etc/motd\" is not absolute".into(),
            "broken-values.yaml:19:18: error: invalid permissions \"0999\" for \"write_files[1].permissions\": expected an octal mode such as \"0644\" (3 or 4 octal digits, optionally after a 0)".into(),
            "broken-values.yaml:20:11: error: \"write_files[2].path\": path \"/etc/../usr/x\" must not contain \"..\" components".into(),
            "broken-values.yaml:21:15: error: invalid value \"custom\" for \"write_files[2].encoding\": expected one of b64, base64, gz, gzip, gz+b64, gz+base64, gzip+b64, gzip+base64".into(),
            "broken-values.yaml:24:14: error: content of \"write_files[3]\" cannot be decoded as \"base64\": invalid base64: Invalid symbol 33, offset 9.".into(),
            "broken-values.yaml:26:5: error: \"users[0]\" has no \"name\"; a user needs one".into(),
            "broken-values.yaml:28:9: warning: \"users[0].ssh_authorized_keys[0]\" does not look like an SSH public key (expected \"ssh-ed25519 AAAA… [comment]\")".into(),
        ]
    );
}

#[test]
fn broken_keys() {
    assert_eq!(
        rendered("broken-keys.yaml"),
        [
            "broken-keys.yaml:2:1: warning: unrecognized key \"hostnme\" (did you mean \"hostname\"?)",
            "broken-keys.yaml:3:1: warning: \"units\" belongs under \"coreos\", not at the top level: it is ignored here",
            "broken-keys.yaml:6:3: warning: \"write_files\" belongs at the top level, not under \"coreos\": it is ignored here",
            "broken-keys.yaml:7:3: warning: deprecated key \"etcd\" (etcd v1 is not shipped; use \"etcd2\")",
            "broken-keys.yaml:12:7: warning: \"coreos.units[0]\" has no content and none of enable, mask, command or drop_ins: it does nothing",
            "broken-keys.yaml:13:15: warning: incorrect type for \"coreos.units[0].enable\": want bool, got string",
            "broken-keys.yaml:14:7: warning: unrecognized key \"comand\" (did you mean \"command\"?)",
            "broken-keys.yaml:17:10: warning: incorrect type for \"users[0].uid\": want non-negative integer, got string",
            "broken-keys.yaml:19:1: warning: duplicate key \"hostname\" (first on line 18); the last one is used",
        ]
    );
    let config = validate(&fixture("broken-keys.yaml")).config.unwrap();
    assert_eq!(config.hostname.as_deref(), Some("two"));
    // locksmith's "best-effort" is taken as locksmith meant it (etcd-lock
    // when an etcd answers, else reboot: the update engine does that).
    assert_eq!(
        config.coreos.update.unwrap().reboot_strategy.as_deref(),
        Some("best-effort")
    );
}

#[test]
fn tab_indentation() {
    assert_eq!(
        rendered("tab.yaml"),
        ["tab.yaml:5:1: error: tabs are not allowed for indentation in YAML; indent with spaces"]
    );
    assert!(validate(&fixture("tab.yaml")).config.is_none());
}

#[test]
fn top_level_not_a_mapping() {
    assert_eq!(
        rendered("not-a-mapping.yaml"),
        ["not-a-mapping.yaml:2:1: error: the top level of a cloud-config must be a mapping (lines like \"hostname: web1\"), got list"]
    );
}

#[test]
fn missing_header() {
    let report = validate(&fixture("no-header.yaml"));
    assert_eq!(report.kind, UserDataKind::Unknown);
    assert_eq!(
        report.render_text("no-header.yaml"),
        "no-header.yaml:1:1: error: user-data must start with a line \"#cloud-config\" (a cloud-config) or \"#!\" (a script); found \"hostname: a\"\n"
    );
}

#[test]
fn json_report() {
    let json = validate(&fixture("broken-keys.yaml")).to_json("broken-keys.yaml");
    assert_eq!(json["kind"], "cloud-config");
    assert_eq!(json["findings"][0]["line"], 2);
    assert_eq!(json["findings"][0]["column"], 1);
    assert_eq!(json["findings"][0]["level"], "warning");
}

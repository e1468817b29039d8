//! Files generated from the `coreos` section.
//!
//! `/etc/slipway/update.conf` (from `coreos.update` and
//! `coreos.locksmith`), read by the update engine. Format: UTF-8 lines
//! `KEY=value`; the value runs verbatim to the end of the line (no quotes,
//! no escapes, may contain spaces, never a line break); lines starting
//! with `#` are comments; keys that are not set are left out. Keys:
//!
//! | key | from |
//! |---|---|
//! | `REBOOT_STRATEGY` | `update.reboot_strategy` (`reboot`, `etcd-lock`, `fleetlock`, `best-effort`, `off`) |
//! | `GROUP` | `update.group` (the channel) |
//! | `SERVER` | `update.server` |
//! | `FLEETLOCK_URL` | `update.fleetlock_url`, e.g. `http://10.0.0.1:8080` |
//! | `FLEETLOCK_GROUP` | `update.fleetlock_group` (unset: the engine's default, `default`, as in Zincati) |
//! | `LOCKSMITHD_ENDPOINT` | `locksmith.endpoint` |
//! | `LOCKSMITHD_GROUP` | `locksmith.group` |
//! | `LOCKSMITHD_ETCD_CAFILE`, `_CERTFILE`, `_KEYFILE` | `locksmith.etcd_*` |
//! | `WINDOW_START` | `locksmith.window_start`, e.g. `Thu 04:00` |
//! | `WINDOW_LENGTH` | `locksmith.window_length`, e.g. `1h30m` |
//!
//! `coreos.etcd2`, `coreos.fleet`, `coreos.flannel` become systemd drop-ins
//! `/run/systemd/system/<service>.d/20-cloudinit.conf` with one
//! `Environment="PREFIX_KEY=value"` line per key (values escaped for
//! systemd: `\` `"` become `\\` `\"`, `%` becomes `%%`).
//!
//! For etcd that is Debian's `etcd.service`, through its
//! `Alias=etcd2.service` (the init reads drop-ins of every name of a
//! unit). Its own `Environment=ETCD_NAME=%H` and
//! `Environment=ETCD_DATA_DIR=/var/lib/etcd/default` come first and the
//! drop-in's lines after them, so `name` and `data-dir` from user-data
//! win; etcd reads each `ETCD_<FLAG>` as `--<flag>` (its `$DAEMON_ARGS`
//! is empty, and etcd 3.4 refuses a flag given both ways). Its
//! `EnvironmentFile=-/etc/default/%p` would win over both (systemd's
//! rule), which only matters to a user who also writes `ETCD_*` lines
//! there. Booleans written in YAML 1.1 (`yes`, `off`), which
//! coreos-cloudinit read as booleans, are written `true`/`false`: etcd
//! parses Go's spellings only ([`crate::etcd::env_value`]).
//!
//! `coreos.oem` becomes `/etc/oem-release` in os-release syntax (values
//! double-quoted, `\` `"` `$` and backquote escaped).

use crate::schema::{EnvMap, Locksmith, Oem, Update};

pub(crate) const UPDATE_CONF: &str = "/etc/slipway/update.conf";
pub(crate) const OEM_RELEASE: &str = "/etc/oem-release";

/// The text of `update.conf`, `None` when neither section is present.
pub(crate) fn update_conf(
    update: Option<&Update>,
    locksmith: Option<&Locksmith>,
) -> Result<Option<String>, String> {
    if update.is_none() && locksmith.is_none() {
        return Ok(None);
    }
    let mut pairs: Vec<(&str, &Option<String>)> = Vec::new();
    if let Some(u) = update {
        pairs.extend([
            ("REBOOT_STRATEGY", &u.reboot_strategy),
            ("GROUP", &u.group),
            ("SERVER", &u.server),
            ("FLEETLOCK_URL", &u.fleetlock_url),
            ("FLEETLOCK_GROUP", &u.fleetlock_group),
        ]);
    }
    if let Some(l) = locksmith {
        pairs.extend([
            ("LOCKSMITHD_ENDPOINT", &l.endpoint),
            ("LOCKSMITHD_GROUP", &l.group),
            ("LOCKSMITHD_ETCD_CAFILE", &l.etcd_cafile),
            ("LOCKSMITHD_ETCD_CERTFILE", &l.etcd_certfile),
            ("LOCKSMITHD_ETCD_KEYFILE", &l.etcd_keyfile),
            ("WINDOW_START", &l.window_start),
            ("WINDOW_LENGTH", &l.window_length),
        ]);
    }
    let mut text =
        String::from("# Written by slipway cloud-config from coreos.update and coreos.locksmith\n");
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

/// The services the environment sections configure: (section, unit,
/// variable prefix).
pub(crate) const SERVICES: [(&str, &str, &str); 3] = [
    ("etcd2", "etcd2.service", "ETCD_"),
    ("fleet", "fleet.service", "FLEET_"),
    ("flannel", "flanneld.service", "FLANNELD_"),
];

pub(crate) const ENV_DROP_IN: &str = "20-cloudinit.conf";

/// The variable name for `key` of `section`.
fn variable(section: &str, prefix: &str, key: &str) -> Result<String, String> {
    let upper = key.replace('-', "_").to_ascii_uppercase();
    if upper.is_empty() || !upper.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "coreos.{section}: key {key:?} cannot be an environment variable name"
        ));
    }
    if section == "flannel" && upper == "INTERFACE" {
        return Ok(format!("{prefix}IFACE"));
    }
    Ok(format!("{prefix}{upper}"))
}

/// One quoted `Environment=` assignment.
pub(crate) fn systemd_quote(assignment: &str) -> Result<String, String> {
    if assignment.contains(['\n', '\r']) {
        return Err(format!("value {assignment:?} must be a single line"));
    }
    let mut out = String::from("\"");
    for c in assignment.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(out)
}

/// The drop-in text for one environment section.
pub(crate) fn env_drop_in(section: &str, prefix: &str, env: &EnvMap) -> Result<String, String> {
    let mut text = String::from("[Service]\n");
    for (key, value) in env {
        let name = variable(section, prefix, key)?;
        let value = match section {
            "etcd2" => crate::etcd::env_value(key, value),
            _ => value.into(),
        };
        text.push_str(&format!(
            "Environment={}\n",
            systemd_quote(&format!("{name}={value}"))?
        ));
    }
    Ok(text)
}

fn os_release_quote(value: &str) -> Result<String, String> {
    if value.contains(['\n', '\r']) {
        return Err(format!("value {value:?} must be a single line"));
    }
    let mut out = String::from("\"");
    for c in value.chars() {
        if matches!(c, '\\' | '"' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Ok(out)
}

pub(crate) fn oem_release(oem: &Oem) -> Result<String, String> {
    let mut text = String::new();
    for (key, value) in [
        ("ID", &oem.id),
        ("NAME", &oem.name),
        ("VERSION_ID", &oem.version_id),
        ("HOME_URL", &oem.home_url),
        ("BUG_REPORT_URL", &oem.bug_report_url),
    ] {
        if let Some(v) = value {
            text.push_str(&format!("{key}={}\n", os_release_quote(v)?));
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_quoting() {
        assert_eq!(
            systemd_quote(r#"A=say "hi" 100% \o/"#).unwrap(),
            r#""A=say \"hi\" 100%% \\o/""#
        );
        assert!(systemd_quote("A=x\ny").is_err());
    }

    #[test]
    fn flannel_interface() {
        let env = vec![
            ("interface".to_string(), "eth1".to_string()),
            ("etcd_prefix".to_string(), "/coreos.com/network".to_string()),
        ];
        assert_eq!(
            env_drop_in("flannel", "FLANNELD_", &env).unwrap(),
            "[Service]\nEnvironment=\"FLANNELD_IFACE=eth1\"\nEnvironment=\"FLANNELD_ETCD_PREFIX=/coreos.com/network\"\n"
        );
        let bad = vec![("a b".to_string(), "x".to_string())];
        assert!(env_drop_in("etcd2", "ETCD_", &bad).is_err());
    }

    #[test]
    fn update_conf_leaves_out_unset_keys() {
        let u = Update {
            reboot_strategy: Some("off".into()),
            ..Update::default()
        };
        assert_eq!(
            update_conf(Some(&u), None).unwrap().unwrap(),
            "# Written by slipway cloud-config from coreos.update and coreos.locksmith\nREBOOT_STRATEGY=off\n"
        );
        assert_eq!(update_conf(None, None).unwrap(), None);
    }

    #[test]
    fn update_conf_fleetlock_keys() {
        let u = Update {
            reboot_strategy: Some("fleetlock".into()),
            fleetlock_url: Some("http://10.0.2.2:8080".into()),
            fleetlock_group: Some("workers".into()),
            ..Update::default()
        };
        let text = update_conf(Some(&u), None).unwrap().unwrap();
        assert!(
            text.ends_with(
                "REBOOT_STRATEGY=fleetlock\nFLEETLOCK_URL=http://10.0.2.2:8080\nFLEETLOCK_GROUP=workers\n"
            ),
            "{text}"
        );
        // No group: the engine's default applies, nothing is written.
        let u = Update {
            fleetlock_group: None,
            ..u
        };
        assert!(!update_conf(Some(&u), None)
            .unwrap()
            .unwrap()
            .contains("FLEETLOCK_GROUP"));
    }

    #[test]
    fn etcd_drop_in_for_debians_unit() {
        let env = vec![
            ("name".to_string(), "node-1".to_string()),
            ("data_dir".to_string(), "/var/lib/etcd/node-1".to_string()),
            ("client_cert_auth".to_string(), "yes".to_string()),
            ("enable_v2".to_string(), "1".to_string()),
            (
                "initial_cluster".to_string(),
                "node-1=http://10.77.0.1:2380,node-2=http://10.77.0.2:2380".to_string(),
            ),
        ];
        assert_eq!(
            env_drop_in("etcd2", "ETCD_", &env).unwrap(),
            "[Service]\n\
             Environment=\"ETCD_NAME=node-1\"\n\
             Environment=\"ETCD_DATA_DIR=/var/lib/etcd/node-1\"\n\
             Environment=\"ETCD_CLIENT_CERT_AUTH=true\"\n\
             Environment=\"ETCD_ENABLE_V2=1\"\n\
             Environment=\"ETCD_INITIAL_CLUSTER=node-1=http://10.77.0.1:2380,node-2=http://10.77.0.2:2380\"\n"
        );
        // Only etcd's booleans are rewritten.
        let fleet = vec![("verbose".to_string(), "yes".to_string())];
        assert_eq!(
            env_drop_in("fleet", "FLEET_", &fleet).unwrap(),
            "[Service]\nEnvironment=\"FLEET_VERBOSE=yes\"\n"
        );
    }
}

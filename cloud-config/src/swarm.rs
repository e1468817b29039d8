//! `coreos.swarm`: a machine's part in a Docker swarm (swarm mode does
//! fleet's job of placing work across machines). cloud-config only checks
//! the section and writes `/etc/slipway/swarm.conf` (`apply/swarm_conf.rs`);
//! the agent `slipway-swarm` reads that file, and initialises or joins.
//!
//! The section, as checked here (every value after substitution):
//!
//! - `role`: `manager` or `worker`, required (an error otherwise).
//! - `advertise_addr`: an IPv4 or IPv6 address or an interface name
//!   (`[A-Za-z0-9_.-]{1,15}`, the kernel's `IFNAMSIZ`), what
//!   `docker swarm init/join --advertise-addr` takes; default
//!   `$private_ipv4`. A variable with no value is a warning, not an error:
//!   the file then leaves the address out and docker chooses one.
//! - `managers`: `host[:port]` items (port 1–65535, default 2377; host an
//!   IP address, `[v6]` with a port, or a DNS name).
//! - `etcd_endpoints`: `http://` or `https://` URLs, no path; an IP that is
//!   not private gets a warning, since whoever reads that etcd reads the
//!   join tokens the agent publishes there.
//! - `join_token`: `SWMTKN-1-` then letters, digits and `-` (the form
//!   `docker swarm join-token -q` prints).
//! - `labels`: docker node labels, keys `[A-Za-z0-9._-]+`, values a
//!   single line without `,` (the file separates labels with commas).
//! - A worker must be able to find a manager: `managers` with a
//!   `join_token`, or an etcd (`etcd_endpoints`, `coreos.etcd2` in the same
//!   config, or `coreos.locksmith.endpoint`).
//! - With `coreos.swarm`, Container Linux's `coreos.fleet.metadata`
//!   (`key=value,key=value`) also becomes node labels, so its pairs must
//!   be well formed (without `coreos.swarm` it is not judged, as before);
//!   a `labels` entry wins over a metadata pair of the same key, with a
//!   warning when their values differ.
//!
//! "`coreos.etcd2` present" means the section has at least one key: an
//! empty one configures nothing (no drop-in is written for it).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::findings::Level;
use crate::schema::{CloudConfig, Coreos, Swarm};
use crate::substitute::{self, Substitutions};

/// The values of `role`.
pub const ROLES: [&str; 2] = ["manager", "worker"];
/// Docker's swarm management port, added to a manager written without one.
pub const MANAGER_PORT: u16 = 2377;
/// What `advertise_addr` is when not written (then substituted).
pub const DEFAULT_ADVERTISE_ADDR: &str = "$private_ipv4";
/// The local etcd member, the endpoint when `coreos.etcd2` is set and
/// neither `etcd_endpoints` nor `coreos.locksmith.endpoint` is (the update
/// engine's default for the reboot lock too).
pub const LOCAL_ETCD: &str = "http://127.0.0.1:2379";
/// Join tokens start with this (`SWMTKN-<version>-…`, version 1).
pub const TOKEN_PREFIX: &str = "SWMTKN-1-";

/// One finding about the section, at a path of [`crate::parse::Positions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub level: Level,
    pub message: String,
}

/// Fills in `advertise_addr` when not written: `$private_ipv4`,
/// substituted with `subs` (the values validation resolved), so the
/// applied config carries the address the machine will advertise.
pub fn fill_defaults(config: &mut CloudConfig, subs: &Substitutions) {
    if let Some(s) = config.coreos.swarm.as_mut() {
        if s.advertise_addr.is_none() {
            s.advertise_addr = Some(substitute::substitute(DEFAULT_ADVERTISE_ADDR, subs));
        }
    }
}

/// Whether `value` still holds a substitution variable as literal text
/// (no value was known for it).
pub fn has_literal_variable(value: &str) -> bool {
    !substitute::without_value(value, &Substitutions::default()).is_empty()
}

/// Everything wrong with `coreos.swarm` (nothing when it is absent).
/// `subs` are the substituted values, to tell which variables had none.
pub fn problems(coreos: &Coreos, subs: &Substitutions) -> Vec<Problem> {
    let Some(swarm) = &coreos.swarm else {
        return Vec::new();
    };
    let mut out = Problems(Vec::new());
    out.role(swarm);
    out.advertise_addr(swarm, subs);
    for (i, m) in swarm.managers.iter().enumerate() {
        let path = format!("coreos.swarm.managers[{i}]");
        if out.literal(&path, m, subs) {
            continue;
        }
        if let Err(why) = manager_address(m) {
            out.error(
                path.clone(),
                format!("invalid value {m:?} for {path:?}: {why}"),
            );
        }
    }
    for (i, url) in swarm.etcd_endpoints.iter().enumerate() {
        let path = format!("coreos.swarm.etcd_endpoints[{i}]");
        if out.literal(&path, url, subs) {
            continue;
        }
        match parse_endpoint(url) {
            Err(why) => out.error(
                path.clone(),
                format!("invalid value {url:?} for {path:?}: {why}"),
            ),
            Ok(host) if is_public(host) => out.warning(
                path.clone(),
                format!(
                    "{path:?} {url} is not a private address: the agent publishes the swarm's join \
                     tokens in this etcd, and whoever can read it can join the swarm; keep etcd on \
                     the private network"
                ),
            ),
            Ok(_) => {}
        }
    }
    if let Some(token) = &swarm.join_token {
        if let Some(why) = token_problem(token) {
            let path = "coreos.swarm.join_token";
            out.error(path.into(), format!("invalid value for {path:?}: {why}"));
        }
    }
    for (key, value) in &swarm.labels {
        let path = format!("coreos.swarm.labels.{key}");
        if let Some(why) = label_key_problem(key) {
            out.error(
                path.clone(),
                format!("node label {key:?} in \"coreos.swarm.labels\": {why}"),
            );
        }
        if out.literal(&path, value, subs) {
            continue;
        }
        if let Some(why) = label_value_problem(value) {
            out.error(
                path.clone(),
                format!("node label {key:?} in \"coreos.swarm.labels\": {why}"),
            );
        }
    }
    out.fleet_metadata(coreos);
    out.finds_manager(swarm, coreos);
    out.local_etcd(coreos);
    out.0
}

struct Problems(Vec<Problem>);

impl Problems {
    fn error(&mut self, path: String, message: String) {
        self.0.push(Problem {
            path,
            level: Level::Error,
            message,
        });
    }

    fn warning(&mut self, path: String, message: String) {
        self.0.push(Problem {
            path,
            level: Level::Warning,
            message,
        });
    }

    /// Warns when `value` holds a variable with no value (the agent would
    /// get the text as written); true then, and the value is not judged.
    fn literal(&mut self, path: &str, value: &str, subs: &Substitutions) -> bool {
        let missing = substitute::without_value(value, subs);
        for name in &missing {
            self.warning(
                path.to_string(),
                format!(
                    "{path:?} uses ${name}, which has no value here (no metadata gives it); \
                     slipway-swarm would get the literal text \"${name}\""
                ),
            );
        }
        !missing.is_empty()
    }

    fn role(&mut self, swarm: &Swarm) {
        match swarm.role.as_deref() {
            None => self.error(
                "coreos.swarm".into(),
                "\"coreos.swarm\" has no \"role\": set it to manager or worker".into(),
            ),
            Some(r) if ROLES.contains(&r) => {}
            Some(r) => self.error(
                "coreos.swarm.role".into(),
                format!(
                    "invalid value {r:?} for \"coreos.swarm.role\": expected one of {}",
                    ROLES.join(", ")
                ),
            ),
        }
    }

    fn advertise_addr(&mut self, swarm: &Swarm, subs: &Substitutions) {
        let Some(addr) = &swarm.advertise_addr else {
            return;
        };
        let written = swarm.lines.advertise_addr != 0;
        let path = if written {
            "coreos.swarm.advertise_addr"
        } else {
            "coreos.swarm"
        };
        let missing = substitute::without_value(addr, subs);
        if let Some(name) = missing.first() {
            let what = if written {
                format!("\"coreos.swarm.advertise_addr\" uses ${name}")
            } else {
                format!("\"coreos.swarm.advertise_addr\" is ${name} (the default)")
            };
            let why = match *name {
                "private_ipv4" => {
                    "no metadata gives it and no .network unit of the user-data has an IPv4 Address="
                }
                _ => "no metadata gives it",
            };
            self.warning(
                path.into(),
                format!(
                    "{what}, which has no value here: {why}; swarm.conf leaves ADVERTISE_ADDR out \
                     and docker chooses the address (it refuses when the machine has several)"
                ),
            );
            return;
        }
        if let Some(why) = advertise_addr_problem(addr) {
            self.error(
                path.into(),
                format!("invalid value {addr:?} for \"coreos.swarm.advertise_addr\": {why}"),
            );
        }
    }

    /// `coreos.fleet.metadata` pairs, judged only because they become
    /// node labels; a label of `coreos.swarm.labels` wins over a pair.
    fn fleet_metadata(&mut self, coreos: &Coreos) {
        let Some((key, raw)) = fleet_metadata_raw(coreos) else {
            return;
        };
        let path = format!("coreos.fleet.{key}");
        let mut pairs = BTreeMap::new();
        for pair in fleet_pairs(raw) {
            match pair {
                Err(bad) => self.error(
                    path.clone(),
                    format!(
                        "\"coreos.fleet.metadata\" item {bad:?} is not key=value; with coreos.swarm \
                         its pairs become node labels"
                    ),
                ),
                Ok((k, v)) => {
                    if let Some(why) = label_key_problem(k) {
                        self.error(
                            path.clone(),
                            format!("node label {k:?} from \"coreos.fleet.metadata\": {why}"),
                        );
                    }
                    pairs.insert(k, v);
                }
            }
        }
        let Some(swarm) = &coreos.swarm else {
            return;
        };
        for (k, v) in &swarm.labels {
            if let Some(fleet) = pairs.get(k.as_str()).filter(|f| **f != v.as_str()) {
                self.warning(
                    format!("coreos.swarm.labels.{k}"),
                    format!(
                        "node label {k:?}: {v:?} from \"coreos.swarm.labels\" wins over {fleet:?} \
                         from \"coreos.fleet.metadata\""
                    ),
                );
            }
        }
    }

    fn finds_manager(&mut self, swarm: &Swarm, coreos: &Coreos) {
        if swarm.role.as_deref() != Some("worker") {
            return;
        }
        let by_hand = !swarm.managers.is_empty() && swarm.join_token.is_some();
        if by_hand || !etcd_endpoints(coreos).is_empty() {
            return;
        }
        let message = if swarm.managers.is_empty() == swarm.join_token.is_none() {
            "a worker needs a way to find a manager: \"managers\" with \"join_token\", or an etcd \
             where the managers publish them (\"etcd_endpoints\", \"coreos.etcd2\" or \
             \"coreos.locksmith.endpoint\")"
                .to_string()
        } else {
            let (has, lacks) = if swarm.managers.is_empty() {
                ("join_token", "managers")
            } else {
                ("managers", "join_token")
            };
            format!(
                "a worker needs a way to find a manager: it has {has:?} but no {lacks:?}, and no \
                 etcd (\"etcd_endpoints\", \"coreos.etcd2\" or \"coreos.locksmith.endpoint\") to \
                 read it from"
            )
        };
        self.error("coreos.swarm.role".into(), message);
    }

    /// The agent's default etcd is the local member; say so when the
    /// user-data's etcd does not listen there.
    fn local_etcd(&mut self, coreos: &Coreos) {
        if etcd_endpoints(coreos) != [LOCAL_ETCD] {
            return;
        }
        let Some((key, urls)) = coreos
            .etcd2
            .iter()
            .find(|(k, _)| crate::etcd::flag_name(k) == "listen-client-urls")
        else {
            return;
        };
        let local = urls.split(',').map(str::trim).any(|u| {
            let lower = u.to_ascii_lowercase();
            ["127.0.0.1", "localhost", "0.0.0.0", "[::]", "[::1]"]
                .iter()
                .any(|h| lower.ends_with(&format!("://{h}:2379")))
        });
        if !local {
            self.warning(
                format!("coreos.etcd2.{key}"),
                format!(
                    "slipway-swarm reads etcd at {LOCAL_ETCD} (with coreos.etcd2 and no \
                     \"coreos.swarm.etcd_endpoints\"), but \"coreos.etcd2.listen-client-urls\" does \
                     not listen there; add {LOCAL_ETCD} to it or set \"coreos.swarm.etcd_endpoints\""
                ),
            );
        }
    }
}

/// `coreos.fleet.metadata` (fleet upper-cases its variables, so any case)
/// as (key as written, value).
fn fleet_metadata_raw(coreos: &Coreos) -> Option<(&str, &str)> {
    coreos
        .fleet
        .iter()
        .rev()
        .find(|(k, _)| k.eq_ignore_ascii_case("metadata"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
}

/// fleet's metadata syntax: `key=value` items separated by commas, spaces
/// around them trimmed, empty items skipped; an item without `=` or with
/// an empty key is `Err(item)`.
pub fn fleet_pairs(raw: &str) -> Vec<Result<(&str, &str), &str>> {
    raw.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| match item.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim(), v.trim())),
            _ => Err(item),
        })
        .collect()
}

/// The node labels: `coreos.fleet.metadata`'s pairs, then
/// `coreos.swarm.labels` over them, sorted by key. Malformed metadata
/// items are left out (validation reports them).
pub fn node_labels(coreos: &Coreos) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    if let Some((_, raw)) = fleet_metadata_raw(coreos) {
        for (k, v) in fleet_pairs(raw).into_iter().flatten() {
            labels.insert(k.to_string(), v.to_string());
        }
    }
    if let Some(swarm) = &coreos.swarm {
        for (k, v) in &swarm.labels {
            labels.insert(k.clone(), v.clone());
        }
    }
    labels
}

/// The etcd the agent uses: `coreos.swarm.etcd_endpoints`, else
/// `coreos.locksmith.endpoint` (a comma-separated list), else the local
/// member when `coreos.etcd2` has keys, else none. Trailing `/` removed.
pub fn etcd_endpoints(coreos: &Coreos) -> Vec<String> {
    let clean = |items: &mut dyn Iterator<Item = &str>| -> Vec<String> {
        items
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.trim_end_matches('/').to_string())
            .collect()
    };
    if let Some(s) = &coreos.swarm {
        let own = clean(&mut s.etcd_endpoints.iter().map(String::as_str));
        if !own.is_empty() {
            return own;
        }
    }
    if let Some(endpoint) = coreos
        .locksmith
        .as_ref()
        .and_then(|l| l.endpoint.as_deref())
    {
        let list = clean(&mut endpoint.split(','));
        if !list.is_empty() {
            return list;
        }
    }
    if coreos.etcd2.is_empty() {
        Vec::new()
    } else {
        vec![LOCAL_ETCD.to_string()]
    }
}

/// A manager entry as `host:port` (port 2377 added when absent, an IPv6
/// address in brackets), or why it is not one.
pub fn manager_address(entry: &str) -> Result<String, String> {
    let entry = entry.trim();
    if entry.is_empty() {
        return Err("the entry is empty".into());
    }
    let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
        let (v6, after) = rest
            .split_once(']')
            .ok_or("a '[' without its ']' (write [v6]:port)")?;
        v6.parse::<Ipv6Addr>()
            .map_err(|_| format!("{v6:?} in brackets is not an IPv6 address"))?;
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or("expected :port after the ']'")?,
            ),
        };
        (format!("[{v6}]"), port)
    } else if let Ok(v6) = entry.parse::<Ipv6Addr>() {
        (format!("[{v6}]"), None)
    } else {
        let (host, port) = match entry.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (entry, None),
        };
        if host.contains(':') {
            return Err("an IPv6 address with a port is written [v6]:port".into());
        }
        if let Some(why) = host_problem(host) {
            return Err(why);
        }
        (host.to_string(), port)
    };
    let port = match port {
        Some(p) => parse_port(p)?,
        None => MANAGER_PORT,
    };
    Ok(format!("{host}:{port}"))
}

/// Ports 1–65535, decimal digits only.
fn parse_port(p: &str) -> Result<u16, String> {
    let ok = !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit());
    match p.parse::<u32>() {
        Ok(n @ 1..=65535) if ok => Ok(n as u16),
        _ => Err(format!("the port {p:?} is not a number from 1 to 65535")),
    }
}

/// Why `host` is neither an IPv4 address nor a DNS name.
fn host_problem(host: &str) -> Option<String> {
    if host.is_empty() {
        return Some("the host is empty".into());
    }
    if host.parse::<Ipv4Addr>().is_ok() {
        return None;
    }
    // All digits and dots: meant as an IPv4 address, and not one.
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Some(format!("{host:?} is not an IPv4 address"));
    }
    let name_ok = host.len() <= 253
        && host.trim_end_matches('.').split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if name_ok {
        None
    } else {
        Some(format!(
            "{host:?} is neither an IP address nor a DNS name (letters, digits and '-' in dot-separated labels)"
        ))
    }
}

/// An etcd endpoint: `http(s)://host[:port]`, optionally ending in `/`;
/// returns the host (brackets removed).
fn parse_endpoint(url: &str) -> Result<&str, String> {
    let url = url.trim();
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("expected an http:// or https:// URL such as http://10.0.0.1:2379".into());
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(format!("the scheme {scheme:?} is not http or https"));
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if let Some(c) = authority
        .chars()
        .find(|c| matches!(c, '/' | '?' | '#' | '@'))
    {
        return Err(format!(
            "an etcd endpoint is scheme://host[:port] ({c:?} is not allowed)"
        ));
    }
    let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
        let (v6, after) = inner.split_once(']').ok_or("a '[' without its ']'")?;
        v6.parse::<Ipv6Addr>()
            .map_err(|_| format!("{v6:?} in brackets is not an IPv6 address"))?;
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or("expected :port after the ']'")?,
            ),
        };
        (v6, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if !authority.starts_with('[') {
        if host.contains(':') {
            return Err("an IPv6 address is written in brackets, [v6]:port".into());
        }
        if let Some(why) = host_problem(host) {
            return Err(why);
        }
    }
    if let Some(p) = port {
        parse_port(p)?;
    }
    Ok(host)
}

/// An IP address on the public internet (a DNS name cannot be judged).
fn is_public(host: &str) -> bool {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => {
            let [a, b, ..] = v4.octets();
            let shared = a == 100 && (64..128).contains(&b); // 100.64/10, carrier-grade NAT
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || shared)
        }
        Ok(IpAddr::V6(v6)) => {
            let first = v6.segments()[0];
            let unique_local = first & 0xfe00 == 0xfc00;
            let link_local = first & 0xffc0 == 0xfe80;
            !(v6.is_loopback() || v6.is_unspecified() || unique_local || link_local)
        }
        Err(_) => false,
    }
}

/// Why docker could not advertise `addr`: an IP address or an interface
/// name is what `--advertise-addr` takes here (no port: the agent adds
/// the swarm's).
pub fn advertise_addr_problem(addr: &str) -> Option<String> {
    if addr.parse::<IpAddr>().is_ok() {
        return None;
    }
    let interface = (1..=15).contains(&addr.len())
        && addr
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if interface {
        return None;
    }
    Some(
        "expected an IPv4 or IPv6 address (without a port) or an interface name such as eth1 \
         (letters, digits, '_', '.', '-'; at most 15)"
            .into(),
    )
}

/// Why `token` is not a swarm join token.
pub fn token_problem(token: &str) -> Option<String> {
    let Some(rest) = token.strip_prefix(TOKEN_PREFIX) else {
        return Some(format!(
            "a swarm join token starts with {TOKEN_PREFIX:?} (as `docker swarm join-token -q worker` prints it)"
        ));
    };
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Some(format!(
            "a swarm join token is {TOKEN_PREFIX:?} followed by letters, digits and '-'"
        ));
    }
    None
}

/// Docker's label key characters.
pub fn label_key_problem(key: &str) -> Option<String> {
    let ok = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    (!ok).then(|| "a label key is letters, digits, '.', '_' and '-'".to_string())
}

/// A label value goes on one line of comma-separated labels.
pub fn label_value_problem(value: &str) -> Option<String> {
    if value.contains(['\n', '\r']) {
        return Some("the value must be a single line".into());
    }
    if value.contains(',') {
        return Some("the value must not contain ',' (labels are separated by commas)".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manager_addresses() {
        for (entry, want) in [
            ("10.77.0.1", "10.77.0.1:2377"),
            ("10.77.0.2:2377", "10.77.0.2:2377"),
            (" mgr-1.example.org:4000 ", "mgr-1.example.org:4000"),
            ("fd00::1", "[fd00::1]:2377"),
            ("[fd00::1]", "[fd00::1]:2377"),
            ("[fd00::1]:2400", "[fd00::1]:2400"),
            ("localhost", "localhost:2377"),
        ] {
            assert_eq!(manager_address(entry).as_deref(), Ok(want), "{entry}");
        }
        for (entry, why) in [
            ("10.77.0.1:0", "1 to 65535"),
            ("10.77.0.1:65536", "1 to 65535"),
            ("10.77.0.1:+80", "1 to 65535"),
            ("10.77.0.1:", "1 to 65535"),
            ("10.77.0.300", "not an IPv4 address"),
            ("mgr_1", "neither an IP address nor a DNS name"),
            ("-mgr", "neither"),
            ("[fd00::1]2377", "expected :port"),
            ("[10.0.0.1]:2377", "not an IPv6 address"),
            ("fd00::1::2:80", "[v6]:port"),
            (":2377", "host is empty"),
            ("", "empty"),
        ] {
            let err = manager_address(entry).unwrap_err();
            assert!(err.contains(why), "{entry}: {err}");
        }
    }

    #[test]
    fn endpoints() {
        for url in [
            "http://127.0.0.1:2379",
            "https://etcd.internal:2379/",
            "HTTP://[fd00::1]:2379",
            "http://10.0.0.1",
        ] {
            assert!(parse_endpoint(url).is_ok(), "{url}");
        }
        for (url, why) in [
            ("10.0.0.1:2379", "http:// or https://"),
            ("ftp://10.0.0.1", "not http or https"),
            ("http://10.0.0.1:2379/v2/keys", "'/' is not allowed"),
            ("http://user@10.0.0.1:2379", "'@' is not allowed"),
            ("http://:2379", "host is empty"),
            ("http://10.0.0.1:99999", "1 to 65535"),
            ("http://fd00::1:2379", "brackets"),
        ] {
            let err = parse_endpoint(url).unwrap_err();
            assert!(err.contains(why), "{url}: {err}");
        }
        assert!(is_public("203.0.113.5"));
        assert!(is_public("2001:db8::1"));
        for private in [
            "10.1.2.3",
            "192.168.0.1",
            "100.64.0.1",
            "127.0.0.1",
            "fd00::1",
            "fe80::1",
            "etcd.internal",
        ] {
            assert!(!is_public(private), "{private}");
        }
    }

    #[test]
    fn tokens_labels_addresses() {
        assert_eq!(token_problem("SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-1awxwuwd3z9j1z3puu7rcgdbx"), None);
        assert!(token_problem("abc")
            .unwrap()
            .contains("starts with \"SWMTKN-1-\""));
        assert!(token_problem("SWMTKN-1-").unwrap().contains("followed by"));
        assert!(token_problem("SWMTKN-1-ab cd")
            .unwrap()
            .contains("followed by"));
        assert_eq!(label_key_problem("com.example.zone_1-a"), None);
        assert!(label_key_problem("a b").is_some());
        assert!(label_key_problem("").is_some());
        assert_eq!(label_value_problem("x=y z"), None);
        assert!(label_value_problem("a,b").is_some());
        assert!(label_value_problem("a\nb").is_some());
        for ok in ["10.77.0.1", "fd00::1", "eth1", "enp0s3.100", "br_lan-0"] {
            assert_eq!(advertise_addr_problem(ok), None, "{ok}");
        }
        for bad in ["10.77.0.1:2377", "", "averyveryverylongname", "eth 1"] {
            assert!(advertise_addr_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn fleet_metadata_pairs() {
        assert_eq!(
            fleet_pairs(" region=west, disk = ssd ,,x="),
            [Ok(("region", "west")), Ok(("disk", "ssd")), Ok(("x", ""))]
        );
        assert_eq!(
            fleet_pairs("region=west,ssd,=v"),
            [Ok(("region", "west")), Err("ssd"), Err("=v")]
        );
    }

    fn coreos(swarm: Option<Swarm>) -> Coreos {
        Coreos {
            swarm,
            ..Coreos::default()
        }
    }

    #[test]
    fn etcd_endpoint_defaults() {
        let mut c = coreos(Some(Swarm::default()));
        assert!(etcd_endpoints(&c).is_empty());
        c.etcd2 = vec![("name".into(), "n1".into())];
        assert_eq!(etcd_endpoints(&c), [LOCAL_ETCD]);
        c.locksmith = Some(crate::schema::Locksmith {
            endpoint: Some("http://10.0.0.1:2379/, http://10.0.0.2:2379".into()),
            ..Default::default()
        });
        assert_eq!(
            etcd_endpoints(&c),
            ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]
        );
        c.swarm.as_mut().unwrap().etcd_endpoints = vec!["https://e:2379".into()];
        assert_eq!(etcd_endpoints(&c), ["https://e:2379"]);
    }

    #[test]
    fn labels_merge_with_swarm_winning() {
        let mut c = coreos(Some(Swarm {
            labels: vec![
                ("region".into(), "east".into()),
                ("gpu".into(), String::new()),
            ],
            ..Swarm::default()
        }));
        c.fleet = vec![("metadata".into(), "region=west,disk=ssd,broken".into())];
        let labels: Vec<(String, String)> = node_labels(&c).into_iter().collect();
        assert_eq!(
            labels,
            [
                ("disk".to_string(), "ssd".to_string()),
                ("gpu".to_string(), String::new()),
                ("region".to_string(), "east".to_string())
            ]
        );
    }

    // The rules through `validate`, with the positions users see.

    /// The findings, less the hint that fleet is not on the image (these
    /// tests are about swarm; `fleet_flannel.rs` tests the hint).
    fn lines_with(text: &str, subs: &Substitutions) -> Vec<String> {
        crate::validate_with(text.as_bytes(), subs)
            .render_text("u")
            .lines()
            .filter(|l| !l.contains("fleet is not on this image"))
            .map(String::from)
            .collect()
    }

    /// With `$private_ipv4` known, so the default address is no warning.
    fn lines(text: &str) -> Vec<String> {
        lines_with(text, &private("10.77.0.1"))
    }

    fn private(ip: &str) -> Substitutions {
        Substitutions {
            private_ipv4: Some(ip.into()),
            ..Substitutions::default()
        }
    }

    const NONE: [&str; 0] = [];

    #[test]
    fn role_is_required_and_checked() {
        assert_eq!(
            lines("#cloud-config\ncoreos:\n  swarm:\n    role: manager\n"),
            NONE
        );
        assert_eq!(
            lines("#cloud-config\ncoreos:\n  swarm:\n    labels: {a: b}\n"),
            ["u:3:3: error: \"coreos.swarm\" has no \"role\": set it to manager or worker"]
        );
        assert_eq!(
            lines("#cloud-config\ncoreos:\n  swarm:\n    role: leader\n"),
            ["u:4:11: error: invalid value \"leader\" for \"coreos.swarm.role\": expected one of manager, worker"]
        );
        // An empty section has no role either.
        assert_eq!(
            lines("#cloud-config\ncoreos:\n  swarm:\n"),
            ["u:3:3: error: \"coreos.swarm\" has no \"role\": set it to manager or worker"]
        );
    }

    #[test]
    fn unknown_keys_are_warnings_like_elsewhere() {
        assert_eq!(
            lines("#cloud-config\ncoreos:\n  swarm:\n    role: manager\n    advertise-adr: eth1\n"),
            ["u:5:5: warning: unrecognized key \"advertise-adr\" (did you mean \"advertise_addr\"?)"]
        );
        // Dashes are accepted as elsewhere.
        assert_eq!(
            lines("#cloud-config\ncoreos:\n  swarm:\n    role: manager\n    advertise-addr: eth1\n    join-token: SWMTKN-1-a-b\n"),
            NONE
        );
    }

    #[test]
    fn a_worker_must_find_a_manager() {
        let worker = |extra: &str| {
            lines(&format!(
                "#cloud-config\ncoreos:\n  swarm:\n    role: worker\n{extra}"
            ))
        };
        assert_eq!(
            worker(""),
            ["u:4:11: error: a worker needs a way to find a manager: \"managers\" with \"join_token\", or an etcd where the managers publish them (\"etcd_endpoints\", \"coreos.etcd2\" or \"coreos.locksmith.endpoint\")"]
        );
        assert_eq!(
            worker("    managers: [10.77.0.1]\n"),
            ["u:4:11: error: a worker needs a way to find a manager: it has \"managers\" but no \"join_token\", and no etcd (\"etcd_endpoints\", \"coreos.etcd2\" or \"coreos.locksmith.endpoint\") to read it from"]
        );
        assert!(worker("    join_token: SWMTKN-1-x\n")[0]
            .contains("it has \"join_token\" but no \"managers\""));
        for ok in [
            "    managers: [10.77.0.1]\n    join_token: SWMTKN-1-abc\n",
            "    etcd_endpoints: [http://10.77.0.1:2379]\n",
            "  locksmith:\n    endpoint: http://10.77.0.1:2379\n",
            "  etcd2:\n    name: node2\n",
        ] {
            assert_eq!(worker(ok), NONE, "{ok}");
        }
    }

    #[test]
    fn join_tokens() {
        let text = |t: &str| {
            format!("#cloud-config\ncoreos:\n  swarm:\n    role: manager\n    join_token: {t}\n")
        };
        assert_eq!(
            lines(&text("SWMTKN-1-3pu6hszjas19xyp7ghgo-1awxwuwd3z9j1z3p")),
            NONE
        );
        assert_eq!(
            lines(&text("swmtkn-1-abc")),
            ["u:5:17: error: invalid value for \"coreos.swarm.join_token\": a swarm join token starts with \"SWMTKN-1-\" (as `docker swarm join-token -q worker` prints it)"]
        );
    }

    #[test]
    fn managers_and_endpoints_name_the_entry() {
        let text = "#cloud-config\ncoreos:\n  swarm:\n    role: worker\n    join_token: SWMTKN-1-a\n    managers:\n      - 10.77.0.1\n      - 10.77.0.2:99999\n      - \"[fd00::1]:2377\"\n    etcd_endpoints: [http://10.77.0.1:2379, \"10.77.0.2:2379\", http://203.0.113.9:2379]\n";
        assert_eq!(
            lines(text),
            [
                "u:8:9: error: invalid value \"10.77.0.2:99999\" for \"coreos.swarm.managers[1]\": the port \"99999\" is not a number from 1 to 65535",
                "u:10:45: error: invalid value \"10.77.0.2:2379\" for \"coreos.swarm.etcd_endpoints[1]\": expected an http:// or https:// URL such as http://10.0.0.1:2379",
                "u:10:63: warning: \"coreos.swarm.etcd_endpoints[2]\" http://203.0.113.9:2379 is not a private address: the agent publishes the swarm's join tokens in this etcd, and whoever can read it can join the swarm; keep etcd on the private network",
            ]
        );
        // A comma-separated string is a list too.
        assert_eq!(
            lines("#cloud-config\ncoreos:\n  swarm:\n    role: manager\n    managers: 10.77.0.1, mgr2.lan:2400\n"),
            NONE
        );
    }

    #[test]
    fn labels_and_fleet_metadata() {
        assert_eq!(
            lines("#cloud-config\ncoreos:\n  fleet:\n    metadata: region=west,disk=ssd\n  swarm:\n    role: manager\n    labels:\n      zone: a\n      com.example.tier-1:\n"),
            NONE
        );
        assert_eq!(
            lines("#cloud-config\ncoreos:\n  swarm:\n    role: manager\n    labels:\n      ok: fine\n      bad key: x\n      list: \"a,b\"\n"),
            [
                "u:7:7: error: node label \"bad key\" in \"coreos.swarm.labels\": a label key is letters, digits, '.', '_' and '-'",
                "u:8:7: error: node label \"list\" in \"coreos.swarm.labels\": the value must not contain ',' (labels are separated by commas)",
            ]
        );
        let fleet = "#cloud-config\ncoreos:\n  fleet:\n    metadata: \"region=west,ssd,a b=c\"\n";
        // Without coreos.swarm the metadata is fleet's business, as before.
        assert_eq!(lines(fleet), NONE);
        assert_eq!(
            lines(&format!("{fleet}  swarm:\n    role: manager\n")),
            [
                "u:4:15: error: \"coreos.fleet.metadata\" item \"ssd\" is not key=value; with coreos.swarm its pairs become node labels",
                "u:4:15: error: node label \"a b\" from \"coreos.fleet.metadata\": a label key is letters, digits, '.', '_' and '-'",
            ]
        );
        // A clash: swarm.labels wins, with a warning at the label.
        assert_eq!(
            lines("#cloud-config\ncoreos:\n  fleet:\n    metadata: region=west,disk=ssd\n  swarm:\n    role: manager\n    labels:\n      disk: ssd\n      region: east\n"),
            ["u:9:7: warning: node label \"region\": \"east\" from \"coreos.swarm.labels\" wins over \"west\" from \"coreos.fleet.metadata\""]
        );
    }

    #[test]
    fn advertise_addr_default_and_checks() {
        let text = "#cloud-config\ncoreos:\n  swarm:\n    role: manager\n";
        let report = crate::validate_with(text.as_bytes(), &private("10.77.0.5"));
        assert!(report.findings.is_empty(), "{:?}", report.findings);
        let swarm = report.config.unwrap().coreos.swarm.unwrap();
        assert_eq!(swarm.advertise_addr.as_deref(), Some("10.77.0.5"));
        assert_eq!((swarm.line, swarm.lines.role), (3, 4));
        // No value known: a warning, and the address is left to docker.
        assert_eq!(
            lines_with(text, &Substitutions::default()),
            ["u:3:3: warning: \"coreos.swarm.advertise_addr\" is $private_ipv4 (the default), which has no value here: no metadata gives it and no .network unit of the user-data has an IPv4 Address=; swarm.conf leaves ADVERTISE_ADDR out and docker chooses the address (it refuses when the machine has several)"]
        );
        let written = |addr: &str| lines(&format!("{text}    advertise_addr: {addr}\n"));
        assert_eq!(written("eth1"), NONE);
        assert_eq!(written("\"fd00::1\""), NONE);
        assert_eq!(written("$private_ipv4"), NONE);
        assert_eq!(
            written("10.77.0.1:2377"),
            ["u:5:21: error: invalid value \"10.77.0.1:2377\" for \"coreos.swarm.advertise_addr\": expected an IPv4 or IPv6 address (without a port) or an interface name such as eth1 (letters, digits, '_', '.', '-'; at most 15)"]
        );
        assert!(lines_with(
            &format!("{text}    advertise_addr: $public_ipv4\n"),
            &Substitutions::default()
        )[0]
            .starts_with("u:5:21: warning: \"coreos.swarm.advertise_addr\" uses $public_ipv4, which has no value here"));
    }

    #[test]
    fn the_default_address_falls_back_to_the_static_one() {
        // No metadata: `$private_ipv4` is the user-data's own static
        // address even though the text never names the variable.
        let text = "#cloud-config\ncoreos:\n  swarm:\n    role: manager\n  units:\n    - name: 10-lan.network\n      content: |\n        [Match]\n        Name=eth1\n        [Network]\n        Address=10.77.0.3/24\n";
        let report = crate::validate(text.as_bytes());
        assert_eq!(
            report.render_text("u"),
            "u:6:13: info: $private_ipv4 is 10.77.0.3: no metadata gives one, and this is the first IPv4 Address= of the user-data's .network units (\"10-lan.network\")\n"
        );
        let swarm = report.config.unwrap().coreos.swarm.unwrap();
        assert_eq!(swarm.advertise_addr.as_deref(), Some("10.77.0.3"));
    }

    #[test]
    fn variables_without_a_value_are_warnings() {
        assert_eq!(
            lines_with(
                "#cloud-config\ncoreos:\n  swarm:\n    role: manager\n    advertise_addr: eth1\n    etcd_endpoints: [\"http://$private_ipv4:2379\"]\n",
                &Substitutions::default()
            ),
            ["u:6:22: warning: \"coreos.swarm.etcd_endpoints[0]\" uses $private_ipv4, which has no value here (no metadata gives it); slipway-swarm would get the literal text \"$private_ipv4\""]
        );
    }

    #[test]
    fn the_local_etcd_must_listen_on_loopback() {
        let text = |urls: &str| {
            format!("#cloud-config\ncoreos:\n  etcd2:\n    listen-client-urls: {urls}\n  swarm:\n    role: manager\n")
        };
        assert_eq!(
            lines(&text("http://10.77.0.1:2379,http://127.0.0.1:2379")),
            NONE
        );
        assert_eq!(
            lines(&text("http://10.77.0.1:2379")),
            ["u:4:25: warning: slipway-swarm reads etcd at http://127.0.0.1:2379 (with coreos.etcd2 and no \"coreos.swarm.etcd_endpoints\"), but \"coreos.etcd2.listen-client-urls\" does not listen there; add http://127.0.0.1:2379 to it or set \"coreos.swarm.etcd_endpoints\""]
        );
        // Endpoints of its own: the local member does not matter.
        assert_eq!(
            lines(&format!(
                "{}    etcd_endpoints: http://10.77.0.1:2379\n",
                text("http://10.77.0.1:2379")
            )),
            NONE
        );
    }

    #[test]
    fn misplaced_at_the_top_level() {
        assert_eq!(
            lines("#cloud-config\nswarm:\n  role: manager\n"),
            ["u:2:1: warning: \"swarm\" belongs under \"coreos\", not at the top level: it is ignored here"]
        );
    }
}

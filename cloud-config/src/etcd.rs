//! `coreos.etcd2` against the etcd the image ships: Debian bookworm's
//! `etcd-server` 3.4 (3.4.23). Every key becomes an `ETCD_<KEY>` variable
//! of the unit (see `apply/generated.rs`), which etcd reads as the flag
//! `--<key>`; an `ETCD_*` variable that names no flag is only logged by
//! etcd ("unrecognized environment variable") and otherwise ignored, while
//! a value its flag cannot parse stops etcd at every start.
//!
//! So: a key that is no flag of etcd 3.4 is a warning ([`key_problem`]);
//! a value etcd would refuse is an error ([`value_problem`]), and so are
//! the combinations etcd refuses at start ([`combination_problems`]).
//! The messages name what etcd says, checked against etcd 3.4.23:
//!
//! - URL lists (`listen-*`, `advertise-client-urls`,
//!   `initial-advertise-peer-urls`): each item `scheme://host:port` with
//!   scheme http, https, unix or unixs, a port, a host and no path (etcd's
//!   `types.NewURLs`: "URL address does not have the form host:port", "URL
//!   must not contain a path"); a `listen-*` URL binds, so its host must
//!   be an IP address or `localhost` ("expected IP in URL for binding").
//! - `initial-cluster`: `name=URL` items, each URL as above.
//! - Booleans: Go's `strconv.ParseBool` spellings (`true`, `1`, `t`…),
//!   plus YAML 1.1's `yes`/`no`/`on`/`off`, which Container Linux configs
//!   use: coreos-cloudinit read them as booleans, so the drop-in writes
//!   them as `true`/`false` ([`env_value`]).
//! - Numbers are decimal; durations are Go's (`5s`, `2h`).
//! - `election-timeout` ≥ 5 × `heartbeat-interval` (defaults 1000 and
//!   100) and ≤ 50000, `heartbeat-interval` > 0.
//! - At most one of `initial-cluster`, `discovery`, `discovery-srv`.
//! - With `name` and `initial-cluster`, the name must be in the cluster,
//!   and its URLs there must be `initial-advertise-peer-urls` (compared
//!   only when every host is an IP address: etcd resolves names first).

use std::borrow::Cow;
use std::net::IpAddr;

use crate::schema::EnvMap;

/// Every flag of etcd 3.4.23 (as `etcd --help` lists them, plus the four
/// it accepts without listing: `config-file`, `log-output`,
/// `unsafe-no-fsync`, `experimental-enable-lease-checkpoint-persist`).
pub const FLAGS: [&str; 84] = [
    // Member.
    "name",
    "data-dir",
    "wal-dir",
    "snapshot-count",
    "heartbeat-interval",
    "election-timeout",
    "initial-election-tick-advance",
    "listen-peer-urls",
    "listen-client-urls",
    "max-snapshots",
    "max-wals",
    "quota-backend-bytes",
    "backend-batch-interval",
    "backend-batch-limit",
    "max-txn-ops",
    "max-request-bytes",
    "max-concurrent-streams",
    "grpc-keepalive-min-time",
    "grpc-keepalive-interval",
    "grpc-keepalive-timeout",
    // Clustering.
    "initial-advertise-peer-urls",
    "initial-cluster",
    "initial-cluster-state",
    "initial-cluster-token",
    "advertise-client-urls",
    "discovery",
    "discovery-fallback",
    "discovery-proxy",
    "discovery-srv",
    "discovery-srv-name",
    "strict-reconfig-check",
    "pre-vote",
    "auto-compaction-retention",
    "auto-compaction-mode",
    "enable-v2",
    // Security.
    "cert-file",
    "key-file",
    "client-cert-auth",
    "client-crl-file",
    "client-cert-allowed-hostname",
    "trusted-ca-file",
    "auto-tls",
    "peer-cert-file",
    "peer-key-file",
    "peer-client-cert-auth",
    "peer-trusted-ca-file",
    "peer-cert-allowed-cn",
    "peer-cert-allowed-hostname",
    "peer-auto-tls",
    "peer-crl-file",
    "cipher-suites",
    "cors",
    "host-whitelist",
    // Auth.
    "auth-token",
    "bcrypt-cost",
    "auth-token-ttl",
    // Profiling and monitoring.
    "enable-pprof",
    "metrics",
    "listen-metrics-urls",
    // Logging.
    "logger",
    "log-outputs",
    "log-output",
    "log-level",
    "debug",
    "log-package-levels",
    // The v2 proxy.
    "proxy",
    "proxy-failure-wait",
    "proxy-refresh-interval",
    "proxy-dial-timeout",
    "proxy-write-timeout",
    "proxy-read-timeout",
    // Experimental and unsafe.
    "experimental-initial-corrupt-check",
    "experimental-corrupt-check-time",
    "experimental-enable-v2v3",
    "experimental-backend-bbolt-freelist-type",
    "experimental-enable-lease-checkpoint",
    "experimental-enable-lease-checkpoint-persist",
    "experimental-compaction-batch-limit",
    "experimental-peer-skip-client-san-verification",
    "experimental-watch-progress-notify-interval",
    "experimental-warning-apply-duration",
    "force-new-cluster",
    "unsafe-no-fsync",
    "config-file",
];

/// Keys of older etcds that configs for Container Linux still carry, with
/// what etcd 3.4 wants instead.
const RETIRED: [(&str, &str); 9] = [
    (
        "ca-file",
        "was removed in etcd 3.4; write \"trusted-ca-file\" and \"client-cert-auth: true\"",
    ),
    (
        "peer-ca-file",
        "was removed in etcd 3.4; write \"peer-trusted-ca-file\" and \"peer-client-cert-auth: true\"",
    ),
    ("addr", "is etcd 0.4's; etcd 3.4 takes \"advertise-client-urls\""),
    (
        "peer-addr",
        "is etcd 0.4's; etcd 3.4 takes \"initial-advertise-peer-urls\"",
    ),
    ("bind-addr", "is etcd 0.4's; etcd 3.4 takes \"listen-client-urls\""),
    (
        "peer-bind-addr",
        "is etcd 0.4's; etcd 3.4 takes \"listen-peer-urls\"",
    ),
    ("peers", "is etcd 0.4's; etcd 3.4 takes \"initial-cluster\""),
    (
        "peer-heartbeat-interval",
        "is etcd 0.4's; etcd 3.4 takes \"heartbeat-interval\"",
    ),
    (
        "peer-election-timeout",
        "is etcd 0.4's; etcd 3.4 takes \"election-timeout\"",
    ),
];

/// etcd's spelling of a `coreos.etcd2` key (the parser turns `-` into
/// `_`; etcd upper-cases the variable, so case does not matter).
pub fn flag_name(key: &str) -> String {
    key.replace('_', "-").to_ascii_lowercase()
}

/// Why etcd 3.4 would ignore `key` (as written), or None for a flag.
pub fn key_problem(key: &str) -> Option<String> {
    let flag = flag_name(key);
    if FLAGS.contains(&flag.as_str()) {
        return None;
    }
    if let Some((_, why)) = RETIRED.iter().find(|(k, _)| *k == flag) {
        return Some(format!("\"coreos.etcd2\" key {key:?} {why}"));
    }
    let mut msg =
        format!("\"coreos.etcd2\" key {key:?} is not a flag of etcd 3.4; etcd ignores it");
    if let Some(s) = crate::similar::suggestion(&flag, &FLAGS) {
        msg.push_str(&format!(" (did you mean {s:?}?)"));
    }
    Some(msg)
}

/// How etcd reads a flag's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Bool,
    /// Go `uint`: decimal digits.
    Uint,
    /// Go `int`: an optional `-`, decimal digits.
    Int,
    /// Go `time.Duration` (`ParseDuration`).
    Duration,
    /// A comma-separated URL list; `bind`: listened on.
    Urls {
        bind: bool,
    },
    /// `name=URL,…`.
    Cluster,
    OneOf(&'static [&'static str]),
    /// Hours as a number, or a duration (`auto-compaction-retention`).
    Retention,
    /// An http(s) URL (`discovery`).
    HttpUrl,
}

fn kind(flag: &str) -> Kind {
    match flag {
        "strict-reconfig-check"
        | "pre-vote"
        | "enable-v2"
        | "client-cert-auth"
        | "auto-tls"
        | "peer-client-cert-auth"
        | "peer-auto-tls"
        | "enable-pprof"
        | "debug"
        | "initial-election-tick-advance"
        | "experimental-initial-corrupt-check"
        | "experimental-enable-lease-checkpoint"
        | "experimental-enable-lease-checkpoint-persist"
        | "experimental-peer-skip-client-san-verification"
        | "force-new-cluster"
        | "unsafe-no-fsync" => Kind::Bool,
        "snapshot-count"
        | "heartbeat-interval"
        | "election-timeout"
        | "max-snapshots"
        | "max-wals"
        | "max-txn-ops"
        | "max-request-bytes"
        | "max-concurrent-streams"
        | "bcrypt-cost"
        | "auth-token-ttl"
        | "proxy-failure-wait"
        | "proxy-refresh-interval"
        | "proxy-dial-timeout"
        | "proxy-write-timeout"
        | "proxy-read-timeout" => Kind::Uint,
        "quota-backend-bytes" | "backend-batch-limit" | "experimental-compaction-batch-limit" => {
            Kind::Int
        }
        "backend-batch-interval"
        | "grpc-keepalive-min-time"
        | "grpc-keepalive-interval"
        | "grpc-keepalive-timeout"
        | "experimental-corrupt-check-time"
        | "experimental-watch-progress-notify-interval"
        | "experimental-warning-apply-duration" => Kind::Duration,
        "listen-peer-urls" | "listen-client-urls" | "listen-metrics-urls" => {
            Kind::Urls { bind: true }
        }
        "advertise-client-urls" | "initial-advertise-peer-urls" => Kind::Urls { bind: false },
        "initial-cluster" => Kind::Cluster,
        "initial-cluster-state" => Kind::OneOf(&["new", "existing"]),
        "discovery-fallback" => Kind::OneOf(&["exit", "proxy"]),
        "proxy" => Kind::OneOf(&["off", "readonly", "on"]),
        "auto-compaction-mode" => Kind::OneOf(&["periodic", "revision"]),
        "logger" => Kind::OneOf(&["zap", "capnslog"]),
        "auto-compaction-retention" => Kind::Retention,
        "discovery" => Kind::HttpUrl,
        _ => Kind::Text,
    }
}

/// Go's `strconv.ParseBool` spellings.
const GO_BOOLS: [(&str, bool); 12] = [
    ("1", true),
    ("t", true),
    ("T", true),
    ("TRUE", true),
    ("true", true),
    ("True", true),
    ("0", false),
    ("f", false),
    ("F", false),
    ("FALSE", false),
    ("false", false),
    ("False", false),
];

/// A boolean as etcd or coreos-cloudinit (YAML 1.1) would read it.
fn boolean(value: &str) -> Option<bool> {
    if let Some((_, b)) = GO_BOOLS.iter().find(|(s, _)| *s == value) {
        return Some(*b);
    }
    match value.to_ascii_lowercase().as_str() {
        "yes" | "on" => Some(true),
        "no" | "off" => Some(false),
        _ => None,
    }
}

/// The value to put in `ETCD_<KEY>`: booleans in YAML 1.1 spellings
/// (`yes`, `off`) become `true`/`false`, which etcd parses; everything
/// else is kept as written.
pub fn env_value<'v>(key: &str, value: &'v str) -> Cow<'v, str> {
    if kind(&flag_name(key)) == Kind::Bool && !GO_BOOLS.iter().any(|(s, _)| *s == value) {
        if let Some(b) = boolean(value) {
            return Cow::Owned(b.to_string());
        }
    }
    Cow::Borrowed(value)
}

/// Why etcd 3.4 would refuse `value` for `key` (a flag), if it would.
pub fn value_problem(key: &str, value: &str) -> Option<String> {
    let flag = flag_name(key);
    let why = match kind(&flag) {
        Kind::Text => return None,
        Kind::Bool => match boolean(value) {
            Some(_) => return None,
            None => "expected true or false".to_string(),
        },
        Kind::Uint => match parse_uint(value) {
            Some(_) => return None,
            None => "expected a whole number (decimal digits)".to_string(),
        },
        Kind::Int => {
            let digits = value.strip_prefix('-').unwrap_or(value);
            match parse_uint(digits) {
                Some(_) => return None,
                None => "expected a whole number (decimal digits)".to_string(),
            }
        }
        Kind::Duration if slipway_boot_contract::duration::is_go_duration(value) => return None,
        Kind::Duration => "expected a duration such as \"5s\" or \"2h\"".to_string(),
        Kind::Urls { bind } => url_list_problem(value, bind)?,
        Kind::Cluster => cluster_problem(value)?,
        Kind::OneOf(allowed) if allowed.contains(&value) => return None,
        Kind::OneOf(allowed) => format!("expected one of {}", allowed.join(", ")),
        Kind::Retention => {
            if parse_uint(value).is_some() || slipway_boot_contract::duration::is_go_duration(value)
            {
                return None;
            }
            "expected a number of hours or a duration such as \"30m\"".to_string()
        }
        Kind::HttpUrl => {
            let lower = value.to_ascii_lowercase();
            let rest = lower
                .strip_prefix("http://")
                .or_else(|| lower.strip_prefix("https://"));
            match rest {
                Some(r) if !r.is_empty() && !r.starts_with('/') => return None,
                _ => "expected an http:// or https:// URL".to_string(),
            }
        }
    };
    Some(format!(
        "invalid value {value:?} for \"coreos.etcd2.{flag}\": {why}; etcd would not start"
    ))
}

fn parse_uint(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// One URL of a list, as etcd's `types.NewURLs` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Url<'a> {
    scheme: String,
    host: &'a str,
    port: &'a str,
}

impl Url<'_> {
    /// The URL as etcd compares it, when the host is an IP address
    /// (etcd resolves host names before comparing).
    fn with_ip(&self) -> Option<String> {
        let ip: IpAddr = self.host.parse().ok()?;
        Some(match ip {
            IpAddr::V4(v4) => format!("{}://{v4}:{}", self.scheme, self.port),
            IpAddr::V6(v6) => format!("{}://[{v6}]:{}", self.scheme, self.port),
        })
    }
}

fn parse_url(item: &str, bind: bool) -> Result<Url<'_>, String> {
    let item = item.trim();
    let Some((scheme, rest)) = item.split_once("://") else {
        return Err(format!("{item:?} is not a URL (scheme://host:port)"));
    };
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https" | "unix" | "unixs") {
        return Err(format!(
            "{item:?}: the scheme must be http, https, unix or unixs"
        ));
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if !path.is_empty() {
        return Err(format!("{item:?} must not have a path (not even \"/\")"));
    }
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = split_host_port(hostport)
        .ok_or_else(|| format!("{item:?} does not have the form host:port"))?;
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{item:?}: the port {port:?} is not a number"));
    }
    if host.is_empty() {
        return Err(format!("{item:?} has an empty host"));
    }
    let binds_ip = host == "localhost" || host.parse::<IpAddr>().is_ok();
    if bind && matches!(scheme.as_str(), "http" | "https") && !binds_ip {
        return Err(format!(
            "{item:?}: etcd listens on an IP address (or localhost), not a host name"
        ));
    }
    Ok(Url { scheme, host, port })
}

/// Go's `net.SplitHostPort`: `host:port` or `[v6]:port`.
fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return Some((host, after.strip_prefix(':')?));
    }
    let (host, port) = s.rsplit_once(':')?;
    (!host.contains(':')).then_some((host, port))
}

fn url_list_problem(value: &str, bind: bool) -> Option<String> {
    value
        .split(',')
        .find_map(|item| parse_url(item, bind).err())
}

/// `initial-cluster` items: `name=URL`.
fn cluster_entries(value: &str) -> Result<Vec<(&str, &str)>, String> {
    value
        .split(',')
        .map(|item| {
            let (name, url) = item
                .trim()
                .split_once('=')
                .ok_or_else(|| format!("{:?} is not name=URL", item.trim()))?;
            parse_url(url, false)?;
            Ok((name, url.trim()))
        })
        .collect()
}

fn cluster_problem(value: &str) -> Option<String> {
    cluster_entries(value).err()
}

/// A finding about a combination of keys: at `key`, an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The `coreos.etcd2` key (as stored, `_` for `-`) to point at.
    pub key: String,
    pub message: String,
}

/// The value of flag `flag` in `env`, with the key as stored.
fn lookup<'e>(env: &'e EnvMap, flag: &str) -> Option<(&'e str, &'e str)> {
    env.iter()
        .rev()
        .find(|(k, _)| flag_name(k) == flag)
        .map(|(k, v)| (k.as_str(), v.as_str()))
}

/// etcd's defaults for the two timers.
const DEFAULT_HEARTBEAT_MS: u64 = 100;
const DEFAULT_ELECTION_MS: u64 = 1000;
/// etcd refuses an election timeout above this (`maxElectionMs`).
const MAX_ELECTION_MS: u64 = 50_000;

/// What etcd refuses at start in the combination of keys. `usable` says
/// whether a key's value may be judged (it is valid and has no variable
/// left without a value).
pub fn combination_problems(env: &EnvMap, usable: &dyn Fn(&str) -> bool) -> Vec<Problem> {
    let get = |flag: &str| lookup(env, flag).filter(|(k, _)| usable(k));
    let mut out = Vec::new();
    // A timer that is set but cannot be judged hides its default.
    let judged = |flag: &str| match lookup(env, flag) {
        None => true,
        Some(_) => get(flag).is_some_and(|(_, v)| parse_uint(v).is_some()),
    };
    if judged("heartbeat-interval") && judged("election-timeout") {
        timer_problems(&get, &mut out);
    }
    // In the order written, so the finding points at the second.
    let bootstrap: Vec<(String, &str)> = env
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, _)| (flag_name(k), k.as_str()))
        .filter(|(f, _)| {
            matches!(
                f.as_str(),
                "initial-cluster" | "discovery" | "discovery-srv"
            )
        })
        .collect();
    if let [_, (_, second), ..] = bootstrap.as_slice() {
        let names: Vec<&str> = bootstrap.iter().map(|(f, _)| f.as_str()).collect();
        out.push(Problem {
            key: second.to_string(),
            message: format!(
                "\"coreos.etcd2\" sets {}: etcd takes one way to bootstrap (initial-cluster, discovery or discovery-srv) and would not start",
                names.join(" and ")
            ),
        });
    }
    if let (Some((_, name)), Some((cluster_key, cluster))) = (get("name"), get("initial-cluster")) {
        member_problems(
            name,
            cluster_key,
            cluster,
            get("initial-advertise-peer-urls"),
            &mut out,
        );
    }
    out
}

fn timer_problems<'e>(get: &dyn Fn(&str) -> Option<(&'e str, &'e str)>, out: &mut Vec<Problem>) {
    let heartbeat = get("heartbeat-interval").and_then(|(k, v)| Some((k, parse_uint(v)?)));
    let election = get("election-timeout").and_then(|(k, v)| Some((k, parse_uint(v)?)));
    if let Some((key, 0)) = heartbeat {
        out.push(Problem {
            key: key.to_string(),
            message:
                "\"coreos.etcd2.heartbeat-interval\" must be more than 0; etcd would not start"
                    .into(),
        });
        return;
    }
    if let Some((key, ms)) = election.filter(|(_, ms)| *ms > MAX_ELECTION_MS) {
        out.push(Problem {
            key: key.to_string(),
            message: format!(
                "\"coreos.etcd2.election-timeout\" {ms} is more than etcd's limit of {MAX_ELECTION_MS} ms; etcd would not start"
            ),
        });
    }
    let hb = heartbeat.map_or(DEFAULT_HEARTBEAT_MS, |(_, v)| v);
    let el = election.map_or(DEFAULT_ELECTION_MS, |(_, v)| v);
    if el < hb.saturating_mul(5) {
        // Point at whichever the user wrote, the election timeout first.
        let key = election.or(heartbeat).map_or("", |(k, _)| k);
        let default = |set: bool| if set { "" } else { " (the default)" };
        out.push(Problem {
            key: key.to_string(),
            message: format!(
                "\"coreos.etcd2.election-timeout\" {el}{} must be at least 5 × \"heartbeat-interval\" {hb}{} = {}; etcd would not start",
                default(election.is_some()),
                default(heartbeat.is_some()),
                hb.saturating_mul(5)
            ),
        });
    }
}

/// This member's entry in `initial-cluster` against `name` and
/// `initial-advertise-peer-urls` (etcd's default `http://localhost:2380`
/// is a host name, so an unset list is never compared).
fn member_problems(
    name: &str,
    cluster_key: &str,
    cluster: &str,
    advertise: Option<(&str, &str)>,
    out: &mut Vec<Problem>,
) {
    let Ok(entries) = cluster_entries(cluster) else {
        return;
    };
    let mine: Vec<&str> = entries
        .iter()
        .filter(|(n, _)| *n == name)
        .map(|(_, u)| *u)
        .collect();
    if mine.is_empty() {
        out.push(Problem {
            key: cluster_key.to_string(),
            message: format!(
                "\"coreos.etcd2.initial-cluster\" has no member named {name:?} (this machine's \"name\"); etcd would not start"
            ),
        });
        return;
    }
    let Some((advertise_key, advertise)) = advertise else {
        return;
    };
    let normalise = |list: &[&str]| -> Option<Vec<String>> {
        let mut v = list
            .iter()
            .map(|item| parse_url(item, false).ok()?.with_ip())
            .collect::<Option<Vec<String>>>()?;
        v.sort();
        v.dedup();
        Some(v)
    };
    let advertised: Vec<&str> = advertise.split(',').collect();
    if let (Some(a), Some(c)) = (normalise(&advertised), normalise(&mine)) {
        if a != c {
            out.push(Problem {
                key: advertise_key.to_string(),
                message: format!(
                    "\"coreos.etcd2.initial-advertise-peer-urls\" ({}) differs from {name:?} in \"initial-cluster\" ({}); etcd would not start",
                    a.join(","),
                    c.join(",")
                ),
            });
        }
    }
}

/// Other things worth a warning: settings that etcd takes but that will
/// not do what a Container Linux user meant, as (key, message).
pub fn warnings(env: &EnvMap) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some((key, value)) = lookup(env, "proxy") {
        if value != "off" {
            out.push((
                key.to_string(),
                format!(
                    "\"coreos.etcd2.proxy: {value}\": etcd 3.4's proxy mode serves only the v2 API, which \
                     etcdctl 3.4 and the update engine's lock do not use; make this machine a member \
                     (or run `etcd grpc-proxy`)"
                ),
            ));
        }
    }
    if let Some((key, dir)) = lookup(env, "data-dir") {
        let dir = dir.trim_end_matches('/');
        if dir != ETCD_HOME && !dir.starts_with(&format!("{ETCD_HOME}/")) {
            out.push((
                key.to_string(),
                format!(
                    "\"coreos.etcd2.data-dir\" {dir:?} is outside {ETCD_HOME}: etcd runs as the user \
                     etcd, which can create its data only under {ETCD_HOME} (the default is \
                     {ETCD_HOME}/default)"
                ),
            ));
        }
    }
    if let Some((key, _)) = lookup(env, "config-file") {
        if env.len() > 1 {
            out.push((
                key.to_string(),
                "with \"coreos.etcd2.config-file\" etcd reads only that file and ignores the other \
                 coreos.etcd2 keys"
                    .to_string(),
            ));
        }
    }
    out
}

/// The etcd user's home, where Debian's unit keeps the data
/// (`ETCD_DATA_DIR=/var/lib/etcd/default`).
const ETCD_HOME: &str = "/var/lib/etcd";

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> EnvMap {
        pairs
            .iter()
            .map(|(k, v)| (k.replace('-', "_"), v.to_string()))
            .collect()
    }

    #[test]
    fn keys() {
        assert_eq!(key_problem("listen_client_urls"), None);
        assert_eq!(key_problem("Initial_Cluster_Token"), None);
        assert_eq!(key_problem("unsafe_no_fsync"), None);
        assert_eq!(
            key_problem("ca_file").unwrap(),
            "\"coreos.etcd2\" key \"ca_file\" was removed in etcd 3.4; write \"trusted-ca-file\" and \"client-cert-auth: true\""
        );
        assert!(key_problem("peer_addr")
            .unwrap()
            .contains("\"initial-advertise-peer-urls\""));
        assert_eq!(
            key_problem("listen_client_url").unwrap(),
            "\"coreos.etcd2\" key \"listen_client_url\" is not a flag of etcd 3.4; etcd ignores it (did you mean \"listen-client-urls\"?)"
        );
        assert!(!key_problem("colour").unwrap().contains("did you mean"));
        // Every flag has a distinct name and a kind that parses.
        let mut sorted = FLAGS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), FLAGS.len());
    }

    #[test]
    fn scalar_values() {
        for (k, v) in [
            ("heartbeat_interval", "100"),
            ("client_cert_auth", "true"),
            ("client_cert_auth", "1"),
            ("enable_v2", "yes"),
            ("initial_cluster_state", "existing"),
            ("quota_backend_bytes", "-1"),
            ("grpc_keepalive_timeout", "20s"),
            ("auto_compaction_retention", "1"),
            ("auto_compaction_retention", "30m"),
            (
                "discovery",
                "http://10.0.2.2:4001/v2/keys/_etcd/registry/abc",
            ),
            ("name", "anything at all"),
        ] {
            assert_eq!(value_problem(k, v), None, "{k}={v}");
        }
        assert_eq!(
            value_problem("election_timeout", "1000ms").unwrap(),
            "invalid value \"1000ms\" for \"coreos.etcd2.election-timeout\": expected a whole number (decimal digits); etcd would not start"
        );
        for (k, v) in [
            ("snapshot_count", "-1"),
            ("client_cert_auth", "maybe"),
            ("initial_cluster_state", "old"),
            ("proxy", "yes"),
            ("grpc_keepalive_timeout", "20"),
            ("auto_compaction_retention", "banana"),
            ("discovery", "discovery.etcd.io/abc"),
            ("logger", "syslog"),
        ] {
            assert!(value_problem(k, v).is_some(), "{k}={v}");
        }
    }

    #[test]
    fn urls_as_etcd_takes_them() {
        let ok = |k: &str, v: &str| value_problem(k, v).is_none();
        assert!(ok(
            "listen_client_urls",
            "http://0.0.0.0:2379,http://127.0.0.1:4001"
        ));
        assert!(ok(
            "listen_client_urls",
            "http://10.0.0.1:2379, http://localhost:2379"
        ));
        assert!(ok("listen_peer_urls", "https://[fd00::1]:2380"));
        assert!(ok(
            "advertise_client_urls",
            "http://node-1.example.org:2379"
        ));
        assert!(ok("listen_client_urls", "unix://etcd.sock:0"));
        let why = |k: &str, v: &str| value_problem(k, v).unwrap();
        assert!(why("listen_client_urls", "http://node-1:2379").contains("not a host name"));
        assert!(why("listen_client_urls", "http://10.0.0.1").contains("host:port"));
        assert!(why("advertise_client_urls", "http://10.0.0.1:2379/").contains("path"));
        assert!(why("advertise_client_urls", "http://:2379").contains("empty host"));
        assert!(why("advertise_client_urls", "ftp://a:1").contains("scheme"));
        assert!(why("advertise_client_urls", "10.0.0.1:2379").contains("not a URL"));
        assert!(why("advertise_client_urls", "http://a:1,").contains("not a URL"));
        assert!(why("advertise_client_urls", "http://a:x").contains("not a number"));
        assert!(why("listen_peer_urls", "http://fd00::1:2380").contains("host:port"));
    }

    #[test]
    fn initial_cluster() {
        assert_eq!(
            value_problem(
                "initial_cluster",
                "n1=http://10.77.0.1:2380,n2=http://10.77.0.2:2380"
            ),
            None
        );
        assert!(value_problem("initial_cluster", "n1")
            .unwrap()
            .contains("\"n1\" is not name=URL"));
        assert!(value_problem("initial_cluster", "n1=10.0.0.1:2380")
            .unwrap()
            .contains("not a URL"));
    }

    #[test]
    fn yaml_booleans_become_go_booleans() {
        assert_eq!(env_value("client_cert_auth", "yes"), "true");
        assert_eq!(env_value("enable-v2", "Off"), "false");
        assert_eq!(env_value("enable_v2", "1"), "1");
        assert_eq!(env_value("name", "yes"), "yes");
    }

    fn problems(pairs: &[(&str, &str)]) -> Vec<String> {
        combination_problems(&env(pairs), &|_| true)
            .into_iter()
            .map(|p| format!("{}: {}", p.key, p.message))
            .collect()
    }

    #[test]
    fn timers() {
        assert!(problems(&[("heartbeat-interval", "100"), ("election-timeout", "500")]).is_empty());
        assert_eq!(
            problems(&[("heartbeat-interval", "200"), ("election-timeout", "900")]),
            ["election_timeout: \"coreos.etcd2.election-timeout\" 900 must be at least 5 × \"heartbeat-interval\" 200 = 1000; etcd would not start"]
        );
        // Only the heartbeat given: the default election timeout is too short.
        assert_eq!(
            problems(&[("heartbeat-interval", "500")]),
            ["heartbeat_interval: \"coreos.etcd2.election-timeout\" 1000 (the default) must be at least 5 × \"heartbeat-interval\" 500 = 2500; etcd would not start"]
        );
        assert!(problems(&[("election-timeout", "60000")])[0].contains("limit of 50000 ms"));
        assert!(problems(&[("heartbeat-interval", "0")])[0].contains("more than 0"));
        // A value that is not a number was reported on its own, and the
        // other timer is not compared with a default it does not have.
        assert!(problems(&[("heartbeat-interval", "x"), ("election-timeout", "1")]).is_empty());
        let unusable = combination_problems(
            &env(&[
                ("heartbeat-interval", "$private_ipv4"),
                ("election-timeout", "300"),
            ]),
            &|k: &str| k != "heartbeat_interval",
        );
        assert!(unusable.is_empty());
        // An empty discovery is no discovery to etcd.
        assert!(problems(&[
            ("discovery", ""),
            ("initial-cluster", "default=http://localhost:2380")
        ])
        .is_empty());
    }

    #[test]
    fn bootstrap_and_membership() {
        assert_eq!(
            problems(&[
                ("discovery", "http://d/v2/keys/x"),
                ("initial-cluster", "a=http://10.0.0.1:2380"),
            ]),
            ["initial_cluster: \"coreos.etcd2\" sets discovery and initial-cluster: etcd takes one way to bootstrap (initial-cluster, discovery or discovery-srv) and would not start"]
        );
        let cluster = "n1=http://10.77.0.1:2380,n2=http://10.77.0.2:2380";
        assert!(problems(&[
            ("name", "n1"),
            ("initial-cluster", cluster),
            ("initial-advertise-peer-urls", "http://10.77.0.1:2380"),
        ])
        .is_empty());
        assert_eq!(
            problems(&[("name", "n3"), ("initial-cluster", cluster)]),
            ["initial_cluster: \"coreos.etcd2.initial-cluster\" has no member named \"n3\" (this machine's \"name\"); etcd would not start"]
        );
        assert_eq!(
            problems(&[
                ("name", "n2"),
                ("initial-cluster", cluster),
                ("initial-advertise-peer-urls", "http://10.77.0.1:2380"),
            ]),
            ["initial_advertise_peer_urls: \"coreos.etcd2.initial-advertise-peer-urls\" (http://10.77.0.1:2380) differs from \"n2\" in \"initial-cluster\" (http://10.77.0.2:2380); etcd would not start"]
        );
        // Host names are resolved by etcd: not compared here.
        assert!(problems(&[
            ("name", "n1"),
            ("initial-cluster", "n1=http://node-1:2380"),
            ("initial-advertise-peer-urls", "http://10.77.0.1:2380"),
        ])
        .is_empty());
    }

    #[test]
    fn warnings_for_container_linux_habits() {
        let w = warnings(&env(&[
            ("proxy", "on"),
            ("data-dir", "/var/lib/etcd2"),
            ("name", "x"),
        ]));
        assert_eq!(w.len(), 2);
        assert!(w[0].1.contains("only the v2 API"), "{w:?}");
        assert!(w[1].1.contains("outside /var/lib/etcd"), "{w:?}");
        assert!(warnings(&env(&[("proxy", "off"), ("data-dir", "/var/lib/etcd/m1/")])).is_empty());
        let w = warnings(&env(&[("config-file", "/etc/etcd.yml"), ("name", "x")]));
        assert!(w[0].1.contains("ignores the other"), "{w:?}");
    }
}

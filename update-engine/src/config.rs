//! The update configuration: `update.conf`.
//!
//! The image ships defaults in [`DEFAULTS_PATH`]; cloud-config writes
//! [`CONFIG_PATH`] from the user-data's `coreos.update` and
//! `coreos.locksmith` (see `cloud-config/src/apply/generated.rs`), and
//! users may add our own keys to that file by hand. Files are applied in
//! order, each key of a later file replacing the earlier value.
//!
//! Format, shared with cloud-config: UTF-8 lines `KEY=value`. The value
//! runs verbatim to the end of the line (no quotes, no escapes); lines
//! whose first non-blank character is `#` are comments; blank lines are
//! skipped. For the keys this engine interprets, blanks around the key
//! and the value are dropped, and an empty value puts the key back to its
//! built-in default (so `/etc` can undo a setting of the image's file).
//! Unknown keys are warnings, not errors, so a file written for a newer
//! engine still works with an older one.
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `SERVER` | base URL (`http://` or `https://`) of the published directory | none: no checks |
//! | `GROUP` | the channel | `stable` |
//! | `REBOOT_STRATEGY` | `reboot`, `etcd-lock`, `fleetlock`, `best-effort` or `off` | `reboot` |
//! | `FLEETLOCK_URL` | base URL of a FleetLock server (`http://`), needed by `fleetlock` | none |
//! | `FLEETLOCK_GROUP` | the FleetLock group | `default` |
//! | `WINDOW_START`, `WINDOW_LENGTH` | maintenance window, both or neither in one file, see [`crate::window`] | none: any time |
//! | `INTERVAL` | time between checks, at least 1m | `1h` |
//! | `JITTER` | most random delay added to each check | `10m` |
//! | `IO_WRITE_MAX`, `IO_READ_MAX` | bytes/s on the slot's disk, or `max` | `max` |
//! | `CPU_WEIGHT` | cgroup `cpu.weight`, 1 to 10000 | 20 |
//! | `CPU_MAX` | share of one CPU, e.g. `50%` (`200%` = two CPUs), or `max` | `50%` |
//! | `MEMORY_MAX` | cgroup `memory.max`, at least 16M, or `max` | `64M` |
//! | `DOWNLOAD_MAX` | bytes/s of downloads, or `max` | `max` |
//! | `CGROUP` | the engine's cgroup, a child of `/sys/fs/cgroup` | `/sys/fs/cgroup/slipway-update` |
//! | `LOCKSMITHD_*` | locksmith's keys for `etcd-lock`, byte for byte (`LOCKSMITHD_ENDPOINT`, `LOCKSMITHD_GROUP`) | none |
//!
//! Sizes are whole or decimal numbers with an optional `K`, `M`, `G` or
//! `T` (also written `KiB`...), powers of 1024 as in systemd's
//! `MemoryMax=` and `IOWriteBandwidthMax=`; `KB`/`MB` are refused as
//! ambiguous. Durations are Go's (`1h30m`, `1.5h`, `300ms`, the units
//! `ns us µs ms s m h`) because cloud-config validates `window_length` as
//! one, plus `d` for days and a bare number meaning seconds (`3600`).
//!
//! `REBOOT_STRATEGY=best-effort` is CoreOS's old default: `etcd-lock` when
//! an etcd answers at the configured endpoints (or the local member) at
//! the time of the reboot, else `reboot`. locksmith's own names for the
//! window, `LOCKSMITHD_REBOOT_WINDOW_START`/`_LENGTH` and
//! `REBOOT_WINDOW_START`/`_LENGTH`, mean `WINDOW_START`/`WINDOW_LENGTH`:
//! files copied from CoreOS or Flatcar use them, and swallowing them into
//! the `LOCKSMITHD_*` map would silently drop a window the user asked for.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::window::Window;
use slipway_boot_contract::duration::scaled;
pub use slipway_boot_contract::duration::{format_duration, parse_duration};

pub const DEFAULTS_PATH: &str = "/usr/lib/slipway/update.conf";
pub const CONFIG_PATH: &str = "/etc/slipway/update.conf";

const DEFAULT_GROUP: &str = "stable";
/// Zincati's default FleetLock group.
const DEFAULT_FLEETLOCK_GROUP: &str = "default";
const DEFAULT_CGROUP: &str = "/sys/fs/cgroup/slipway-update";
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// Below this a memory limit is surely a forgotten suffix (`MEMORY_MAX=64`
/// is 64 bytes), and the engine would be OOM-killed in the middle of every
/// write: it would never finish an update.
const MIN_MEMORY: u64 = 16 * MIB;
/// Likewise for rates: under 64 KiB/s is a forgotten suffix, not a choice
/// (a 1 GiB slot would take 4.5 hours even at that rate).
const MIN_RATE: u64 = 64 * KIB;
/// Checking more often than this only loads the server.
const MIN_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RebootStrategy {
    /// Reboot as soon as an update is written (inside the window, if any).
    #[default]
    Reboot,
    /// Take a lock in etcd first (`LOCKSMITHD_*` say where).
    EtcdLock,
    /// Ask a FleetLock server first (`FLEETLOCK_URL`, `FLEETLOCK_GROUP`).
    FleetLock,
    /// `etcd-lock` if an etcd answers when the reboot is due, else `reboot`.
    BestEffort,
    /// Write updates but never reboot: the next boot picks them up.
    Off,
}

impl RebootStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            RebootStrategy::Reboot => "reboot",
            RebootStrategy::EtcdLock => "etcd-lock",
            RebootStrategy::FleetLock => "fleetlock",
            RebootStrategy::BestEffort => "best-effort",
            RebootStrategy::Off => "off",
        }
    }
}

/// What the engine's cgroup may use while it downloads, checks and writes
/// an update. The aim is that the workloads the machine exists for do not
/// notice: weights cost nothing when the machine is idle, caps bound the
/// worst case on a busy or burstable one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `io.max` wbps on the slot's disk. Unlimited by default: disk speeds
    /// differ a hundredfold between an SD card and NVMe, so any fixed
    /// number is either no limit or a crawl, and a slow write only keeps
    /// the half-written slot around longer. Set it where the disk is
    /// shared with latency-sensitive work.
    pub io_write_bps: Option<u64>,
    /// `io.max` rbps; unlimited by default for the same reason (the engine
    /// reads little: the active slot for delta updates, if ever).
    pub io_read_bps: Option<u64>,
    /// `cpu.weight`, 1 to 10000, 100 being a normal service. 20: under
    /// contention the engine gets a fifth of a normal service's share, like
    /// CoreOS's update_engine that ran with a low `CPUShares=`.
    pub cpu_weight: u32,
    /// `cpu.max` as a percentage of one CPU. 50 by default: hashing and
    /// decompressing are CPU-bound and would otherwise take a whole core,
    /// which on burstable cloud machines spends the workloads' CPU credits;
    /// at half a core an update is slower by seconds, not minutes.
    pub cpu_max_percent: Option<u32>,
    /// `memory.max` in bytes; `u64::MAX` is no limit. 64 MiB: the engine
    /// streams with small buffers and needs a few MiB, and the limit also
    /// bounds the page cache its writes dirty, so an update cannot evict
    /// the workloads' cache.
    pub memory_max: u64,
    /// Bytes per second of downloads. Unlimited by default: the link's
    /// speed is unknown, and the payload has to come down either way.
    pub download_bps: Option<u64>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            io_write_bps: None,
            io_read_bps: None,
            cpu_weight: 20,
            cpu_max_percent: Some(50),
            memory_max: 64 * MIB,
            download_bps: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `SERVER`: base URL of a published directory; `None`: never check.
    pub server: Option<String>,
    /// `GROUP`: the channel.
    pub group: String,
    pub reboot_strategy: RebootStrategy,
    /// `WINDOW_START` + `WINDOW_LENGTH`; `None`: reboot at any time.
    pub window: Option<Window>,
    /// `INTERVAL`: time between two checks.
    pub interval: Duration,
    /// `JITTER`: the most random delay added to each interval, so that a
    /// fleet booted together does not check in lockstep.
    pub jitter: Duration,
    pub limits: Limits,
    /// `CGROUP`: the cgroup (v2) directory the writer runs in.
    pub cgroup: PathBuf,
    /// `LOCKSMITHD_*`, values byte for byte: where the etcd lock is.
    pub locksmith: BTreeMap<String, String>,
    /// `FLEETLOCK_URL`: the FleetLock server, checked (`http://`).
    pub fleetlock_url: Option<String>,
    /// `FLEETLOCK_GROUP`.
    pub fleetlock_group: String,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            server: None,
            group: DEFAULT_GROUP.into(),
            reboot_strategy: RebootStrategy::Reboot,
            window: None,
            interval: Duration::from_secs(3600),
            jitter: Duration::from_secs(600),
            limits: Limits::default(),
            cgroup: PathBuf::from(DEFAULT_CGROUP),
            locksmith: BTreeMap::new(),
            fleetlock_url: None,
            fleetlock_group: DEFAULT_FLEETLOCK_GROUP.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{path}:{line}: {message}")]
    Syntax {
        path: String,
        line: usize,
        message: String,
    },
    #[error("{path}:{line}: {key}: {message}")]
    Value {
        path: String,
        line: usize,
        key: String,
        message: String,
    },
    /// Keys that only work together, checked once every file is read.
    #[error("{0}")]
    Incomplete(String),
}

/// One `KEY=value` line that sets part of the window, kept until the end
/// of the file because the two keys only make sense together.
struct WindowLine {
    line: usize,
    key: String,
    value: String,
}

impl Config {
    /// Applies one file's text over `self`. Returns warnings (unknown keys,
    /// keys set twice, legacy values), each naming `path:line`. On error
    /// `self` is left as it was.
    pub fn parse(&mut self, path: &str, text: &str) -> Result<Vec<String>, ConfigError> {
        let mut next = self.clone();
        let mut warnings = Vec::new();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let (mut start, mut length): (Option<WindowLine>, Option<WindowLine>) = (None, None);
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let defaults = Config::default();

        for (n, raw) in text.lines().enumerate() {
            let line = n + 1;
            // `lines` drops a `\r` only before a `\n`: drop the one of a
            // CRLF file's last line too, so a value never depends on
            // whether the file ends with a newline.
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let Some((key, value)) = raw.split_once('=') else {
                return Err(ConfigError::Syntax {
                    path: path.into(),
                    line,
                    message: format!("expected KEY=value, found {trimmed:?}"),
                });
            };
            let key = key.trim();
            if key.is_empty()
                || !key
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(ConfigError::Syntax {
                    path: path.into(),
                    line,
                    message: format!("{key:?} is not a key (keys are A-Z, 0-9 and _)"),
                });
            }
            let canonical = canonical_key(key);
            if let Some(first) = seen.insert(canonical.to_string(), line) {
                warnings.push(format!(
                    "{path}:{line}: {key}: also set on line {first}; the later line wins"
                ));
            }
            let err = |message: String| ConfigError::Value {
                path: path.into(),
                line,
                key: key.into(),
                message,
            };
            // Our keys ignore blanks around the value; LOCKSMITHD_* do not.
            let v = value.trim();
            match canonical {
                "SERVER" => {
                    next.server = unset_or(v, None, |v| parse_server(v).map(Some)).map_err(err)?
                }
                "GROUP" => {
                    next.group = unset_or(v, defaults.group.clone(), parse_group).map_err(err)?
                }
                "REBOOT_STRATEGY" => {
                    next.reboot_strategy = match v {
                        "" => defaults.reboot_strategy,
                        "reboot" => RebootStrategy::Reboot,
                        "etcd-lock" => RebootStrategy::EtcdLock,
                        "fleetlock" => RebootStrategy::FleetLock,
                        "best-effort" => RebootStrategy::BestEffort,
                        "off" => RebootStrategy::Off,
                        other => {
                            return Err(err(format!(
                                "unknown value {other:?} (expected reboot, etcd-lock, fleetlock, best-effort or off)"
                            )))
                        }
                    }
                }
                "WINDOW_START" | "WINDOW_LENGTH" => {
                    let slot = if canonical == "WINDOW_START" {
                        &mut start
                    } else {
                        &mut length
                    };
                    *slot = Some(WindowLine {
                        line,
                        key: key.into(),
                        value: v.into(),
                    });
                }
                "INTERVAL" => {
                    next.interval = unset_or(v, defaults.interval, |v| {
                        let d = parse_duration(v)?;
                        if d < MIN_INTERVAL {
                            return Err(format!(
                                "{} is too short: at least {} between checks",
                                format_duration(d),
                                format_duration(MIN_INTERVAL)
                            ));
                        }
                        Ok(d)
                    })
                    .map_err(err)?
                }
                "JITTER" => {
                    next.jitter = unset_or(v, defaults.jitter, parse_duration).map_err(err)?
                }
                "IO_WRITE_MAX" => {
                    next.limits.io_write_bps =
                        unset_or(v, defaults.limits.io_write_bps, parse_rate).map_err(err)?
                }
                "IO_READ_MAX" => {
                    next.limits.io_read_bps =
                        unset_or(v, defaults.limits.io_read_bps, parse_rate).map_err(err)?
                }
                "DOWNLOAD_MAX" => {
                    next.limits.download_bps =
                        unset_or(v, defaults.limits.download_bps, parse_rate).map_err(err)?
                }
                "CPU_WEIGHT" => {
                    next.limits.cpu_weight =
                        unset_or(v, defaults.limits.cpu_weight, parse_cpu_weight).map_err(err)?
                }
                "CPU_MAX" => {
                    next.limits.cpu_max_percent =
                        unset_or(v, defaults.limits.cpu_max_percent, parse_cpu_max).map_err(err)?
                }
                "MEMORY_MAX" => {
                    next.limits.memory_max =
                        unset_or(v, defaults.limits.memory_max, parse_memory_max).map_err(err)?
                }
                "FLEETLOCK_URL" => {
                    next.fleetlock_url = unset_or(v, None, |v| {
                        crate::fetch::check_http_url("FleetLock URL", v).map(Some)
                    })
                    .map_err(err)?
                }
                "FLEETLOCK_GROUP" => {
                    next.fleetlock_group =
                        unset_or(v, defaults.fleetlock_group.clone(), parse_fleetlock_group)
                            .map_err(err)?
                }
                "CGROUP" => {
                    next.cgroup = unset_or(v, defaults.cgroup.clone(), parse_cgroup).map_err(err)?
                }
                k if k.starts_with("LOCKSMITHD_") => {
                    // Verbatim: cloud-config promises the value runs to the
                    // end of the line. Empty means unset, as for our keys.
                    if value.is_empty() {
                        next.locksmith.remove(k);
                    } else {
                        next.locksmith.insert(k.into(), value.into());
                    }
                }
                _ => warnings.push(format!("{path}:{line}: unknown key {key}, ignored")),
            }
        }

        next.window = match (start, length) {
            (None, None) => next.window,
            (Some(one), None) | (None, Some(one)) => {
                let other = if canonical_key(&one.key) == "WINDOW_START" {
                    "WINDOW_LENGTH"
                } else {
                    "WINDOW_START"
                };
                return Err(ConfigError::Value {
                    path: path.into(),
                    line: one.line,
                    key: one.key,
                    message: format!("set without {other} in the same file (set both, or neither)"),
                });
            }
            (Some(s), Some(l)) => match (s.value.is_empty(), l.value.is_empty()) {
                (true, true) => None,
                (false, false) => {
                    let at = |w: WindowLine| {
                        move |message| ConfigError::Value {
                            path: path.into(),
                            line: w.line,
                            key: w.key,
                            message,
                        }
                    };
                    let (day, start_minute) =
                        crate::window::parse_start(&s.value).map_err(at(s))?;
                    let length =
                        crate::window::parse_length(&l.value, day.is_some()).map_err(at(l))?;
                    Some(Window {
                        day,
                        start_minute,
                        length,
                    })
                }
                (true, false) | (false, true) => {
                    let (empty, other) = if s.value.is_empty() { (s, l) } else { (l, s) };
                    return Err(ConfigError::Value {
                        path: path.into(),
                        line: empty.line,
                        key: empty.key,
                        message: format!(
                            "empty while {} is set (empty both to remove the window)",
                            other.key
                        ),
                    });
                }
            },
        };

        *self = next;
        Ok(warnings)
    }

    /// Reads the files in order over the defaults. A missing file is
    /// skipped (neither file has to exist); any other failure to read one
    /// is an error, since running without the user's settings (a window,
    /// `off`) could reboot the machine when it was told not to.
    pub fn load(paths: &[&Path]) -> Result<(Config, Vec<String>), ConfigError> {
        let mut config = Config::default();
        let mut warnings = Vec::new();
        for path in paths {
            let name = path.display().to_string();
            let bytes = match std::fs::read(path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(error) => return Err(ConfigError::Read { path: name, error }),
            };
            let text = String::from_utf8(bytes).map_err(|e| {
                let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
                ConfigError::Syntax {
                    path: name.clone(),
                    line: good.iter().filter(|&&b| b == b'\n').count() + 1,
                    message: "not UTF-8 text".into(),
                }
            })?;
            warnings.extend(config.parse(&name, &text)?);
        }
        if config.reboot_strategy == RebootStrategy::FleetLock && config.fleetlock_url.is_none() {
            return Err(ConfigError::Incomplete(
                "REBOOT_STRATEGY=fleetlock needs FLEETLOCK_URL (coreos.update.fleetlock_url \
                 in cloud-config): without a lock server the machine would never reboot"
                    .into(),
            ));
        }
        Ok((config, warnings))
    }

    /// Every setting as (key, value), in the file's syntax: writing the
    /// pairs out as `KEY=value` lines gives a file that parses back to this
    /// configuration. Unset values are empty, as in the file. For
    /// `update-engine status`.
    pub fn describe(&self) -> Vec<(String, String)> {
        let rate = |r: Option<u64>| r.map_or("max".to_string(), format_size);
        let mut out: Vec<(String, String)> = [
            ("SERVER", self.server.clone().unwrap_or_default()),
            ("GROUP", self.group.clone()),
            ("REBOOT_STRATEGY", self.reboot_strategy.as_str().into()),
            (
                "WINDOW_START",
                self.window.map(|w| w.start_string()).unwrap_or_default(),
            ),
            (
                "WINDOW_LENGTH",
                self.window.map(|w| w.length_string()).unwrap_or_default(),
            ),
            ("INTERVAL", format_duration(self.interval)),
            ("JITTER", format_duration(self.jitter)),
            ("IO_WRITE_MAX", rate(self.limits.io_write_bps)),
            ("IO_READ_MAX", rate(self.limits.io_read_bps)),
            ("CPU_WEIGHT", self.limits.cpu_weight.to_string()),
            (
                "CPU_MAX",
                self.limits
                    .cpu_max_percent
                    .map_or("max".into(), |p| format!("{p}%")),
            ),
            (
                "MEMORY_MAX",
                match self.limits.memory_max {
                    u64::MAX => "max".into(),
                    m => format_size(m),
                },
            ),
            ("DOWNLOAD_MAX", rate(self.limits.download_bps)),
            ("CGROUP", self.cgroup.display().to_string()),
            (
                "FLEETLOCK_URL",
                self.fleetlock_url.clone().unwrap_or_default(),
            ),
            ("FLEETLOCK_GROUP", self.fleetlock_group.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        out.extend(self.locksmith.iter().map(|(k, v)| (k.clone(), v.clone())));
        out
    }
}

/// The name a key is handled under: locksmith's own names for the window
/// map onto ours.
fn canonical_key(key: &str) -> &str {
    match key {
        "REBOOT_WINDOW_START" | "LOCKSMITHD_REBOOT_WINDOW_START" => "WINDOW_START",
        "REBOOT_WINDOW_LENGTH" | "LOCKSMITHD_REBOOT_WINDOW_LENGTH" => "WINDOW_LENGTH",
        k => k,
    }
}

/// An empty value means the built-in default; anything else is parsed.
fn unset_or<T>(
    v: &str,
    default: T,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, String> {
    if v.is_empty() {
        Ok(default)
    } else {
        parse(v)
    }
}

fn is_max(v: &str) -> bool {
    v.eq_ignore_ascii_case("max") || v.eq_ignore_ascii_case("infinity")
}

fn parse_server(v: &str) -> Result<String, String> {
    let rest = v
        .strip_prefix("http://")
        .or_else(|| v.strip_prefix("https://"))
        .ok_or_else(|| format!("{v:?} is not an http:// or https:// URL"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("{v:?} has no host"));
    }
    if let Some(c) = v.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{v:?} contains {c:?}"));
    }
    Ok(v.into())
}

/// The channel names a folder on the server and in our state, so it keeps
/// to characters that need no quoting in a URL or a file name.
fn parse_group(v: &str) -> Result<String, String> {
    let ok = v.len() <= 64
        && !v.starts_with('.')
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(v.into())
    } else {
        Err(format!(
            "{v:?} is not a channel name (at most 64 of A-Z a-z 0-9 . _ -, not starting with .)"
        ))
    }
}

/// The FleetLock protocol's rule for groups: `^[a-zA-Z0-9.-]+$`.
fn parse_fleetlock_group(v: &str) -> Result<String, String> {
    if !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
    {
        Ok(v.into())
    } else {
        Err(format!(
            "{v:?} is not a FleetLock group (letters, digits, '.' and '-' only)"
        ))
    }
}

fn parse_rate(v: &str) -> Result<Option<u64>, String> {
    if is_max(v) {
        return Ok(None);
    }
    let n = parse_size(v)?;
    if n < MIN_RATE {
        return Err(format!(
            "{v} bytes/s is below the least of {}: add a suffix (K, M, G) or write max",
            format_size(MIN_RATE)
        ));
    }
    Ok(Some(n))
}

fn parse_cpu_weight(v: &str) -> Result<u32, String> {
    match v.parse::<u32>() {
        Ok(n) if (1..=10_000).contains(&n) => Ok(n),
        _ => Err(format!("{v:?} is not a weight from 1 to 10000")),
    }
}

/// `50%` of one CPU; up to 10000% (a hundred CPUs); or `max`.
fn parse_cpu_max(v: &str) -> Result<Option<u32>, String> {
    if is_max(v) {
        return Ok(None);
    }
    let bad = || format!("{v:?} is not a percentage from 1% to 10000% (e.g. 50%), or max");
    let n = v.strip_suffix('%').ok_or_else(bad)?;
    match n.trim_end().parse::<u32>() {
        Ok(p) if (1..=10_000).contains(&p) => Ok(Some(p)),
        _ => Err(bad()),
    }
}

fn parse_memory_max(v: &str) -> Result<u64, String> {
    if is_max(v) {
        return Ok(u64::MAX);
    }
    let n = parse_size(v)?;
    if n < MIN_MEMORY {
        return Err(format!(
            "{v} is below the least of {} the engine needs (a suffix missing?)",
            format_size(MIN_MEMORY)
        ));
    }
    Ok(n)
}

/// The engine creates this directory and writes `cpu.max` and friends
/// into it as root: it must be a cgroup, not any path a typo makes. And it
/// must be a direct child of the root: cgroup v2 lets a group enable
/// controllers for its children only while it holds no processes itself,
/// which the service manager's groups do, and the root is the one parent
/// whose controllers the engine can count on enabling.
fn parse_cgroup(v: &str) -> Result<PathBuf, String> {
    let name = v
        .strip_prefix(CGROUP_ROOT)
        .and_then(|rest| rest.strip_prefix('/'))
        .map(|rest| rest.strip_suffix('/').unwrap_or(rest));
    match name {
        Some(n)
            if !n.is_empty()
                && n != "."
                && n != ".."
                && !n.contains('/')
                && !n.contains(char::is_whitespace) =>
        {
            Ok(Path::new(CGROUP_ROOT).join(n))
        }
        _ => Err(format!(
            "{v:?} is not a cgroup directly under {CGROUP_ROOT}/ (e.g. {DEFAULT_CGROUP})"
        )),
    }
}

/// A size in bytes: `1000`, `512K`, `20M`, `1.5G`, `2T`, also `20MiB`.
/// Suffixes are powers of 1024 (as in systemd and cgroup tools); `KB`,
/// `MB`... are refused because they read as powers of 1000 to many. A
/// fraction needs a suffix and rounds down to whole bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = |why: &str| format!("{s:?} is not a size: {why}");
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let multiplier: u64 = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KIB" => KIB,
        "M" | "MIB" => MIB,
        "G" | "GIB" => 1024 * MIB,
        "T" | "TIB" => 1024 * 1024 * MIB,
        "KB" | "MB" | "GB" | "TB" => {
            return Err(bad(&format!(
                "write {} or {}iB: sizes are powers of 1024",
                &unit[..1].to_ascii_uppercase(),
                &unit[..1].to_ascii_uppercase()
            )))
        }
        _ => return Err(bad("expected a number with an optional K, M, G or T")),
    };
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || (number.contains('.') && frac.is_empty()) {
        return Err(bad("expected a number with an optional K, M, G or T"));
    }
    if !frac.is_empty() && multiplier == 1 {
        return Err(bad("a fraction of a byte"));
    }
    let total = scaled(whole, frac, u128::from(multiplier)).ok_or_else(|| bad("malformed"))?;
    u64::try_from(total).map_err(|_| bad("too large"))
}

/// Writes a size the way [`parse_size`] reads it, with the largest suffix
/// that divides it exactly: `64M`, `1536K`, `1000`.
pub fn format_size(bytes: u64) -> String {
    for (suffix, unit) in [
        ("T", 1024 * 1024 * MIB),
        ("G", 1024 * MIB),
        ("M", MIB),
        ("K", KIB),
    ] {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::Weekday;

    const ETC: &str = "/etc/slipway/update.conf";

    fn parsed(text: &str) -> (Config, Vec<String>) {
        let mut c = Config::default();
        let w = c.parse(ETC, text).unwrap();
        (c, w)
    }

    fn error(text: &str) -> String {
        Config::default().parse(ETC, text).unwrap_err().to_string()
    }

    #[test]
    fn defaults() {
        let c = Config::default();
        assert_eq!(c.server, None);
        assert_eq!(c.group, "stable");
        assert_eq!(c.reboot_strategy, RebootStrategy::Reboot);
        assert_eq!(c.window, None);
        assert_eq!(c.interval, Duration::from_secs(3600));
        assert_eq!(c.jitter, Duration::from_secs(600));
        assert_eq!(c.cgroup, Path::new("/sys/fs/cgroup/slipway-update"));
        assert_eq!(
            c.limits,
            Limits {
                io_write_bps: None,
                io_read_bps: None,
                cpu_weight: 20,
                cpu_max_percent: Some(50),
                memory_max: 64 << 20,
                download_bps: None,
            }
        );
        assert_eq!(parsed(""), (c, vec![]));
    }

    /// A file as cloud-config writes it (generated.rs).
    #[test]
    fn cloud_config_file() {
        let (c, w) = parsed(
            "# Written by slipway cloud-config from coreos.update and coreos.locksmith\n\
             REBOOT_STRATEGY=etcd-lock\n\
             GROUP=beta\n\
             SERVER=http://updates.example.com/slipway\n\
             LOCKSMITHD_ENDPOINT=http://10.0.0.1:2379,http://10.0.0.2:2379\n\
             LOCKSMITHD_GROUP=workers\n\
             LOCKSMITHD_ETCD_CAFILE=/etc/ssl/etcd/ca file.pem\n\
             WINDOW_START=Thu 04:00\n\
             WINDOW_LENGTH=1h30m\n",
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.reboot_strategy, RebootStrategy::EtcdLock);
        assert_eq!(c.group, "beta");
        assert_eq!(
            c.server.as_deref(),
            Some("http://updates.example.com/slipway")
        );
        assert_eq!(
            c.window,
            Some(Window {
                day: Some(Weekday::Thu),
                start_minute: 240,
                length: Duration::from_secs(5400),
            })
        );
        assert_eq!(c.locksmith.len(), 3);
        assert_eq!(
            c.locksmith["LOCKSMITHD_ENDPOINT"],
            "http://10.0.0.1:2379,http://10.0.0.2:2379"
        );
        assert_eq!(
            c.locksmith["LOCKSMITHD_ETCD_CAFILE"],
            "/etc/ssl/etcd/ca file.pem"
        );
    }

    #[test]
    fn our_keys() {
        let (c, w) = parsed(
            "INTERVAL=1h30m\r\n\
             JITTER=0\n\
             IO_WRITE_MAX=20M\n\
             IO_READ_MAX = 512K \n\
             CPU_WEIGHT=50\n\
             CPU_MAX=150%\n\
             MEMORY_MAX=1.5G\n\
             DOWNLOAD_MAX=10M\n\
             CGROUP=/sys/fs/cgroup/updater/\n",
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.interval, Duration::from_secs(5400));
        assert_eq!(c.jitter, Duration::ZERO);
        assert_eq!(
            c.limits,
            Limits {
                io_write_bps: Some(20 << 20),
                io_read_bps: Some(512 << 10),
                cpu_weight: 50,
                cpu_max_percent: Some(150),
                memory_max: 1536 << 20,
                download_bps: Some(10 << 20),
            }
        );
        assert_eq!(c.cgroup, Path::new("/sys/fs/cgroup/updater"));

        let (c, _) = parsed("IO_WRITE_MAX=max\nCPU_MAX=max\nMEMORY_MAX=infinity\n");
        assert_eq!(c.limits.io_write_bps, None);
        assert_eq!(c.limits.cpu_max_percent, None);
        assert_eq!(c.limits.memory_max, u64::MAX);
    }

    #[test]
    fn comments_blanks_and_bom() {
        let (c, w) = parsed("\u{feff}# c\n\n   \n  # indented comment\nGROUP=alpha\n");
        assert!(w.is_empty());
        assert_eq!(c.group, "alpha");
        // A '#' after a value is part of the value, verbatim.
        assert_eq!(
            error("REBOOT_STRATEGY=off # never\n"),
            format!("{ETC}:1: REBOOT_STRATEGY: unknown value \"off # never\" (expected reboot, etcd-lock, fleetlock, best-effort or off)")
        );
    }

    #[test]
    fn error_messages_name_file_line_and_key() {
        assert_eq!(
            error("# c\nGROUP=beta\nREBOOT_STRATEGY=sometimes\n"),
            "/etc/slipway/update.conf:3: REBOOT_STRATEGY: unknown value \"sometimes\" (expected reboot, etcd-lock, fleetlock, best-effort or off)"
        );
        assert_eq!(
            error("GROUP\n"),
            format!("{ETC}:1: expected KEY=value, found \"GROUP\"")
        );
        assert!(error("group=x\n").starts_with(&format!("{ETC}:1: \"group\" is not a key")));
        assert!(error("=x\n").starts_with(&format!("{ETC}:1: \"\" is not a key")));
        for (text, start) in [
            ("SERVER=ftp://x\n", "SERVER: \"ftp://x\" is not an http"),
            ("SERVER=http://\n", "SERVER: \"http://\" has no host"),
            ("SERVER=http://a b\n", "SERVER: \"http://a b\" contains ' '"),
            ("GROUP=../x\n", "GROUP: \"../x\" is not a channel name"),
            ("GROUP=a/b\n", "GROUP: \"a/b\" is not a channel name"),
            ("INTERVAL=30s\n", "INTERVAL: 30s is too short"),
            ("INTERVAL=soon\n", "INTERVAL: \"soon\" is not a duration"),
            (
                "JITTER=-1m\n",
                "JITTER: \"-1m\" is not a duration: must not be negative",
            ),
            (
                "IO_WRITE_MAX=20\n",
                "IO_WRITE_MAX: 20 bytes/s is below the least of 64K",
            ),
            (
                "IO_READ_MAX=20MB\n",
                "IO_READ_MAX: \"20MB\" is not a size: write M or MiB",
            ),
            ("DOWNLOAD_MAX=0\n", "DOWNLOAD_MAX: 0 bytes/s is below"),
            (
                "CPU_WEIGHT=0\n",
                "CPU_WEIGHT: \"0\" is not a weight from 1 to 10000",
            ),
            (
                "CPU_WEIGHT=10001\n",
                "CPU_WEIGHT: \"10001\" is not a weight",
            ),
            ("CPU_MAX=50\n", "CPU_MAX: \"50\" is not a percentage"),
            ("CPU_MAX=0%\n", "CPU_MAX: \"0%\" is not a percentage"),
            (
                "MEMORY_MAX=64\n",
                "MEMORY_MAX: 64 is below the least of 16M",
            ),
            (
                "CGROUP=/etc/x\n",
                "CGROUP: \"/etc/x\" is not a cgroup directly under /sys/fs/cgroup/",
            ),
            (
                "CGROUP=/sys/fs/cgroup\n",
                "CGROUP: \"/sys/fs/cgroup\" is not a cgroup",
            ),
            (
                "CGROUP=/sys/fs/cgroup/../../etc\n",
                "CGROUP: \"/sys/fs/cgroup/../../etc\" is not",
            ),
            (
                "CGROUP=/sys/fs/cgroup/services/x\n",
                "CGROUP: \"/sys/fs/cgroup/services/x\" is not",
            ),
            (
                "CGROUP=/sys/fs/cgroup/./x\n",
                "CGROUP: \"/sys/fs/cgroup/./x\" is not",
            ),
            (
                "CGROUP=/sys/fs/cgroup/..\n",
                "CGROUP: \"/sys/fs/cgroup/..\" is not",
            ),
            (
                "CGROUP=/sys/fs/cgroupx/y\n",
                "CGROUP: \"/sys/fs/cgroupx/y\" is not",
            ),
            (
                "CGROUP=sys/fs/cgroup/x\n",
                "CGROUP: \"sys/fs/cgroup/x\" is not",
            ),
        ] {
            let e = error(text);
            assert!(
                e.starts_with(&format!("{ETC}:1: {start}")),
                "{text:?} gave {e:?}"
            );
        }
    }

    #[test]
    fn warnings_name_file_and_line() {
        let (c, w) = parsed("GROUP=alpha\nFOO=bar\nGROUP=beta\nREBOOT_STRATEGY=best-effort\n");
        assert_eq!(c.group, "beta");
        assert_eq!(c.reboot_strategy, RebootStrategy::BestEffort);
        assert_eq!(
            w,
            vec![
                format!("{ETC}:2: unknown key FOO, ignored"),
                format!("{ETC}:3: GROUP: also set on line 1; the later line wins"),
            ]
        );
    }

    #[test]
    fn fleetlock_needs_a_url_and_checks_it() {
        let (c, w) = parsed(
            "REBOOT_STRATEGY=fleetlock\nFLEETLOCK_URL=http://10.0.0.9:3333/\nFLEETLOCK_GROUP=web\n",
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.reboot_strategy, RebootStrategy::FleetLock);
        assert_eq!(c.fleetlock_url.as_deref(), Some("http://10.0.0.9:3333"));
        assert_eq!(c.fleetlock_group, "web");
        let d = c.describe();
        assert!(d.contains(&("FLEETLOCK_URL".into(), "http://10.0.0.9:3333".into())));
        let e = error("FLEETLOCK_URL=ftp://x\n");
        assert!(e.starts_with(&format!("{ETC}:1: FLEETLOCK_URL: ")), "{e}");
        let e = error("FLEETLOCK_GROUP=a b\n");
        assert!(e.starts_with(&format!("{ETC}:1: FLEETLOCK_GROUP: ")), "{e}");
        // The strategy without a server cannot take a lock: refused as a
        // whole, so the daemon never reboots without one.
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("update.conf");
        std::fs::write(&f, "REBOOT_STRATEGY=fleetlock\n").unwrap();
        let e = Config::load(&[f.as_path()]).unwrap_err().to_string();
        assert!(
            e.contains("REBOOT_STRATEGY=fleetlock needs FLEETLOCK_URL"),
            "{e}"
        );
    }

    #[test]
    fn window_both_or_neither() {
        assert_eq!(
            error("GROUP=x\nWINDOW_START=04:00\n"),
            format!("{ETC}:2: WINDOW_START: set without WINDOW_LENGTH in the same file (set both, or neither)")
        );
        assert_eq!(
            error("WINDOW_LENGTH=1h\n"),
            format!("{ETC}:1: WINDOW_LENGTH: set without WINDOW_START in the same file (set both, or neither)")
        );
        assert_eq!(
            error("WINDOW_START=\nWINDOW_LENGTH=1h\n"),
            format!("{ETC}:1: WINDOW_START: empty while WINDOW_LENGTH is set (empty both to remove the window)")
        );
        // Bad values are blamed on their own line.
        assert!(error("WINDOW_START=Thx 04:00\nWINDOW_LENGTH=1h\n")
            .starts_with(&format!("{ETC}:1: WINDOW_START: unknown day \"Thx\"")));
        assert!(error("WINDOW_START=04:00\nWINDOW_LENGTH=2d\n")
            .starts_with(&format!("{ETC}:2: WINDOW_LENGTH: 48h is too long")));
        assert!(
            error("WINDOW_LENGTH=0\nWINDOW_START=04:00\n").starts_with(&format!(
                "{ETC}:1: WINDOW_LENGTH: a window length must be more"
            ))
        );
        // A weekly window may be longer than a day.
        let (c, _) = parsed("WINDOW_START=sun 22:00\nWINDOW_LENGTH=2d\n");
        assert_eq!(c.window.unwrap().length, Duration::from_secs(2 * 86400));
    }

    /// The window table shared with cloud-config's validator
    /// (`slipway_boot_contract::window::cases`), each key written the way
    /// cloud-config writes it into this file.
    #[test]
    fn windows_follow_the_shared_table() {
        for c in slipway_boot_contract::window::cases::CASES {
            let mut text = String::from("GROUP=x\n");
            for (key, value) in [("WINDOW_START", c.start), ("WINDOW_LENGTH", c.length)] {
                if let Some(v) = value {
                    text += &format!("{key}={v}\n");
                }
            }
            let got = Config::default().parse(ETC, &text);
            assert_eq!(got.is_ok(), c.engine, "{c:?}: {got:?}");
        }
    }

    #[test]
    fn locksmith_window_names_are_aliases() {
        for (s, l) in [
            (
                "LOCKSMITHD_REBOOT_WINDOW_START",
                "LOCKSMITHD_REBOOT_WINDOW_LENGTH",
            ),
            ("REBOOT_WINDOW_START", "REBOOT_WINDOW_LENGTH"),
            ("WINDOW_START", "REBOOT_WINDOW_LENGTH"),
        ] {
            let (c, w) = parsed(&format!("{s}=02:00\n{l}=1h\n"));
            assert!(w.is_empty(), "{w:?}");
            assert_eq!(c.window, Some(Window::parse("02:00", "1h").unwrap()));
            assert!(c.locksmith.is_empty());
        }
        assert!(
            error("LOCKSMITHD_REBOOT_WINDOW_START=02:00\n").starts_with(&format!(
                "{ETC}:1: LOCKSMITHD_REBOOT_WINDOW_START: set without WINDOW_LENGTH"
            ))
        );
        let (_, w) = parsed("WINDOW_START=01:00\nWINDOW_LENGTH=1h\nREBOOT_WINDOW_START=02:00\n");
        assert_eq!(
            w,
            vec![format!(
                "{ETC}:3: REBOOT_WINDOW_START: also set on line 1; the later line wins"
            )]
        );
    }

    #[test]
    fn later_files_override_and_empty_resets() {
        let mut c = Config::default();
        c.parse(
            DEFAULTS_PATH,
            "SERVER=http://a/\nGROUP=alpha\nWINDOW_START=04:00\nWINDOW_LENGTH=1h\nCPU_MAX=25%\nLOCKSMITHD_GROUP=x\nJITTER=5m\n",
        )
        .unwrap();
        c.parse(ETC, "GROUP=beta\nSERVER=\nCPU_MAX=\nLOCKSMITHD_GROUP=\n")
            .unwrap();
        assert_eq!(c.server, None);
        assert_eq!(c.group, "beta");
        assert_eq!(c.window, Some(Window::parse("04:00", "1h").unwrap()));
        assert_eq!(c.limits.cpu_max_percent, Some(50));
        assert_eq!(c.jitter, Duration::from_secs(300));
        assert!(c.locksmith.is_empty());
        c.parse(ETC, "WINDOW_START=\nWINDOW_LENGTH=\nGROUP=\n")
            .unwrap();
        assert_eq!(c.window, None);
        assert_eq!(c.group, "stable");
    }

    #[test]
    fn failed_parse_changes_nothing() {
        let mut c = Config::default();
        c.parse(ETC, "GROUP=alpha\n").unwrap();
        let before = c.clone();
        assert!(c
            .parse(ETC, "GROUP=beta\nSERVER=http://x\nCPU_WEIGHT=0\n")
            .is_err());
        assert!(c.parse(ETC, "GROUP=beta\nWINDOW_START=04:00\n").is_err());
        assert_eq!(c, before);
    }

    #[test]
    fn load_files_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let usr = dir.path().join("usr.conf");
        let etc = dir.path().join("etc.conf");
        let missing = dir.path().join("missing.conf");
        std::fs::write(&usr, "GROUP=alpha\nINTERVAL=2h\nMYSTERY=1\n").unwrap();
        std::fs::write(&etc, "GROUP=beta\n").unwrap();
        let (c, w) = Config::load(&[&usr, &missing, &etc]).unwrap();
        assert_eq!(c.group, "beta");
        assert_eq!(c.interval, Duration::from_secs(7200));
        assert_eq!(
            w,
            vec![format!("{}:3: unknown key MYSTERY, ignored", usr.display())]
        );

        // Nothing there at all: the defaults.
        let (c, w) = Config::load(&[&missing]).unwrap();
        assert_eq!((c, w), (Config::default(), vec![]));

        // Unreadable (here: a directory) is an error naming the file.
        let e = Config::load(&[&usr, dir.path()]).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }), "{e}");
        assert!(e.to_string().starts_with(&dir.path().display().to_string()));

        // An error in a later file names that file.
        std::fs::write(&etc, "\nREBOOT_STRATEGY=sometimes\n").unwrap();
        let e = Config::load(&[&usr, &etc]).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}:2: REBOOT_STRATEGY:", etc.display())),
            "{e}"
        );

        // Not UTF-8: the line is named.
        std::fs::write(&etc, b"GROUP=a\nSERVER=http://\xff\n").unwrap();
        let e = Config::load(&[&etc]).unwrap_err().to_string();
        assert_eq!(e, format!("{}:2: not UTF-8 text", etc.display()));
    }

    #[test]
    fn describe_round_trips() {
        let (c, _) = parsed(
            "SERVER=https://u.example/x\nGROUP=beta\nREBOOT_STRATEGY=off\n\
             WINDOW_START=Sun 23:30\nWINDOW_LENGTH=90m\nINTERVAL=2h\nJITTER=1.5s\n\
             IO_WRITE_MAX=1536K\nIO_READ_MAX=1G\nCPU_WEIGHT=7\nCPU_MAX=max\n\
             MEMORY_MAX=max\nDOWNLOAD_MAX=100000\nCGROUP=/sys/fs/cgroup/u\n\
             LOCKSMITHD_ENDPOINT= http://e:2379\n",
        );
        let d = c.describe();
        let get = |k: &str| d.iter().find(|(key, _)| key == k).unwrap().1.clone();
        assert_eq!(get("WINDOW_START"), "Sun 23:30");
        assert_eq!(get("WINDOW_LENGTH"), "1h30m");
        assert_eq!(get("JITTER"), "1.5s");
        assert_eq!(get("IO_WRITE_MAX"), "1536K");
        assert_eq!(get("DOWNLOAD_MAX"), "100000");
        assert_eq!(get("MEMORY_MAX"), "max");
        assert_eq!(get("LOCKSMITHD_ENDPOINT"), " http://e:2379");
        for config in [c, Config::default()] {
            let text: String = config
                .describe()
                .iter()
                .map(|(k, v)| format!("{k}={v}\n"))
                .collect();
            assert_eq!(parsed(&text), (config, vec![]), "{text}");
        }
        let d = Config::default().describe();
        assert_eq!(
            d.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            [
                "SERVER",
                "GROUP",
                "REBOOT_STRATEGY",
                "WINDOW_START",
                "WINDOW_LENGTH",
                "INTERVAL",
                "JITTER",
                "IO_WRITE_MAX",
                "IO_READ_MAX",
                "CPU_WEIGHT",
                "CPU_MAX",
                "MEMORY_MAX",
                "DOWNLOAD_MAX",
                "CGROUP",
                "FLEETLOCK_URL",
                "FLEETLOCK_GROUP"
            ]
        );
        assert_eq!(d[5].1, "1h");
        assert_eq!(d[6].1, "10m");
        assert_eq!(d[11].1, "64M");
    }

    #[test]
    fn sizes() {
        for (s, n) in [
            ("1000", 1000),
            ("0", 0),
            ("512K", 512 << 10),
            ("512k", 512 << 10),
            ("20M", 20 << 20),
            ("20MiB", 20 << 20),
            ("1G", 1 << 30),
            ("1.5G", 3 << 29),
            ("2T", 2 << 40),
            ("0.5K", 512),
            ("1.0001K", 1024),
            ("7B", 7),
        ] {
            assert_eq!(parse_size(s), Ok(n), "{s}");
        }
        for bad in [
            "",
            "M",
            "1.5",
            "1.",
            ".5M",
            "1..5M",
            "1.2.3M",
            "-1",
            "1 M",
            "20MB",
            "1P",
            "99999999999999999999T",
            "123456789012345678901",
            "18446744073709551616",
            "x",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_size(&u64::MAX.to_string()), Ok(u64::MAX));
        assert!(parse_size("16777216T").unwrap_err().contains("too large"));
        for n in [0, 1, 1000, 1024, 1536, 64 << 20, 3 << 29, 5 << 40, u64::MAX] {
            assert_eq!(parse_size(&format_size(n)), Ok(n), "{n}");
        }
        assert_eq!(format_size(64 << 20), "64M");
        assert_eq!(format_size(1536), "1536");
        assert_eq!(format_size(1536 << 10), "1536K");
    }
}

//! Validation: detection, substitution, parsing, then checks of values
//! that the applier would otherwise trip over on the machine.
//!
//! - `$private_ipv4` without metadata falls back to the user-data's own
//!   static address ([`Substitutions::resolve`]); an info finding says so.
//!   A variable left without a value in `coreos.etcd2` is a warning: etcd
//!   would get the literal text.
//! - `coreos.etcd2` against etcd 3.4 ([`crate::etcd`]): unknown keys are
//!   warnings (from the parser), values and combinations etcd refuses at
//!   start are errors.
//! - `coreos.update`: `reboot_strategy` is one of [`REBOOT_STRATEGIES`];
//!   `fleetlock` needs `fleetlock_url`, an `http://` URL (the update
//!   engine has no TLS); `fleetlock_group` is Zincati's group syntax.
//! - `coreos.swarm` ([`crate::swarm`]): `role`, addresses, URLs, the
//!   join token and labels; a worker needs a way to find a manager;
//!   `advertise_addr` defaults to `$private_ipv4` substituted (a warning
//!   when it has no value: the address is then left to docker).
//! - `write_files` paths must be under a writable place of the machine,
//!   [`WRITABLE_ROOTS`]: `/etc`, `/var`, `/home`, `/root`, `/opt`, `/run`,
//!   `/tmp` (an error otherwise: the rest is the read-only root).
//! - Whole-file `.json` content under `/etc/docker/` (`daemon.json`) must
//!   be a JSON object, as dockerd reads it; otherwise a warning names the
//!   user-data position, serde_json's line and column in the content, and,
//!   for a `|` block, the user-data line of that content line. A warning,
//!   not an error: the file is the user's, and the rest still applies.

use base64::Engine;

use crate::findings::{Finding, Level};
use crate::parse::{self, Positions};
use crate::report::Report;
use crate::schema::{self, CloudConfig, Encoding, EnvMap, Unit, User, WriteFile};
use crate::substitute::{self, substitute, Fallback, Substitutions};
use crate::userdata::{self, UserDataKind};

/// Validate user-data without metadata (variables stay as written).
pub fn validate(bytes: &[u8]) -> Report {
    validate_with(bytes, &Substitutions::default())
}

/// Validate user-data, substituting `$public_ipv4` & co. from `subs`
/// (with `$private_ipv4`'s fallbacks, see [`Substitutions::resolve`]).
pub fn validate_with(bytes: &[u8], subs: &Substitutions) -> Report {
    let data = userdata::detect(bytes);
    let text = match (data.kind, data.text()) {
        (UserDataKind::CloudConfig, Some(text)) if data.findings.is_empty() => text,
        _ => {
            return Report {
                kind: data.kind,
                findings: data.findings,
                config: None,
            }
        }
    };
    // A byte order mark is not YAML content; dropping it keeps line 1 sane.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let (subs, fallback) = subs.resolve(text);
    let source = substitute(text, &subs);
    let mut parsed = parse::parse(&source);
    if let Some(config) = parsed.config.as_mut() {
        crate::swarm::fill_defaults(config, &subs);
    }
    let mut findings = parsed.findings;
    if let Some(config) = &parsed.config {
        let mut checker = Checker {
            positions: &parsed.positions,
            source: &source,
            subs: &subs,
            findings: &mut findings,
        };
        if let Some(from) = &fallback {
            checker.fallback(text, from);
        }
        checker.config(config);
    }
    Report {
        kind: UserDataKind::CloudConfig,
        findings,
        config: parsed.config,
    }
}

/// Places a Slipway machine can write to; everything else is the
/// read-only squashfs root. `/etc` is an overlay with its upper directory
/// on `/var`; `/home`, `/root` and `/opt` are bind mounts of `/var/home`,
/// `/var/roothome` and `/var/opt` (`/opt/bin` is where Container Linux
/// users put their own tools, and it is on the login shells' `PATH`);
/// `/run` and `/tmp` are tmpfs.
pub const WRITABLE_ROOTS: [&str; 7] = ["/etc", "/var", "/home", "/root", "/opt", "/run", "/tmp"];

/// `write_files` paths under here ending in `.json` are dockerd's
/// configuration (`daemon.json`) and are checked as JSON.
pub const DOCKER_CONFIG_DIR: &str = "/etc/docker/";

/// What `coreos.update.reboot_strategy` may be, as the update engine reads
/// `REBOOT_STRATEGY`. `best-effort` is locksmith's old default: `etcd-lock`
/// when an etcd answers at reboot time, else `reboot`.
pub const REBOOT_STRATEGIES: [&str; 5] = ["reboot", "etcd-lock", "fleetlock", "best-effort", "off"];
const POWER_MODES: [&str; 3] = ["poweroff", "reboot", "halt"];

struct Checker<'a> {
    positions: &'a Positions,
    /// The text the positions point into (after substitution).
    source: &'a str,
    /// The values substituted into it.
    subs: &'a Substitutions,
    findings: &'a mut Vec<Finding>,
}

/// Reporting helpers: findings point at the node recorded for `path`.
impl Checker<'_> {
    fn push(&mut self, path: &str, level: Level, message: String) {
        let (line, column) = self.position(path);
        self.findings
            .push(Finding::new(line, column, level, message));
    }

    /// The position of `path`, or of its nearest recorded parent.
    fn position(&self, path: &str) -> (usize, usize) {
        let mut p = path;
        loop {
            if let Some(pos) = self.positions.get(p) {
                return *pos;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => return (1, 1),
            }
        }
    }

    fn error(&mut self, path: &str, message: String) {
        self.push(path, Level::Error, message);
    }

    fn warning(&mut self, path: &str, message: String) {
        self.push(path, Level::Warning, message);
    }

    fn one_of(&mut self, path: &str, value: &str, allowed: &[&str]) -> bool {
        if allowed.contains(&value) {
            return true;
        }
        let msg = format!(
            "invalid value {value:?} for {path:?}: expected one of {}",
            allowed.join(", ")
        );
        self.error(path, msg);
        false
    }
}

/// The checks, section by section.
impl Checker<'_> {
    fn config(&mut self, c: &CloudConfig) {
        if let Some(h) = &c.hostname {
            self.hostname(h);
        }
        self.ssh_keys("ssh_authorized_keys", &c.ssh_authorized_keys);
        for (i, u) in c.users.iter().enumerate() {
            self.user(&format!("users[{i}]"), u);
        }
        for (i, g) in c.groups.iter().enumerate() {
            if g.name.is_empty() {
                self.error(&format!("groups[{i}]"), "a group needs a name".into());
            }
        }
        for (i, f) in c.write_files.iter().enumerate() {
            self.write_file(&format!("write_files[{i}]"), f);
        }
        if let Some(m) = &c.manage_etc_hosts {
            self.manage_etc_hosts(m);
        }
        if let Some(p) = &c.power_state {
            self.power_state(p);
        }
        for (i, u) in c.coreos.units.iter().enumerate() {
            self.unit(&format!("coreos.units[{i}]"), u);
        }
        if let Some(u) = &c.coreos.update {
            self.update(u);
        }
        if let Some(l) = &c.coreos.locksmith {
            self.locksmith(l);
        }
        self.etcd2(&c.coreos.etcd2);
        for p in crate::swarm::problems(&c.coreos, self.subs) {
            self.push(&p.path, p.level, p.message);
        }
    }

    /// Says where `$private_ipv4` came from when no metadata gave it:
    /// at the unit it was taken from, or at its first use. `text` is the
    /// user-data before substitution.
    fn fallback(&mut self, text: &str, from: &Fallback) {
        let value = self.subs.private_ipv4.as_deref().unwrap_or_default();
        let (line, column, message) = match from {
            Fallback::NetworkUnit { index, name } => {
                let (line, column) = self.position(&format!("coreos.units[{index}].name"));
                let message = format!(
                    "$private_ipv4 is {value}: no metadata gives one, and this is the first IPv4 \
                     Address= of the user-data's .network units ({name:?})"
                );
                (line, column, message)
            }
            Fallback::Interface => {
                // Only `coreos.swarm`'s default may use it: point there.
                let (line, column) = substitute::first_use(text, "private_ipv4")
                    .or_else(|| self.positions.get("coreos.swarm").copied())
                    .unwrap_or((1, 1));
                let message = format!(
                    "$private_ipv4 is {value}: no metadata gives one and no .network unit of the \
                     user-data has an IPv4 Address=, so it is the address of a network interface"
                );
                (line, column, message)
            }
        };
        self.findings.push(Finding::info(line, column, message));
    }

    fn hostname(&mut self, h: &str) {
        if !valid_hostname(h) {
            let msg = format!(
                "invalid hostname {h:?}: use letters, digits and '-' in dot-separated labels of at most 63 characters"
            );
            self.error("hostname", msg);
        }
    }

    fn ssh_keys(&mut self, path: &str, keys: &[String]) {
        for (i, key) in keys.iter().enumerate() {
            if !looks_like_ssh_key(key) {
                let msg = format!(
                    "{:?} does not look like an SSH public key (expected \"ssh-ed25519 AAAA… [comment]\")",
                    format!("{path}[{i}]")
                );
                self.warning(&format!("{path}[{i}]"), msg);
            }
        }
    }

    fn user(&mut self, path: &str, u: &User) {
        if u.name.is_empty() {
            self.error(path, format!("{path:?} has no \"name\"; a user needs one"));
        }
        self.ssh_keys(
            &format!("{path}.ssh_authorized_keys"),
            &u.ssh_authorized_keys,
        );
    }

    fn write_file(&mut self, path: &str, f: &WriteFile) {
        self.file_path(path, &f.path);
        if let Some(p) = &f.permissions {
            if schema::parse_mode(p).is_none() {
                let msg = format!(
                    "invalid permissions {p:?} for {:?}: expected an octal mode such as \"0644\" (3 or 4 octal digits, optionally after a 0)",
                    format!("{path}.permissions")
                );
                self.error(&format!("{path}.permissions"), msg);
            }
        }
        let encoding_ok = match &f.encoding {
            Some(e) => Encoding::parse(e).is_some() || self.bad_encoding(path, e),
            None => true,
        };
        if encoding_ok {
            match f.decoded_content() {
                Ok(content) => self.docker_json(path, f, &content),
                Err(why) => {
                    let enc = match (f.encoding.as_deref(), f.binary) {
                        (Some(e), true) => format!("!!binary, then {e:?}"),
                        (Some(e), false) => format!("{e:?}"),
                        (None, _) => "!!binary".to_string(),
                    };
                    let msg = format!("content of {path:?} cannot be decoded as {enc}: {why}");
                    self.error(&format!("{path}.content"), msg);
                }
            }
        }
    }

    /// dockerd refuses to start on a `daemon.json` it cannot parse, and
    /// says so only in its own log, after boot. A warning (not an error:
    /// the file is the user's, and the rest of the config is fine) names
    /// the place in the user-data and serde_json's line and column in the
    /// content. Appended content is a fragment and is not judged.
    fn docker_json(&mut self, item: &str, f: &WriteFile, content: &[u8]) {
        if f.append || !f.path.starts_with(DOCKER_CONFIG_DIR) || !f.path.ends_with(".json") {
            return;
        }
        let Some(problem) = json_problem(content) else {
            return;
        };
        let at = format!("{item}.content");
        let (line, column) = self.position(&at);
        let place = match problem.line {
            Some((l, c)) => match self.source_line_of(line, column, content, l) {
                Some(at) => format!(" at line {l} column {c} of the content (user-data line {at})"),
                None => format!(" at line {l} column {c} of the content"),
            },
            None => String::new(),
        };
        let msg = format!(
            "{:?} is not a JSON object dockerd can read: {}{place}; dockerd will not start with it",
            f.path, problem.message
        );
        self.warning(&at, msg);
    }

    /// The user-data line of line `n` of `content`, when the content's
    /// first `n` lines stand in the user-data as they are, below each other
    /// from the scalar's position (a `|` block, where saphyr marks the first
    /// content line); `None` when quoting, folding or an encoding moved them.
    fn source_line_of(
        &self,
        line: usize,
        column: usize,
        content: &[u8],
        n: usize,
    ) -> Option<usize> {
        let content = std::str::from_utf8(content).ok()?;
        let indent = column.checked_sub(1)?;
        let mut source = self.source.lines().skip(line.checked_sub(1)?);
        for wanted in content.lines().take(n) {
            let src = source.next()?;
            let same = match src.get(indent..) {
                Some(body) => src.get(..indent)?.bytes().all(|b| b == b' ') && body == wanted,
                None => wanted.is_empty() && src.trim().is_empty(),
            };
            if !same {
                return None;
            }
        }
        Some(line + n.checked_sub(1)?)
    }

    /// Always false: reports the encoding as invalid.
    fn bad_encoding(&mut self, path: &str, e: &str) -> bool {
        self.one_of(&format!("{path}.encoding"), e, &schema::ENCODINGS);
        false
    }

    fn file_path(&mut self, item: &str, path: &str) {
        let at = format!("{item}.path");
        if path.is_empty() {
            self.error(item, format!("{item:?} has no \"path\""));
            return;
        }
        if let Some(why) = path_problem(path) {
            self.error(&at, format!("{at:?}: {why}"));
        }
    }

    fn manage_etc_hosts(&mut self, m: &str) {
        if m != "localhost" && m != "false" {
            let msg = format!(
                "unsupported value {m:?} for \"manage_etc_hosts\": only \"localhost\" is supported"
            );
            self.warning("manage_etc_hosts", msg);
        }
    }

    fn power_state(&mut self, p: &schema::PowerState) {
        if let Some(mode) = &p.mode {
            self.one_of("power_state.mode", mode, &POWER_MODES);
        }
        if let Some(delay) = &p.delay {
            let digits = delay.strip_prefix('+').unwrap_or(delay);
            let ok = delay == "now"
                || (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()));
            if !ok {
                let msg = format!(
                    "invalid value {delay:?} for \"power_state.delay\": expected \"now\" or \"+MINUTES\""
                );
                self.error("power_state.delay", msg);
            }
        }
    }

    fn unit(&mut self, path: &str, u: &Unit) {
        self.unit_name(path, u);
        if let Some(cmd) = &u.command {
            self.one_of(&format!("{path}.command"), cmd, &schema::UNIT_COMMANDS);
        }
        let does_something = u.content.is_some()
            || u.enable
            || u.mask
            || u.command.is_some()
            || !u.drop_ins.is_empty();
        if !does_something {
            let msg = format!(
                "{path:?} has no content and none of enable, mask, command or drop_ins: it does nothing"
            );
            self.warning(path, msg);
        }
        for (i, d) in u.drop_ins.iter().enumerate() {
            let dp = format!("{path}.drop_ins[{i}]");
            if d.name.is_empty() {
                self.error(&dp, format!("{dp:?} has no \"name\""));
            } else if !d.name.ends_with(".conf") || d.name.contains('/') {
                let msg = format!(
                    "drop-in name {:?} for {:?} must end in \".conf\" and contain no '/' (systemd ignores other files)",
                    d.name,
                    format!("{dp}.name")
                );
                self.error(&format!("{dp}.name"), msg);
            }
        }
    }

    fn unit_name(&mut self, path: &str, u: &Unit) {
        let at = format!("{path}.name");
        if u.name.is_empty() {
            self.error(path, format!("{path:?} has no \"name\"; a unit needs one"));
        } else if u.name.contains('/') {
            let msg = format!("unit name {:?} for {at:?} must not contain '/'", u.name);
            self.error(&at, msg);
        } else if !schema::UNIT_SUFFIXES.iter().any(|s| u.name.ends_with(s)) {
            let msg = format!(
                "unit name {:?} for {at:?} has no known type suffix (one of {})",
                u.name,
                schema::UNIT_SUFFIXES.join(" ")
            );
            self.error(&at, msg);
        }
    }

    fn update(&mut self, u: &schema::Update) {
        let at = "coreos.update.reboot_strategy";
        let strategy = u.reboot_strategy.as_deref();
        if let Some(s) = strategy {
            self.one_of(at, s, &REBOOT_STRATEGIES);
        }
        if let Some(url) = &u.fleetlock_url {
            if let Some(why) = fleetlock_url_problem(url) {
                let path = "coreos.update.fleetlock_url";
                self.error(path, format!("invalid value {url:?} for {path:?}: {why}"));
            }
        }
        if let Some(group) = &u.fleetlock_group {
            if !valid_fleetlock_group(group) {
                let path = "coreos.update.fleetlock_group";
                let msg = format!(
                    "invalid value {group:?} for {path:?}: a FleetLock group is letters, digits, '.' and '-'"
                );
                self.error(path, msg);
            }
        }
        if strategy == Some("fleetlock") {
            if u.fleetlock_url.is_none() {
                let msg = "\"reboot_strategy: fleetlock\" needs \"coreos.update.fleetlock_url\", \
                           the base URL of the FleetLock server (e.g. http://10.0.0.1:8080)"
                    .to_string();
                self.error(at, msg);
            }
            return;
        }
        for (key, set) in [
            ("fleetlock_url", u.fleetlock_url.is_some()),
            ("fleetlock_group", u.fleetlock_group.is_some()),
        ] {
            if set {
                let path = format!("coreos.update.{key}");
                let msg = format!(
                    "{path:?} is used only with \"reboot_strategy: fleetlock\" (the strategy here is {}); it is ignored",
                    strategy.unwrap_or("reboot, the default")
                );
                self.warning(&path, msg);
            }
        }
    }

    /// `coreos.etcd2`: variables left without a value, then values and
    /// combinations etcd 3.4 refuses (unknown keys were reported by the
    /// parser, at the key).
    fn etcd2(&mut self, env: &EnvMap) {
        let mut unusable: Vec<&str> = Vec::new();
        for (key, value) in env {
            let path = format!("coreos.etcd2.{key}");
            let missing = substitute::without_value(value, self.subs);
            for name in &missing {
                let why = match *name {
                    "private_ipv4" => {
                        "no metadata gives it and no .network unit of the user-data has an IPv4 Address="
                    }
                    "public_ipv4" => {
                        "no metadata gives it (as in coreos-cloudinit, it does not fall back to $private_ipv4)"
                    }
                    _ => "no metadata gives it",
                };
                let msg = format!(
                    "\"coreos.etcd2.{}\" uses ${name}, which has no value: {why}; etcd would get the literal text \"${name}\"",
                    crate::etcd::flag_name(key),
                );
                self.warning(&path, msg);
            }
            if !missing.is_empty() {
                unusable.push(key);
                continue;
            }
            if crate::etcd::key_problem(key).is_some() {
                continue;
            }
            if value.is_empty() {
                // etcd skips an empty ETCD_* variable, as if unset.
                let msg = format!(
                    "\"coreos.etcd2.{}\" is empty: etcd ignores it and uses its default",
                    crate::etcd::flag_name(key)
                );
                self.warning(&path, msg);
                unusable.push(key);
                continue;
            }
            if let Some(msg) = crate::etcd::value_problem(key, value) {
                self.error(&path, msg);
                unusable.push(key);
            }
        }
        for p in crate::etcd::combination_problems(env, &|k: &str| !unusable.contains(&k)) {
            self.error(&format!("coreos.etcd2.{}", p.key), p.message);
        }
        for (key, msg) in crate::etcd::warnings(env) {
            self.warning(&format!("coreos.etcd2.{key}"), msg);
        }
    }

    /// The window with the update engine's own grammar
    /// (`slipway_boot_contract::window`), so a window that passes here is
    /// one the engine takes: it refuses its whole configuration, and stops
    /// checking for updates, over one it cannot read. Only stricter here:
    /// the length must be a Go duration, as coreos-cloudinit wants.
    fn locksmith(&mut self, l: &schema::Locksmith) {
        use slipway_boot_contract::{duration, window};
        const START: &str = "coreos.locksmith.window_start";
        const LENGTH: &str = "coreos.locksmith.window_length";
        let (start, length) = match (l.window_start.as_deref(), l.window_length.as_deref()) {
            (None, None) => return,
            (Some(_), None) | (None, Some(_)) => {
                let (set, missing) = if l.window_start.is_some() {
                    (START, LENGTH)
                } else {
                    (LENGTH, START)
                };
                self.error(
                    set,
                    format!("{set:?} is set without {missing:?}: set both, or neither"),
                );
                return;
            }
            // Both empty: no window, as the engine reads it.
            (Some(""), Some("")) => return,
            (Some(s), Some(l)) => (s, l),
        };
        if start.is_empty() || length.is_empty() {
            let (empty, other) = if start.is_empty() {
                (START, LENGTH)
            } else {
                (LENGTH, START)
            };
            self.error(
                empty,
                format!("{empty:?} is empty while {other:?} is set: set both, or neither"),
            );
            return;
        }
        let weekly = match window::parse_start(start) {
            Ok((day, _)) => day.is_some(),
            Err(why) => {
                self.error(
                    START,
                    format!("invalid value {start:?} for {START:?}: {why}"),
                );
                // The length is still checked, against the longer limit.
                true
            }
        };
        let problem = if duration::is_go_duration(length) {
            window::parse_length(length, weekly).err()
        } else {
            Some("expected a duration such as \"1h30m\"".to_string())
        };
        if let Some(why) = problem {
            self.error(
                LENGTH,
                format!("invalid value {length:?} for {LENGTH:?}: {why}"),
            );
        }
    }
}

/// Letters, digits and '-' in dot-separated labels of at most 63
/// characters, at most 64 in all: what the kernel takes as a hostname
/// (`HOST_NAME_MAX`), and the rule the init applies to `/etc/hostname` at
/// boot, so a name that passes here is the name the machine gets.
pub fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 64
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// Why the update engine would refuse a FleetLock URL (its
/// `lock::check_url`): `http://` with a host; no TLS in the engine.
fn fleetlock_url_problem(url: &str) -> Option<String> {
    let lower = url.trim().to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Some(
            "https is not supported (the update engine has no TLS); use http:// on a private network"
                .into(),
        );
    }
    let Some(rest) = lower.strip_prefix("http://") else {
        return Some("expected an http:// URL, e.g. http://10.0.0.1:8080".into());
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Some("the URL has no host".into());
    }
    if let Some(c) = rest.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Some(format!("a URL cannot contain {c:?}"));
    }
    None
}

/// Zincati's FleetLock group: letters, digits, `.` and `-` (what the
/// update engine accepts in `FLEETLOCK_GROUP`).
fn valid_fleetlock_group(group: &str) -> bool {
    !group.is_empty()
        && group
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
}

/// Why a `write_files` path cannot be written on Slipway, if it cannot.
pub fn path_problem(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return Some(format!("path {path:?} is not absolute"));
    }
    if path.split('/').any(|c| c == "..") {
        return Some(format!("path {path:?} must not contain \"..\" components"));
    }
    if path.ends_with('/') {
        return Some(format!("path {path:?} names a directory, not a file"));
    }
    let components: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    let writable =
        components.len() >= 2 && WRITABLE_ROOTS.contains(&format!("/{}", components[0]).as_str());
    if writable {
        return None;
    }
    Some(format!(
        "{path} is on the read-only root filesystem; files can only be written under {}",
        WRITABLE_ROOTS.join(", ")
    ))
}

/// Why dockerd could not read `content` as its configuration.
struct JsonProblem {
    message: String,
    /// serde_json's 1-based line and column in the content, if it has one.
    line: Option<(usize, usize)>,
}

/// dockerd (moby's `getConflictFreeConfiguration`) takes a file that is
/// empty or all whitespace as no configuration, and otherwise unmarshals
/// it into a map: anything but a JSON object fails.
fn json_problem(content: &[u8]) -> Option<JsonProblem> {
    if content.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    match serde_json::from_slice::<serde_json::Value>(content) {
        Ok(serde_json::Value::Object(_)) => None,
        Ok(other) => Some(JsonProblem {
            message: format!(
                "the top level is {}, not an object",
                match other {
                    serde_json::Value::Array(_) => "an array",
                    serde_json::Value::String(_) => "a string",
                    serde_json::Value::Number(_) => "a number",
                    serde_json::Value::Bool(_) => "a boolean",
                    _ => "null",
                }
            ),
            line: None,
        }),
        Err(e) => {
            // serde_json's Display appends " at line L column C"; the
            // position is given separately, mapped to the user-data.
            let text = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            Some(JsonProblem {
                message: text.strip_suffix(&suffix).unwrap_or(&text).to_string(),
                line: Some((e.line(), e.column())),
            })
        }
    }
}

/// `ssh-…`, `ecdsa-…` or `sk-…` followed by base64, perhaps after
/// authorized_keys options (`command="…" ssh-ed25519 …`).
fn looks_like_ssh_key(key: &str) -> bool {
    let words: Vec<&str> = key.split_whitespace().collect();
    let Some(i) = words
        .iter()
        .position(|w| w.starts_with("ssh-") || w.starts_with("ecdsa-") || w.starts_with("sk-"))
    else {
        return false;
    };
    words.get(i + 1).is_some_and(|blob| {
        base64::engine::general_purpose::STANDARD
            .decode(blob)
            .is_ok_and(|b| b.len() > 16)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        validate(text.as_bytes())
            .render_text("u")
            .lines()
            .map(String::from)
            .collect()
    }

    #[test]
    fn non_config_kinds() {
        assert_eq!(validate(b"").kind, UserDataKind::Empty);
        assert!(validate(b"").findings.is_empty());
        let s = validate(b"#!/bin/sh\nexit 0\n");
        assert_eq!((s.kind, s.findings.len()), (UserDataKind::Script, 0));
        let i = validate(br#"{"ignition":{"version":"3.0.0"}}"#);
        assert_eq!((i.kind, i.findings.len()), (UserDataKind::Ignition, 1));
        assert!(i.has_errors());
    }

    #[test]
    fn enum_values() {
        assert_eq!(
            lines("#cloud-config\ncoreos:\n  units:\n    - name: a.service\n      command: lol\n  update:\n    reboot-strategy: always\n"),
            [
                "u:5:16: error: invalid value \"lol\" for \"coreos.units[0].command\": expected one of start, stop, restart, reload, try-restart, reload-or-restart, reload-or-try-restart",
                "u:7:22: error: invalid value \"always\" for \"coreos.update.reboot_strategy\": expected one of reboot, etcd-lock, fleetlock, best-effort, off",
            ]
        );
    }

    #[test]
    fn paths() {
        assert_eq!(path_problem("/etc/motd"), None);
        assert_eq!(path_problem("/var/lib/x/y"), None);
        assert_eq!(path_problem("/opt/bin/tool"), None);
        assert!(path_problem("/opt").is_some());
        assert!(path_problem("etc/motd").unwrap().contains("not absolute"));
        assert!(path_problem("/etc/../usr/x").unwrap().contains(".."));
        let ro = path_problem("/usr/local/bin/x").unwrap();
        assert!(
            ro.contains("read-only") && ro.contains("/etc, /var, /home, /root, /opt, /run, /tmp")
        );
        assert!(path_problem("/etc").is_some());
        assert!(path_problem("/srv/x").is_some());
        assert!(path_problem("/tmp/").is_some());
    }

    #[test]
    fn a_malformed_daemon_json_is_a_warning_with_both_positions() {
        // Line 7 of the user-data is line 3 of the content, where the comma
        // after the mirror is missing.
        let text = r#"#cloud-config
write_files:
  - path: /etc/docker/daemon.json
    content: |
      {
        "registry-mirrors": ["http://10.0.2.2:5000"]
        "insecure-registries": ["10.0.2.2:5000"]
      }
"#;
        let report = validate(text.as_bytes());
        assert!(!report.has_errors());
        assert_eq!(
            report.render_text("u").lines().collect::<Vec<_>>(),
            ["u:5:7: warning: \"/etc/docker/daemon.json\" is not a JSON object dockerd can read: \
              expected `,` or `}` at line 3 column 3 of the content (user-data line 7); \
              dockerd will not start with it"]
        );
    }

    #[test]
    fn daemon_json_checks_follow_dockerd() {
        let check = |path: &str, content: &str, extra: &str| {
            let text = format!(
                "#cloud-config\nwrite_files:\n  - path: {path}\n    content: {content:?}\n{extra}"
            );
            validate(text.as_bytes()).render_text("u")
        };
        // Fine: an object, an empty file (dockerd's "no configuration").
        assert_eq!(
            check("/etc/docker/daemon.json", "{\"debug\": true}", ""),
            ""
        );
        assert_eq!(check("/etc/docker/daemon.json", "  \n", ""), "");
        // Not judged: other places and other names, appended fragments.
        assert_eq!(check("/etc/app/config.json", "{", ""), "");
        assert_eq!(check("/etc/docker/daemon.conf", "{", ""), "");
        assert_eq!(
            check("/etc/docker/daemon.json", "\"x\": 1}", "    append: true\n"),
            ""
        );
        // A double-quoted scalar: no user-data line, the content's only.
        let out = check("/etc/docker/daemon.json", "{\"debug\": tru}", "");
        assert!(
            out.starts_with("u:4:14: warning: \"/etc/docker/daemon.json\" is not a JSON object")
                && out.contains("expected ident at line 1 column 14 of the content;"),
            "{out}"
        );
        let out = check("/etc/docker/certs.json", "[1]", "");
        assert!(
            out.contains("the top level is an array, not an object"),
            "{out}"
        );
        // Encoded content is judged after decoding.
        let out = check(
            "/etc/docker/daemon.json",
            "eyJkZWJ1ZyI6fQ==",
            "    encoding: b64\n",
        );
        assert!(out.contains("expected value at line 1 column 10"), "{out}");
    }

    #[test]
    fn ssh_keys() {
        assert!(looks_like_ssh_key(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGm5bWq6o1f3j8T7K9nqH4pKzR0X7m1yYQ6m0x3Yb8sW me@host"
        ));
        assert!(looks_like_ssh_key(
            "no-pty ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAI"
        ));
        assert!(!looks_like_ssh_key("AAAAC3NzaC1lZDI1NTE5 me@host"));
        assert!(!looks_like_ssh_key("ssh-rsa not*base64"));
    }

    /// The window table shared with the update engine
    /// (`slipway_boot_contract::window::cases`): what passes here, the
    /// engine takes.
    #[test]
    fn windows_follow_the_engine_grammar() {
        for c in slipway_boot_contract::window::cases::CASES {
            let mut text = String::from("#cloud-config\ncoreos:\n  locksmith:\n    group: g\n");
            for (key, value) in [("window_start", c.start), ("window_length", c.length)] {
                if let Some(v) = value {
                    text += &format!("    {key}: {v:?}\n");
                }
            }
            let report = validate(text.as_bytes());
            assert_eq!(
                !report.has_errors(),
                c.validator,
                "{c:?}: {}",
                report.render_text("u")
            );
        }
        // The findings name the field at fault and the rule.
        let text = "#cloud-config\ncoreos:\n  locksmith:\n    window_start: \"04:00\"\n    window_length: 48h\n";
        let out = validate(text.as_bytes()).render_text("u");
        assert!(out.contains("u:5:20: error:"), "{out}");
        assert!(
            out.contains("at most 1 day (24h) for a daily window"),
            "{out}"
        );
        let text = "#cloud-config\ncoreos:\n  locksmith:\n    window_start: Thu 04:00\n";
        let out = validate(text.as_bytes()).render_text("u");
        assert!(out.contains("u:4:"), "{out}");
        assert!(
            out.contains("without \"coreos.locksmith.window_length\""),
            "{out}"
        );
    }

    #[test]
    fn substitution_happens_before_parsing() {
        let subs = Substitutions {
            private_ipv4: Some("10.1.2.3".into()),
            ..Substitutions::default()
        };
        let r = validate_with(
            b"#cloud-config\ncoreos:\n  etcd2:\n    listen-peer-urls: http://$private_ipv4:2380\n",
            &subs,
        );
        assert!(r.findings.is_empty());
        let env = r.config.unwrap().coreos.etcd2;
        assert_eq!(env[0].1, "http://10.1.2.3:2380");
    }

    fn update_lines(update: &str) -> Vec<String> {
        lines(&format!("#cloud-config\ncoreos:\n  update:\n{update}"))
    }

    #[test]
    fn reboot_strategies_and_fleetlock() {
        for s in REBOOT_STRATEGIES {
            let extra = if s == "fleetlock" {
                "    fleetlock_url: http://10.0.2.2:8080/\n"
            } else {
                ""
            };
            assert_eq!(
                update_lines(&format!("    reboot_strategy: {s}\n{extra}")),
                Vec::<String>::new(),
                "{s}"
            );
        }
        assert_eq!(
            update_lines("    reboot_strategy: fleetlock\n    fleetlock_url: https://locks.example.org\n"),
            ["u:5:20: error: invalid value \"https://locks.example.org\" for \"coreos.update.fleetlock_url\": https is not supported (the update engine has no TLS); use http:// on a private network"]
        );
        assert_eq!(
            update_lines("    reboot_strategy: fleetlock\n    fleetlock_url: 10.0.2.2:8080\n    fleetlock_group: web-1.eu\n"),
            ["u:5:20: error: invalid value \"10.0.2.2:8080\" for \"coreos.update.fleetlock_url\": expected an http:// URL, e.g. http://10.0.0.1:8080"]
        );
        assert!(
            update_lines("    reboot_strategy: fleetlock\n    fleetlock_url: http:///x\n")[0]
                .ends_with("the URL has no host")
        );
        // FleetLock settings under another strategy do nothing.
        assert_eq!(
            update_lines("    reboot_strategy: etcd-lock\n    fleetlock_url: http://10.0.2.2:8080\n"),
            ["u:5:20: warning: \"coreos.update.fleetlock_url\" is used only with \"reboot_strategy: fleetlock\" (the strategy here is etcd-lock); it is ignored"]
        );
        assert_eq!(
            update_lines("    fleetlock_group: workers\n"),
            ["u:4:22: warning: \"coreos.update.fleetlock_group\" is used only with \"reboot_strategy: fleetlock\" (the strategy here is reboot, the default); it is ignored"]
        );
    }

    #[test]
    fn etcd2_variables_escaped_or_resolved_are_fine() {
        let text = b"#cloud-config\ncoreos:\n  etcd2:\n    name: \\$private_ipv4\n    advertise-client-urls: http://$private_ipv4:2379\n";
        let subs = Substitutions {
            private_ipv4: Some("10.1.2.3".into()),
            ..Substitutions::default()
        };
        let r = validate_with(text, &subs);
        assert!(r.findings.is_empty(), "{:?}", r.findings);
        let env = r.config.unwrap().coreos.etcd2;
        assert_eq!(env[0].1, "$private_ipv4");
        assert_eq!(env[1].1, "http://10.1.2.3:2379");
        // Without a value both are literal text: one warning each.
        assert_eq!(validate(text).findings.len(), 2);
    }

    #[test]
    fn etcd2_empty_values_are_ignored_by_etcd() {
        assert_eq!(
            lines("#cloud-config\ncoreos:\n  etcd2:\n    listen-client-urls: \"\"\n"),
            ["u:4:25: warning: \"coreos.etcd2.listen-client-urls\" is empty: etcd ignores it and uses its default"]
        );
    }

    #[test]
    fn etcd2_unknown_keys_are_not_judged_by_value() {
        assert_eq!(
            lines("#cloud-config\ncoreos:\n  etcd2:\n    listen_client_url: nonsense\n"),
            ["u:4:5: warning: \"coreos.etcd2\" key \"listen_client_url\" is not a flag of etcd 3.4; etcd ignores it (did you mean \"listen-client-urls\"?)"]
        );
    }
}

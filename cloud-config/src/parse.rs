//! Building the typed [`CloudConfig`] from YAML, with findings for what
//! does not fit: syntax errors, unknown or misplaced keys, wrong types,
//! duplicates. Values are not judged here (that is `validate`); this layer
//! only decides what the user wrote and where.

use std::collections::BTreeMap;

use crate::findings::Finding;
use crate::schema::{
    CaCerts, CloudConfig, Command, Coreos, DropIn, EnvMap, Group, Locksmith, Oem, PowerState, Run,
    Swarm, Unit, Update, User, WriteFile,
};
use crate::yaml::{self, Node, ScalarKind, Value};

/// 1-based (line, column) of the node behind each dotted/indexed path,
/// e.g. `coreos.units[0].command`, so later checks can point at values.
pub type Positions = BTreeMap<String, (usize, usize)>;

/// The result of parsing: `config` is None only when the YAML could not be
/// read at all or its top level is not a mapping.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Parsed {
    pub config: Option<CloudConfig>,
    pub findings: Vec<Finding>,
    pub positions: Positions,
}

const TOP_KEYS: [&str; 12] = [
    "hostname",
    "ssh_authorized_keys",
    "users",
    "groups",
    "write_files",
    "manage_etc_hosts",
    "runcmd",
    "bootcmd",
    "timezone",
    "power_state",
    "ca_certs",
    "coreos",
];
const COREOS_KEYS: [&str; 9] = [
    "units",
    "update",
    "locksmith",
    "etcd2",
    "fleet",
    "flannel",
    "oem",
    "swarm",
    "etcd",
];
const USER_KEYS: [&str; 15] = [
    "name",
    "passwd",
    "ssh_authorized_keys",
    "gecos",
    "homedir",
    "no_create_home",
    "primary_group",
    "groups",
    "no_user_group",
    "system",
    "no_log_init",
    "shell",
    "sudo",
    "lock_passwd",
    "uid",
];
const FILE_KEYS: [&str; 7] = [
    "path",
    "content",
    "owner",
    "permissions",
    "encoding",
    "append",
    "defer",
];
const UNIT_KEYS: [&str; 7] = [
    "name", "content", "runtime", "enable", "mask", "command", "drop_ins",
];
const DROP_IN_KEYS: [&str; 2] = ["name", "content"];
const UPDATE_KEYS: [&str; 5] = [
    "reboot_strategy",
    "group",
    "server",
    "fleetlock_url",
    "fleetlock_group",
];
const LOCKSMITH_KEYS: [&str; 7] = [
    "endpoint",
    "group",
    "etcd_cafile",
    "etcd_certfile",
    "etcd_keyfile",
    "window_start",
    "window_length",
];
const SWARM_KEYS: [&str; 6] = [
    "role",
    "advertise_addr",
    "managers",
    "etcd_endpoints",
    "join_token",
    "labels",
];
const OEM_KEYS: [&str; 5] = ["id", "name", "version_id", "home_url", "bug_report_url"];
const POWER_KEYS: [&str; 5] = ["mode", "delay", "message", "timeout", "condition"];
const CA_KEYS: [&str; 2] = ["trusted", "remove_defaults"];

/// Parse cloud-config text (the `#cloud-config` line included: it is a
/// YAML comment, and keeping it keeps line numbers right).
pub fn parse(text: &str) -> Parsed {
    let loaded = match yaml::load(text) {
        Ok(loaded) => loaded,
        Err(e) => {
            return Parsed {
                config: None,
                findings: vec![Finding::error(e.line, e.column, e.message)],
                positions: Positions::new(),
            }
        }
    };
    let mut ctx = Ctx::default();
    let config = match &loaded.root {
        None => Some(CloudConfig::default()),
        Some(root) if root.is_null() => Some(CloudConfig::default()),
        Some(root) => ctx.top(root),
    };
    if loaded.extra_documents {
        ctx.findings.push(Finding::warning(
            1,
            1,
            "the user-data holds several YAML documents (\"---\"); only the first is read",
        ));
    }
    Parsed {
        config,
        findings: ctx.findings,
        positions: ctx.positions,
    }
}

/// One mapping entry, with its key normalised (`-` → `_`).
struct Entry<'n> {
    key: String,
    raw_key: String,
    key_node: &'n Node,
    value: &'n Node,
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

fn scalar_raw(n: &Node) -> Option<&str> {
    match &n.value {
        Value::Scalar { raw, kind } if *kind != ScalarKind::Null => Some(raw),
        _ => None,
    }
}

#[derive(Default)]
struct Ctx {
    findings: Vec<Finding>,
    positions: Positions,
}

/// Primitive readers: each records the node's position under `path` and
/// warns (returning nothing) when the node has the wrong type.
impl Ctx {
    fn at(&mut self, path: &str, n: &Node) {
        self.positions.insert(path.to_string(), (n.line, n.column));
    }

    fn wrong_type(&mut self, n: &Node, path: &str, want: &str) {
        let msg = format!(
            "incorrect type for {path:?}: want {want}, got {}",
            n.type_name()
        );
        self.findings.push(Finding::warning(n.line, n.column, msg));
    }

    /// Any scalar is accepted as its raw text (a number where a string is
    /// expected is what the user typed); null means "not set".
    fn string(&mut self, n: &Node, path: &str) -> Option<String> {
        self.at(path, n);
        match &n.value {
            // `!!binary` where text is expected: its bytes, if they are
            // text (as coreos-cloudinit's YAML reader gives them).
            Value::Scalar {
                raw,
                kind: ScalarKind::Binary,
            } => match crate::schema::decode_base64(raw).map(String::from_utf8) {
                Ok(Ok(text)) => Some(text),
                Ok(Err(_)) => {
                    let msg = format!("{path:?} is !!binary data that is not UTF-8 text");
                    self.findings.push(Finding::error(n.line, n.column, msg));
                    None
                }
                Err(why) => {
                    let msg = format!("{path:?} is !!binary but not base64: {why}");
                    self.findings.push(Finding::error(n.line, n.column, msg));
                    None
                }
            },
            Value::Scalar { raw, kind } if *kind != ScalarKind::Null => Some(raw.clone()),
            Value::Scalar { .. } => None,
            _ => {
                self.wrong_type(n, path, "string");
                None
            }
        }
    }

    /// YAML 1.1 spellings (yes/no/on/off) are accepted because the configs
    /// written for coreos-cloudinit (a YAML 1.1 reader) use them.
    fn boolean(&mut self, n: &Node, path: &str) -> Option<bool> {
        self.at(path, n);
        let Value::Scalar { raw, kind } = &n.value else {
            self.wrong_type(n, path, "bool");
            return None;
        };
        match kind {
            ScalarKind::Bool(b) => return Some(*b),
            ScalarKind::Null => return None,
            _ => {}
        }
        match raw.to_ascii_lowercase().as_str() {
            "yes" | "on" | "true" => Some(true),
            "no" | "off" | "false" => Some(false),
            _ => {
                self.wrong_type(n, path, "bool");
                None
            }
        }
    }

    fn flag(&mut self, n: &Node, path: &str) -> bool {
        self.boolean(n, path).unwrap_or(false)
    }

    fn uint(&mut self, n: &Node, path: &str) -> Option<u32> {
        self.at(path, n);
        let raw = scalar_raw(n)?;
        let parsed = raw.parse::<u32>().ok();
        if parsed.is_none() {
            self.wrong_type(n, path, "non-negative integer");
        }
        parsed
    }

    fn list<'n>(&mut self, n: &'n Node, path: &str) -> &'n [Node] {
        self.at(path, n);
        match &n.value {
            Value::Seq(items) => items,
            _ if n.is_null() => &[],
            _ => {
                self.wrong_type(n, path, "list");
                &[]
            }
        }
    }

    fn string_list(&mut self, n: &Node, path: &str) -> Vec<String> {
        let items = self.list(n, path);
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| self.string(item, &index(path, i)))
            .collect()
    }

    /// A list, or a comma-separated string (cloud-init's `groups: a, b`).
    fn names(&mut self, n: &Node, path: &str) -> Vec<String> {
        if let Value::Scalar { .. } = n.value {
            let text = self.string(n, path).unwrap_or_default();
            return split_commas(&text);
        }
        self.string_list(n, path)
    }

    /// The entries of a mapping, keys normalised and duplicates resolved
    /// (the last wins, as in the YAML readers the configs were written for).
    fn entries<'n>(&mut self, n: &'n Node, path: &str) -> Vec<Entry<'n>> {
        self.at(path, n);
        let pairs = match &n.value {
            Value::Map(pairs) => pairs,
            _ if n.is_null() => return Vec::new(),
            _ => {
                self.wrong_type(n, path, "mapping");
                return Vec::new();
            }
        };
        let mut out: Vec<Entry<'n>> = Vec::new();
        for (k, v) in pairs {
            let raw_key = scalar_raw(k).unwrap_or(k.type_name()).to_string();
            let entry = Entry {
                key: raw_key.replace('-', "_"),
                raw_key,
                key_node: k,
                value: v,
            };
            match out.iter().position(|e| e.key == entry.key) {
                Some(i) => {
                    let msg = format!(
                        "duplicate key {:?} (first on line {}); the last one is used",
                        entry.raw_key, out[i].key_node.line
                    );
                    self.findings.push(Finding::warning(k.line, k.column, msg));
                    out[i] = entry;
                }
                None => out.push(entry),
            }
        }
        out
    }

    fn unknown(&mut self, e: &Entry, known: &[&str]) {
        let mut msg = format!("unrecognized key {:?}", e.raw_key);
        if let Some(s) = crate::similar::suggestion(&e.key, known) {
            msg.push_str(&format!(" (did you mean {s:?}?)"));
        }
        let n = e.key_node;
        self.findings.push(Finding::warning(n.line, n.column, msg));
    }

    fn note(&mut self, e: &Entry, level: crate::findings::Level, msg: String) {
        let n = e.key_node;
        self.findings
            .push(Finding::new(n.line, n.column, level, msg));
    }
}

fn split_commas(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// Keys other tools accept that Slipway deliberately does not, with why.
fn unsupported(key: &str) -> Option<(crate::findings::Level, &'static str)> {
    use crate::findings::Level::{Info, Warning};
    Some(match key {
        "growpart" | "resize_rootfs" => (
            Info,
            "is not needed: Slipway grows /var to fill the disk by itself",
        ),
        "packages"
        | "package_update"
        | "package_upgrade"
        | "package_reboot_if_required"
        | "apt"
        | "yum_repos"
        | "snap" => (
            Warning,
            "is ignored: Slipway has no package manager (the system is an image)",
        ),
        "chpasswd" | "ssh_pwauth" | "ntp" | "mounts" | "disk_setup" | "fs_setup" | "locale"
        | "final_message" | "phone_home" | "swap" | "keyboard" | "ssh_keys" | "ssh_deletekeys"
        | "ssh_genkeytypes" | "disable_root" | "preserve_hostname" | "fqdn" => (
            Warning,
            "is a cloud-init key Slipway does not support; it is ignored",
        ),
        _ => return None,
    })
}

/// Section readers: one per mapping type of the schema.
impl Ctx {
    fn top(&mut self, root: &Node) -> Option<CloudConfig> {
        if !matches!(root.value, Value::Map(_)) {
            let msg = format!(
                "the top level of a cloud-config must be a mapping (lines like \"hostname: web1\"), got {}",
                root.type_name()
            );
            self.findings
                .push(Finding::error(root.line, root.column, msg));
            return None;
        }
        let mut c = CloudConfig::default();
        for e in self.entries(root, "") {
            let (v, p) = (e.value, e.key.clone());
            match e.key.as_str() {
                "hostname" => c.hostname = self.string(v, &p),
                "ssh_authorized_keys" => c.ssh_authorized_keys = self.string_list(v, &p),
                "users" => c.users = self.users(v, &p),
                "groups" => c.groups = self.groups(v, &p),
                "write_files" => c.write_files = self.write_files(v, &p),
                "manage_etc_hosts" => c.manage_etc_hosts = self.string(v, &p),
                "runcmd" => c.runcmd = self.commands(v, &p),
                "bootcmd" => c.bootcmd = self.commands(v, &p),
                "timezone" => c.timezone = self.string(v, &p),
                "power_state" => c.power_state = Some(self.power_state(v, &p)),
                "ca_certs" => c.ca_certs = Some(self.ca_certs(v, &p)),
                "coreos" => c.coreos = self.coreos(v, &p),
                k if COREOS_KEYS.contains(&k) => {
                    // Nothing reads it there: a warning, as for a typo.
                    let msg = format!(
                        "{:?} belongs under \"coreos\", not at the top level: it is ignored here",
                        e.raw_key
                    );
                    self.note(&e, crate::findings::Level::Warning, msg);
                }
                k => match unsupported(k) {
                    Some((level, why)) => {
                        let msg = format!("key {:?} {why}", e.raw_key);
                        self.note(&e, level, msg);
                    }
                    None => self.unknown(&e, &TOP_KEYS),
                },
            }
        }
        Some(c)
    }

    fn users(&mut self, n: &Node, path: &str) -> Vec<User> {
        let mut users = Vec::new();
        for (i, item) in self.list(n, path).iter().enumerate() {
            // cloud-init's `- default` stands for its distribution's default
            // user; ours is `core`, which always exists.
            if scalar_raw(item) == Some("default") {
                continue;
            }
            users.push(self.user(item, &index(path, i)));
        }
        users
    }

    fn user(&mut self, n: &Node, path: &str) -> User {
        let mut u = User {
            line: n.line,
            ..User::default()
        };
        for e in self.entries(n, path) {
            let (v, p) = (e.value, child(path, &e.key));
            match e.key.as_str() {
                "name" => u.name = self.string(v, &p).unwrap_or_default(),
                "passwd" => u.passwd = self.string(v, &p),
                "ssh_authorized_keys" => u.ssh_authorized_keys = self.string_list(v, &p),
                "gecos" => u.gecos = self.string(v, &p),
                "homedir" => u.homedir = self.string(v, &p),
                "no_create_home" => u.no_create_home = self.flag(v, &p),
                "primary_group" => u.primary_group = self.string(v, &p),
                "groups" => u.groups = self.names(v, &p),
                "no_user_group" => u.no_user_group = self.flag(v, &p),
                "system" => u.system = self.flag(v, &p),
                "no_log_init" => u.no_log_init = self.flag(v, &p),
                "shell" => u.shell = self.string(v, &p),
                "sudo" => u.sudo = self.sudo(v, &p),
                "lock_passwd" => u.lock_passwd = self.boolean(v, &p),
                "uid" => u.uid = self.uint(v, &p),
                _ => self.unknown(&e, &USER_KEYS),
            }
        }
        u
    }

    /// `sudo: false` (cloud-init's way to say "no rules"), a rule, or rules.
    fn sudo(&mut self, n: &Node, path: &str) -> Vec<String> {
        match &n.value {
            Value::Scalar {
                kind: ScalarKind::Bool(false),
                ..
            } => {
                self.at(path, n);
                Vec::new()
            }
            Value::Scalar { .. } => self.string(n, path).into_iter().collect(),
            _ => self.string_list(n, path),
        }
    }

    /// A list of names or of `name: members` maps, or one such map.
    fn groups(&mut self, n: &Node, path: &str) -> Vec<Group> {
        if let Value::Map(_) = n.value {
            return self.group_map(n, path);
        }
        let mut groups = Vec::new();
        for (i, item) in self.list(n, path).iter().enumerate() {
            let p = index(path, i);
            match &item.value {
                Value::Map(_) => groups.extend(self.group_map(item, &p)),
                _ => groups.extend(self.string(item, &p).map(|name| Group {
                    line: item.line,
                    name,
                    members: Vec::new(),
                })),
            }
        }
        groups
    }

    fn group_map(&mut self, n: &Node, path: &str) -> Vec<Group> {
        let mut groups = Vec::new();
        for e in self.entries(n, path) {
            let p = child(path, &e.raw_key);
            let members = self.names(e.value, &p);
            groups.push(Group {
                line: e.key_node.line,
                name: e.raw_key,
                members,
            });
        }
        groups
    }

    fn write_files(&mut self, n: &Node, path: &str) -> Vec<WriteFile> {
        let items = self.list(n, path);
        items
            .iter()
            .enumerate()
            .map(|(i, item)| self.write_file(item, &index(path, i)))
            .collect()
    }

    fn write_file(&mut self, n: &Node, path: &str) -> WriteFile {
        let mut f = WriteFile {
            line: n.line,
            ..WriteFile::default()
        };
        for e in self.entries(n, path) {
            let (v, p) = (e.value, child(path, &e.key));
            match e.key.as_str() {
                "path" => f.path = self.string(v, &p).unwrap_or_default(),
                "content" => match &v.value {
                    // Bytes, decoded (and checked) with the encoding.
                    Value::Scalar {
                        raw,
                        kind: ScalarKind::Binary,
                    } => {
                        self.at(&p, v);
                        f.content = raw.clone();
                        f.binary = true;
                    }
                    _ => f.content = self.string(v, &p).unwrap_or_default(),
                },
                "owner" => f.owner = self.string(v, &p),
                "permissions" => f.permissions = self.string(v, &p),
                "encoding" => f.encoding = self.string(v, &p),
                "append" => f.append = self.flag(v, &p),
                "defer" => f.defer = self.flag(v, &p),
                _ => self.unknown(&e, &FILE_KEYS),
            }
        }
        f
    }

    fn commands(&mut self, n: &Node, path: &str) -> Vec<Command> {
        let mut out = Vec::new();
        for (i, item) in self.list(n, path).iter().enumerate() {
            let p = index(path, i);
            let run = match &item.value {
                Value::Seq(_) => Some(Run::Argv(self.string_list(item, &p))),
                Value::Scalar { .. } if !item.is_null() => self.string(item, &p).map(Run::Shell),
                _ => {
                    self.wrong_type(item, &p, "string or list");
                    None
                }
            };
            out.extend(run.map(|run| Command {
                line: item.line,
                run,
            }));
        }
        out
    }

    fn power_state(&mut self, n: &Node, path: &str) -> PowerState {
        let mut s = PowerState {
            line: n.line,
            ..PowerState::default()
        };
        for e in self.entries(n, path) {
            let (v, p) = (e.value, child(path, &e.key));
            match e.key.as_str() {
                "mode" => s.mode = self.string(v, &p),
                "delay" => s.delay = self.string(v, &p),
                "message" => s.message = self.string(v, &p),
                "timeout" => s.timeout = self.string(v, &p),
                "condition" => s.condition = self.string(v, &p),
                _ => self.unknown(&e, &POWER_KEYS),
            }
        }
        s
    }

    fn ca_certs(&mut self, n: &Node, path: &str) -> CaCerts {
        let mut c = CaCerts::default();
        for e in self.entries(n, path) {
            let (v, p) = (e.value, child(path, &e.key));
            match e.key.as_str() {
                "trusted" => c.trusted = self.string_list(v, &p),
                "remove_defaults" => c.remove_defaults = self.flag(v, &p),
                _ => self.unknown(&e, &CA_KEYS),
            }
        }
        c
    }

    fn coreos(&mut self, n: &Node, path: &str) -> Coreos {
        let mut c = Coreos::default();
        for e in self.entries(n, path) {
            let (v, p) = (e.value, child(path, &e.key));
            match e.key.as_str() {
                "units" => c.units = self.units(v, &p),
                "update" => c.update = Some(self.update(v, &p)),
                "locksmith" => c.locksmith = Some(self.locksmith(v, &p)),
                "etcd2" => c.etcd2 = self.env_map(v, &p, crate::etcd::key_problem),
                "fleet" | "flannel" => {
                    if let Some(hint) = crate::fleet_flannel::section_hint(&e.key) {
                        self.note(&e, crate::findings::Level::Info, hint.to_string());
                    }
                    if e.key == "fleet" {
                        c.fleet = self.env_map(v, &p, crate::fleet_flannel::fleet_key_problem);
                    } else {
                        c.flannel = self.env_map(v, &p, crate::fleet_flannel::flannel_key_problem);
                    }
                }
                "oem" => c.oem = Some(self.oem(v, &p)),
                "swarm" => c.swarm = Some(self.swarm(e.key_node, v, &p)),
                "etcd" => {
                    let msg = "deprecated key \"etcd\" (etcd v1 is not shipped; use \"etcd2\")";
                    self.note(&e, crate::findings::Level::Warning, msg.to_string());
                }
                k if TOP_KEYS.contains(&k) => {
                    // Nothing reads it there: a warning, as for a typo.
                    let msg = format!(
                        "{:?} belongs at the top level, not under \"coreos\": it is ignored here",
                        e.raw_key
                    );
                    self.note(&e, crate::findings::Level::Warning, msg);
                }
                _ => self.unknown(&e, &COREOS_KEYS),
            }
        }
        c
    }

    fn units(&mut self, n: &Node, path: &str) -> Vec<Unit> {
        let items = self.list(n, path);
        items
            .iter()
            .enumerate()
            .map(|(i, item)| self.unit(item, &index(path, i)))
            .collect()
    }

    fn unit(&mut self, n: &Node, path: &str) -> Unit {
        let mut u = Unit {
            line: n.line,
            ..Unit::default()
        };
        for e in self.entries(n, path) {
            let (v, p) = (e.value, child(path, &e.key));
            match e.key.as_str() {
                "name" => u.name = self.string(v, &p).unwrap_or_default(),
                "content" => u.content = self.string(v, &p),
                "runtime" => u.runtime = self.flag(v, &p),
                "enable" => u.enable = self.flag(v, &p),
                "mask" => u.mask = self.flag(v, &p),
                "command" => u.command = self.string(v, &p),
                "drop_ins" => u.drop_ins = self.drop_ins(v, &p),
                _ => self.unknown(&e, &UNIT_KEYS),
            }
        }
        u
    }

    fn drop_ins(&mut self, n: &Node, path: &str) -> Vec<DropIn> {
        let mut out = Vec::new();
        for (i, item) in self.list(n, path).iter().enumerate() {
            let p = index(path, i);
            let mut d = DropIn {
                line: item.line,
                ..DropIn::default()
            };
            for e in self.entries(item, &p) {
                let (v, vp) = (e.value, child(&p, &e.key));
                match e.key.as_str() {
                    "name" => d.name = self.string(v, &vp).unwrap_or_default(),
                    "content" => d.content = self.string(v, &vp).unwrap_or_default(),
                    _ => self.unknown(&e, &DROP_IN_KEYS),
                }
            }
            out.push(d);
        }
        out
    }

    fn update(&mut self, n: &Node, path: &str) -> Update {
        let mut u = Update::default();
        for e in self.entries(n, path) {
            let (v, p) = (e.value, child(path, &e.key));
            match e.key.as_str() {
                "reboot_strategy" => u.reboot_strategy = self.string(v, &p),
                "group" => u.group = self.string(v, &p),
                "server" => u.server = self.string(v, &p),
                "fleetlock_url" => u.fleetlock_url = self.string(v, &p),
                "fleetlock_group" => u.fleetlock_group = self.string(v, &p),
                _ => self.unknown(&e, &UPDATE_KEYS),
            }
        }
        u
    }

    fn locksmith(&mut self, n: &Node, path: &str) -> Locksmith {
        let mut l = Locksmith::default();
        for e in self.entries(n, path) {
            let (v, p) = (e.value, child(path, &e.key));
            match e.key.as_str() {
                "endpoint" => l.endpoint = self.string(v, &p),
                "group" => l.group = self.string(v, &p),
                "etcd_cafile" => l.etcd_cafile = self.string(v, &p),
                "etcd_certfile" => l.etcd_certfile = self.string(v, &p),
                "etcd_keyfile" => l.etcd_keyfile = self.string(v, &p),
                "window_start" => l.window_start = self.string(v, &p),
                "window_length" => l.window_length = self.string(v, &p),
                _ => self.unknown(&e, &LOCKSMITH_KEYS),
            }
        }
        l
    }

    fn oem(&mut self, n: &Node, path: &str) -> Oem {
        let mut o = Oem::default();
        for e in self.entries(n, path) {
            let (v, p) = (e.value, child(path, &e.key));
            match e.key.as_str() {
                "id" => o.id = self.string(v, &p),
                "name" => o.name = self.string(v, &p),
                "version_id" => o.version_id = self.string(v, &p),
                "home_url" => o.home_url = self.string(v, &p),
                "bug_report_url" => o.bug_report_url = self.string(v, &p),
                _ => self.unknown(&e, &OEM_KEYS),
            }
        }
        o
    }

    /// `coreos.swarm`. Label keys are kept as written (no `-` → `_`: they
    /// are docker's names, not ours); a label's position is its key's.
    fn swarm(&mut self, key: &Node, n: &Node, path: &str) -> Swarm {
        let mut s = Swarm {
            line: key.line,
            ..Swarm::default()
        };
        for e in self.entries(n, path) {
            let (v, p) = (e.value, child(path, &e.key));
            let line = e.key_node.line;
            match e.key.as_str() {
                "role" => (s.role, s.lines.role) = (self.string(v, &p), line),
                "advertise_addr" => {
                    (s.advertise_addr, s.lines.advertise_addr) = (self.string(v, &p), line);
                }
                "managers" => (s.managers, s.lines.managers) = (self.names(v, &p), line),
                "etcd_endpoints" => {
                    (s.etcd_endpoints, s.lines.etcd_endpoints) = (self.names(v, &p), line);
                }
                "join_token" => (s.join_token, s.lines.join_token) = (self.string(v, &p), line),
                "labels" => (s.labels, s.lines.labels) = (self.labels(v, &p), line),
                _ => self.unknown(&e, &SWARM_KEYS),
            }
        }
        // Findings about the section as a whole point at `swarm:`.
        self.at(path, key);
        s
    }

    /// Node labels: a mapping read by raw key (docker's `a-b` and `a_b`
    /// are two labels, so keys are not normalised as ours are).
    fn labels(&mut self, n: &Node, path: &str) -> Vec<(String, String)> {
        self.at(path, n);
        let pairs = match &n.value {
            Value::Map(pairs) => pairs,
            _ if n.is_null() => return Vec::new(),
            _ => {
                self.wrong_type(n, path, "mapping");
                return Vec::new();
            }
        };
        let mut out: Vec<(String, String)> = Vec::new();
        let mut first_line: BTreeMap<String, usize> = BTreeMap::new();
        for (k, v) in pairs {
            let key = scalar_raw(k).unwrap_or(k.type_name()).to_string();
            let p = child(path, &key);
            let value = if v.is_null() {
                Some(String::new())
            } else {
                self.string(v, &p)
            };
            if let Some(line) = first_line.insert(key.clone(), k.line) {
                let msg =
                    format!("duplicate key {key:?} (first on line {line}); the last one is used");
                self.findings.push(Finding::warning(k.line, k.column, msg));
                out.retain(|(existing, _)| *existing != key);
            }
            // Findings about a label point at its key.
            self.at(&p, k);
            if let Some(value) = value {
                out.push((key, value));
            }
        }
        out
    }

    /// Service settings: any key, scalar values kept raw; `key_problem`
    /// says (as a warning at the key) why the service would ignore a key.
    fn env_map(&mut self, n: &Node, path: &str, key_problem: fn(&str) -> Option<String>) -> EnvMap {
        let mut out = Vec::new();
        for e in self.entries(n, path) {
            if let Some(msg) = key_problem(&e.raw_key) {
                self.note(&e, crate::findings::Level::Warning, msg);
            }
            let p = child(path, &e.key);
            if let Some(v) = self.string(e.value, &p) {
                out.push((e.key, v));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(text: &str) -> Vec<String> {
        let mut found = parse(text).findings;
        found.sort_by_key(|f| (f.line, f.column));
        found
            .iter()
            .map(|f| format!("{}:{}: {}: {}", f.line, f.column, f.level, f.message))
            .collect()
    }

    fn config(text: &str) -> CloudConfig {
        let p = parse(text);
        assert!(p.findings.is_empty(), "{:?}", p.findings);
        p.config.unwrap()
    }

    #[test]
    fn raw_strings_and_dash_keys() {
        let c = config(
            "#cloud-config\ncoreos:\n  update:\n    reboot-strategy: off\nwrite_files:\n  - path: /etc/a\n    permissions: 0644\n",
        );
        let u = c.coreos.update.unwrap();
        assert_eq!(u.reboot_strategy.as_deref(), Some("off"));
        assert_eq!(c.write_files[0].permissions.as_deref(), Some("0644"));
        assert_eq!(c.write_files[0].line, 6);
    }

    #[test]
    fn users_and_groups_forms() {
        let c = config(
            "users:\n  - default\n  - name: a\n    groups: wheel, docker\n    sudo: ALL=(ALL) NOPASSWD:ALL\n    uid: 1001\n    lock_passwd: no\ngroups:\n  - ops\n  - dev: [a, b]\n",
        );
        assert_eq!(c.users.len(), 1);
        assert_eq!(c.users[0].groups, ["wheel", "docker"]);
        assert_eq!(c.users[0].sudo, ["ALL=(ALL) NOPASSWD:ALL"]);
        assert_eq!(c.users[0].uid, Some(1001));
        assert_eq!(c.users[0].lock_passwd, Some(false));
        assert_eq!(c.groups[1].name, "dev");
        assert_eq!(c.groups[1].members, ["a", "b"]);
    }

    #[test]
    fn commands_and_env_maps() {
        let c = config(
            "runcmd:\n  - echo hi\n  - [ls, -l, /]\ncoreos:\n  etcd2:\n    advertise-client-urls: http://x:2379\n    heartbeat_interval: 100\n",
        );
        assert_eq!(c.runcmd[0].run, Run::Shell("echo hi".into()));
        assert_eq!(
            c.runcmd[1].run,
            Run::Argv(vec!["ls".into(), "-l".into(), "/".into()])
        );
        assert_eq!(
            c.coreos.etcd2,
            [
                (
                    "advertise_client_urls".to_string(),
                    "http://x:2379".to_string()
                ),
                ("heartbeat_interval".to_string(), "100".to_string())
            ]
        );
    }

    #[test]
    fn unknown_keys_with_suggestions() {
        assert_eq!(
            findings("hostnme: a\nfoo: 1\n"),
            [
                "1:1: warning: unrecognized key \"hostnme\" (did you mean \"hostname\"?)",
                "2:1: warning: unrecognized key \"foo\""
            ]
        );
    }

    #[test]
    fn wrong_types_use_paths() {
        assert_eq!(
            findings("coreos:\n  units:\n    - name: a.service\n      enable: maybe\n    - x\n"),
            [
                "4:15: warning: incorrect type for \"coreos.units[0].enable\": want bool, got string",
                "5:7: warning: incorrect type for \"coreos.units[1]\": want mapping, got string"
            ]
        );
    }

    #[test]
    fn misplaced_deprecated_and_duplicates() {
        assert_eq!(
            findings(
                "units: []\ncoreos:\n  write_files: []\n  etcd: {}\nhostname: a\nhostname: b\n"
            ),
            [
                "1:1: warning: \"units\" belongs under \"coreos\", not at the top level: it is ignored here",
                "3:3: warning: \"write_files\" belongs at the top level, not under \"coreos\": it is ignored here",
                "4:3: warning: deprecated key \"etcd\" (etcd v1 is not shipped; use \"etcd2\")",
                "6:1: warning: duplicate key \"hostname\" (first on line 5); the last one is used"
            ]
        );
        assert_eq!(
            parse("hostname: a\nhostname: b\n")
                .config
                .unwrap()
                .hostname
                .as_deref(),
            Some("b")
        );
    }

    #[test]
    fn top_level_must_be_a_mapping() {
        let p = parse("#cloud-config\n- a\n");
        assert!(p.config.is_none());
        assert_eq!(p.findings[0].line, 2);
        assert!(p.findings[0].message.contains("got list"));
    }

    #[test]
    fn syntax_errors_have_positions() {
        let p = parse("#cloud-config\nhostname: a\nfoo: [a, b\n");
        assert!(p.config.is_none());
        assert_eq!(p.findings.len(), 1);
        assert_eq!(p.findings[0].level, crate::findings::Level::Error);
        // The unclosed bracket, not the line after the end of the file.
        assert_eq!((p.findings[0].line, p.findings[0].column), (3, 6));
    }

    #[test]
    fn edit_distances() {
        assert_eq!(crate::similar::edit_distance("kitten", "sitting"), 3);
        assert_eq!(crate::similar::edit_distance("", "ab"), 2);
        assert_eq!(
            crate::similar::suggestion("write_file", &TOP_KEYS),
            Some("write_files")
        );
    }
}

//! Applying the assignments of a unit file and its drop-ins to a [`Unit`].

use std::path::Path;
use std::time::Duration;

use super::env::parse_environment;
use super::exec::{parse_exec, ExecCommand};
use super::name::{expand_specifiers, UnitName};
use super::socket::{self, Applied, Socket};
use super::syntax::{self, parse_bool, Item};
use super::time::parse_timespan;
use super::words::split_words;
use super::{
    Condition, ConditionKind, Context, Diagnostic, EnvironmentFile, KillMode, Level, LoadState,
    Max, Resource, ResourceLimit, Restart, Service, ServiceType, Unit, WorkingDirectory,
};

/// Directives systemd knows that are not implemented here: named as
/// unsupported rather than unknown.
const UNSUPPORTED: &[&str] = &[
    "Conflicts",
    "Requisite",
    "Upholds",
    "OnFailure",
    "OnSuccess",
    "DefaultDependencies",
    "RefuseManualStart",
    "RefuseManualStop",
    "IgnoreOnIsolate",
    "AllowIsolate",
    "JobTimeoutSec",
    "AssertPathExists",
    "ConditionKernelCommandLine",
    "ConditionVirtualization",
    "ConditionHost",
    "ConditionFirstBoot",
    "ConditionPathExistsGlob",
    "KillSignal",
    "SendSIGKILL",
    "PIDFile",
    "BusName",
    "NotifyAccess",
    "WatchdogSec",
    "SuccessExitStatus",
    "RestartPreventExitStatus",
    "StandardInput",
    "SyslogIdentifier",
    "LimitMEMLOCK",
    "Nice",
    "UMask",
    "PrivateTmp",
    "ProtectSystem",
    "ProtectHome",
    "NoNewPrivileges",
    "CapabilityBoundingSet",
    "AmbientCapabilities",
    "RuntimeDirectory",
    "StateDirectory",
    "LogsDirectory",
    "CacheDirectory",
    "ConfigurationDirectory",
    "Slice",
    "MemoryMax",
    "MemoryLimit",
    "CPUQuota",
    "Also",
    "DefaultInstance",
];

/// Per-unit parse state beyond what [`Unit`] records.
pub(crate) struct Builder<'a> {
    pub unit: Unit,
    pub name: &'a UnitName,
    pub ctx: &'a Context,
    pub root: &'a Path,
    pub diags: Vec<Diagnostic>,
    service_type: Option<ServiceType>,
    service: Service,
    socket: Socket,
    /// `Accept=yes` and the like: the unit cannot be started.
    socket_error: Option<String>,
}

fn default_service() -> Service {
    Service {
        kind: ServiceType::Simple,
        exec_start_pre: Vec::new(),
        exec_start: Vec::new(),
        exec_start_post: Vec::new(),
        exec_reload: Vec::new(),
        exec_stop: Vec::new(),
        exec_stop_post: Vec::new(),
        restart: Restart::No,
        restart_sec: Duration::from_millis(100),
        environment: Vec::new(),
        environment_files: Vec::new(),
        user: None,
        group: None,
        working_directory: None,
        timeout_start: Some(Duration::from_secs(90)),
        timeout_stop: Some(Duration::from_secs(90)),
        remain_after_exit: false,
        console: false,
        kill_mode: KillMode::ControlGroup,
        delegate: false,
        oom_score_adjust: None,
        limits: Vec::new(),
        tasks_max: None,
        sockets: Vec::new(),
    }
}

/// Where the current line is, for diagnostics.
struct At<'p> {
    file: &'p Path,
    line: usize,
}

impl<'a> Builder<'a> {
    pub fn new(name: &'a UnitName, ctx: &'a Context, root: &'a Path) -> Builder<'a> {
        Builder {
            unit: Unit::new(&name.full, LoadState::Loaded),
            name,
            ctx,
            root,
            diags: Vec::new(),
            service_type: None,
            service: default_service(),
            socket: Socket::default(),
            socket_error: None,
        }
    }

    fn is_service(&self) -> bool {
        self.name.suffix == "service"
    }

    fn diag(&mut self, file: &Path, line: Option<usize>, level: Level, message: String) {
        self.diags.push(Diagnostic {
            unit: self.name.full.clone(),
            file: file.to_path_buf(),
            line,
            level,
            message,
        });
    }

    fn warn(&mut self, at: &At<'_>, message: String) {
        self.diag(at.file, Some(at.line), Level::Warning, message);
    }

    /// Applies one file (`file` is its path on the target system).
    pub fn apply_file(&mut self, file: &Path, text: &str) {
        self.unit.sources.push(file.to_path_buf());
        // None: outside any section, or in an ignored one.
        let mut section: Option<String> = None;
        let mut seen_section = false;
        for item in syntax::parse(text) {
            match item {
                Item::Bad { message, line } => {
                    if message.starts_with("invalid section header") {
                        section = None;
                        seen_section = true;
                    }
                    self.diag(file, Some(line), Level::Warning, message);
                }
                Item::Section { name, line } => {
                    seen_section = true;
                    section = if self.known_section(&name) {
                        Some(name)
                    } else {
                        if !name.starts_with("X-") && !self.silently_ignored_section(&name) {
                            self.diag(
                                file,
                                Some(line),
                                Level::Warning,
                                format!("unknown section [{name}], ignoring"),
                            );
                        }
                        None
                    };
                }
                Item::Assign { key, value, line } => {
                    let at = At { file, line };
                    match &section {
                        Some(s) => {
                            let s = s.clone();
                            self.assign(&at, &s, &key, &value);
                        }
                        None if !seen_section => {
                            self.warn(
                                &at,
                                format!("assignment {key}= outside of any section, ignoring"),
                            );
                        }
                        None => {}
                    }
                }
            }
        }
    }

    fn is_socket(&self) -> bool {
        self.name.suffix == "socket"
    }

    fn known_section(&self, s: &str) -> bool {
        matches!(s, "Unit" | "Install")
            || (s == "Service" && self.is_service())
            || (s == "Socket" && self.is_socket())
    }

    /// The type-specific section of an unsupported unit type (`[Timer]`
    /// in a `.timer`): the unit is reported as unsupported already.
    fn silently_ignored_section(&self, s: &str) -> bool {
        s.to_ascii_lowercase() == self.name.suffix && !self.is_service()
    }

    fn spec(&mut self, at: &At<'_>, value: &str) -> String {
        let (out, warnings) = expand_specifiers(value, self.name, self.ctx);
        for w in warnings {
            self.warn(at, w);
        }
        out
    }

    fn assign(&mut self, at: &At<'_>, section: &str, key: &str, value: &str) {
        if key.starts_with("X-") {
            return;
        }
        let handled = match section {
            "Unit" => self.assign_unit(at, key, value),
            "Service" => self.assign_service(at, key, value),
            "Install" => self.assign_install(at, key, value),
            "Socket" => self.assign_socket(at, key, value),
            _ => true,
        };
        if !handled {
            let what = if UNSUPPORTED.contains(&key) {
                "unsupported"
            } else {
                "unknown"
            };
            self.warn(
                at,
                format!("{what} directive {key}= in [{section}], ignoring"),
            );
        }
    }

    /// Unit names from a dependency or install list.
    fn names(&mut self, at: &At<'_>, key: &str, value: &str) -> Vec<String> {
        let value = self.spec(at, value);
        let words = match split_words(&value) {
            Ok(w) => w,
            Err(e) => {
                self.warn(at, format!("{key}={value}: {e}, ignoring"));
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for w in words {
            match UnitName::parse(&w) {
                Ok(_) => out.push(w),
                Err(e) => self.warn(at, format!("{key}=: {e}, ignoring")),
            }
        }
        out
    }

    fn assign_unit(&mut self, at: &At<'_>, key: &str, value: &str) -> bool {
        let condition = match key {
            "ConditionPathExists" => Some(ConditionKind::PathExists),
            "ConditionPathIsDirectory" => Some(ConditionKind::PathIsDirectory),
            "ConditionPathIsSymbolicLink" => Some(ConditionKind::PathIsSymbolicLink),
            "ConditionFileNotEmpty" => Some(ConditionKind::FileNotEmpty),
            "ConditionDirectoryNotEmpty" => Some(ConditionKind::DirectoryNotEmpty),
            "ConditionFileIsExecutable" => Some(ConditionKind::FileIsExecutable),
            _ => None,
        };
        if let Some(kind) = condition {
            self.condition(at, key, kind, value);
            return true;
        }
        match key {
            "Description" => {
                let v = self.spec(at, value);
                self.unit.description = (!v.is_empty()).then_some(v);
            }
            "Documentation" => {}
            "After" | "Before" | "Requires" | "Wants" | "BindsTo" | "PartOf" => {
                let names = self.names(at, key, value);
                let list = match key {
                    "After" => &mut self.unit.after,
                    "Before" => &mut self.unit.before,
                    "Requires" => &mut self.unit.requires,
                    "BindsTo" => &mut self.unit.binds_to,
                    "PartOf" => &mut self.unit.part_of,
                    _ => &mut self.unit.wants,
                };
                for n in names {
                    if !list.contains(&n) {
                        list.push(n);
                    }
                }
            }
            "StartLimitIntervalSec" | "StartLimitBurst" => self.start_limit(at, key, value),
            _ => return false,
        }
        true
    }

    fn condition(&mut self, at: &At<'_>, key: &str, kind: ConditionKind, value: &str) {
        if value.is_empty() {
            self.unit.conditions.clear();
            return;
        }
        let mut rest = value;
        let mut trigger = false;
        let mut negate = false;
        loop {
            if let Some(r) = rest.strip_prefix('|').filter(|_| !trigger) {
                trigger = true;
                rest = r.trim_start();
            } else if let Some(r) = rest.strip_prefix('!').filter(|_| !negate) {
                negate = true;
                rest = r.trim_start();
            } else {
                break;
            }
        }
        let path = self.spec(at, rest);
        if !path.starts_with('/') {
            self.warn(at, format!("{key}={value}: path is not absolute, ignoring"));
            return;
        }
        self.unit.conditions.push(Condition {
            kind,
            path,
            negate,
            trigger,
        });
    }

    fn start_limit(&mut self, at: &At<'_>, key: &str, value: &str) {
        if key.starts_with("StartLimitInterval") {
            match parse_timespan(value) {
                Ok(d) => self.unit.start_limit_interval = d.unwrap_or(Duration::ZERO),
                Err(e) => self.warn(at, format!("{key}={value}: {e}, ignoring")),
            }
        } else {
            match value.parse::<u32>() {
                Ok(n) => self.unit.start_limit_burst = n,
                Err(_) => self.warn(at, format!("{key}={value}: not a number, ignoring")),
            }
        }
    }

    fn assign_service(&mut self, at: &At<'_>, key: &str, value: &str) -> bool {
        match key {
            "Type" => self.service_type(at, value),
            "ExecStartPre" | "ExecStart" | "ExecStartPost" | "ExecReload" | "ExecStop"
            | "ExecStopPost" => {
                let parsed = if value.is_empty() {
                    None
                } else {
                    let v = self.spec(at, value);
                    match parse_exec(&v, self.root) {
                        Ok(cmds) => Some(cmds),
                        Err(e) => {
                            self.warn(at, format!("{key}={value}: {e}, ignoring"));
                            return true;
                        }
                    }
                };
                let list: &mut Vec<ExecCommand> = match key {
                    "ExecStartPre" => &mut self.service.exec_start_pre,
                    "ExecStart" => &mut self.service.exec_start,
                    "ExecStartPost" => &mut self.service.exec_start_post,
                    "ExecReload" => &mut self.service.exec_reload,
                    "ExecStop" => &mut self.service.exec_stop,
                    _ => &mut self.service.exec_stop_post,
                };
                match parsed {
                    None => list.clear(),
                    Some(cmds) => list.extend(cmds),
                }
            }
            "Restart" => self.restart(at, value),
            "RestartSec" => match parse_timespan(value) {
                Ok(Some(d)) => self.service.restart_sec = d,
                Ok(None) => self.warn(at, format!("RestartSec={value}: must be finite, ignoring")),
                Err(e) => self.warn(at, format!("RestartSec={value}: {e}, ignoring")),
            },
            "TimeoutStartSec" | "TimeoutStopSec" | "TimeoutSec" => match parse_timespan(value) {
                Ok(d) => {
                    let d = d.filter(|d| !d.is_zero());
                    if key != "TimeoutStopSec" {
                        self.service.timeout_start = d;
                    }
                    if key != "TimeoutStartSec" {
                        self.service.timeout_stop = d;
                    }
                }
                Err(e) => self.warn(at, format!("{key}={value}: {e}, ignoring")),
            },
            "Environment" => {
                if value.is_empty() {
                    self.service.environment.clear();
                    return true;
                }
                let v = self.spec(at, value);
                match parse_environment(&v) {
                    Ok((vars, warnings)) => {
                        self.service.environment.extend(vars);
                        for w in warnings {
                            self.warn(at, format!("Environment=: {w}"));
                        }
                    }
                    Err(e) => self.warn(at, format!("Environment={value}: {e}, ignoring")),
                }
            }
            "EnvironmentFile" => {
                if value.is_empty() {
                    self.service.environment_files.clear();
                    return true;
                }
                let v = self.spec(at, value);
                let (optional, path) = match v.strip_prefix('-') {
                    Some(p) => (true, p.to_string()),
                    None => (false, v),
                };
                if path.starts_with('/') {
                    self.service
                        .environment_files
                        .push(EnvironmentFile { path, optional });
                } else {
                    self.warn(
                        at,
                        format!("EnvironmentFile={value}: path is not absolute, ignoring"),
                    );
                }
            }
            "User" | "Group" => {
                let v = self.spec(at, value);
                let v = (!v.is_empty()).then_some(v);
                if key == "User" {
                    self.service.user = v;
                } else {
                    self.service.group = v;
                }
            }
            "WorkingDirectory" => {
                if value.is_empty() {
                    self.service.working_directory = None;
                    return true;
                }
                let v = self.spec(at, value);
                let (missing_ok, p) = match v.strip_prefix('-') {
                    Some(p) => (true, p),
                    None => (false, v.as_str()),
                };
                let path = match p {
                    "~" => None,
                    p if p.starts_with('/') => Some(p.to_string()),
                    _ => {
                        self.warn(
                            at,
                            format!("WorkingDirectory={value}: neither an absolute path nor ~, ignoring"),
                        );
                        return true;
                    }
                };
                self.service.working_directory = Some(WorkingDirectory { path, missing_ok });
            }
            "RemainAfterExit" => match parse_bool(value) {
                Some(b) => self.service.remain_after_exit = b,
                None => self.warn(
                    at,
                    format!("RemainAfterExit={value}: not a boolean, ignoring"),
                ),
            },
            // Output always goes to the unit's log file; `+console` (or
            // `tty`) also copies it, prefixed, to the console.
            "StandardOutput" | "StandardError" => {
                if value.contains("console") || value.starts_with("tty") {
                    self.service.console = true;
                }
            }
            // Accepted in [Service] by systemd for compatibility.
            "StartLimitInterval" | "StartLimitIntervalSec" | "StartLimitBurst" => {
                self.start_limit(at, key, value)
            }
            "KillMode" => match value {
                "control-group" => self.service.kill_mode = KillMode::ControlGroup,
                "mixed" => self.service.kill_mode = KillMode::Mixed,
                "process" => self.service.kill_mode = KillMode::Process,
                "none" => self.service.kill_mode = KillMode::None,
                _ => self.warn(at, format!("KillMode={value}: unknown mode, ignoring")),
            },
            "Delegate" => match parse_bool(value) {
                Some(b) => self.service.delegate = b,
                // A list of controllers: delegation with those.
                None => self.service.delegate = !value.is_empty(),
            },
            "OOMScoreAdjust" => match value.parse::<i32>() {
                Ok(n) if (-1000..=1000).contains(&n) => self.service.oom_score_adjust = Some(n),
                _ => self.warn(
                    at,
                    format!("OOMScoreAdjust={value}: not a number in -1000…1000, ignoring"),
                ),
            },
            "LimitNOFILE" | "LimitNPROC" | "LimitCORE" => {
                let resource = match key {
                    "LimitNOFILE" => Resource::Nofile,
                    "LimitNPROC" => Resource::Nproc,
                    _ => Resource::Core,
                };
                match parse_rlimit(value, resource) {
                    Ok((soft, hard)) => {
                        self.service.limits.retain(|l| l.resource != resource);
                        self.service.limits.push(ResourceLimit {
                            resource,
                            soft,
                            hard,
                        });
                    }
                    Err(e) => self.warn(at, format!("{key}={value}: {e}, ignoring")),
                }
            }
            "TasksMax" => match parse_max(value, false) {
                Ok(m) => self.service.tasks_max = Some(m),
                Err(e) => self.warn(at, format!("{key}={value}: {e}, ignoring")),
            },
            "Sockets" => {
                let names = self.names(at, key, value);
                for n in names {
                    if !self.service.sockets.contains(&n) {
                        self.service.sockets.push(n);
                    }
                }
            }
            _ => return false,
        }
        true
    }

    fn assign_socket(&mut self, at: &At<'_>, key: &str, value: &str) -> bool {
        let value = self.spec(at, value);
        match socket::assign(&mut self.socket, key, &value) {
            Applied::Done => {}
            Applied::Unknown => return false,
            Applied::Warning(w) => self.warn(at, w),
            Applied::Error(e) => {
                self.diag(at.file, Some(at.line), Level::Error, e.clone());
                self.socket_error = Some(format!("{}:{}: {e}", at.file.display(), at.line));
            }
        }
        true
    }

    fn service_type(&mut self, at: &At<'_>, value: &str) {
        let t = match value {
            "simple" => ServiceType::Simple,
            "exec" => ServiceType::Exec,
            "oneshot" => ServiceType::Oneshot,
            "forking" => ServiceType::Forking,
            "idle" => ServiceType::Simple,
            "notify" | "notify-reload" => ServiceType::Notify,
            "dbus" => {
                self.warn(
                    at,
                    format!("Type={value} is not supported, treated as Type=simple"),
                );
                ServiceType::Simple
            }
            _ => {
                self.warn(at, format!("Type={value}: unknown service type, ignoring"));
                return;
            }
        };
        self.service_type = Some(t);
    }

    fn restart(&mut self, at: &At<'_>, value: &str) {
        let r = match value {
            "no" => Restart::No,
            "always" => Restart::Always,
            "on-success" => Restart::OnSuccess,
            "on-failure" => Restart::OnFailure,
            "on-abnormal" => Restart::OnAbnormal,
            "on-abort" => Restart::OnAbort,
            "on-watchdog" => {
                self.warn(
                    at,
                    "Restart=on-watchdog: there is no watchdog, the service is never restarted"
                        .to_string(),
                );
                Restart::OnWatchdog
            }
            _ => {
                self.warn(at, format!("Restart={value}: unknown value, ignoring"));
                return;
            }
        };
        self.service.restart = r;
    }

    fn assign_install(&mut self, at: &At<'_>, key: &str, value: &str) -> bool {
        let list = match key {
            "WantedBy" | "RequiredBy" => {
                if value.is_empty() {
                    Vec::new()
                } else {
                    let mut existing = if key == "WantedBy" {
                        std::mem::take(&mut self.unit.install.wanted_by)
                    } else {
                        std::mem::take(&mut self.unit.install.required_by)
                    };
                    for n in self.names(at, key, value) {
                        if !existing.contains(&n) {
                            existing.push(n);
                        }
                    }
                    existing
                }
            }
            "Alias" => {
                for n in self.names(at, key, value) {
                    let same_type =
                        n.rsplit_once('.').map(|(_, t)| t) == Some(self.name.suffix.as_str());
                    if !same_type {
                        self.warn(
                            at,
                            format!("Alias={n}: not a .{} name, ignoring", self.name.suffix),
                        );
                    } else if !self.unit.install.alias.contains(&n) {
                        self.unit.install.alias.push(n);
                    }
                }
                return true;
            }
            _ => return false,
        };
        if key == "WantedBy" {
            self.unit.install.wanted_by = list;
        } else {
            self.unit.install.required_by = list;
        }
        true
    }

    /// Checks the whole unit once every file is applied; `main_file`
    /// names the unit file in errors.
    pub fn finish(mut self, main_file: &Path) -> (Unit, Vec<Diagnostic>) {
        if self.is_socket() {
            if let Some(e) = self.socket_error.take() {
                self.unit.load = LoadState::Error(e);
            } else if self.socket.listen.is_empty() {
                let e = "socket has no ListenStream= or ListenDatagram=; refusing";
                self.diag(main_file, None, Level::Error, e.to_string());
                self.unit.load = LoadState::Error(e.to_string());
            }
            self.unit.socket = Some(std::mem::take(&mut self.socket));
            return (self.unit, self.diags);
        }
        if !self.is_service() {
            return (self.unit, self.diags);
        }
        let mut svc = std::mem::replace(&mut self.service, default_service());
        svc.kind = self.service_type.unwrap_or(if svc.exec_start.is_empty() {
            ServiceType::Oneshot
        } else {
            ServiceType::Simple
        });
        let error = if svc.kind != ServiceType::Oneshot && svc.exec_start.is_empty() {
            Some("service has no ExecStart=, which is only allowed for Type=oneshot services; refusing")
        } else if svc.kind != ServiceType::Oneshot && svc.exec_start.len() > 1 {
            Some("service has more than one ExecStart=, which is only allowed for Type=oneshot services; refusing")
        } else if svc.kind == ServiceType::Oneshot
            && svc.exec_start.is_empty()
            && svc.exec_stop.is_empty()
        {
            Some("service has no ExecStart= and no ExecStop=; refusing")
        } else if svc.kind == ServiceType::Oneshot
            && matches!(svc.restart, Restart::Always | Restart::OnSuccess)
        {
            Some("Restart=always and Restart=on-success are not allowed for Type=oneshot services; refusing")
        } else {
            None
        };
        if let Some(e) = error {
            self.diag(main_file, None, Level::Error, e.to_string());
            self.unit.load = LoadState::Error(e.to_string());
        }
        self.unit.service = Some(svc);
        (self.unit, self.diags)
    }
}

/// `n`, `soft:hard`, `infinity`; `LimitNOFILE=infinity` is the kernel's
/// `fs.nr_open` at start, as in systemd (the kernel refuses more).
fn parse_rlimit(value: &str, resource: Resource) -> Result<(Max, Max), String> {
    let bytes = resource == Resource::Core;
    match value.split_once(':') {
        Some((soft, hard)) => {
            let (soft, hard) = (parse_max(soft, bytes)?, parse_max(hard, bytes)?);
            let above = match (soft, hard) {
                (Max::Infinity, Max::Value(_)) => true,
                (Max::Value(s), Max::Value(h)) => s > h,
                _ => false,
            };
            if above {
                return Err("the soft limit is above the hard one".to_string());
            }
            Ok((soft, hard))
        }
        None => {
            let m = parse_max(value, bytes)?;
            Ok((m, m))
        }
    }
}

/// A number or `infinity`; with `bytes`, `K`/`M`/`G`/`T` suffixes (base
/// 1024) are allowed.
fn parse_max(value: &str, bytes: bool) -> Result<Max, String> {
    if value == "infinity" {
        return Ok(Max::Infinity);
    }
    let (digits, factor) = match value.char_indices().last() {
        Some((i, c)) if bytes && "KMGT".contains(c) => {
            let exp = "KMGT".find(c).map_or(1, |p| p + 1);
            (value.get(..i).unwrap_or(""), 1u64 << (10 * exp))
        }
        _ => (value, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .map(Max::Value)
        .ok_or_else(|| "not a number or infinity".to_string())
}

/// Parses `text` as the only file of unit `name` (for tests and tools).
#[cfg(test)]
pub(crate) fn parse_one(name: &str, file: &str, text: &str) -> (Unit, Vec<Diagnostic>) {
    let n = UnitName::parse(name).unwrap();
    let ctx = Context::default();
    let root = std::path::PathBuf::from("/nonexistent-root");
    let mut b = Builder::new(&n, &ctx, &root);
    b.apply_file(Path::new(file), text);
    b.finish(Path::new(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(d: &[Diagnostic]) -> Vec<String> {
        d.iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn full_service() {
        let text = "\
[Unit]
Description=Web %n
Documentation=man:x(1)
After=network-online.target a.service
After=b.service a.service
Wants=network-online.target
Requires=db.service
ConditionPathExists=!/etc/skip
ConditionPathExists=|/a
StartLimitIntervalSec=1min
StartLimitBurst=3

[Service]
Type=exec
ExecStartPre=-/bin/mkdir -p /run/web
ExecStart=/usr/bin/web --port 80
ExecStop=/bin/kill $MAINPID
Restart=on-failure
RestartSec=5s
Environment=A=1 \"B=two words\"
Environment=C=\"x y\"
EnvironmentFile=-/etc/default/web
EnvironmentFile=/etc/web.env
User=www
Group=www
WorkingDirectory=-~
TimeoutStopSec=infinity
RemainAfterExit=yes
X-Custom=ignored

[Install]
WantedBy=multi-user.target
RequiredBy=x.target
";
        let (u, d) = parse_one("web.service", "/etc/systemd/system/web.service", text);
        assert!(d.is_empty(), "{:?}", msgs(&d));
        assert_eq!(u.load, LoadState::Loaded);
        assert_eq!(u.description.as_deref(), Some("Web web.service"));
        assert_eq!(u.after, ["network-online.target", "a.service", "b.service"]);
        assert_eq!(u.wants, ["network-online.target"]);
        assert_eq!(u.requires, ["db.service"]);
        assert_eq!(u.conditions.len(), 2);
        assert!(u.conditions[0].negate && !u.conditions[0].trigger);
        assert_eq!(u.conditions[0].path, "/etc/skip");
        assert!(u.conditions[1].trigger && !u.conditions[1].negate);
        assert_eq!(u.start_limit_interval, Duration::from_secs(60));
        assert_eq!(u.start_limit_burst, 3);
        let s = u.service.unwrap();
        assert_eq!(s.kind, ServiceType::Exec);
        assert!(s.exec_start_pre[0].ignore_failure);
        assert_eq!(s.exec_start[0].argv, ["/usr/bin/web", "--port", "80"]);
        assert_eq!(s.exec_stop[0].argv, ["/bin/kill", "$MAINPID"]);
        assert_eq!(s.restart, Restart::OnFailure);
        assert_eq!(s.restart_sec, Duration::from_secs(5));
        let env: Vec<(&str, &str)> = s
            .environment
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        assert_eq!(env, [("A", "1"), ("B", "two words"), ("C", "x y")]);
        assert_eq!(
            s.environment_files,
            [
                EnvironmentFile {
                    path: "/etc/default/web".into(),
                    optional: true
                },
                EnvironmentFile {
                    path: "/etc/web.env".into(),
                    optional: false
                },
            ]
        );
        assert_eq!(s.user.as_deref(), Some("www"));
        assert_eq!(s.group.as_deref(), Some("www"));
        assert_eq!(
            s.working_directory,
            Some(WorkingDirectory {
                path: None,
                missing_ok: true
            })
        );
        assert_eq!(s.timeout_stop, None);
        assert_eq!(s.timeout_start, Some(Duration::from_secs(90)));
        assert!(s.remain_after_exit);
        assert_eq!(u.install.wanted_by, ["multi-user.target"]);
        assert_eq!(u.install.required_by, ["x.target"]);
    }

    #[test]
    fn unknown_things_warn_with_file_and_line() {
        let text = "[Unit]\nDescription=x\nFrobnicate=yes\n[Service]\nExecStart=/bin/true\nKillSignal=SIGINT\n[Weird]\nA=b\nexecstart=/bin/false\n";
        let (u, d) = parse_one("a.service", "/etc/systemd/system/a.service", text);
        assert_eq!(u.load, LoadState::Loaded);
        assert_eq!(
            msgs(&d),
            [
                "/etc/systemd/system/a.service:3: warning: unknown directive Frobnicate= in [Unit], ignoring",
                "/etc/systemd/system/a.service:6: warning: unsupported directive KillSignal= in [Service], ignoring",
                "/etc/systemd/system/a.service:7: warning: unknown section [Weird], ignoring",
            ]
        );
    }

    #[test]
    fn syntax_error_line_is_a_warning_and_unit_loads() {
        let text = "[Service]\nExecStart=/bin/true\nthis line is wrong\nExecStart=/bin/\"oops\nRestart=sometimes\nRestartSec=5 parsecs\n";
        let (u, d) = parse_one("a.service", "/x/a.service", text);
        assert_eq!(u.load, LoadState::Loaded);
        let m = msgs(&d);
        assert_eq!(m.len(), 4, "{m:?}");
        assert_eq!(
            m[0],
            "/x/a.service:3: warning: missing '=' in \"this line is wrong\", ignoring line"
        );
        assert!(
            m[1].starts_with("/x/a.service:4: warning: ExecStart=/bin/\"oops: unterminated"),
            "{}",
            m[1]
        );
        assert!(m[2].starts_with("/x/a.service:5: warning: Restart=sometimes"));
        assert!(m[3].starts_with("/x/a.service:6: warning: RestartSec="));
        assert_eq!(u.service.unwrap().exec_start.len(), 1);
    }

    /// Time spans past the end of the clock: no time-out, as systemd's
    /// `infinity`, and never a panic; where `infinity` is not allowed,
    /// a warning that names the file and line.
    #[test]
    fn time_spans_too_long_to_count_are_infinity() {
        let text = "[Unit]\nStartLimitIntervalSec=99999999999999999999s\n\
                    [Service]\nExecStart=/bin/true\n\
                    TimeoutStartSec=18446744073709551615\n\
                    TimeoutStopSec=18446744073709551615min\n\
                    RestartSec=99999999999999999999s\n\
                    TimeoutSec=99999999999999999999 parsecs\n";
        let (u, d) = parse_one("a.service", "/x/a.service", text);
        assert_eq!(u.load, LoadState::Loaded);
        assert_eq!(
            msgs(&d),
            [
                "/x/a.service:7: warning: RestartSec=99999999999999999999s: must be finite, ignoring",
                "/x/a.service:8: warning: TimeoutSec=99999999999999999999 parsecs: invalid time unit \"parsecs\" in \"99999999999999999999 parsecs\", ignoring",
            ]
        );
        assert_eq!(u.start_limit_interval, Duration::ZERO);
        let s = u.service.unwrap();
        assert_eq!(s.timeout_start, None);
        assert_eq!(s.timeout_stop, None);
        assert_eq!(s.restart_sec, Duration::from_millis(100));
    }

    #[test]
    fn exec_start_count_errors() {
        let (u, d) = parse_one("a.service", "/f", "[Service]\nType=simple\n");
        assert!(matches!(u.load, LoadState::Error(_)));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].level, Level::Error);
        assert_eq!(d[0].line, None);
        assert!(d[0]
            .to_string()
            .starts_with("/f: error: service has no ExecStart="));

        let (u, _) = parse_one(
            "a.service",
            "/f",
            "[Service]\nExecStart=/bin/a\nExecStart=/bin/b\n",
        );
        assert!(matches!(&u.load, LoadState::Error(m) if m.contains("more than one")));

        let (u, d) = parse_one(
            "a.service",
            "/f",
            "[Service]\nType=oneshot\nExecStart=/bin/a\nExecStart=/bin/b\n",
        );
        assert_eq!(u.load, LoadState::Loaded, "{d:?}");
        assert_eq!(u.service.unwrap().exec_start.len(), 2);

        // No Type= and no ExecStart=: a oneshot, which needs ExecStop=.
        let (u, _) = parse_one("a.service", "/f", "[Service]\nExecStop=/bin/a\n");
        let s = u.service.as_ref().unwrap();
        assert_eq!(s.kind, ServiceType::Oneshot);
        assert_eq!(u.load, LoadState::Loaded);
        let (u, _) = parse_one("a.service", "/f", "[Unit]\nDescription=x\n");
        assert!(matches!(u.load, LoadState::Error(_)));

        let (u, _) = parse_one(
            "a.service",
            "/f",
            "[Service]\nType=oneshot\nExecStart=/bin/a\nRestart=always\n",
        );
        assert!(matches!(&u.load, LoadState::Error(m) if m.contains("Restart=always")));
    }

    #[test]
    fn types_and_restart_values() {
        let (u, d) = parse_one(
            "a.service",
            "/f",
            "[Service]\nType=dbus\nExecStart=/bin/a\nRestart=on-watchdog\n",
        );
        let s = u.service.unwrap();
        assert_eq!(s.kind, ServiceType::Simple);
        assert_eq!(s.restart, Restart::OnWatchdog);
        assert_eq!(d.len(), 2);
        assert!(d[0].message.contains("Type=dbus"));
        let (u, d) = parse_one(
            "a.service",
            "/f",
            "[Service]\nType=notify-reload\nExecStart=/bin/a\n",
        );
        assert!(d.is_empty());
        assert_eq!(u.service.unwrap().kind, ServiceType::Notify);
        let (u, _) = parse_one(
            "a.service",
            "/f",
            "[Service]\nType=forking\nExecStart=/bin/a\nRestart=on-abnormal\nTimeoutSec=0\n",
        );
        let s = u.service.unwrap();
        assert_eq!(s.kind, ServiceType::Forking);
        assert_eq!(s.restart, Restart::OnAbnormal);
        assert_eq!((s.timeout_start, s.timeout_stop), (None, None));
    }

    #[test]
    fn resets() {
        let text = "[Service]\nEnvironment=A=1\nEnvironment=\nEnvironment=B=2\nExecStartPre=/bin/a\nExecStartPre=\nExecStart=/bin/x\nEnvironmentFile=/e\nEnvironmentFile=\n[Unit]\nAfter=a.service\nAfter=\nConditionPathExists=/a\nConditionPathExists=\n[Install]\nWantedBy=a.target\nWantedBy=\nWantedBy=b.target\n";
        let (u, d) = parse_one("a.service", "/f", text);
        assert!(d.is_empty(), "{d:?}");
        let s = u.service.as_ref().unwrap();
        assert_eq!(s.environment, [("B".to_string(), "2".to_string())]);
        assert!(s.exec_start_pre.is_empty());
        assert!(s.environment_files.is_empty());
        // Dependencies cannot be reset (systemd).
        assert_eq!(u.after, ["a.service"]);
        assert!(u.conditions.is_empty());
        assert_eq!(u.install.wanted_by, ["b.target"]);
    }

    #[test]
    fn bad_values_warn() {
        let text = "[Unit]\nAfter=ok.service bad\nConditionPathExists=relative\n[Service]\nExecStart=/bin/x %q\nEnvironmentFile=rel\nWorkingDirectory=rel\nRemainAfterExit=maybe\nType=weird\nStartLimitBurst=-1\nEnvironment=OK=1 no-name\n";
        let (u, d) = parse_one("a.service", "/f", text);
        assert_eq!(u.after, ["ok.service"]);
        let lines: Vec<usize> = d.iter().map(|d| d.line.unwrap()).collect();
        assert_eq!(lines, [2, 3, 5, 6, 7, 8, 9, 10, 11], "{d:?}");
        assert!(d.iter().all(|d| d.level == Level::Warning));
        let s = u.service.unwrap();
        assert_eq!(s.exec_start[0].argv, ["/bin/x", "%q"]);
        assert_eq!(s.environment, [("OK".to_string(), "1".to_string())]);
    }

    #[test]
    fn targets_have_no_service_and_other_types_keep_quiet() {
        let (u, d) = parse_one("multi-user.target", "/f", "[Unit]\nDescription=Multi\n[Service]\nExecStart=/bin/x\n[Install]\nAlias=default.target\n");
        assert!(u.service.is_none());
        assert_eq!(u.load, LoadState::Loaded);
        assert_eq!(
            msgs(&d),
            ["/f:3: warning: unknown section [Service], ignoring",]
        );
        let (_, d) = parse_one("a.timer", "/f", "[Timer]\nOnCalendar=daily\n");
        assert!(d.is_empty());
        let (_, d) = parse_one("a.service", "/f", "Description=x\n[Unit]\n");
        assert_eq!(
            d[0].message,
            "assignment Description= outside of any section, ignoring"
        );
    }

    #[test]
    fn booleans() {
        for t in ["1", "yes", "Y", "true", "t", "on"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["0", "no", "n", "false", "F", "off"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        assert_eq!(parse_bool("2"), None);
    }

    /// docker and containerd units in the variant with `OOMScoreAdjust=`
    /// and `Restart=always` (Debian's own files, which differ slightly, are
    /// in `testdata/debian/`, loaded by `units::tests`).
    const DOCKER_SERVICE: &str = "[Unit]\nDescription=Docker Application Container Engine\nDocumentation=https://docs.docker.com\nAfter=network-online.target docker.socket firewalld.service containerd.service time-set.target\nWants=network-online.target containerd.service\nRequires=docker.socket\n[Service]\nType=notify\nEnvironmentFile=-/etc/default/docker\nExecStart=/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock $DOCKER_OPTS\nExecReload=/bin/kill -s HUP $MAINPID\nTimeoutStartSec=0\nRestartSec=2\nRestart=always\nStartLimitBurst=3\nStartLimitInterval=60s\nLimitNOFILE=infinity\nLimitNPROC=infinity\nLimitCORE=infinity\nTasksMax=infinity\nDelegate=yes\nKillMode=process\nOOMScoreAdjust=-500\n[Install]\nWantedBy=multi-user.target\n";
    const DOCKER_SOCKET: &str = "[Unit]\nDescription=Docker Socket for the API\n[Socket]\nListenStream=/run/docker.sock\nSocketMode=0660\nSocketUser=root\nSocketGroup=docker\n[Install]\nWantedBy=sockets.target\n";
    const CONTAINERD_SERVICE: &str = "[Unit]\nDescription=containerd container runtime\nDocumentation=https://containerd.io\nAfter=network.target local-fs.target\n[Service]\nExecStartPre=-/sbin/modprobe overlay\nExecStart=/usr/bin/containerd\nType=notify\nDelegate=yes\nKillMode=process\nRestart=always\nRestartSec=5\nLimitNPROC=infinity\nLimitCORE=infinity\nLimitNOFILE=infinity\nTasksMax=infinity\nOOMScoreAdjust=-999\n[Install]\nWantedBy=multi-user.target\n";

    #[test]
    fn debian_docker_units_load_without_warnings() {
        let (u, d) = parse_one(
            "docker.service",
            "/lib/systemd/system/docker.service",
            DOCKER_SERVICE,
        );
        assert!(d.is_empty(), "{:?}", msgs(&d));
        assert_eq!(u.load, LoadState::Loaded);
        assert_eq!(u.requires, ["docker.socket"]);
        assert_eq!(u.wants, ["network-online.target", "containerd.service"]);
        assert_eq!(
            (u.start_limit_burst, u.start_limit_interval.as_secs()),
            (3, 60)
        );
        let s = u.service.unwrap();
        assert_eq!(s.kind, ServiceType::Notify);
        assert_eq!(s.timeout_start, None);
        assert_eq!(s.kill_mode, KillMode::Process);
        assert!(s.delegate);
        assert_eq!(s.oom_score_adjust, Some(-500));
        assert_eq!(s.tasks_max, Some(Max::Infinity));
        assert_eq!(s.limits.len(), 3);
        assert!(s
            .limits
            .iter()
            .all(|l| l.soft == Max::Infinity && l.hard == Max::Infinity));
        assert_eq!(
            s.exec_reload[0].argv,
            ["/bin/kill", "-s", "HUP", "$MAINPID"]
        );

        let (u, d) = parse_one(
            "docker.socket",
            "/lib/systemd/system/docker.socket",
            DOCKER_SOCKET,
        );
        assert!(d.is_empty(), "{:?}", msgs(&d));
        assert_eq!(u.load, LoadState::Loaded);
        assert!(u.service.is_none());
        let sock = u.socket.unwrap();
        assert_eq!(sock.mode, 0o660);
        assert_eq!(sock.group.as_deref(), Some("docker"));
        assert_eq!(sock.service_name("docker.socket"), "docker.service");
        assert_eq!(u.install.wanted_by, ["sockets.target"]);

        let (u, d) = parse_one(
            "containerd.service",
            "/lib/systemd/system/containerd.service",
            CONTAINERD_SERVICE,
        );
        // ExecStartPre's /sbin/modprobe is absolute: no lookup needed.
        assert!(d.is_empty(), "{:?}", msgs(&d));
        let s = u.service.unwrap();
        assert_eq!(s.kind, ServiceType::Notify);
        assert_eq!(s.oom_score_adjust, Some(-999));
        assert_eq!(s.kill_mode, KillMode::Process);
    }

    #[test]
    fn dependency_kinds_alias_and_limits() {
        let (u, d) = parse_one(
            "etcd.service",
            "/f",
            "[Unit]\nBindsTo=a.service\nPartOf=b.service c.service\n\
             [Service]\nExecStart=/bin/etcd\nLimitNOFILE=1024:4096\nLimitCORE=4K\n\
             LimitNPROC=9:8\nTasksMax=512\nKillMode=mixed\nOOMScoreAdjust=5000\nDelegate=cpu memory\n\
             [Install]\nAlias=etcd2.service\nAlias=etcd.socket\n",
        );
        assert_eq!(u.binds_to, ["a.service"]);
        assert_eq!(u.part_of, ["b.service", "c.service"]);
        assert_eq!(u.pulls().count(), 1);
        assert_eq!(u.install.alias, ["etcd2.service"]);
        let s = u.service.unwrap();
        assert_eq!(
            s.limits,
            vec![
                ResourceLimit {
                    resource: Resource::Nofile,
                    soft: Max::Value(1024),
                    hard: Max::Value(4096)
                },
                ResourceLimit {
                    resource: Resource::Core,
                    soft: Max::Value(4096),
                    hard: Max::Value(4096)
                },
            ]
        );
        assert_eq!(s.tasks_max, Some(Max::Value(512)));
        assert_eq!(s.kill_mode, KillMode::Mixed);
        assert_eq!(s.oom_score_adjust, None);
        assert!(s.delegate);
        assert_eq!(
            msgs(&d),
            [
                "/f:8: warning: LimitNPROC=9:8: the soft limit is above the hard one, ignoring",
                "/f:11: warning: OOMScoreAdjust=5000: not a number in -1000…1000, ignoring",
                "/f:15: warning: Alias=etcd.socket: not a .service name, ignoring",
            ]
        );
    }

    #[test]
    fn accept_yes_is_a_load_error_naming_file_and_line() {
        let (u, d) = parse_one(
            "x.socket",
            "/etc/systemd/system/x.socket",
            "[Socket]\nListenStream=/run/x.sock\nAccept=yes\nBacklog=5\n",
        );
        assert_eq!(
            msgs(&d),
            [
                "/etc/systemd/system/x.socket:3: error: Accept=yes (one service instance per connection) is not supported; refusing",
                "/etc/systemd/system/x.socket:4: warning: unsupported directive Backlog= in [Socket], ignoring",
            ]
        );
        assert!(
            matches!(&u.load, LoadState::Error(e) if e.starts_with("/etc/systemd/system/x.socket:3: "))
        );
        let (u, d) = parse_one("y.socket", "/y", "[Socket]\nSocketMode=0600\n");
        assert_eq!(
            msgs(&d),
            ["/y: error: socket has no ListenStream= or ListenDatagram=; refusing"]
        );
        assert!(matches!(u.load, LoadState::Error(_)));
    }
}

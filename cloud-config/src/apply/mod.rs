//! Applying a validated [`CloudConfig`] to a root directory (`/` on the
//! machine, a temporary directory in tests).
//!
//! Order (see `CLOUD-CONFIG-REFERENCE.md`):
//! 1. hostname → `/etc/hostname` (user-data wins over metadata);
//! 2. top-level `groups`, then each `users[]` entry and its SSH keys
//!    (`accounts.rs`, `ssh_keys.rs`), then the default user (`core`, created
//!    when there are top-level or metadata keys) and its keys, then
//!    `/etc/sudoers.d/90-cloud-config`;
//! 3. `write_files` without `defer` (`write_files.rs`);
//! 4. generated files: `/etc/hosts` (`manage_etc_hosts: localhost`),
//!    `/etc/slipway/update.conf`, etcd2/fleet/flannel drop-ins,
//!    `/etc/oem-release` (`generated.rs`), `/etc/slipway/swarm.conf`
//!    (`swarm_conf.rs`);
//! 5. `coreos.units`, then the queue of unit commands (`units.rs`);
//! 6. `write_files` with `defer: true`.
//!
//! The default user is created like any other new user (lowest free uid
//! from 1000, not CoreOS's 500, so it cannot collide with image system
//! ids), joining whichever of `wheel`, `sudo`, `docker`,
//! `systemd-journal`, `adm` the image has. A `users[]` entry of the same
//! name is created first with its own settings instead.
//!
//! Ownership: a failed chown fails its step, except when not running as
//! root and the error is "permission denied" (tests without privileges).
//!
//! `runcmd`/`bootcmd` are not run here: [`commands_to_run`] and
//! [`bootcmds`] give the caller argv lists. Per-instance bookkeeping is
//! [`already_applied`] / [`record_applied`]; the caller decides.
//!
//! Failure rule: every item is an independent step; one failing is
//! recorded as [`StepResult::Failed`] and the rest continues. The one
//! dependency: when a user's step fails, that user's SSH keys and the
//! files it should own fail too (with a message naming the failed step).
//! A config whose validation report has errors is not applied at all
//! ([`apply_report`]).
//!
//! Key revocation: a user (or the default user) whose `cloud-config` or
//! `metadata` key set exists from an earlier run but has no keys now gets
//! a keys step that removes the set and regenerates `authorized_keys`.

mod accounts;
mod commands;
mod fsops;
mod generated;
mod hostname;
mod instance;
mod ssh_keys;
mod swarm_conf;
mod units;
mod write_files;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use crate::findings::Level;
use crate::report::Report;
use crate::schema::{CloudConfig, User, WriteFile};

pub use commands::{bootcmds, commands_to_run, PlannedCommand};
pub use instance::{already_applied, record_applied, try_record_applied, INSTANCE_FILE};
pub use units::UnitCommand;

/// Where and for whom to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyOptions {
    /// `/` on the machine.
    pub root: PathBuf,
    /// From the metadata; keys the per-instance bookkeeping.
    pub instance_id: String,
    /// Gets the top-level `ssh_authorized_keys` and the metadata keys;
    /// `core` on Slipway.
    pub default_user: String,
    /// SSH keys from the datasource's metadata (the `metadata` key set).
    pub metadata_keys: Vec<String>,
    /// Used when the user-data has no `hostname`.
    pub metadata_hostname: Option<String>,
}

impl ApplyOptions {
    /// Options for `root` with the default user `core` and no metadata.
    pub fn new(root: impl Into<PathBuf>, instance_id: impl Into<String>) -> ApplyOptions {
        ApplyOptions {
            root: root.into(),
            instance_id: instance_id.into(),
            default_user: "core".to_string(),
            metadata_keys: Vec::new(),
            metadata_hostname: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepResult {
    Done,
    Skipped(String),
    Failed(String),
}

/// One thing apply did (or did not do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What, e.g. `write_files[2] /etc/foo`.
    pub name: String,
    pub result: StepResult,
    /// Remarks worth a log line (e.g. "existing user: only the password
    /// and SSH keys are applied").
    pub notes: Vec<String>,
}

/// Everything apply did, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    pub steps: Vec<Step>,
    /// Unit commands queued in `/run/slipway/unit-commands`, in order.
    pub unit_commands: Vec<UnitCommand>,
}

impl Outcome {
    fn count(&self, f: impl Fn(&StepResult) -> bool) -> usize {
        self.steps.iter().filter(|s| f(&s.result)).count()
    }

    /// One line: `cloud-config: 14 done, 0 failed, 2 skipped`.
    pub fn summary(&self) -> String {
        format!(
            "cloud-config: {} done, {} failed, {} skipped",
            self.count(|r| *r == StepResult::Done),
            self.count(|r| matches!(r, StepResult::Failed(_))),
            self.count(|r| matches!(r, StepResult::Skipped(_))),
        )
    }

    /// One line per step: `<name>: done[ (notes)]`, `<name>: skipped: …`,
    /// `<name>: FAILED: …`.
    pub fn log_text(&self) -> String {
        let mut out = String::new();
        for s in &self.steps {
            let notes = if s.notes.is_empty() {
                String::new()
            } else {
                format!(" ({})", s.notes.join("; "))
            };
            let line = match &s.result {
                StepResult::Done => format!("{}: done{notes}", s.name),
                StepResult::Skipped(why) => format!("{}: skipped: {why}{notes}", s.name),
                StepResult::Failed(why) => format!("{}: FAILED: {why}{notes}", s.name),
            };
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    pub fn failed(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s.result, StepResult::Failed(_)))
    }
}

/// Why [`apply_report`] applied nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefusedConfig {
    #[error("not applied: the cloud-config has {errors} error{}", if *errors == 1 { "" } else { "s" })]
    HasErrors { errors: usize },
    #[error("not applied: the user-data is not a readable cloud-config")]
    NoConfig,
}

/// Applies the config of a validation report, or refuses (writing
/// nothing) when the report has errors or no config.
pub fn apply_report(report: &Report, opts: &ApplyOptions) -> Result<Outcome, RefusedConfig> {
    let errors = report
        .findings
        .iter()
        .filter(|f| f.level == Level::Error)
        .count();
    if errors > 0 || report.has_errors() {
        return Err(RefusedConfig::HasErrors { errors });
    }
    let config = report.config.as_ref().ok_or(RefusedConfig::NoConfig)?;
    Ok(apply(config, opts))
}

/// The state of one apply run.
struct Runner<'a> {
    opts: &'a ApplyOptions,
    outcome: Outcome,
    /// Users whose step failed → that step's name.
    failed_users: BTreeMap<String, String>,
    /// `(user, rule)` for the sudoers file.
    sudo_rules: Vec<(String, String)>,
}

impl Runner<'_> {
    /// Runs one step, records it; true if it was done.
    fn step(&mut self, name: String, f: impl FnOnce() -> Result<Vec<String>, String>) -> bool {
        let (result, notes) = match f() {
            Ok(notes) => (StepResult::Done, notes),
            Err(e) => (StepResult::Failed(e), Vec::new()),
        };
        let done = result == StepResult::Done;
        self.outcome.steps.push(Step {
            name,
            result,
            notes,
        });
        done
    }

    fn skip(&mut self, name: String, why: &str) {
        self.outcome.steps.push(Step {
            name,
            result: StepResult::Skipped(why.to_string()),
            notes: Vec::new(),
        });
    }

    /// A step that needs `user` to have been set up.
    fn user_step(
        &mut self,
        name: String,
        user: &str,
        f: impl FnOnce() -> Result<Vec<String>, String>,
    ) -> bool {
        if let Some(failed) = self.failed_users.get(user).cloned() {
            return self.step(name, || {
                Err(format!(
                    "user {user:?} was not set up (step \"{failed}\" failed)"
                ))
            });
        }
        self.step(name, f)
    }

    fn user(&mut self, name: String, user: &User) {
        let root = self.opts.root.clone();
        let ok = self.step(name.clone(), || {
            with_line(
                user.line,
                accounts::apply_user(&root, user).map(|r| r.notes),
            )
        });
        if ok {
            for rule in &user.sudo {
                self.sudo_rules.push((user.name.clone(), rule.clone()));
            }
        } else {
            self.failed_users.insert(user.name.clone(), name);
        }
    }

    fn write_file(&mut self, index: usize, file: &WriteFile) {
        let root = self.opts.root.clone();
        let failed_users = self.failed_users.clone();
        self.step(format!("write_files[{index}] {}", file.path), || {
            with_line(
                file.line,
                write_files::write(&root, file, &failed_users).map(|()| Vec::new()),
            )
        });
    }
}

/// Prefixes a failure with the item's line in the user-data.
fn with_line<T>(line: usize, r: Result<T, String>) -> Result<T, String> {
    r.map_err(|e| {
        if line > 0 {
            format!("line {line}: {e}")
        } else {
            e
        }
    })
}

/// Applies `config` to `opts.root`; see the module documentation for the
/// order and the failure rule.
pub fn apply(config: &CloudConfig, opts: &ApplyOptions) -> Outcome {
    let mut run = Runner {
        opts,
        outcome: Outcome::default(),
        failed_users: BTreeMap::new(),
        sudo_rules: Vec::new(),
    };
    let root = opts.root.clone();

    // 1. Hostname.
    let hostname = config
        .hostname
        .as_deref()
        .or(opts.metadata_hostname.as_deref());
    if let Some(h) = hostname {
        let source = if config.hostname.is_some() {
            "user-data"
        } else {
            "metadata"
        };
        run.step(format!("hostname {h}"), || {
            hostname::write_hostname(&root, h).map(|()| vec![format!("from {source}")])
        });
    }

    // 2. Groups, users, keys, sudoers.
    for (i, g) in config.groups.iter().enumerate() {
        run.step(format!("groups[{i}] {}", g.name), || {
            with_line(g.line, accounts::apply_group(&root, g).map(|r| r.notes))
        });
    }
    for (i, u) in config.users.iter().enumerate() {
        let name = format!("users[{i}] {}", u.name);
        run.user(name.clone(), u);
        // With no keys, an earlier instance's set is revoked; the default
        // user's sets are handled (merged) by `default_user`.
        let revoke = u.ssh_authorized_keys.is_empty()
            && u.name != opts.default_user
            && ssh_keys::has_set(&root, &u.name, ssh_keys::USER_DATA_SET);
        if !u.ssh_authorized_keys.is_empty() || revoke {
            let keys = u.ssh_authorized_keys.clone();
            run.user_step(format!("{name} ssh keys"), &u.name, || {
                ssh_keys::install(&root, &u.name, &[(ssh_keys::USER_DATA_SET, keys)])
            });
        }
    }
    default_user(&mut run, config);
    if !run.sudo_rules.is_empty() {
        let rules = run.sudo_rules.clone();
        run.step(format!("sudoers {}", accounts::SUDOERS), || {
            accounts::write_sudoers(&root, &rules).map(|()| Vec::new())
        });
    }

    // 3. Files.
    for (i, f) in config.write_files.iter().enumerate() {
        if !f.defer {
            run.write_file(i, f);
        }
    }

    // 4. Generated files.
    generated_files(&mut run, config, hostname);

    // 5. Units.
    apply_units(&mut run, config, false);

    // 6. Deferred files.
    for (i, f) in config.write_files.iter().enumerate() {
        if f.defer {
            run.write_file(i, f);
        }
    }
    run.outcome
}

/// What lives in `/run` or acts on this boot only, re-applied at every boot
/// of an instance already configured: the `coreos.etcd2`/`fleet`/`flannel`
/// drop-ins, `runtime: true` units, and the `coreos.units` commands (as
/// coreos-cloudinit, which ran at every boot, did: `etcd2.service` with
/// `command: start` starts after each reboot, with its configuration).
/// Everything else stays once per instance.
pub fn apply_every_boot(config: &CloudConfig, opts: &ApplyOptions) -> Outcome {
    let mut run = Runner {
        opts,
        outcome: Outcome::default(),
        failed_users: BTreeMap::new(),
        sudo_rules: Vec::new(),
    };
    env_drop_ins(&mut run, config);
    apply_units(&mut run, config, true);
    run.outcome
}

/// `coreos.units`: each unit's files (only the `runtime` ones with
/// `runtime_only`), then the queue of their commands.
fn apply_units(run: &mut Runner<'_>, config: &CloudConfig, runtime_only: bool) {
    let root = run.opts.root.clone();
    for (i, u) in config.coreos.units.iter().enumerate() {
        let ok = if runtime_only && !u.runtime {
            true
        } else {
            run.step(format!("coreos.units[{i}] {}", u.name), || {
                with_line(u.line, units::apply_unit(&root, u))
            })
        };
        match (&u.command, ok) {
            (Some(c), true) => run.outcome.unit_commands.push(UnitCommand {
                command: c.clone(),
                unit: u.name.clone(),
            }),
            (Some(_), false) => {}
            (None, _) => {}
        }
    }
    if !run.outcome.unit_commands.is_empty() {
        let commands = run.outcome.unit_commands.clone();
        run.step(format!("unit commands {}", units::UNIT_COMMANDS), || {
            units::write_commands(&root, &commands).map(|()| Vec::new())
        });
    }
}

/// The default user: created if missing when it has keys, then its key
/// sets (`cloud-config`: top-level keys plus any from a `users[]` entry of
/// the same name; `metadata`: the datasource's).
fn default_user(run: &mut Runner<'_>, config: &CloudConfig) {
    let opts = run.opts;
    let root = opts.root.clone();
    let name = opts.default_user.clone();
    let mut user_data_keys: Vec<String> = Vec::new();
    let from_users = config
        .users
        .iter()
        .filter(|u| u.name == name)
        .flat_map(|u| u.ssh_authorized_keys.iter());
    for k in from_users.chain(config.ssh_authorized_keys.iter()) {
        if !user_data_keys.contains(k) {
            user_data_keys.push(k.clone());
        }
    }
    let wants_keys = !config.ssh_authorized_keys.is_empty() || !opts.metadata_keys.is_empty();
    // Without keys the user is not created, but sets of an earlier
    // instance that are empty now are revoked.
    let revoke = (user_data_keys.is_empty()
        && ssh_keys::has_set(&root, &name, ssh_keys::USER_DATA_SET))
        || (opts.metadata_keys.is_empty()
            && ssh_keys::has_set(&root, &name, ssh_keys::METADATA_SET));
    if !wants_keys && !revoke {
        return;
    }
    let exists = accounts::Accounts::load(&root).is_ok_and(|a| a.user(&name).is_some());
    if wants_keys && !exists && !run.failed_users.contains_key(&name) {
        let step = format!("default user {name}");
        match accounts::default_user(&root, &name) {
            Ok(user) => run.user(step, &user),
            Err(e) => {
                run.step(step.clone(), || Err(e));
                run.failed_users.insert(name.clone(), step);
            }
        }
    }
    let sets = vec![
        (ssh_keys::USER_DATA_SET, user_data_keys),
        (ssh_keys::METADATA_SET, opts.metadata_keys.clone()),
    ];
    run.user_step(format!("default user {name} ssh keys"), &name, || {
        ssh_keys::install(&root, &name, &sets)
    });
}

fn generated_files(run: &mut Runner<'_>, config: &CloudConfig, hostname: Option<&str>) {
    let root = run.opts.root.clone();
    match config.manage_etc_hosts.as_deref() {
        None | Some("false") => {}
        Some("localhost") => {
            run.step(format!("manage_etc_hosts {}", hostname::HOSTS), || {
                hostname::write_hosts(&root, hostname).map(|()| Vec::new())
            });
        }
        Some(other) => run.skip(
            format!("manage_etc_hosts {}", hostname::HOSTS),
            &format!("unsupported value {other:?}; only \"localhost\" is supported"),
        ),
    }
    let coreos = &config.coreos;
    if coreos.update.is_some() || coreos.locksmith.is_some() {
        run.step(format!("coreos.update {}", generated::UPDATE_CONF), || {
            let text = generated::update_conf(coreos.update.as_ref(), coreos.locksmith.as_ref())?
                .unwrap_or_default();
            fsops::write_atomic(
                &root,
                &fsops::under_root(&root, generated::UPDATE_CONF),
                text.as_bytes(),
                0o644,
                fsops::Owner::default(),
            )
            .map(|()| Vec::new())
        });
    }
    if coreos.swarm.is_some() {
        run.step(format!("coreos.swarm {}", swarm_conf::SWARM_CONF), || {
            let text = swarm_conf::swarm_conf(coreos)?.unwrap_or_default();
            fsops::write_atomic(
                &root,
                &fsops::under_root(&root, swarm_conf::SWARM_CONF),
                text.as_bytes(),
                swarm_conf::SWARM_CONF_MODE,
                fsops::Owner::default(),
            )
            .map(|()| Vec::new())
        });
    }
    env_drop_ins(run, config);
    if let Some(oem) = &coreos.oem {
        run.step(format!("coreos.oem {}", generated::OEM_RELEASE), || {
            let text = generated::oem_release(oem)?;
            fsops::write_atomic(
                &root,
                &fsops::under_root(&root, generated::OEM_RELEASE),
                text.as_bytes(),
                0o644,
                fsops::Owner::default(),
            )
            .map(|()| Vec::new())
        });
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary())
    }
}

/// `coreos.etcd2`, `coreos.fleet`, `coreos.flannel`: one drop-in each, in
/// `/run` (so at every boot, see [`apply_every_boot`]).
fn env_drop_ins(run: &mut Runner<'_>, config: &CloudConfig) {
    let root = run.opts.root.clone();
    let coreos = &config.coreos;
    for (section, service, prefix) in generated::SERVICES {
        let env = match section {
            "etcd2" => &coreos.etcd2,
            "fleet" => &coreos.fleet,
            _ => &coreos.flannel,
        };
        if env.is_empty() {
            continue;
        }
        let path = format!("/run/systemd/system/{service}.d/{}", generated::ENV_DROP_IN);
        run.step(format!("coreos.{section} {path}"), || {
            let text = generated::env_drop_in(section, prefix, env)?;
            fsops::write_atomic(
                &root,
                &fsops::under_root(&root, &path),
                text.as_bytes(),
                0o644,
                fsops::Owner::default(),
            )
            .map(|()| Vec::new())
        });
    }
}

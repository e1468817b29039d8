//! `slipway-cloud-config boot local|network`: the two stages every boot
//! runs, as cloud-init and coreos-cloudinit split them.
//!
//! **local** — run by the init before the service manager starts, with no
//! network yet:
//! 1. The local sources, in the precedence of [`crate::datasource`]: fw_cfg,
//!    then seed filesystems (labels `cidata`, `config-2`, mounted read-only
//!    under `/run/slipway/seed/<device>` and unmounted after).
//! 2. What must precede services: `bootcmd` (every boot); users, keys,
//!    files, units, hostname (once per instance, recorded under
//!    `/var/lib`); what lives in `/run` or acts on the boot (`coreos.units`
//!    commands, queued for the manager; `runtime` units; the
//!    `coreos.etcd2`/`fleet`/`flannel` drop-ins) at every boot.
//! 3. It leaves a hand-off in `/run` ([`handoff`]): what it found, and
//!    whether this instance's `runcmd` is still to run.
//!
//! **network** — `slipway-cloud-config.service`, ordered after
//! `network-online.target`:
//! - after a local source: that user-data's `runcmd` (once per instance)
//!   and `#!` script (once per instance), now with the network up;
//! - without one (no user-data nor metadata from fw_cfg or a seed disk):
//!   the network sources (`cloud-config-url=`,
//!   `ds=nocloud;s=`, and the EC2 metadata service where the firmware says
//!   EC2), and everything above from what they give, with the
//!   `coreos.units` commands sent to the running manager ([`manager`]),
//!   then `runcmd` and scripts.
//!
//! A cloud-config with errors is not applied at all: its findings go to the
//! console with line and column, and the exit status is 1. The outcome of
//! each step goes to `/var/log/cloud-config.log` (0600), a one-line summary
//! to the console.
//!
//! Each stage has a time limit ([`Stage::limit`]: 240 s and 420 s) below
//! the one of whoever runs it (the init: 300 s; the unit:
//! `TimeoutStartSec=480`), and stops its commands' process groups itself
//! when it runs out.

mod commands;
mod handoff;
mod log;
mod manager;
mod seeds;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::apply::{self, ApplyOptions, Outcome};
use crate::datasource::{self, Datasource, Fetched};
use crate::{userdata, Substitutions, UserDataKind};

use commands::{run_command, Deadline};
use handoff::Handoff;
use log::Log;
pub use log::LOG;
use seeds::{SeedKind, SEED_MOUNTS};

const SCRIPT: &str = "/var/lib/slipway/cloud-config/user-data-script";

/// Which of the two boot stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Local,
    Network,
}

impl Stage {
    /// The stage's own time limit (see the module doc).
    pub fn limit(self) -> Duration {
        match self {
            Stage::Local => Duration::from_secs(240),
            // With wait-online's 30 s, well inside the 600 s after which
            // the service manager calls a boot that has not settled
            // unhealthy (this stage is one of the boot's units).
            Stage::Network => Duration::from_secs(420),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Stage::Local => "local",
            Stage::Network => "network",
        }
    }
}

/// Runs one stage; returns the process exit status.
pub fn run(stage: Stage) -> i32 {
    let mut log = Log::open(&format!("boot, {} stage", stage.name()));
    let deadline = Deadline::after(stage.limit());
    match stage {
        Stage::Local => local(&mut log, &deadline),
        Stage::Network => network(&mut log, &deadline),
    }
}

fn local(log: &mut Log, deadline: &Deadline) -> i32 {
    let (handoff, status, user_data) = match fetch_local(log) {
        Ok(Some(mut fetched)) => {
            // Derived once, so both stages key on the same ID.
            let id = instance_id(&fetched, log);
            fetched.metadata.instance_id = Some(id.clone());
            let status = handle(&fetched, Part::Local, log, deadline);
            let handoff = Handoff::Found {
                source: display_source(&fetched),
                instance_id: id,
                metadata: fetched.metadata.clone(),
                has_user_data: fetched.user_data.is_some(),
            };
            (handoff, status, fetched.user_data)
        }
        Ok(None) => {
            log.note(
                "no user-data from fw_cfg or a seed disk; the network stage tries \
                 cloud-config-url=, ds=nocloud;s= and the EC2 metadata service",
            );
            (Handoff::None, 0, None)
        }
        Err(e) => {
            log.say(&format!("fetching user-data: {e}"));
            (Handoff::Broken { why: e.to_string() }, 1, None)
        }
    };
    if let Err(e) = handoff::write(&handoff, user_data.as_deref()) {
        log.say(&format!("handing over to the network stage: {e}"));
        return 1;
    }
    status
}

fn network(log: &mut Log, deadline: &Deadline) -> i32 {
    match handoff::read() {
        Ok(Some((
            Handoff::Found {
                source,
                instance_id,
                metadata,
                ..
            },
            user_data,
        ))) => {
            let fetched = Fetched {
                source,
                user_data,
                metadata: datasource::Metadata {
                    instance_id: Some(instance_id),
                    ..metadata
                },
                network_config: None,
            };
            handle(&fetched, Part::AfterLocal, log, deadline)
        }
        Ok(Some((Handoff::Broken { .. }, _))) => {
            log.note("the local source was broken (see above); not trying network sources");
            0
        }
        Ok(Some((Handoff::None, _))) => match fetch_network(log) {
            Ok(Some(fetched)) => handle(&fetched, Part::All, log, deadline),
            Ok(None) => {
                log.note("no user-data from any source");
                0
            }
            Err(e) => {
                log.say(&format!("fetching user-data: {e}"));
                1
            }
        },
        Ok(None) => {
            // Trying ambient sources now could configure the machine from
            // the cloud's metadata instead of the seed the user gave.
            log.say(
                "the local stage left no hand-off (it did not run or did not finish); \
                 not trying network sources",
            );
            1
        }
        Err(e) => {
            log.say(&format!("reading the local stage's hand-off: {e}"));
            1
        }
    }
}

/// The local sources: fw_cfg and seed filesystems.
fn fetch_local(log: &mut Log) -> Result<Option<Fetched>, datasource::DatasourceError> {
    let seeds = seeds::mount_seeds(log);
    let mut sources: Vec<Box<dyn Datasource>> = vec![Box::new(datasource::FwCfg::new("/".into()))];
    for (kind, dir) in &seeds {
        match kind {
            SeedKind::NoCloud => sources.push(Box::new(datasource::NoCloud::from_dir(dir.clone()))),
            SeedKind::ConfigDrive => {
                sources.push(Box::new(datasource::ConfigDrive::from_dir(dir.clone())))
            }
        }
    }
    let refs: Vec<&dyn Datasource> = sources.iter().map(|s| s.as_ref()).collect();
    let result = datasource::fetch_first(&refs, &datasource::Poll::default());
    for (_, dir) in &seeds {
        let _ = nix::mount::umount(dir.as_path());
    }
    result
}

/// The network sources: the kernel command line's URL, then the EC2
/// metadata service where the firmware says EC2.
fn fetch_network(log: &mut Log) -> Result<Option<Fetched>, datasource::DatasourceError> {
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let mut sources: Vec<Box<dyn Datasource>> = Vec::new();
    if let Some(url) = datasource::CmdlineUrl::from_cmdline(&cmdline) {
        log.note(&format!("trying {} ({})", url.name(), url.url()));
        sources.push(Box::new(url));
    }
    if on_ec2() {
        log.note("the firmware says EC2: trying the instance metadata service");
        sources.push(Box::new(datasource::Ec2::new(
            datasource::EC2_DEFAULT_URL.to_string(),
        )));
    }
    let refs: Vec<&dyn Datasource> = sources.iter().map(|s| s.as_ref()).collect();
    datasource::fetch_first(&refs, &datasource::Poll::default())
}

/// Whether the firmware says this is an EC2 instance (what cloud-init
/// checks too). Asking 169.254.169.254 anywhere else is not harmless: under
/// QEMU's user networking on a cloud VM, the guest's request reaches the
/// *host's* metadata service, and the guest would apply the host's
/// user-data.
fn on_ec2() -> bool {
    let read = |name: &str| {
        std::fs::read_to_string(format!("/sys/class/dmi/id/{name}"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    read("sys_vendor").contains("Amazon EC2")
        || read("product_uuid").to_ascii_lowercase().starts_with("ec2")
        || read("board_asset_tag").starts_with("i-")
}

/// The instance ID per-instance items are keyed on: the source's, trimmed;
/// without one (fw_cfg without meta-data, `cloud-config-url=`), a digest of
/// what was fetched, so new user-data is a new instance and the same
/// user-data is not applied twice.
fn instance_id(fetched: &Fetched, log: &mut Log) -> String {
    let given = fetched
        .metadata
        .instance_id
        .as_deref()
        .map(str::trim)
        .filter(|id| !id.is_empty() && !id.contains(['\n', '\r']));
    if let Some(id) = given {
        return id.to_string();
    }
    let mut h = Sha256::new();
    h.update(fetched.user_data.as_deref().unwrap_or_default());
    h.update(b"\0");
    h.update(fetched.metadata.public_keys.join("\n").as_bytes());
    h.update(b"\0");
    h.update(
        fetched
            .metadata
            .local_hostname
            .as_deref()
            .unwrap_or_default(),
    );
    let digest = h.finalize();
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let id = format!("iid-sha256-{hex}");
    log.note(&format!(
        "{}: no instance ID given; using {id}, derived from its contents",
        fetched.source
    ));
    id
}

/// Seeds are named by their device, not where this tool mounted them.
fn display_source(fetched: &Fetched) -> String {
    fetched.source.replace(&format!("{SEED_MOUNTS}/"), "/dev/")
}

/// Which part of the work a stage does with the user-data it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// The local stage: everything before services; `runcmd` and scripts
    /// are left to the network stage.
    Local,
    /// The network stage after a local source: `runcmd` and scripts.
    AfterLocal,
    /// The network stage with a network source: everything.
    All,
}

/// Validates what was fetched and does this stage's part; returns the exit
/// status.
fn handle(fetched: &Fetched, part: Part, log: &mut Log, deadline: &Deadline) -> i32 {
    let meta = &fetched.metadata;
    let opts = ApplyOptions {
        root: PathBuf::from("/"),
        instance_id: instance_id(fetched, log),
        default_user: "core".to_string(),
        metadata_keys: meta.public_keys.clone(),
        metadata_hostname: meta.local_hostname.clone(),
    };
    let source = display_source(fetched);
    let name = format!("user-data ({source})");
    let Some(bytes) = &fetched.user_data else {
        // Metadata alone (an EC2 key pair, NoCloud public-keys) still
        // makes the machine reachable: the default user, keys, hostname.
        return match part {
            Part::AfterLocal => 0,
            Part::Local | Part::All => apply_metadata_only(&opts, &source, part, log),
        };
    };
    let subs = Substitutions {
        public_ipv4: meta.public_ipv4.clone(),
        private_ipv4: meta.private_ipv4.clone(),
        public_ipv6: meta.public_ipv6.clone(),
        private_ipv6: meta.private_ipv6.clone(),
        // Only looked at when nothing else gives `$private_ipv4`.
        interface_ipv4: crate::substitute::interface_ipv4().map(|a| a.to_string()),
    };
    let report = crate::validate_with(bytes, &subs);
    if part != Part::AfterLocal {
        // The network stage after a local source has them printed already.
        let findings = report.render_text(&name);
        for line in findings.lines() {
            println!("{line}");
            log.note(line);
        }
    }
    match (report.kind, part) {
        (UserDataKind::Empty, Part::AfterLocal) => 0,
        (UserDataKind::Empty, _) => apply_metadata_only(&opts, &source, part, log),
        (UserDataKind::Script, Part::Local) => apply_metadata_only(&opts, &source, part, log),
        (UserDataKind::Script, Part::AfterLocal) => {
            run_script_once(&userdata::detect(bytes).body, &opts, log, deadline)
        }
        (UserDataKind::Script, Part::All) => {
            let status = apply_metadata_only(&opts, &source, part, log);
            status.max(run_script_once(
                &userdata::detect(bytes).body,
                &opts,
                log,
                deadline,
            ))
        }
        (UserDataKind::CloudConfig, _) if !report.has_errors() => {
            apply_cloud_config(&report, &opts, &name, part, log, deadline)
        }
        (_, Part::AfterLocal) => 0,
        _ => {
            log.say(&format!(
                "{name} has errors (listed above with line and column); nothing was applied"
            ));
            1
        }
    }
}

/// Applies an empty cloud-config: what the metadata alone asks for.
fn apply_metadata_only(opts: &ApplyOptions, source: &str, part: Part, log: &mut Log) -> i32 {
    if opts.metadata_keys.is_empty() && opts.metadata_hostname.is_none() {
        return 0;
    }
    if apply::already_applied(opts) {
        return 0;
    }
    let outcome = apply::apply(&crate::schema::CloudConfig::default(), opts);
    let mut failed = log_outcome(&outcome, part, log);
    if let Err(e) = apply::try_record_applied(opts) {
        log.say(&format!("recording instance {}: {e}", opts.instance_id));
        failed = true;
    }
    let summary = outcome.summary();
    log.say(&format!(
        "metadata ({source}): {}",
        summary.trim_start_matches("cloud-config: ")
    ));
    i32::from(failed)
}

/// Notes the outcome's steps; in the network stage also hands the unit
/// commands to the running manager and names the machine. True if
/// anything failed.
fn log_outcome(outcome: &Outcome, part: Part, log: &mut Log) -> bool {
    for line in outcome.log_text().lines() {
        log.note(line);
    }
    let mut failed = outcome.failed();
    if part == Part::All {
        let sent = manager::send(&outcome.unit_commands);
        for failure in sent.failures {
            log.say(&format!("unit command {failure}"));
            failed = true;
        }
        for running in sent.still_running {
            log.note(&format!("unit command {running}: queued, still running"));
        }
        if let Err(e) = apply_hostname() {
            log.say(&format!("setting the host name: {e}"));
            failed = true;
        }
    }
    failed
}

/// The local stage's host name is set by the init after it; the network
/// stage sets what it wrote itself.
fn apply_hostname() -> Result<(), String> {
    let Ok(text) = std::fs::read_to_string("/etc/hostname") else {
        return Ok(());
    };
    let wanted = text.trim();
    let current = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    if wanted.is_empty() || wanted == current {
        return Ok(());
    }
    nix::unistd::sethostname(wanted).map_err(|e| format!("{wanted}: {}", e.desc()))
}

fn apply_cloud_config(
    report: &crate::Report,
    opts: &ApplyOptions,
    name: &str,
    part: Part,
    log: &mut Log,
    deadline: &Deadline,
) -> i32 {
    let Some(config) = &report.config else {
        return 1;
    };
    if part == Part::AfterLocal {
        return run_runcmd(config, opts, name, log, deadline);
    }
    let mut failed = false;
    for planned in apply::bootcmds(config) {
        failed |= !run_command(&planned.step, &planned.argv, log, deadline);
    }
    if apply::already_applied(opts) {
        // What lives in /run is gone after a reboot: put it back (the
        // etcd2 drop-in, runtime units) and queue the units' commands
        // again, as coreos-cloudinit did at every boot.
        let outcome = apply::apply_every_boot(config, opts);
        failed |= log_outcome(&outcome, part, log);
        log.say(&format!(
            "{name}: instance {} already configured; ran bootcmd and re-applied what lives \
             in /run (coreos.units commands, coreos.etcd2/fleet/flannel drop-ins)",
            opts.instance_id
        ));
        if part == Part::All {
            // A runcmd the power cut short of starting last boot.
            failed |= run_runcmd(config, opts, name, log, deadline) != 0;
        }
        return i32::from(failed);
    }
    let outcome = match apply::apply_report(report, opts) {
        Ok(outcome) => outcome,
        Err(refused) => {
            log.say(&format!("{name}: {refused}"));
            return 1;
        }
    };
    failed |= log_outcome(&outcome, part, log);
    // runcmd is pending (until the network stage starts it: this one, or
    // the next boot's if the power goes first) before the instance counts
    // as applied: the other order loses it to a power cut in between.
    let pending = if config.runcmd.is_empty() {
        Ok(())
    } else {
        handoff::runcmd_pending(&opts.instance_id)
    };
    match pending {
        Ok(()) => {
            if let Err(e) = apply::try_record_applied(opts) {
                log.say(&format!("recording instance {}: {e}", opts.instance_id));
                failed = true;
            }
        }
        Err(e) => {
            // Not recorded: the next boot applies the instance again and
            // gets another chance to keep its runcmd.
            log.say(&format!(
                "recording that runcmd is to run: {e}; instance {} is not recorded as applied",
                opts.instance_id
            ));
            failed = true;
        }
    }
    let summary = outcome.summary();
    let summary = summary.trim_start_matches("cloud-config: ");
    log.say(&format!("{name}: {summary}"));
    if part == Part::All {
        failed |= run_runcmd(config, opts, name, log, deadline) != 0;
    }
    i32::from(failed)
}

/// `runcmd`, at most once per instance: only when the instance's apply
/// left it pending, and recorded as started before the first command (a
/// command that reboots the machine must not run again).
fn run_runcmd(
    config: &crate::schema::CloudConfig,
    opts: &ApplyOptions,
    name: &str,
    log: &mut Log,
    deadline: &Deadline,
) -> i32 {
    if config.runcmd.is_empty() || !handoff::runcmd_is_pending(&opts.instance_id) {
        return 0;
    }
    if deadline.is_spent() {
        log.say(&format!(
            "{name}: runcmd not started: the stage's time is used up; it stays pending \
             for the next boot"
        ));
        return 1;
    }
    if let Err(e) = handoff::runcmd_started(&opts.instance_id) {
        log.say(&format!(
            "recording that runcmd started: {e}; not running it"
        ));
        return 1;
    }
    let planned = apply::commands_to_run(config, opts);
    let total = planned.len();
    let mut failures = 0;
    for p in planned {
        failures += usize::from(!run_command(&p.step, &p.argv, log, deadline));
    }
    log.say(&format!(
        "{name}: runcmd: {} of {total} done, {failures} failed",
        total - failures
    ));
    i32::from(failures > 0)
}

/// A `#!` user-data script runs once per instance, from `/var/lib`.
fn run_script_once(body: &[u8], opts: &ApplyOptions, log: &mut Log, deadline: &Deadline) -> i32 {
    if script_ran(opts) {
        log.note("user-data script already ran for this instance");
        return 0;
    }
    if let Err(e) = commands::write_script(Path::new(SCRIPT), body) {
        log.say(&format!("writing {SCRIPT}: {e}"));
        return 1;
    }
    // Recorded first, as for runcmd: at most once per instance.
    if let Err(e) = record_script(opts) {
        log.say(&format!(
            "recording the script of instance {}: {e}",
            opts.instance_id
        ));
        return 1;
    }
    let ok = run_command("user-data script", &[SCRIPT.to_string()], log, deadline);
    if ok {
        log.say("user-data script: done");
    }
    i32::from(!ok)
}

/// The instance whose user-data script ran last; kept apart from the
/// applied-instance record, which metadata alone may have written.
const SCRIPT_INSTANCE: &str = "/var/lib/slipway/cloud-config/script-instance";

fn script_ran(opts: &ApplyOptions) -> bool {
    std::fs::read_to_string(SCRIPT_INSTANCE).is_ok_and(|id| id.trim() == opts.instance_id)
}

fn record_script(opts: &ApplyOptions) -> std::io::Result<()> {
    use slipway_boot_contract::atomic::{self, Durability};
    atomic::write_atomic(
        Path::new(SCRIPT_INSTANCE),
        format!("{}\n", opts.instance_id).as_bytes(),
        Durability::Durable,
    )
}

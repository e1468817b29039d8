//! `slipway-cloud-config boot`: what stage 2 of the init runs at every boot.
//!
//! 1. Find the user-data: seed filesystems (labels `cidata`, `config-2`)
//!    are mounted read-only under `/run/slipway/seed/<device>` and read,
//!    then every source is tried in the precedence of [`crate::datasource`]
//!    (the EC2 metadata service only where the firmware says EC2).
//! 2. `bootcmd` runs at every boot, and so does what lives in `/run` or
//!    acts on the boot (`coreos.units` commands, `runtime` units, the
//!    `coreos.etcd2`/`fleet`/`flannel` drop-ins), as coreos-cloudinit ran
//!    them. Everything else is per instance: it is applied once per
//!    instance ID (recorded under `/var/lib`), so a reboot does not create
//!    users twice or re-run `runcmd`.
//! 3. A cloud-config with errors is not applied at all: its findings go to
//!    the console with line and column, and the exit status is 1. A `#!`
//!    script runs once per instance, its output logged.
//! 4. The outcome of each step goes to `/var/log/cloud-config.log`, a one
//!    line summary to the console.
//!
//! Runs as root on the live system; the init waits for it (with a time
//! limit) before the ready line.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::apply::{self, ApplyOptions};
use crate::datasource::{self, Datasource, Fetched};
use crate::{userdata, Substitutions, UserDataKind};

pub const LOG: &str = "/var/log/cloud-config.log";
const SEED_MOUNTS: &str = "/run/slipway/seed";
const SCRIPT: &str = "/var/lib/slipway/cloud-config/user-data-script";
/// The longest one `runcmd`/`bootcmd` entry or script may run.
const COMMAND_LIMIT: Duration = Duration::from_secs(120);
/// How much of a device to read to find its label (ISO 9660's volume
/// descriptor is at 32 KiB).
const PROBE_BYTES: usize = 40 * 1024;

/// The log: every line goes to `/var/log/cloud-config.log` as it happens
/// (a run killed half-way still leaves its story), and `say` lines also to
/// the console.
struct Log {
    file: Option<std::fs::File>,
}

impl Log {
    fn open() -> Log {
        let file = std::fs::create_dir_all("/var/log")
            .and_then(|()| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(LOG)
            })
            .map_err(|e| println!("slipway: cloud-config: opening {LOG}: {e}"))
            .ok();
        let mut log = Log { file };
        log.note("--- boot");
        log
    }

    /// To the console (our stdout, which the init connects to it) and the log.
    fn say(&mut self, line: &str) {
        println!("slipway: cloud-config: {line}");
        self.note(line);
    }

    /// Only to the log file.
    fn note(&mut self, line: &str) {
        if let Some(f) = &mut self.file {
            let _ = writeln!(f, "{line}");
        }
    }

    /// Where commands write their output: the log file itself, so that a
    /// command leaving a daemon behind holds no pipe we would wait on.
    fn output(&self) -> std::process::Stdio {
        match self.file.as_ref().and_then(|f| f.try_clone().ok()) {
            Some(f) => f.into(),
            None => std::process::Stdio::null(),
        }
    }
}

/// Runs the boot step; returns the process exit status.
pub fn run() -> i32 {
    let mut log = Log::open();
    match fetch(&mut log) {
        Ok(Some(fetched)) => handle(&fetched, &mut log),
        Ok(None) => {
            log.note("no user-data from any source");
            0
        }
        Err(e) => {
            log.say(&format!("fetching user-data: {e}"));
            1
        }
    }
}

/// Mounts the seed filesystems it finds, tries every source, unmounts.
fn fetch(log: &mut Log) -> Result<Option<Fetched>, datasource::DatasourceError> {
    let seeds = mount_seeds(log);
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let mut sources: Vec<Box<dyn Datasource>> = vec![Box::new(datasource::FwCfg::new("/".into()))];
    for (kind, dir) in &seeds {
        match kind {
            SeedKind::NoCloud => sources.push(Box::new(datasource::NoCloud::from_dir(dir.clone()))),
            SeedKind::ConfigDrive => {
                sources.push(Box::new(datasource::ConfigDrive::from_dir(dir.clone())))
            }
        }
    }
    if let Some(url) = datasource::CmdlineUrl::from_cmdline(&cmdline) {
        sources.push(Box::new(url));
    }
    if on_ec2() {
        sources.push(Box::new(datasource::Ec2::new(
            datasource::EC2_DEFAULT_URL.to_string(),
        )));
    }
    let refs: Vec<&dyn Datasource> = sources.iter().map(|s| s.as_ref()).collect();
    let result = datasource::fetch_first(&refs, &datasource::Poll::default());
    for (_, dir) in &seeds {
        let _ = nix::mount::umount(dir.as_path());
    }
    result
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

#[derive(Debug, Clone, Copy)]
enum SeedKind {
    NoCloud,
    ConfigDrive,
}

/// Finds block devices labelled `cidata` or `config-2` and mounts each
/// read-only; returns where.
fn mount_seeds(log: &mut Log) -> Vec<(SeedKind, PathBuf)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/sys/class/block") else {
        return found;
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let device = format!("/dev/{name}");
        let Some(head) = read_head(&device) else {
            continue;
        };
        let Some((fs, label)) = datasource::filesystem_label(&head) else {
            continue;
        };
        let kind = if datasource::is_nocloud_label(&label) {
            SeedKind::NoCloud
        } else if datasource::is_configdrive_label(&label) {
            SeedKind::ConfigDrive
        } else {
            continue;
        };
        let dir = PathBuf::from(SEED_MOUNTS).join(&name);
        let fstype = match fs {
            datasource::FsKind::Vfat => "vfat",
            datasource::FsKind::Iso9660 => "iso9660",
        };
        let mounted = std::fs::create_dir_all(&dir)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                nix::mount::mount(
                    Some(device.as_str()),
                    dir.as_path(),
                    Some(fstype),
                    nix::mount::MsFlags::MS_RDONLY
                        | nix::mount::MsFlags::MS_NOSUID
                        | nix::mount::MsFlags::MS_NODEV
                        | nix::mount::MsFlags::MS_NOEXEC,
                    None::<&str>,
                )
                .map_err(|e| e.desc().to_string())
            });
        match mounted {
            Ok(()) => {
                log.note(&format!("seed {label} ({fstype}) on {device}"));
                found.push((kind, dir));
            }
            Err(e) => log.say(&format!("mounting the {label} seed {device}: {e}")),
        }
    }
    found
}

fn read_head(device: &str) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut f = std::fs::File::open(device).ok()?;
    let mut head = vec![0u8; PROBE_BYTES];
    let mut filled = 0;
    while filled < head.len() {
        match f.read(head.get_mut(filled..)?) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(_) => return None,
        }
    }
    head.truncate(filled);
    Some(head)
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

/// Validates and applies what was fetched; returns the exit status.
fn handle(fetched: &Fetched, log: &mut Log) -> i32 {
    let meta = &fetched.metadata;
    let opts = ApplyOptions {
        root: PathBuf::from("/"),
        instance_id: instance_id(fetched, log),
        default_user: "core".to_string(),
        metadata_keys: meta.public_keys.clone(),
        metadata_hostname: meta.local_hostname.clone(),
    };
    // Seeds are named by their device, not where this tool mounted them.
    let source = fetched.source.replace(&format!("{SEED_MOUNTS}/"), "/dev/");
    let name = format!("user-data ({source})");
    let Some(bytes) = &fetched.user_data else {
        // Metadata alone (an EC2 key pair, NoCloud public-keys) still
        // makes the machine reachable: the default user, keys, hostname.
        return apply_metadata_only(&opts, &source, log);
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
    let findings = report.render_text(&name);
    for line in findings.lines() {
        println!("{line}");
        log.note(line);
    }
    match report.kind {
        UserDataKind::Empty => apply_metadata_only(&opts, &source, log),
        UserDataKind::Script => {
            let status = apply_metadata_only(&opts, &source, log);
            status.max(run_script_once(&userdata::detect(bytes).body, &opts, log))
        }
        UserDataKind::CloudConfig if !report.has_errors() => {
            apply_cloud_config(&report, &opts, &name, log)
        }
        _ => {
            log.say(&format!(
                "{name} has errors (listed above with line and column); nothing was applied"
            ));
            1
        }
    }
}

/// Applies an empty cloud-config: what the metadata alone asks for.
fn apply_metadata_only(opts: &ApplyOptions, source: &str, log: &mut Log) -> i32 {
    if opts.metadata_keys.is_empty() && opts.metadata_hostname.is_none() {
        return 0;
    }
    if apply::already_applied(opts) {
        return 0;
    }
    let outcome = apply::apply(&crate::schema::CloudConfig::default(), opts);
    for line in outcome.log_text().lines() {
        log.note(line);
    }
    if let Err(e) = apply::try_record_applied(opts) {
        log.say(&format!("recording instance {}: {e}", opts.instance_id));
        return 1;
    }
    let summary = outcome.summary();
    log.say(&format!(
        "metadata ({source}): {}",
        summary.trim_start_matches("cloud-config: ")
    ));
    i32::from(outcome.failed())
}

fn apply_cloud_config(
    report: &crate::Report,
    opts: &ApplyOptions,
    name: &str,
    log: &mut Log,
) -> i32 {
    let Some(config) = &report.config else {
        return 1;
    };
    let mut failed = false;
    for planned in apply::bootcmds(config) {
        failed |= !run_command(&planned.step, &planned.argv, log);
    }
    if apply::already_applied(opts) {
        // What lives in /run is gone after a reboot: put it back (the
        // etcd2 drop-in, runtime units) and queue the units' commands
        // again, as coreos-cloudinit did at every boot.
        let outcome = apply::apply_every_boot(config, opts);
        for line in outcome.log_text().lines() {
            log.note(line);
        }
        failed |= outcome.failed();
        log.say(&format!(
            "{name}: instance {} already configured; ran bootcmd and re-applied what lives \
             in /run (coreos.units commands, coreos.etcd2/fleet/flannel drop-ins)",
            opts.instance_id
        ));
        return i32::from(failed);
    }
    let outcome = match apply::apply_report(report, opts) {
        Ok(outcome) => outcome,
        Err(refused) => {
            log.say(&format!("{name}: {refused}"));
            return 1;
        }
    };
    for line in outcome.log_text().lines() {
        log.note(line);
    }
    failed |= outcome.failed();
    // Recorded before runcmd: a command that reboots or hangs the machine
    // must not make everything run again at the next boot (runcmd is "at
    // most once per instance", as in cloud-init).
    if let Err(e) = apply::try_record_applied(opts) {
        log.say(&format!("recording instance {}: {e}", opts.instance_id));
        failed = true;
    }
    for planned in apply::commands_to_run(config, opts) {
        failed |= !run_command(&planned.step, &planned.argv, log);
    }
    let summary = outcome.summary();
    let summary = summary.trim_start_matches("cloud-config: ");
    log.say(&format!("{name}: {summary}"));
    i32::from(failed)
}

/// Runs one command, its output into the log file, in its own process
/// group so that a time-out stops everything it started; false if it
/// failed. Each command gets at most [`COMMAND_LIMIT`], which keeps the
/// whole run inside the init's limit in the common case of a few commands.
fn run_command(step: &str, argv: &[String], log: &mut Log) -> bool {
    let Some((program, args)) = argv.split_first() else {
        return true;
    };
    log.note(&format!("{step}: {}", argv.join(" ")));
    let child = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(log.output())
        .stderr(log.output())
        .process_group(0)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            log.say(&format!("{step}: cannot run {program}: {e}"));
            return false;
        }
    };
    let deadline = Instant::now() + COMMAND_LIMIT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => {
                log.note(&format!("{step}: done"));
                return true;
            }
            Ok(Some(status)) => {
                log.say(&format!("{step}: failed ({status})"));
                return false;
            }
            Ok(None) if Instant::now() >= deadline => {
                if let Ok(pid) = i32::try_from(child.id()) {
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                let _ = child.wait();
                log.say(&format!(
                    "{step}: stopped after {} s",
                    COMMAND_LIMIT.as_secs()
                ));
                return false;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => {
                log.say(&format!("{step}: waiting for it: {e}"));
                return false;
            }
        }
    }
}

/// A `#!` user-data script runs once per instance, from `/var/lib`.
fn run_script_once(body: &[u8], opts: &ApplyOptions, log: &mut Log) -> i32 {
    if script_ran(opts) {
        log.note("user-data script already ran for this instance");
        return 0;
    }
    let path = Path::new(SCRIPT);
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(path, body))
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)));
    if let Err(e) = written {
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
    let ok = run_command("user-data script", &[SCRIPT.to_string()], log);
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

//! `slipway-cloud-config boot`: what stage 2 of the init runs at every boot.
//!
//! 1. Find the user-data: seed filesystems (labels `cidata`, `config-2`)
//!    are mounted read-only under `/run/slipway/seed/<device>` and read,
//!    then every source is tried in the precedence of [`crate::datasource`]
//!    (the EC2 metadata service only where the firmware says EC2).
//! 2. `bootcmd` runs at every boot. Everything else is per instance: it is
//!    applied once per instance ID (recorded under `/var/lib`), so a reboot
//!    does not create users twice or re-run `runcmd`.
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
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::apply::{self, ApplyOptions};
use crate::datasource::{self, Datasource, Fetched};
use crate::{userdata, Substitutions, UserDataKind};

pub const LOG: &str = "/var/log/cloud-config.log";
const SEED_MOUNTS: &str = "/run/slipway/seed";
const SCRIPT: &str = "/var/lib/slipway/cloud-config/user-data-script";
/// How much of a device to read to find its label (ISO 9660's volume
/// descriptor is at 32 KiB).
const PROBE_BYTES: usize = 40 * 1024;

/// Everything this boot printed, also kept for the log file.
struct Log {
    lines: Vec<String>,
}

impl Log {
    /// To the console (our stdout, which the init connects to it).
    fn say(&mut self, line: &str) {
        println!("slipway: cloud-config: {line}");
        self.lines.push(line.to_string());
    }

    /// Only to the log file.
    fn note(&mut self, line: &str) {
        self.lines.push(line.to_string());
    }

    fn write(&self) {
        let text: String = self.lines.iter().map(|l| format!("{l}\n")).collect();
        let result = std::fs::create_dir_all("/var/log").and_then(|()| {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(LOG)?;
            f.write_all(b"--- boot\n")?;
            f.write_all(text.as_bytes())
        });
        if let Err(e) = result {
            println!("slipway: cloud-config: writing {LOG}: {e}");
        }
    }
}

/// Runs the boot step; returns the process exit status.
pub fn run() -> i32 {
    let mut log = Log { lines: Vec::new() };
    let status = match fetch(&mut log) {
        Ok(Some(fetched)) => handle(&fetched, &mut log),
        Ok(None) => {
            log.note("no user-data from any source");
            0
        }
        Err(e) => {
            log.say(&format!("fetching user-data: {e}"));
            1
        }
    };
    log.write();
    status
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

/// Validates and applies what was fetched; returns the exit status.
fn handle(fetched: &Fetched, log: &mut Log) -> i32 {
    let Some(bytes) = &fetched.user_data else {
        log.note(&format!("{}: metadata only, no user-data", fetched.source));
        return 0;
    };
    let meta = &fetched.metadata;
    let instance_id = meta
        .instance_id
        .clone()
        .unwrap_or_else(|| "iid-unknown".to_string());
    let opts = ApplyOptions {
        root: PathBuf::from("/"),
        instance_id: instance_id.clone(),
        default_user: "core".to_string(),
        metadata_keys: meta.public_keys.clone(),
        metadata_hostname: meta.local_hostname.clone(),
    };
    let subs = Substitutions {
        public_ipv4: meta.public_ipv4.clone(),
        private_ipv4: meta.private_ipv4.clone(),
        public_ipv6: meta.public_ipv6.clone(),
        private_ipv6: meta.private_ipv6.clone(),
    };
    // Seeds are named by their device, not where this tool mounted them.
    let source = fetched.source.replace(&format!("{SEED_MOUNTS}/"), "/dev/");
    let name = format!("user-data ({source})");
    let report = crate::validate_with(bytes, &subs);
    let findings = report.render_text(&name);
    for line in findings.lines() {
        println!("{line}");
        log.note(line);
    }
    match report.kind {
        UserDataKind::Empty => {
            log.note(&format!("{name}: empty"));
            0
        }
        UserDataKind::Script => run_script_once(&userdata::detect(bytes).body, &opts, log),
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
        log.say(&format!(
            "{name}: instance {} already configured; ran bootcmd only",
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
    for planned in apply::commands_to_run(config, opts) {
        failed |= !run_command(&planned.step, &planned.argv, log);
    }
    apply::record_applied(opts);
    let summary = outcome.summary();
    let summary = summary.trim_start_matches("cloud-config: ");
    log.say(&format!("{name}: {summary}"));
    i32::from(failed)
}

/// Runs one command with its output logged; false if it failed.
fn run_command(step: &str, argv: &[String], log: &mut Log) -> bool {
    let Some((program, args)) = argv.split_first() else {
        return true;
    };
    match Command::new(program).args(args).output() {
        Ok(out) => {
            for line in String::from_utf8_lossy(&out.stdout)
                .lines()
                .chain(String::from_utf8_lossy(&out.stderr).lines())
            {
                log.note(&format!("{step}: {line}"));
            }
            if out.status.success() {
                log.note(&format!("{step}: done"));
                true
            } else {
                log.say(&format!("{step}: failed ({})", out.status));
                false
            }
        }
        Err(e) => {
            log.say(&format!("{step}: cannot run {program}: {e}"));
            false
        }
    }
}

/// A `#!` user-data script runs once per instance, from `/var/lib`.
fn run_script_once(body: &[u8], opts: &ApplyOptions, log: &mut Log) -> i32 {
    if apply::already_applied(opts) {
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
    let ok = run_command("user-data script", &[SCRIPT.to_string()], log);
    apply::record_applied(opts);
    if ok {
        log.say("user-data script: done");
    }
    i32::from(!ok)
}

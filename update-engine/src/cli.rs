//! `update-engine`: the command line on the machine.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use serde::Serialize;
use slipway_image::layout::Slot;

use crate::apply::{self, Request};
use crate::config::{Config, CONFIG_PATH, DEFAULTS_PATH};
use crate::esp::{EntryFile, EntryState};
use crate::feed::{self, PayloadRef};
use crate::fetch::{self, FetchOptions, Source};
use crate::keys::TrustedKeys;
use crate::limits;
use crate::progress::{mib, Mode, Progress};
use crate::state::{now_unix, Check, State, Tracker, STATE_FILE};
use crate::system::{self, System};

#[derive(Debug, Parser)]
#[command(
    name = "update-engine",
    version,
    about = "Slipway's update engine: installs signed releases into the passive slot, \
             which boots on the next restart and is rolled back by the boot loader if it \
             does not come up healthy",
    after_help = "Configuration: /usr/lib/slipway/update.conf, then /etc/slipway/update.conf \
                  (written by cloud-config from coreos.update and coreos.locksmith). \
                  State: /var/lib/slipway/update/state.json. Trusted keys: \
                  /usr/lib/slipway/update-keys/*.pub."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The booted slot, each slot's version and boot state, the last check
    /// and the current or last update
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Fetch and verify the release feed; say whether an update is available
    Check {
        #[arg(long)]
        json: bool,
        /// Base URL of the published directory (default: SERVER in update.conf)
        #[arg(long)]
        server: Option<String>,
        /// Channel (default: GROUP in update.conf, else stable)
        #[arg(long)]
        channel: Option<String>,
    },
    /// Install a release into the passive slot: from SOURCE (a payload file
    /// or http:// URL), or else the newest release of the feed
    Apply {
        /// A payload file or http:// URL; without it, the feed decides
        source: Option<String>,
        /// Accept a version not newer than the running one (local files only)
        #[arg(long)]
        allow_downgrade: bool,
        #[arg(long)]
        server: Option<String>,
        #[arg(long)]
        channel: Option<String>,
        /// How to show progress
        #[arg(long, value_enum, default_value = "auto")]
        progress: Mode,
        /// Do not move into the limited cgroup (debugging only)
        #[arg(long)]
        no_limits: bool,
        /// Reboot into the new release once it is installed
        #[arg(long)]
        reboot: bool,
        /// Run by the daemon: die with it
        #[arg(long, hide = true)]
        from_daemon: bool,
    },
    /// Mark the booted slot good, so the boot loader stops counting its tries
    MarkGood,
    /// Mark the booted slot bad, so the next boot starts the other slot
    Rollback {
        /// Reboot right away
        #[arg(long)]
        reboot: bool,
    },
    /// Check the feed periodically, install new releases, reboot per the
    /// configured strategy and maintenance window
    Daemon {
        /// One check (and apply) then exit
        #[arg(long)]
        once: bool,
    },
    /// The fleet's reboot lock (locksmith's semaphore in etcd, for
    /// REBOOT_STRATEGY=etcd-lock): who holds it, free the hold of a dead
    /// machine, change how many machines may reboot at once
    Lock(LockArgs),
    /// Called by the init when the boot's health is settled
    #[command(hide = true)]
    OnHealth { state: String },
    /// Apply a local payload to slot files and an ESP folder, without the
    /// machine (benchmarks, debugging): no cgroup, no state file
    #[command(hide = true)]
    ApplyFiles(ApplyFiles),
}

#[derive(Debug, clap::Args)]
struct ApplyFiles {
    #[arg(long)]
    payload: PathBuf,
    #[arg(long)]
    root: PathBuf,
    #[arg(long)]
    verity: PathBuf,
    #[arg(long)]
    esp: PathBuf,
    /// Folder of trusted `*.pub` keys
    #[arg(long)]
    keys: PathBuf,
    #[arg(long)]
    board: String,
    #[arg(long, default_value = "0")]
    running_version: String,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "The lock is the etcd v3 key coreos.com/updateengine/rebootlock/semaphore \
                  (with a group: coreos.com/updateengine/rebootlock/groups/<URL-escaped group>/semaphore), \
                  holding locksmith's JSON {\"semaphore\":N,\"max\":N,\"holders\":[...]}. \
                  Every change is a compare-and-swap."
)]
struct LockArgs {
    /// etcd client URL (http://), tried in order; repeat for several
    /// [default: LOCKSMITHD_ENDPOINT in update.conf, else http://127.0.0.1:2379]
    #[arg(long = "endpoint", value_name = "URL", global = true)]
    endpoints: Vec<String>,
    /// Lock group [default: LOCKSMITHD_GROUP in update.conf, else the
    /// fleet-wide lock]
    #[arg(long, global = true)]
    group: Option<String>,
    #[command(subcommand)]
    command: LockCommand,
}

#[derive(Debug, Subcommand)]
enum LockCommand {
    /// Free slots, the maximum, and the machine IDs holding the lock
    Status {
        /// Print {"key","exists","semaphore","max","holders"} as JSON
        #[arg(long)]
        json: bool,
    },
    /// Free the slot held by ID (a machine that died holding it)
    Unlock {
        /// The holder's machine ID [default: this machine's, from /etc/machine-id]
        id: Option<String>,
        /// Print the lock afterwards as JSON (as `status --json`)
        #[arg(long)]
        json: bool,
    },
    /// Set how many machines may hold the lock at once (0 stops all
    /// reboots); holders keep their slots
    SetMax {
        /// The new maximum
        #[arg(value_name = "N", value_parser = clap::value_parser!(u32))]
        max: u32,
        /// Print the lock afterwards as JSON (as `status --json`)
        #[arg(long)]
        json: bool,
    },
}

pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("update-engine: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Status { json } => status(json),
        Command::Check {
            json,
            server,
            channel,
        } => {
            let sys = System::open()?;
            let (cfg, _) = load_config(server, channel)?;
            let found = check(&sys, &cfg)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&found.check)?);
            } else {
                println!("{}", found.check.result);
            }
            Ok(())
        }
        Command::Apply {
            source,
            allow_downgrade,
            server,
            channel,
            progress,
            no_limits,
            reboot,
            from_daemon,
        } => {
            if from_daemon {
                // Stopping the daemon's service must stop its apply too,
                // though the apply sits in another cgroup.
                let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM);
            }
            let sys = System::open()?;
            let (cfg, warnings) = load_config(server, channel)?;
            for w in warnings {
                eprintln!("update-engine: warning: {w}");
            }
            let installed = apply_cmd(
                &sys,
                &cfg,
                source.as_deref(),
                allow_downgrade,
                progress,
                !no_limits,
            )?;
            if installed && reboot {
                system::request_reboot()?;
            }
            Ok(())
        }
        Command::MarkGood => {
            let sys = System::open()?;
            mark_good(&sys)
        }
        Command::Rollback { reboot } => {
            let sys = System::open()?;
            rollback(&sys)?;
            if reboot {
                system::request_reboot()?;
            }
            Ok(())
        }
        Command::Daemon { once } => crate::daemon::run(once),
        Command::Lock(args) => lock_cmd(args),
        Command::OnHealth { state } => {
            if let Err(e) = on_health(&state) {
                say_on_console(&format!("error: {e:#}"));
                std::process::exit(1);
            }
            Ok(())
        }
        Command::ApplyFiles(a) => apply_files(&a),
    }
}

/// `update-engine lock …`: what `locksmithctl` did, against etcd's v3 API.
fn lock_cmd(args: LockArgs) -> Result<()> {
    use crate::lock::{self, etcd::EtcdLock, etcd::Read};

    // update.conf is read only for what the command line leaves open, so
    // an operator can still use the lock when that file is broken.
    let config = if args.endpoints.is_empty() || args.group.is_none() {
        let (cfg, _) = load_config(None, None)?;
        Some(cfg.locksmith)
    } else {
        None
    };
    let endpoints = if args.endpoints.is_empty() {
        lock::configured_endpoints(config.as_ref().unwrap_or(&Default::default()))
    } else {
        args.endpoints
    };
    let group = args
        .group
        .or_else(|| config.as_ref().and_then(lock::configured_group));
    let client = EtcdLock::new(&endpoints, group.as_deref())?;

    let print = |key: &str, read: &Read, json: bool| -> Result<()> {
        let s = &read.semaphore;
        if json {
            let v = serde_json::json!({
                "key": key,
                "exists": read.exists(),
                "semaphore": s.semaphore,
                "max": s.max,
                "holders": s.holders,
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            // locksmithctl's layout.
            println!("Available: {}", s.semaphore);
            println!("Max: {}", s.max);
            if !s.holders.is_empty() {
                println!();
                println!("MACHINE ID");
                for h in &s.holders {
                    println!("{h}");
                }
            }
        }
        Ok(())
    };
    match args.command {
        LockCommand::Status { json } => {
            let read = client.read()?;
            if !read.exists() {
                eprintln!(
                    "update-engine: {} does not exist yet: shown is what the first lock creates",
                    client.key()
                );
            }
            print(client.key(), &read, json)
        }
        LockCommand::Unlock { id, json } => {
            let id = match id {
                Some(id) => id,
                None => lock::machine_id(Path::new(lock::MACHINE_ID_PATH))?,
            };
            let (now, _) = client.unlock(&id)?;
            if !json {
                eprintln!("update-engine: unlocked {id}");
            }
            print(client.key(), &now, json)
        }
        LockCommand::SetMax { max, json } => {
            let (now, _) = client.set_max(i64::from(max))?;
            print(client.key(), &now, json)
        }
    }
}

/// Where the kernel and initramfs wait until they go to the ESP.
pub const STAGING_DIR: &str = "/var/lib/slipway/update/staging";

pub fn load_config(
    server: Option<String>,
    channel: Option<String>,
) -> Result<(Config, Vec<String>)> {
    let (mut cfg, warnings) = Config::load(&[Path::new(DEFAULTS_PATH), Path::new(CONFIG_PATH)])?;
    if server.is_some() {
        cfg.server = server;
    }
    if let Some(c) = channel {
        cfg.group = c;
    }
    Ok((cfg, warnings))
}

pub struct Found {
    pub check: Check,
    /// A newer release and the feed it came from.
    pub release: Option<(feed::Release, Source)>,
}

/// Fetches and verifies the feed, records the check in the state file.
pub fn check(sys: &System, cfg: &Config) -> Result<Found> {
    let result = check_feed(sys, cfg);
    let state_path = PathBuf::from(STATE_FILE);
    let (mut state, _) = State::load(&state_path);
    let found = match result {
        Ok(f) => f,
        Err(e) => {
            state.last_check = Some(Check {
                at: now_unix(),
                result: format!("check failed: {e:#}"),
                available: None,
            });
            let _ = state.save(&state_path);
            return Err(e);
        }
    };
    state.last_check = Some(found.check.clone());
    let _ = state.save(&state_path);
    Ok(found)
}

fn feed_source(cfg: &Config, board: &str) -> Result<Source> {
    let Some(server) = &cfg.server else {
        bail!(
            "no update server configured: set SERVER in {CONFIG_PATH} \
             (coreos.update.server in cloud-config) or pass --server"
        );
    };
    Ok(Source::parse(&format!(
        "{}/{}/{board}.json",
        server.trim_end_matches('/'),
        cfg.group
    )))
}

fn check_feed(sys: &System, cfg: &Config) -> Result<Found> {
    let running = &sys.machine.running;
    let source = feed_source(cfg, &running.board)?;
    let bytes = fetch::get_small(&source, feed::MAX_FEED, &fetch_options(cfg))?;
    let keys = System::trusted_keys()?;
    let release = feed::Release::verify(&bytes, &keys, now_unix(), &running.board, &cfg.group)
        .with_context(|| source.describe())?;
    let newer =
        crate::version::compare(&release.version, &running.version) == std::cmp::Ordering::Greater;
    let (result, available) = if newer {
        (
            format!(
                "update available: {} (running {}, payload {})",
                release.version,
                running.version,
                mib(release.payload.size)
            ),
            Some(release.version.clone()),
        )
    } else {
        (
            format!(
                "up to date: running {}, the {} channel offers {}",
                running.version, cfg.group, release.version
            ),
            None,
        )
    };
    Ok(Found {
        check: Check {
            at: now_unix(),
            result,
            available,
        },
        release: newer.then_some((release, source)),
    })
}

pub fn fetch_options(cfg: &Config) -> FetchOptions {
    FetchOptions {
        rate_limit: cfg.limits.download_bps,
        ..FetchOptions::default()
    }
}

/// Installs from `source` or the feed; `Ok(false)` when already up to date.
pub fn apply_cmd(
    sys: &System,
    cfg: &Config,
    source: Option<&str>,
    allow_downgrade: bool,
    mode: Mode,
    limit: bool,
) -> Result<bool> {
    let (source, expect): (Source, Option<PayloadRef>) = match source {
        Some(s) => (Source::parse(s), None),
        None => {
            let found = check(sys, cfg)?;
            let Some((release, feed_src)) = found.release else {
                eprintln!("update-engine: {}", found.check.result);
                return Ok(false);
            };
            (
                fetch::resolve(&feed_src, &release.payload.url),
                Some(release.payload),
            )
        }
    };
    if allow_downgrade && !matches!(source, Source::File(_)) {
        bail!("--allow-downgrade is accepted only for a local payload file");
    }
    // One apply at a time (the daemon's and a person's): held until this
    // function returns.
    let _lock = system::lock_apply()?;
    let keys: TrustedKeys = System::trusted_keys()?;
    let running = &sys.machine.running;
    let slot = running.slot.other();
    let target = sys.machine.target(slot, Path::new("/sys/class/block"))?;
    let state_path = PathBuf::from(STATE_FILE);
    let (state, warning) = State::load(&state_path);
    if let Some(w) = warning {
        eprintln!("update-engine: warning: {w}");
    }
    let tracker = Tracker::new(Some(state_path), state, &source.describe(), slot.letter());
    let mut progress = Progress::new(tracker, mode);
    if limit {
        let applied = limits::enter(
            Path::new("/sys/fs/cgroup"),
            &cfg.cgroup,
            &cfg.limits,
            Some(&sys.machine.disk_devno),
        )?;
        let text: Vec<String> = applied
            .settings
            .iter()
            .map(|(f, v)| format!("{f}={v}"))
            .collect();
        progress.say(&format!(
            "running in cgroup {} ({})",
            applied.cgroup.display(),
            text.join(", ")
        ));
        for w in applied.warnings {
            progress.say(&format!("warning: limit not applied: {w}"));
        }
    }
    let resume = progress.tracker.resume_point();
    let req = Request {
        source: &source,
        expect: expect.as_ref(),
        running,
        target: &target,
        esp: &sys.esp,
        keys: &keys,
        allow_downgrade,
        fetch: fetch_options(cfg),
        resume,
        staging: Path::new(STAGING_DIR),
    };
    match apply::apply(&req, &mut progress) {
        Ok(out) => {
            progress.finish();
            let secs = out.write_time.as_secs_f64().max(0.001);
            let rate = (out.data_bytes as f64 / secs) as u64;
            if let Err(e) = progress.tracker.finish(&out.version, rate) {
                eprintln!("update-engine: warning: state out of order: {e:?}");
            }
            if out.resumed_chunks > 0 {
                progress.say(&format!(
                    "resumed: {} chunks were already written and intact",
                    out.resumed_chunks
                ));
            }
            progress.say(&format!(
                "wrote {} in {:.1} s ({}/s)",
                mib(out.data_bytes),
                secs,
                mib(rate)
            ));
            println!(
                "installed {} into slot {} ({}): it boots on the next restart, with {} tries \
                 before the boot loader falls back to slot {}",
                out.version,
                out.slot.letter(),
                out.entry,
                apply::TRIES,
                slot.other().letter()
            );
            Ok(true)
        }
        Err(e) => {
            progress.finish();
            progress.tracker.fail(&e.to_string());
            Err(anyhow::Error::new(e).context(format!(
                "update from {} not installed (slot {} is not bootable; slot {} is untouched)",
                source.describe(),
                slot.letter(),
                running.slot.letter()
            )))
        }
    }
}

fn apply_files(a: &ApplyFiles) -> Result<()> {
    let size = |p: &Path| -> Result<u64> {
        Ok(std::fs::metadata(p)
            .with_context(|| p.display().to_string())?
            .len())
    };
    let target = apply::SlotTarget {
        slot: Slot::B,
        root: a.root.clone(),
        root_capacity: size(&a.root)?,
        root_partuuid: uuid::Uuid::nil(),
        verity: a.verity.clone(),
        verity_capacity: size(&a.verity)?,
        verity_partuuid: uuid::Uuid::nil(),
    };
    let running = apply::Running {
        slot: Slot::A,
        version: a.running_version.clone(),
        board: a.board.clone(),
    };
    let keys = TrustedKeys::load_dir(&a.keys)?;
    let source = Source::File(a.payload.clone());
    let esp = crate::esp::Esp::new(&a.esp);
    let req = Request {
        source: &source,
        expect: None,
        running: &running,
        target: &target,
        esp: &esp,
        keys: &keys,
        allow_downgrade: false,
        fetch: FetchOptions::default(),
        resume: None,
        staging: &a.esp.with_extension("staging"),
    };
    let tracker = Tracker::new(None, State::default(), &source.describe(), 'b');
    let mut progress = Progress::new(tracker, Mode::None);
    let out = apply::apply(&req, &mut progress)?;
    println!(
        "installed {} ({} bytes): write {:.3} s, total {:.3} s",
        out.version,
        out.data_bytes,
        out.write_time.as_secs_f64(),
        out.total_time.as_secs_f64()
    );
    Ok(())
}

fn mark_good(sys: &System) -> Result<()> {
    println!("{}", bless(sys)?);
    Ok(())
}

/// Marks the booted slot good; says what it did.
fn bless(sys: &System) -> Result<String> {
    let slot = sys.machine.running.slot;
    Ok(match sys.esp.set_state(slot, EntryState::Good)? {
        Some((from, to)) => format!(
            "slot {} ({}) marked good: {from} → {to}",
            slot.letter(),
            sys.machine.running.version
        ),
        None => format!("slot {} is already marked good", slot.letter()),
    })
}

fn rollback(sys: &System) -> Result<()> {
    let booted = sys.machine.running.slot;
    let other = booted.other();
    let Some(fallback) = sys.esp.entry(other)? else {
        bail!(
            "slot {} has no boot entry: there is nothing to roll back to",
            other.letter()
        );
    };
    if fallback.state != EntryState::Good {
        bail!(
            "slot {} ({}) is {}, not a known-good release: refusing to roll back to it",
            other.letter(),
            fallback.version.as_deref().unwrap_or("unknown version"),
            fallback.state
        );
    }
    sys.esp.set_state(booted, EntryState::Bad { done: 0 })?;
    println!(
        "slot {} ({}) marked bad; the next boot starts slot {} ({}). Reboot to roll back \
         (`slipctl reboot`).",
        booted.letter(),
        sys.machine.running.version,
        other.letter(),
        fallback.version.as_deref().unwrap_or("unknown version"),
    );
    Ok(())
}

/// The init reports the boot's health once it is settled: bless a healthy
/// boot; reboot an unhealthy one that is on trial, so the loader's counter
/// runs down and the other slot comes back.
fn on_health(state: &str) -> Result<()> {
    let sys = System::open()?;
    let slot = sys.machine.running.slot;
    let entry = sys.esp.entry(slot)?;
    let version = &sys.machine.running.version;
    match (state, entry.map(|e| e.state)) {
        ("healthy", _) => {
            say_on_console(&bless(&sys)?);
            Ok(())
        }
        ("unhealthy", Some(EntryState::Trying { left, .. })) => {
            say_on_console(&format!(
                "slot {} ({version}) is unhealthy on a trial boot ({left} {} left): rebooting \
                 so the boot loader counts it",
                slot.letter(),
                if left == 1 { "try" } else { "tries" }
            ));
            system::request_reboot()
        }
        ("unhealthy", Some(EntryState::Bad { .. })) => {
            say_on_console(&format!(
                "slot {} ({version}) is unhealthy on its last try: rebooting into slot {}",
                slot.letter(),
                slot.other().letter()
            ));
            system::request_reboot()
        }
        ("unhealthy", _) => {
            say_on_console(&format!(
                "slot {} ({version}) is unhealthy but already marked good: not rolling back by \
                 itself (`update-engine rollback` does)",
                slot.letter()
            ));
            Ok(())
        }
        (other, _) => bail!("unknown health {other:?} (expected healthy or unhealthy)"),
    }
}

/// PID 1 runs `on-health` with its console as output: lines start with
/// `slipway: ` like PID 1's own, so tools reading the console (and people)
/// know them from a command's output.
fn say_on_console(text: &str) {
    println!("slipway: update-engine: {text}");
}

#[derive(Debug, Serialize)]
struct SlotReport {
    slot: char,
    booted: bool,
    version: Option<String>,
    state: String,
    tries_left: Option<u32>,
    entry: Option<String>,
}

#[derive(Debug, Serialize)]
struct StatusReport {
    booted_slot: char,
    running_version: String,
    board: String,
    slots: Vec<SlotReport>,
    last_check: Option<Check>,
    update: Option<crate::state::ApplyRecord>,
    config: Vec<(String, String)>,
}

fn slot_report(slot: Slot, booted: Slot, entry: Option<EntryFile>) -> SlotReport {
    SlotReport {
        slot: slot.letter(),
        booted: slot == booted,
        version: entry.as_ref().and_then(|e| e.version.clone()),
        state: match &entry {
            Some(e) => match e.state {
                EntryState::Good => "good".into(),
                EntryState::Trying { .. } => "trying".into(),
                EntryState::Bad { .. } => "bad".into(),
            },
            None => "empty".into(),
        },
        tries_left: entry.as_ref().and_then(|e| match e.state {
            EntryState::Trying { left, .. } => Some(left),
            _ => None,
        }),
        entry: entry.map(|e| e.file_name),
    }
}

fn status(json: bool) -> Result<()> {
    let sys = System::open()?;
    let m = &sys.machine;
    let booted = m.running.slot;
    let entries = sys.esp.entries()?;
    let slots: Vec<SlotReport> = [Slot::A, Slot::B]
        .into_iter()
        .map(|s| slot_report(s, booted, entries.iter().find(|e| e.slot == s).cloned()))
        .collect();
    let (state, _) = State::load(&PathBuf::from(STATE_FILE));
    let config = load_config(None, None)
        .map(|(c, _)| c.describe())
        .unwrap_or_else(|e| vec![("error".into(), e.to_string())]);
    let report = StatusReport {
        booted_slot: booted.letter(),
        running_version: m.running.version.clone(),
        board: m.running.board.clone(),
        slots,
        last_check: state.last_check,
        update: state.apply,
        config,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "booted: slot {} running {} ({})",
        report.booted_slot, report.running_version, report.board
    );
    for s in &report.slots {
        let state = match s.tries_left {
            Some(n) => format!("trying, {n} tries left"),
            None => s.state.clone(),
        };
        println!(
            "slot {}: {:<12} {:<22} {}{}",
            s.slot,
            s.version.as_deref().unwrap_or("-"),
            state,
            s.entry.as_deref().unwrap_or("no boot entry"),
            if s.booted { "  (booted)" } else { "" }
        );
    }
    match &report.last_check {
        Some(c) => println!("last check: {} ({})", c.result, ago(c.at)),
        None => println!("last check: never"),
    }
    if let Some(a) = &report.update {
        let what = a.version.as_deref().unwrap_or("?");
        let line = match a.outcome {
            crate::state::Outcome::Running => format!(
                "update: {what} into slot {}: {} {} of {} ({}%)",
                a.slot,
                a.step,
                mib(a.done),
                mib(a.total),
                a.done * 100 / a.total.max(1)
            ),
            crate::state::Outcome::Installed => {
                format!(
                    "update: {what} installed into slot {} ({})",
                    a.slot,
                    ago(a.updated)
                )
            }
            crate::state::Outcome::Failed => format!(
                "update: failed at {} ({}): {}",
                a.step,
                ago(a.updated),
                a.error.as_deref().unwrap_or("")
            ),
        };
        println!("{line}");
    }
    for (k, v) in &report.config {
        println!("config: {k}={v}");
    }
    Ok(())
}

fn ago(at: u64) -> String {
    let d = now_unix().saturating_sub(at);
    match d {
        0..=119 => format!("{d} s ago"),
        120..=7199 => format!("{} min ago", d / 60),
        _ => format!("{} h ago", d / 3600),
    }
}

pub fn current_exe() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/usr/bin/update-engine"))
}

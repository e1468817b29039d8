//! `update-engine`: the command line on the machine.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use serde::Serialize;
use slipway_image::layout::Slot;

use crate::apply::{self, Request};
use crate::engine;
use crate::esp::{EntryFile, EntryState};
use crate::feed::PayloadRef;
use crate::fetch::{FetchOptions, Source};
use crate::keys::TrustedKeys;
use crate::progress::{mib, Mode, Progress};
use crate::state::{now_unix, Check, State, Tracker, STATE_FILE};
use crate::system::{self, System};
use crate::waves::{self, Seed, WaveRecord, WAVE_FILE};

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
        /// Accept a version not newer than the running one (local files only;
        /// never below the version floor in /var/lib/slipway/update/trust.json)
        #[arg(long)]
        allow_downgrade: bool,
        /// Install the feed's release even if this machine's rollout wave
        /// has not opened yet (a person's override: the daemon never does)
        #[arg(long, conflicts_with = "source")]
        ignore_waves: bool,
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
    /// A payload file or URL
    #[arg(long)]
    payload: String,
    /// The payload's size, as a feed would announce it: with --delta-from,
    /// tries a delta download
    #[arg(long, requires = "payload_sha256")]
    payload_size: Option<u64>,
    /// The payload's sha256, as a feed would announce it
    #[arg(long, requires = "payload_size")]
    payload_sha256: Option<String>,
    /// A folder holding the running release as `root`, `verity`, `vmlinuz`
    /// and `initrd`: the pieces a delta may reuse
    #[arg(long, requires = "payload_size")]
    delta_from: Option<PathBuf>,
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
            let (cfg, _) = engine::load_config(server, channel)?;
            let found = engine::check(&sys, &cfg)?;
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
            ignore_waves,
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
            let (cfg, warnings) = engine::load_config(server, channel)?;
            for w in warnings {
                eprintln!("update-engine: warning: {w}");
            }
            let installed = engine::install(
                &sys,
                &cfg,
                source.as_deref(),
                allow_downgrade,
                ignore_waves,
                progress,
                !no_limits,
            )?;
            if let Some(line) = installed {
                println!("{line}");
                if reboot {
                    system::request_reboot()?;
                }
            }
            Ok(())
        }
        Command::MarkGood => {
            let sys = System::open()?;
            mark_good(&sys)
        }
        Command::Rollback { reboot } => {
            let sys = System::open()?;
            println!("{}", engine::rollback(&sys)?);
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
        let (cfg, _) = engine::load_config(None, None)?;
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
    let source = Source::parse(&a.payload);
    let esp = crate::esp::Esp::new(&a.esp);
    let expect = a
        .payload_size
        .zip(a.payload_sha256.clone())
        .map(|(size, sha256)| PayloadRef {
            url: a.payload.clone(),
            size,
            sha256,
        });
    let active = a
        .delta_from
        .as_ref()
        .map(|d| crate::delta::local::ActiveSlot {
            name: d.display().to_string(),
            root: d.join("root"),
            verity: d.join("verity"),
            kernel: d.join("vmlinuz"),
            initrd: d.join("initrd"),
        });
    let req = Request {
        source: &source,
        expect: expect.as_ref(),
        running: &running,
        target: &target,
        esp: &esp,
        keys: &keys,
        allow_downgrade: false,
        floor: None,
        fetch: FetchOptions::default(),
        resume: None,
        staging: &a.esp.with_extension("staging"),
        delta: active.as_ref(),
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
    println!("download: {}", out.download.summary());
    Ok(())
}

fn mark_good(sys: &System) -> Result<()> {
    println!("{}", engine::bless(sys)?);
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
            say_on_console(&engine::bless(&sys)?);
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
    rollout: RolloutReport,
    /// The fleet's reboot lock as this machine holds it (recorded before
    /// the reboot, freed once the new boot is blessed), if it does.
    reboot_lock: Option<crate::lock::coordinator::Hold>,
    config: Vec<(String, String)>,
}

/// This machine's place in phased rollouts (README.md "Phased rollout").
#[derive(Debug, Serialize)]
struct RolloutReport {
    /// `seed`, and `fallback` (why) when there is no valid machine ID.
    #[serde(flatten)]
    seed: Seed,
    /// The newer release with waves that the last check saw.
    wave: Option<WaveStatus>,
}

#[derive(Debug, Serialize)]
struct WaveStatus {
    version: String,
    opens_at: u64,
    opens_at_utc: String,
    open: bool,
    checked_at: u64,
}

/// The wave of the last check's newer release, unless that release is no
/// longer newer than the running one (installed since).
fn wave_status(record: Option<WaveRecord>, running: &str, now: u64) -> Option<WaveStatus> {
    let r = record?;
    if crate::version::compare(&r.version, running) != std::cmp::Ordering::Greater {
        return None;
    }
    Some(WaveStatus {
        opens_at_utc: waves::utc(r.opens_at),
        open: now >= r.opens_at,
        version: r.version,
        opens_at: r.opens_at,
        checked_at: r.checked_at,
    })
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
    let config = engine::load_config(None, None)
        .map(|(c, _)| c.describe())
        .unwrap_or_else(|e| vec![("error".into(), e.to_string())]);
    let report = StatusReport {
        booted_slot: booted.letter(),
        running_version: m.running.version.clone(),
        board: m.running.board.clone(),
        slots,
        last_check: state.last_check,
        update: state.apply,
        rollout: RolloutReport {
            seed: Seed::of_machine(Path::new(crate::lock::MACHINE_ID_PATH)),
            wave: wave_status(
                WaveRecord::load(Path::new(WAVE_FILE)),
                &m.running.version,
                now_unix(),
            ),
        },
        reboot_lock: crate::lock::coordinator::load_hold(Path::new(
            crate::lock::coordinator::HOLD_FILE,
        ))
        .unwrap_or_else(|e| {
            eprintln!("update-engine: {e:#}");
            None
        }),
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
                let how = a
                    .download
                    .as_ref()
                    .map(|d| format!("; {}", d.summary()))
                    .unwrap_or_default();
                format!(
                    "update: {what} installed into slot {} ({}){how}",
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
    if let Some(h) = &report.reboot_lock {
        println!(
            "reboot lock: held by {} for {} (from {}), taken {}; freed once the new boot is blessed",
            h.id,
            h.version,
            h.from_version,
            ago(h.acquired_at)
        );
    }
    let r = &report.rollout;
    match &r.seed.fallback {
        None => println!(
            "rollout: seed {} of 0-{} (from {})",
            r.seed.seed,
            waves::FALLBACK_SEED,
            crate::lock::MACHINE_ID_PATH
        ),
        Some(why) => println!(
            "rollout: seed {}, the last wave's: no valid machine ID ({why})",
            r.seed.seed
        ),
    }
    if let Some(w) = &r.wave {
        let now = now_unix();
        if w.open {
            println!(
                "rollout: {} opened for this machine at {}",
                w.version, w.opens_at_utc
            );
        } else {
            println!(
                "rollout: {} opens for this machine at {} (in {})",
                w.version,
                w.opens_at_utc,
                waves::span(w.opens_at.saturating_sub(now))
            );
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{verdict, Verdict};
    use crate::feed;
    use crate::waves::Wave;

    const PUBLISHED: u64 = 1_800_000_000;

    fn release(version: &str, waves: Option<Vec<Wave>>) -> feed::Release {
        feed::Release {
            format: 1,
            board: "qemu-x86_64".into(),
            channel: "stable".into(),
            version: version.into(),
            payload: PayloadRef {
                url: "x.payload".into(),
                size: 3 << 20,
                sha256: "ab".repeat(32),
            },
            published: PUBLISHED,
            expires: PUBLISHED + 86_400,
            waves,
        }
    }

    fn seed(seed: u16) -> Seed {
        Seed {
            seed,
            fallback: None,
        }
    }

    fn waves() -> Option<Vec<Wave>> {
        waves::parse_spec("512@0s,1024@1h,2048@4h").ok()
    }

    #[test]
    fn a_closed_wave_is_reported_and_not_installed() {
        let r = release("2.0", waves());
        // Seed 700 is in the second wave: it opens an hour after publishing.
        let opens = PUBLISHED + 3600;
        let v = verdict(&r, "1.0", "stable", &seed(700), opens - 600, false);
        assert!(!v.install);
        assert_eq!(v.check.available, None);
        assert_eq!(
            v.check.result,
            "not yet: wave opens at 2027-01-15 09:00:00 UTC (seed 700, in 10 min): 2.0 \
             (running 1.0, payload 3.0 MiB) is rolling out in waves"
        );
        let record = v.wave.expect("a wave record");
        assert_eq!((record.seed, record.opens_at), (700, opens));
        assert_eq!(record.version, "2.0");

        // At the time it opens it installs, and says so.
        let v = verdict(&r, "1.0", "stable", &seed(700), opens, false);
        assert!(v.install);
        assert_eq!(v.check.available.as_deref(), Some("2.0"));
        assert!(
            v.check
                .result
                .starts_with("update available: 2.0 (running 1.0, payload 3.0 MiB); wave opened at 2027-01-15 09:00:00 UTC (seed 700)"),
            "{}",
            v.check.result
        );
        // A first-wave seed was in from the start; a last-wave one is not yet.
        assert!(verdict(&r, "1.0", "stable", &seed(5), PUBLISHED, false).install);
        assert!(!verdict(&r, "1.0", "stable", &seed(2000), opens, false).install);
    }

    #[test]
    fn ignore_waves_installs_before_the_wave() {
        let r = release("2.0", waves());
        let v = verdict(&r, "1.0", "stable", &seed(2000), PUBLISHED, true);
        assert!(v.install);
        assert!(
            v.check.result.contains("ignored (--ignore-waves)"),
            "{}",
            v.check.result
        );
    }

    #[test]
    fn without_waves_or_when_up_to_date_nothing_changes() {
        let plain = release("2.0", None);
        for s in [0, 2047] {
            let v = verdict(&plain, "1.0", "stable", &seed(s), PUBLISHED, false);
            assert_eq!(
                v,
                Verdict {
                    check: Check {
                        at: PUBLISHED,
                        result: "update available: 2.0 (running 1.0, payload 3.0 MiB)".into(),
                        available: Some("2.0".into()),
                    },
                    install: true,
                    wave: None,
                }
            );
        }
        // Running the release already: up to date, waves or not.
        for r in [release("2.0", None), release("2.0", waves())] {
            let v = verdict(&r, "2.0", "stable", &seed(2000), PUBLISHED, false);
            assert!(!v.install && v.wave.is_none());
            assert_eq!(
                v.check.result,
                "up to date: running 2.0, the stable channel offers 2.0"
            );
        }
    }

    #[test]
    fn status_shows_the_wave_until_the_release_runs() {
        let record = WaveRecord {
            version: "2.0".into(),
            seed: 700,
            opens_at: PUBLISHED,
            checked_at: PUBLISHED - 5,
        };
        let w = wave_status(Some(record.clone()), "1.0", PUBLISHED - 1).unwrap();
        assert!(!w.open);
        assert_eq!(w.opens_at_utc, "2027-01-15 08:00:00 UTC");
        assert!(
            wave_status(Some(record.clone()), "1.0", PUBLISHED)
                .unwrap()
                .open
        );
        assert!(wave_status(Some(record), "2.0", PUBLISHED).is_none());
        assert!(wave_status(None, "1.0", PUBLISHED).is_none());
    }

    #[test]
    fn apply_takes_ignore_waves_for_the_feed_only() {
        let cli = Cli::try_parse_from(["update-engine", "apply", "--ignore-waves"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Apply {
                ignore_waves: true,
                source: None,
                ..
            }
        ));
        let err = Cli::try_parse_from(["update-engine", "apply", "--ignore-waves", "x.payload"])
            .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }
}

//! `update-engine daemon`: poll the feed, install, reboot per strategy.
//!
//! Each round re-reads the configuration (so edits to update.conf apply
//! without a restart), checks the feed, and when a newer release is there
//! runs `update-engine apply` as a child process: the child moves itself
//! into the limited cgroup while the daemon stays in its service's group.
//! A release whose trial boots already failed on this machine (its entry
//! is marked bad) is not installed again by the daemon.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::config::{Config, RebootStrategy};
use crate::engine::{self, Found};
use crate::esp::EntryState;
use crate::lock::coordinator::{self, Settled, Taken, HOLD_FILE};
use crate::state::now_unix;
use crate::swarm_hook;
use crate::system::{self, System};

/// Before the first check: let the boot settle (and be blessed) first.
const FIRST_CHECK_DELAY: Duration = Duration::from_secs(30);
/// When the configuration cannot be read.
const RETRY_BROKEN_CONFIG: Duration = Duration::from_secs(300);
/// While a reboot lock is held for a boot that is not blessed yet.
const SETTLE_POLL: Duration = Duration::from_secs(5);

fn log(text: &str) {
    eprintln!("update-engine: {text}");
}

/// The reboot lock's events go to the console too (as PID 1's lines do):
/// a person watching a fleet roll, and the cluster test, read them there.
fn say(text: &str) {
    log(text);
    if let Ok(mut c) = std::fs::OpenOptions::new().write(true).open("/dev/console") {
        let _ = writeln!(c, "slipway: update-engine: {text}");
    }
}

/// Frees a reboot lock taken before the reboot this boot came from, once
/// this boot is blessed (or rolled back). `Some(wait)`: still held, look
/// again after `wait` and do nothing else meanwhile.
fn settle() -> Option<Duration> {
    let sys = match System::open() {
        Ok(s) => s,
        Err(e) => {
            log(&format!("{e:#}"));
            return Some(RETRY_BROKEN_CONFIG);
        }
    };
    // A node drained for the reboot takes work again once this boot is
    // blessed, and before the lock goes to the next machine.
    let slot = sys.machine.running.slot;
    if matches!(sys.esp.entry(slot), Ok(Some(e)) if e.state == EntryState::Good) {
        swarm_hook::activate_after_boot(&say);
    }
    match coordinator::settle(&sys, Path::new(HOLD_FILE), &say) {
        Ok(Settled::Free) => None,
        Ok(Settled::Pending(why)) => {
            log(&why);
            Some(SETTLE_POLL)
        }
        Err(e) => {
            log(&format!("reboot lock: {e:#}"));
            Some(SETTLE_POLL * 6)
        }
    }
}

pub fn run(once: bool) -> Result<()> {
    let exe = engine::current_exe();
    let mut said_no_server = false;
    let mut first = !once;
    loop {
        // A lock held across the reboot is freed first, before anything
        // else can fail or wait: a healthy machine never keeps it.
        if let Some(wait) = settle() {
            if once {
                return Ok(());
            }
            std::thread::sleep(wait);
            continue;
        }
        if first {
            first = false;
            std::thread::sleep(FIRST_CHECK_DELAY);
            continue;
        }
        let wait = match engine::load_config(None, None) {
            Err(e) => {
                log(&format!(
                    "configuration error, no update checks until it is fixed: {e}"
                ));
                RETRY_BROKEN_CONFIG
            }
            Ok((cfg, warnings)) => {
                for w in warnings {
                    log(&format!("warning: {w}"));
                }
                if cfg.server.is_none() {
                    if !said_no_server {
                        log(
                            "no update server configured (SERVER in /etc/slipway/update.conf, \
                             coreos.update.server in cloud-config): idle",
                        );
                        said_no_server = true;
                    }
                } else {
                    said_no_server = false;
                    if let Err(e) = round(&cfg, &exe) {
                        log(&format!("{e:#}"));
                    }
                }
                next_wait(&cfg)
            }
        };
        if once {
            return Ok(());
        }
        std::thread::sleep(wait);
    }
}

/// One check, and an apply and reboot when there is something new.
fn round(cfg: &Config, exe: &std::path::Path) -> Result<()> {
    let sys = System::open()?;
    let Found { check, release } = engine::check(&sys, cfg)?;
    log(&check.result);
    let Some((release, _)) = release else {
        return Ok(());
    };
    let failed_here = sys.esp.entries()?.into_iter().any(|e| {
        matches!(e.state, EntryState::Bad { .. }) && e.version.as_deref() == Some(&release.version)
    });
    if failed_here {
        log(&format!(
            "not installing {}: it already failed its trial boots on this machine \
             (`update-engine apply` installs it anyway)",
            release.version
        ));
        return Ok(());
    }
    let place = coordinator::lock_place(cfg)?;
    if let Some(record) = place
        .as_ref()
        .and_then(|at| coordinator::failed_in_fleet(at, &release.version))
    {
        say(&format!(
            "not installing {}: it failed its trial boots on another machine of the fleet ({record})",
            release.version
        ));
        return Ok(());
    }
    let status = std::process::Command::new(exe)
        .args(["apply", "--progress", "lines", "--from-daemon"])
        .status()?;
    if !status.success() {
        bail!(
            "installing {} failed (see above); retrying at the next check",
            release.version
        );
    }
    reboot_per_strategy(&sys, cfg, &release.version)
}

fn reboot_per_strategy(sys: &System, cfg: &Config, version: &str) -> Result<()> {
    if cfg.reboot_strategy == RebootStrategy::Off {
        log(&format!(
            "{version} installed; reboot strategy is off: it boots at the next reboot"
        ));
        return Ok(());
    }
    if let Some(w) = &cfg.window {
        let wait = w.wait_from(now_unix());
        if !wait.is_zero() {
            log(&format!(
                "{version} installed; rebooting in the maintenance window, in {} s",
                wait.as_secs()
            ));
            std::thread::sleep(wait);
        }
    }
    let Some(at) = coordinator::lock_place(cfg)? else {
        say(&format!("{version} installed; rebooting into it"));
        swarm_hook::drain_before_reboot(&say);
        return system::request_reboot();
    };
    let id = crate::lock::machine_id(Path::new(crate::lock::MACHINE_ID_PATH))?;
    let in_window = || cfg.window.is_none_or(|w| w.wait_from(now_unix()).is_zero());
    let path = Path::new(HOLD_FILE);
    match coordinator::take(sys, &at, &id, version, path, &in_window, &say)? {
        Taken::FailedElsewhere(record) => {
            say(&format!(
                "not rebooting into {version}: it failed its trial boots on another machine \
                 of the fleet ({record}); its boot entry is marked bad"
            ));
            Ok(())
        }
        Taken::Reboot => {
            swarm_hook::drain_before_reboot(&say);
            system::request_reboot().inspect_err(|_| {
                // No reboot is coming: a held lock would stop the fleet.
                coordinator::abandon(path, &say);
            })
        }
    }
}

fn random_below(max: Duration) -> Duration {
    let mut b = [0u8; 8];
    if max.is_zero() || getrandom::fill(&mut b).is_err() {
        return Duration::ZERO;
    }
    Duration::from_millis(u64::from_le_bytes(b) % max.as_millis().max(1) as u64)
}

/// The interval, plus or minus up to the jitter: a fleet does not hit the
/// server in lockstep.
fn next_wait(cfg: &Config) -> Duration {
    let j = random_below(cfg.jitter * 2);
    (cfg.interval + j)
        .checked_sub(cfg.jitter)
        .unwrap_or(Duration::from_secs(1))
        .max(Duration::from_secs(1))
}

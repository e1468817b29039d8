//! `update-engine daemon`: poll the feed, install, reboot per strategy.
//!
//! Each round re-reads the configuration (so edits to update.conf apply
//! without a restart), checks the feed, and when a newer release is there
//! runs `update-engine apply` as a child process: the child moves itself
//! into the limited cgroup while the daemon stays in its service's group.
//! A release whose trial boots already failed on this machine (its entry
//! is marked bad) is not installed again by the daemon.

use std::time::Duration;

use anyhow::{bail, Result};

use crate::cli::{self, Found};
use crate::config::{Config, RebootStrategy};
use crate::esp::EntryState;
use crate::state::now_unix;
use crate::system::{self, System};

/// Before the first check: let the boot settle (and be blessed) first.
const FIRST_CHECK_DELAY: Duration = Duration::from_secs(30);
/// When the configuration cannot be read.
const RETRY_BROKEN_CONFIG: Duration = Duration::from_secs(300);

fn log(text: &str) {
    eprintln!("update-engine: {text}");
}

pub fn run(once: bool) -> Result<()> {
    let exe = cli::current_exe();
    let mut said_no_server = false;
    if !once {
        std::thread::sleep(FIRST_CHECK_DELAY);
    }
    loop {
        let wait = match cli::load_config(None, None) {
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
    let Found { check, release } = cli::check(&sys, cfg)?;
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
    let status = std::process::Command::new(exe)
        .args(["apply", "--progress", "lines", "--from-daemon"])
        .status()?;
    if !status.success() {
        bail!(
            "installing {} failed (see above); retrying at the next check",
            release.version
        );
    }
    reboot_per_strategy(cfg, &release.version)
}

fn reboot_per_strategy(cfg: &Config, version: &str) -> Result<()> {
    match cfg.reboot_strategy {
        RebootStrategy::Off => {
            log(&format!(
                "{version} installed; reboot strategy is off: it boots at the next reboot"
            ));
            Ok(())
        }
        RebootStrategy::EtcdLock => {
            // The seam for a cluster-wide reboot lock (locksmith's etcd
            // semaphore): until it exists, never reboot without the lock.
            log(&format!(
                "{version} installed; reboot strategy etcd-lock is not supported by this \
                 release: not rebooting (reboot by hand, or set REBOOT_STRATEGY=reboot)"
            ));
            Ok(())
        }
        RebootStrategy::Reboot => {
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
            log(&format!("{version} installed; rebooting into it"));
            system::request_reboot()
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

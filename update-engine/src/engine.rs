//! The engine's use-cases, called by the command line (`cli.rs`) and the
//! daemon (`daemon.rs`) alike: load the configuration, check the feed and
//! judge what it offers, install a release into the passive slot, bless the
//! booted slot or roll it back. Below it are the formats (`manifest`,
//! `payload`, `feed`, `keys`), the apply itself (`apply`) and the machine
//! (`system`, `machine`, `esp`); above it only presentation and scheduling.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::apply::{self, Request};
use crate::config::{Config, CONFIG_PATH, DEFAULTS_PATH};
use crate::esp::EntryState;
use crate::feed::{self, PayloadRef};
use crate::fetch::{self, FetchOptions, Source};
use crate::keys::TrustedKeys;
use crate::limits;
use crate::progress::{mib, Mode, Progress};
use crate::state::{now_unix, Check, State, Tracker, STATE_FILE};
use crate::system::{self, System};
use crate::trust::{Trust, TRUST_FILE};
use crate::waves::{self, Gate, Seed, WaveRecord, WAVE_FILE};

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

/// Fetches and verifies the feed, records the check in the state file;
/// a newer release whose rollout wave has not opened for this machine is
/// reported but not returned (the daemon's path).
pub fn check(sys: &System, cfg: &Config) -> Result<Found> {
    check_at(sys, cfg, now_unix(), false)
}

/// [`check`] at `now` (seconds since 1970, UTC); `ignore_waves` returns a
/// newer release whatever its waves say (`apply --ignore-waves`).
pub fn check_at(sys: &System, cfg: &Config, now: u64, ignore_waves: bool) -> Result<Found> {
    let result = check_feed(sys, cfg, now, ignore_waves);
    let state_path = PathBuf::from(STATE_FILE);
    let (mut state, _) = State::load(&state_path);
    let found = match result {
        Ok((f, wave)) => {
            // The wave file only serves `status`: failing to write it does
            // not fail the check. A failed check leaves the last one's.
            let wave_path = Path::new(WAVE_FILE);
            let _ = match wave {
                Some(w) => w.save(wave_path),
                None => WaveRecord::clear(wave_path),
            };
            f
        }
        Err(e) => {
            state.last_check = Some(Check {
                at: now,
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

/// The time a feed's expiry is judged at. A clock before the running
/// image was built is wrong (no RTC, no NTP yet) and would find every old
/// feed unexpired: the build time is used then, with the reason to log.
pub fn judging_time(now: u64, built_at: Option<u64>) -> (u64, Option<String>) {
    match built_at {
        Some(built) if now < built => (
            built,
            Some(format!(
                "the clock says {}, before this image was built ({}): judging the feed's \
                 expiry from the build time (set the clock, e.g. with NTP)",
                waves::utc(now),
                waves::utc(built)
            )),
        ),
        _ => (now, None),
    }
}

fn check_feed(
    sys: &System,
    cfg: &Config,
    now: u64,
    ignore_waves: bool,
) -> Result<(Found, Option<WaveRecord>)> {
    let running = &sys.machine.running;
    let source = feed_source(cfg, &running.board)?;
    let (now, clock) = judging_time(now, sys.machine.built_at);
    if let Some(why) = clock {
        eprintln!("update-engine: warning: {why}");
    }
    let bytes = fetch::get_small(&source, feed::MAX_FEED, &fetch_options(cfg))?;
    let keys = System::trusted_keys()?;
    let release = feed::Release::verify(&bytes, &keys, now, &running.board, &cfg.group)
        .with_context(|| source.describe())?;
    // Not older than a feed already accepted (a replayed or frozen one);
    // then remembered, if newest.
    let trust_path = Path::new(TRUST_FILE);
    let (mut trust, warning) = Trust::load(trust_path);
    if let Some(w) = warning {
        eprintln!("update-engine: warning: {w}");
    }
    trust
        .check_feed(&release)
        .map_err(|e| anyhow::anyhow!("{}: {e}", source.describe()))?;
    // Written only when it changes: a check every hour rewrites nothing.
    if trust.accept_feed(&release) {
        if let Err(e) = trust.save(trust_path) {
            eprintln!("update-engine: warning: {}: {e}", trust_path.display());
        }
    }

    let seed = Seed::of_machine(Path::new(crate::lock::MACHINE_ID_PATH));
    let v = verdict(
        &release,
        &running.version,
        &cfg.group,
        &seed,
        now,
        ignore_waves,
    );
    let found = Found {
        check: v.check,
        release: v.install.then_some((release, source)),
    };
    Ok((found, v.wave))
}

/// What a verified feed means for this machine at `now`.
#[derive(Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The check as the state file records it.
    pub check: Check,
    /// Install the feed's release (newer, and its wave open or ignored).
    pub install: bool,
    /// This machine's wave, when a newer release has waves.
    pub wave: Option<WaveRecord>,
}

/// Newer or not, and for a newer release with waves, whether this
/// machine's wave has opened: pure, so tests run on a simulated clock.
pub fn verdict(
    release: &feed::Release,
    running: &str,
    group: &str,
    seed: &Seed,
    now: u64,
    ignore_waves: bool,
) -> Verdict {
    let newer = crate::version::compare(&release.version, running) == std::cmp::Ordering::Greater;
    let check = |result: String, available: bool| Check {
        at: now,
        result,
        available: available.then(|| release.version.clone()),
    };
    if !newer {
        return Verdict {
            check: check(
                format!(
                    "up to date: running {running}, the {group} channel offers {}",
                    release.version
                ),
                false,
            ),
            install: false,
            wave: None,
        };
    }
    let what = format!(
        "{} (running {running}, payload {})",
        release.version,
        mib(release.payload.size)
    );
    let gate = waves::gate(release.waves.as_deref(), release.published, seed.seed, now);
    let wave = |opens_at| {
        Some(WaveRecord {
            version: release.version.clone(),
            seed: seed.seed,
            opens_at,
            checked_at: now,
        })
    };
    let (result, install, record) = match gate {
        Gate::NoWaves => (format!("update available: {what}"), true, None),
        Gate::Open { opens_at } => (
            format!(
                "update available: {what}; wave opened at {} ({})",
                waves::utc(opens_at),
                seed.describe()
            ),
            true,
            wave(opens_at),
        ),
        Gate::NotYet { opens_at } if ignore_waves => (
            format!(
                "update available: {what}; wave opens at {} ({}), ignored (--ignore-waves)",
                waves::utc(opens_at),
                seed.describe()
            ),
            true,
            wave(opens_at),
        ),
        Gate::NotYet { opens_at } => (
            format!(
                "not yet: wave opens at {} ({}, in {}): {what} is rolling out in waves",
                waves::utc(opens_at),
                seed.describe(),
                waves::span(opens_at - now)
            ),
            false,
            wave(opens_at),
        ),
    };
    Verdict {
        check: check(result, install),
        install,
        wave: record,
    }
}

pub fn fetch_options(cfg: &Config) -> FetchOptions {
    FetchOptions {
        rate_limit: cfg.limits.download_bps,
        ..FetchOptions::default()
    }
}

/// Installs from `source` or the feed: `Ok(Some(line))` saying what was
/// installed and how it boots, `Ok(None)` when already up to date.
pub fn install(
    sys: &System,
    cfg: &Config,
    source: Option<&str>,
    allow_downgrade: bool,
    ignore_waves: bool,
    mode: Mode,
    limit: bool,
) -> Result<Option<String>> {
    let (source, expect): (Source, Option<PayloadRef>) = match source {
        Some(s) => (Source::parse(s), None),
        None => {
            let found = check_at(sys, cfg, now_unix(), ignore_waves)?;
            let Some((release, feed_src)) = found.release else {
                eprintln!("update-engine: {}", found.check.result);
                return Ok(None);
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
    // A release from a feed comes as a delta where the server has an index:
    // the active slot's pieces need not be downloaded again.
    // Without the active slot's partitions there is nothing to reuse: the
    // whole payload comes, as from a server without an index.
    let active = match sys.machine.active_slot(&sys.esp) {
        Ok(a) => Some(a),
        Err(e) => {
            progress.say(&format!("delta: not possible here: {e:#}"));
            None
        }
    };
    // The version floor holds even with --allow-downgrade.
    let floor = Trust::load(Path::new(TRUST_FILE)).0.floor;
    let req = Request {
        source: &source,
        expect: expect.as_ref(),
        running,
        target: &target,
        esp: &sys.esp,
        keys: &keys,
        allow_downgrade,
        floor: floor.as_deref(),
        fetch: fetch_options(cfg),
        resume,
        staging: Path::new(STAGING_DIR),
        delta: active.as_ref().filter(|_| matches!(source, Source::Url(_))),
    };
    match apply::apply(&req, &mut progress) {
        Ok(out) => {
            progress.finish();
            let secs = out.write_time.as_secs_f64().max(0.001);
            let rate = (out.data_bytes as f64 / secs) as u64;
            progress.say(&out.download.summary());
            if let Err(e) = progress
                .tracker
                .finish(&out.version, rate, out.download.clone())
            {
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
            Ok(Some(format!(
                "installed {} into slot {} ({}): it boots on the next restart, with {} tries \
                 before the boot loader falls back to slot {}",
                out.version,
                out.slot.letter(),
                out.entry,
                apply::TRIES,
                slot.other().letter()
            )))
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

/// Marks the booted slot good; says what it did.
pub fn bless(sys: &System) -> Result<String> {
    let slot = sys.machine.running.slot;
    let blessed = sys.esp.set_state(slot, EntryState::Good)?;
    // No install goes below a release this machine has run healthy. The
    // blessing itself never waits on this record: a failure is a warning.
    let trust_path = Path::new(TRUST_FILE);
    let (mut trust, _) = Trust::load(trust_path);
    // Every healthy boot blesses; the file is written only when the floor
    // rises.
    if trust.raise_floor(&sys.machine.running.version) {
        if let Err(e) = trust.save(trust_path) {
            eprintln!(
                "update-engine: warning: the version floor was not recorded in {}: {e}",
                trust_path.display()
            );
        }
    }

    Ok(match blessed {
        Some((from, to)) => format!(
            "slot {} ({}) marked good: {from} → {to}",
            slot.letter(),
            sys.machine.running.version
        ),
        None => format!("slot {} is already marked good", slot.letter()),
    })
}

/// Marks the booted slot bad so the next boot starts the other, known-good
/// one; says what it did.
pub fn rollback(sys: &System) -> Result<String> {
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
    Ok(format!(
        "slot {} ({}) marked bad; the next boot starts slot {} ({}). Reboot to roll back \
         (`slipctl reboot`).",
        booted.letter(),
        sys.machine.running.version,
        other.letter(),
        fallback.version.as_deref().unwrap_or("unknown version"),
    ))
}

/// This program, for the daemon to run `apply` in a process of its own.
pub fn current_exe() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/usr/bin/update-engine"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_before_the_build_is_not_trusted() {
        const BUILT: u64 = 1_800_000_000;
        assert_eq!(judging_time(BUILT + 5, Some(BUILT)), (BUILT + 5, None));
        assert_eq!(judging_time(BUILT + 5, None), (BUILT + 5, None));
        let (at, why) = judging_time(0, Some(BUILT));
        assert_eq!(at, BUILT);
        assert!(why.unwrap().contains("before this image was built"));
    }
}

//! Phased rollout ("waves"), as Bottlerocket does it: a release may say
//! that only part of the fleet installs it at first and the rest later, so
//! a bad release reaches a few machines before it reaches all of them,
//! even in a fleet too large for one reboot lock.
//!
//! Every machine has a seed, 0 to 2047, derived from its machine ID (so it
//! is stable across reboots, updates and reinstalls that keep the ID, and
//! needs no state). A release's `waves` say, in order, "machines whose seed
//! is below `seeds_below` may install from `published + after_s` on"; a
//! machine belongs to the first wave whose bound is above its seed, and a
//! seed at or above the last bound to the last wave. The feed's signature
//! covers the waves like every other field. README.md ("Phased rollout")
//! has the exact rules.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Seeds are `0..SEEDS`, as in Bottlerocket.
pub const SEEDS: u32 = 2048;
/// The seed of a machine whose machine ID cannot be read: the last one, so
/// such a machine is always in the last wave and never ahead of the fleet.
pub const FALLBACK_SEED: u16 = (SEEDS - 1) as u16;
/// Hashed before the machine ID, so the seed has nothing in common with
/// other values derived from the same ID (systemd's application IDs, say).
pub const SEED_CONTEXT: &[u8] = b"slipway rollout seed v1\0";
/// What the last check found about this machine's wave, for `status`.
pub const WAVE_FILE: &str = "/var/lib/slipway/update/wave.json";

/// One wave of a release's rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wave {
    /// Machines whose seed is below this, and not below an earlier wave's
    /// bound, belong to this wave. 1 to 2048; above the previous wave's.
    pub seeds_below: u32,
    /// Seconds after the release's `published` time when this wave may
    /// install; not before the previous wave's.
    pub after_s: u64,
}

/// A refused `waves` list; `field` is the JSON path, e.g.
/// `waves[1].seeds_below`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {why}")]
pub struct WaveError {
    pub field: String,
    pub why: String,
}

/// Checks the rules of README.md's "Phased rollout": at least one wave;
/// bounds 1 to 2048 and strictly increasing; delays not decreasing; every
/// wave opening before the feed expires (a wave that could never open with
/// this feed is a mistake, refused rather than silently waited out).
pub fn validate(waves: &[Wave], published: u64, expires: u64) -> Result<(), WaveError> {
    let err = |field: String, why: String| Err(WaveError { field, why });
    if waves.is_empty() {
        return err(
            "waves".into(),
            "is empty (leave the field out for a release without waves)".into(),
        );
    }
    for (i, w) in waves.iter().enumerate() {
        let field = |name: &str| format!("waves[{i}].{name}");
        if w.seeds_below == 0 {
            return err(
                field("seeds_below"),
                "is 0: a wave holds at least one seed".into(),
            );
        }
        if w.seeds_below > SEEDS {
            return err(
                field("seeds_below"),
                format!(
                    "{} is above {SEEDS} (seeds are 0 to {FALLBACK_SEED})",
                    w.seeds_below
                ),
            );
        }
        if let Some(p) = i.checked_sub(1).map(|j| waves[j]) {
            if w.seeds_below <= p.seeds_below {
                return err(
                    field("seeds_below"),
                    format!(
                        "{} is not above waves[{}].seeds_below {} (waves are sorted by seed)",
                        w.seeds_below,
                        i - 1,
                        p.seeds_below
                    ),
                );
            }
            if w.after_s < p.after_s {
                return err(
                    field("after_s"),
                    format!(
                        "{} is before waves[{}].after_s {} (waves are sorted by time: a later \
                         wave cannot open earlier)",
                        w.after_s,
                        i - 1,
                        p.after_s
                    ),
                );
            }
        }
        match published.checked_add(w.after_s) {
            Some(at) if at < expires => {}
            Some(at) => {
                return err(
                    field("after_s"),
                    format!(
                        "the wave opens at {}, not before the feed expires at {}",
                        utc(at),
                        utc(expires)
                    ),
                )
            }
            None => return err(field("after_s"), format!("{} is too large", w.after_s)),
        }
    }
    Ok(())
}

/// When a machine of `seed` may install a release published at
/// `published` with these waves (validated; none: at `published`).
pub fn opens_at(waves: &[Wave], published: u64, seed: u16) -> u64 {
    let wave = waves
        .iter()
        .find(|w| u32::from(seed) < w.seeds_below)
        .or(waves.last());
    published.saturating_add(wave.map_or(0, |w| w.after_s))
}

/// Whether a machine may install a newer release now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// The release has no waves: every machine may install it.
    NoWaves,
    /// The machine's wave opened at `opens_at` (≤ now).
    Open { opens_at: u64 },
    /// The machine's wave opens at `opens_at` (> now).
    NotYet { opens_at: u64 },
}

/// The gate for a machine of `seed` at `now` (seconds since 1970, UTC;
/// passed in so tests run on a simulated clock).
pub fn gate(waves: Option<&[Wave]>, published: u64, seed: u16, now: u64) -> Gate {
    match waves {
        None => Gate::NoWaves,
        Some(w) => {
            let at = opens_at(w, published, seed);
            if now >= at {
                Gate::Open { opens_at: at }
            } else {
                Gate::NotYet { opens_at: at }
            }
        }
    }
}

/// The seed of a machine ID: the first two bytes of
/// sha256(`SEED_CONTEXT` ‖ the ID in lower-case hex), big-endian, modulo
/// 2048. Changing this reshuffles every fleet's waves: the test vectors
/// below pin it.
pub fn seed_of(machine_id: &str) -> u16 {
    let mut h = Sha256::new();
    h.update(SEED_CONTEXT);
    h.update(machine_id.trim().to_ascii_lowercase().as_bytes());
    let d = h.finalize();
    (u32::from(u16::from_be_bytes([d[0], d[1]])) % SEEDS) as u16
}

/// This machine's seed, and why it is the fallback when it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Seed {
    pub seed: u16,
    /// Set when the machine ID could not be read (the seed is then
    /// [`FALLBACK_SEED`]): what went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
}

impl Seed {
    /// From the machine ID at `path` (normally `lock::MACHINE_ID_PATH`).
    pub fn of_machine(path: &Path) -> Seed {
        match crate::files::machine_id(path) {
            Ok(id) => Seed {
                seed: seed_of(&id),
                fallback: None,
            },
            Err(e) => Seed {
                seed: FALLBACK_SEED,
                fallback: Some(format!("{e:#}")),
            },
        }
    }

    /// `seed 1234`, or the fallback with its reason.
    pub fn describe(&self) -> String {
        match &self.fallback {
            None => format!("seed {}", self.seed),
            Some(why) => format!(
                "seed {}, the last wave's: no valid machine ID ({why})",
                self.seed
            ),
        }
    }
}

/// The machine's wave for the newer release the last check saw (kept in
/// [`WAVE_FILE`] beside the state file, for `status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveRecord {
    pub version: String,
    pub seed: u16,
    pub opens_at: u64,
    pub checked_at: u64,
}

impl WaveRecord {
    /// None when the file is missing or unreadable: `status` then shows no
    /// wave, and nothing else depends on the file.
    pub fn load(path: &Path) -> Option<WaveRecord> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    /// Written as the state file is ([`crate::files::write_json`]).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        crate::files::write_json(path, self)
    }

    /// Removes the file (a check that found no waves, or nothing newer).
    pub fn clear(path: &Path) -> std::io::Result<()> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// `2025-06-01 14:00:00 UTC`: Slipway carries no time zone database.
pub fn utc(unix: u64) -> String {
    let (days, rem) = (unix / 86_400, unix % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian:
/// Howard Hinnant's algorithm, in 400-year eras starting on 1 March.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let (era, doe) = (z / 146_097, z % 146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + u64::from(m <= 2), m, d)
}

/// A wait as people read it: `45 s`, `12 min`, `3 h 5 min`, `2 d 4 h`.
pub fn span(secs: u64) -> String {
    match secs {
        0..=119 => format!("{secs} s"),
        120..=7199 => format!("{} min", secs / 60),
        7200..=172_799 => format!("{} h {} min", secs / 3600, secs / 60 % 60),
        _ => format!("{} d {} h", secs / 86_400, secs / 3600 % 24),
    }
}

/// A delay such as `0`, `90s`, `15m`, `4h`, `1h30m`, `2d`: numbers each
/// followed by `d`, `h`, `m` or `s`, added up; a bare number is seconds.
pub fn parse_delay(text: &str) -> Result<u64, String> {
    let bad = |why: &str| format!("delay {text:?}: {why} (e.g. 0s, 90s, 15m, 4h, 1h30m, 2d)");
    if text.is_empty() {
        return Err(bad("empty"));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|_| bad("too large"));
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'd' => 86_400,
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad(&format!("unknown unit {c:?}"))),
        };
        if number.is_empty() {
            return Err(bad(&format!("no number before {c:?}")));
        }
        let n: u64 = number.parse().map_err(|_| bad("too large"))?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| bad("too large"))?;
        number.clear();
    }
    if !number.is_empty() {
        return Err(bad("a number without a unit at the end"));
    }
    Ok(total)
}

/// `cargo xtask publish --waves`: `SEEDS_BELOW@DELAY,…`, e.g.
/// `512@0s,1024@1h,2048@4h`. Only the syntax is checked here; [`validate`]
/// checks the rules once the feed's times are known.
pub fn parse_spec(spec: &str) -> Result<Vec<Wave>, String> {
    spec.split(',')
        .map(str::trim)
        .enumerate()
        .map(|(i, item)| {
            let bad = |why: String| format!("wave {} {item:?}: {why}", i + 1);
            let (seeds, delay) = item
                .split_once('@')
                .ok_or_else(|| bad("expected SEEDS_BELOW@DELAY, e.g. 512@0s".into()))?;
            Ok(Wave {
                seeds_below: seeds
                    .trim()
                    .parse()
                    .map_err(|e| bad(format!("seeds_below {seeds:?}: {e}")))?,
                after_s: parse_delay(delay.trim()).map_err(bad)?,
            })
        })
        .collect()
}

/// The inverse of [`parse_spec`], delays in the largest exact unit.
pub fn format_spec(waves: &[Wave]) -> String {
    let delay = |s: u64| match s {
        0 => "0s".to_string(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    };
    waves
        .iter()
        .map(|w| format!("{}@{}", w.seeds_below, delay(w.after_s)))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::{FeedError, PayloadRef, Release};
    use crate::keys::{SecretKey, TrustedKeys};

    const PUBLISHED: u64 = 1_800_000_000;
    const EXPIRES: u64 = PUBLISHED + 30 * 86_400;

    fn w(seeds_below: u32, after_s: u64) -> Wave {
        Wave {
            seeds_below,
            after_s,
        }
    }

    fn three() -> Vec<Wave> {
        vec![w(512, 0), w(1024, 3600), w(2048, 14_400)]
    }

    fn release(waves: Option<Vec<Wave>>) -> Release {
        Release {
            format: 1,
            board: "qemu-x86_64".into(),
            channel: "stable".into(),
            version: "2.0".into(),
            payload: PayloadRef {
                url: "../payloads/qemu-x86_64/2.0.payload".into(),
                size: 1000,
                sha256: "ab".repeat(32),
            },
            published: PUBLISHED,
            expires: EXPIRES,
            waves,
        }
    }

    #[test]
    fn each_wave_opens_at_its_time_for_its_seeds_and_not_before() {
        let waves = three();
        // (seed, offset when it opens): the edges of every range.
        let cases = [
            (0, 0),
            (511, 0),
            (512, 3600),
            (1023, 3600),
            (1024, 14_400),
            (2047, 14_400),
        ];
        for (seed, offset) in cases {
            let at = PUBLISHED + offset;
            assert_eq!(opens_at(&waves, PUBLISHED, seed), at, "seed {seed}");
            // One second before: closed; at the time and after: open.
            if offset > 0 {
                assert_eq!(
                    gate(Some(&waves), PUBLISHED, seed, at - 1),
                    Gate::NotYet { opens_at: at },
                    "seed {seed} one second early"
                );
            }
            for now in [at, at + 1, EXPIRES - 1] {
                assert_eq!(
                    gate(Some(&waves), PUBLISHED, seed, now),
                    Gate::Open { opens_at: at },
                    "seed {seed} at {now}"
                );
            }
        }
        // Before `published` (a clock behind the publisher's) nobody is in.
        assert_eq!(
            gate(Some(&waves), PUBLISHED, 0, PUBLISHED - 1),
            Gate::NotYet {
                opens_at: PUBLISHED
            }
        );
    }

    #[test]
    fn seeds_above_the_last_bound_open_with_the_last_wave() {
        let waves = vec![w(100, 60), w(1000, 7200)];
        assert_eq!(opens_at(&waves, PUBLISHED, 99), PUBLISHED + 60);
        assert_eq!(opens_at(&waves, PUBLISHED, 100), PUBLISHED + 7200);
        assert_eq!(opens_at(&waves, PUBLISHED, 999), PUBLISHED + 7200);
        assert_eq!(opens_at(&waves, PUBLISHED, 1000), PUBLISHED + 7200);
        assert_eq!(opens_at(&waves, PUBLISHED, FALLBACK_SEED), PUBLISHED + 7200);
        // The fallback seed is in the last wave whatever the waves.
        for waves in [three(), vec![w(1, 0), w(2, 5)], vec![w(2048, 9)]] {
            let last = waves.last().unwrap().after_s;
            assert_eq!(opens_at(&waves, PUBLISHED, FALLBACK_SEED), PUBLISHED + last);
        }
    }

    #[test]
    fn a_release_without_waves_is_open_to_every_seed_at_once() {
        for seed in [0, 1000, FALLBACK_SEED] {
            assert_eq!(gate(None, PUBLISHED, seed, PUBLISHED), Gate::NoWaves);
            assert_eq!(gate(None, PUBLISHED, seed, 0), Gate::NoWaves);
        }
        // And its feed is the same text as before waves existed: no field.
        let key = SecretKey::from_seed(&[9; 32]);
        let text = String::from_utf8(release(None).sign(&[&key])).unwrap();
        assert!(!text.contains("waves"), "{text}");
    }

    #[test]
    fn waves_travel_signed_in_the_feed() {
        let key = SecretKey::from_seed(&[9; 32]);
        let keys = TrustedKeys::new(vec![key.public()]);
        let bytes = release(Some(three())).sign(&[&key]);
        let r = Release::verify(&bytes, &keys, PUBLISHED, "qemu-x86_64", "stable").unwrap();
        assert_eq!(r.waves.as_deref(), Some(&three()[..]));
        // Moving a wave earlier breaks the signature.
        let text = String::from_utf8(bytes).unwrap();
        let edited = text.replacen("14400", "7200", 1);
        assert_ne!(edited, text);
        assert!(matches!(
            Release::verify(edited.as_bytes(), &keys, PUBLISHED, "qemu-x86_64", "stable"),
            Err(FeedError::Signature(_))
        ));
    }

    /// A signed feed whose release JSON carries `waves` as given.
    fn verify_with_waves(waves: &str) -> Result<Release, FeedError> {
        let key = SecretKey::from_seed(&[9; 32]);
        let keys = TrustedKeys::new(vec![key.public()]);
        let mut v = serde_json::to_value(release(None)).unwrap();
        v["waves"] = serde_json::from_str(waves).unwrap();
        let text = serde_json::to_string(&v).unwrap();
        let sig = key.sign(crate::feed::FEED_CONTEXT, text.as_bytes());
        let env = serde_json::json!({"release": text, "signatures": [sig]});
        Release::verify(
            &serde_json::to_vec(&env).unwrap(),
            &keys,
            PUBLISHED,
            "qemu-x86_64",
            "stable",
        )
    }

    #[test]
    fn malformed_waves_are_refused_naming_the_field() {
        let cases = [
            ("[]", "waves: is empty"),
            (
                r#"[{"seeds_below": 0, "after_s": 0}]"#,
                "waves[0].seeds_below: is 0",
            ),
            (
                r#"[{"seeds_below": 512, "after_s": 0}, {"seeds_below": 4096, "after_s": 60}]"#,
                "waves[1].seeds_below: 4096 is above 2048",
            ),
            (
                r#"[{"seeds_below": 1024, "after_s": 0}, {"seeds_below": 512, "after_s": 60}]"#,
                "waves[1].seeds_below: 512 is not above waves[0].seeds_below 1024",
            ),
            (
                r#"[{"seeds_below": 512, "after_s": 0}, {"seeds_below": 512, "after_s": 60}]"#,
                "waves[1].seeds_below: 512 is not above",
            ),
            (
                r#"[{"seeds_below": 512, "after_s": 3600}, {"seeds_below": 2048, "after_s": 60}]"#,
                "waves[1].after_s: 60 is before waves[0].after_s 3600",
            ),
            (
                r#"[{"seeds_below": 2048, "after_s": 2592000}]"#,
                "waves[0].after_s: the wave opens at 2027-02-14 08:00:00 UTC, not before the \
                 feed expires at 2027-02-14 08:00:00 UTC",
            ),
            (
                r#"[{"seeds_below": 2048, "after_s": 18446744073709551615}]"#,
                "waves[0].after_s: 18446744073709551615 is too large",
            ),
        ];
        for (waves, want) in cases {
            let err = verify_with_waves(waves).unwrap_err();
            assert!(
                matches!(err, FeedError::Waves(_)),
                "{waves}: {err:?} is not a waves error"
            );
            let text = err.to_string();
            assert!(
                text.starts_with("feed field ") && text.contains(want),
                "{waves}: {text:?} lacks {want:?}"
            );
        }
        // Not the shape of a wave at all: the JSON error names the field.
        for bad in [
            r#"[{"seeds_below": 512}]"#,
            r#"[{"seeds_below": 512, "after_s": 0, "percent": 25}]"#,
            r#"[{"seeds_below": -1, "after_s": 0}]"#,
            r#"{"seeds_below": 512, "after_s": 0}"#,
        ] {
            let err = verify_with_waves(bad).unwrap_err();
            assert!(matches!(err, FeedError::Json(_)), "{bad}: {err:?}");
        }
        // Equal times are allowed (two ranges opening together), and so is
        // a last bound below 2048.
        let ok = verify_with_waves(
            r#"[{"seeds_below": 100, "after_s": 0}, {"seeds_below": 200, "after_s": 0}]"#,
        )
        .unwrap();
        assert_eq!(ok.waves, Some(vec![w(100, 0), w(200, 0)]));
    }

    #[test]
    fn seed_is_stable_per_machine_id() {
        // Pinned: a change here reshuffles every fleet's waves. Computed
        // as README.md says, with sha256sum:
        // printf 'slipway rollout seed v1\0%s' ID | sha256sum
        let vectors = [
            ("0123456789abcdef0123456789abcdef", 1804),
            ("00000000000000000000000000000000", 411),
            ("ffffffffffffffffffffffffffffffff", 1323),
        ];
        for (id, want) in vectors {
            assert_eq!(seed_of(id), want, "{id}");
        }
        let id = "5f1c2a9e7b3d4c8e9a0b1c2d3e4f5a6b";
        assert_eq!(seed_of(id), seed_of(id));
        // Case and the file's newline do not matter.
        assert_eq!(seed_of(id), seed_of(&format!("{}\n", id.to_uppercase())));
        // Read from a file as the engine does.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("machine-id");
        std::fs::write(&path, format!("{id}\n")).unwrap();
        assert_eq!(
            Seed::of_machine(&path),
            Seed {
                seed: seed_of(id),
                fallback: None
            }
        );
    }

    #[test]
    fn a_machine_without_a_valid_id_is_in_the_last_wave() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("machine-id");
        for content in [None, Some(""), Some("uninitialized\n"), Some("abc\n")] {
            if let Some(c) = content {
                std::fs::write(&path, c).unwrap();
            }
            let s = Seed::of_machine(&path);
            assert_eq!(s.seed, FALLBACK_SEED, "{content:?}");
            let why = s.fallback.clone().expect("a reason");
            assert!(why.contains("machine-id"), "{why}");
            assert!(s.describe().contains("last wave"), "{}", s.describe());
        }
    }

    #[test]
    fn seeds_spread_evenly_over_many_machine_ids() {
        // 65536 IDs made like systemd's (random-looking 128-bit hex).
        let n = 1u32 << 16;
        let mut counts = vec![0u32; SEEDS as usize];
        for i in 0..n {
            let id = format!(
                "{:032x}",
                u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835) ^ 0x5555
            );
            counts[usize::from(seed_of(&id))] += 1;
        }
        // Every seed is drawn (32 expected each; none missing).
        let min = *counts.iter().min().unwrap();
        let max = *counts.iter().max().unwrap();
        assert!(min >= 8 && max <= 72, "per-seed counts {min}..{max}");
        // Each eighth of the range holds an eighth of the machines (±5 %),
        // so a wave of seeds below 512 is a quarter of the fleet.
        for (k, part) in counts.chunks(256).enumerate() {
            let got: u32 = part.iter().sum();
            let want = n / 8;
            assert!(
                got.abs_diff(want) <= want / 20,
                "eighth {k}: {got} machines, expected about {want}"
            );
        }
        let first_quarter: u32 = counts[..512].iter().sum();
        assert!(first_quarter.abs_diff(n / 4) <= n / 80, "{first_quarter}");
    }

    #[test]
    fn spec_syntax() {
        assert_eq!(parse_spec("512@0s,1024@1h,2048@4h").unwrap(), three());
        assert_eq!(
            parse_spec(" 100@0 , 2048@1h30m ").unwrap(),
            vec![w(100, 0), w(2048, 5400)]
        );
        assert_eq!(parse_spec("2048@2d").unwrap(), vec![w(2048, 172_800)]);
        assert_eq!(format_spec(&three()), "512@0s,1024@1h,2048@4h");
        let odd = vec![w(1, 90), w(2, 5400), w(3, 86_400), w(4, 86_401)];
        assert_eq!(parse_spec(&format_spec(&odd)).unwrap(), odd);
        for (bad, want) in [
            ("512", "expected SEEDS_BELOW@DELAY"),
            ("512@", "empty"),
            ("x@0s", "seeds_below \"x\""),
            ("512@1w", "unknown unit 'w'"),
            ("512@1h30", "without a unit"),
            ("512@h", "no number before 'h'"),
            ("512@0s,,2048@1h", "wave 2"),
            ("512@99999999999999999999d", "too large"),
        ] {
            let err = parse_spec(bad).unwrap_err();
            assert!(err.contains(want), "{bad}: {err}");
        }
    }

    #[test]
    fn times_read_as_people_read_them() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_825_600), "2000-02-29 12:00:00 UTC");
        assert_eq!(utc(1_800_000_000), "2027-01-15 08:00:00 UTC");
        assert_eq!(span(45), "45 s");
        assert_eq!(span(600), "10 min");
        assert_eq!(span(3 * 3600 + 300), "3 h 5 min");
        assert_eq!(span(2 * 86_400 + 4 * 3600), "2 d 4 h");
    }

    #[test]
    fn wave_record_round_trips_and_clears() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("update/wave.json");
        assert_eq!(WaveRecord::load(&path), None);
        WaveRecord::clear(&path).unwrap();
        let r = WaveRecord {
            version: "2.0".into(),
            seed: 700,
            opens_at: PUBLISHED + 3600,
            checked_at: PUBLISHED,
        };
        r.save(&path).unwrap();
        assert_eq!(WaveRecord::load(&path), Some(r));
        WaveRecord::clear(&path).unwrap();
        assert!(!path.exists());
    }
}

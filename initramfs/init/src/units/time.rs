//! systemd time spans (`systemd.time(7)`): `5` (seconds), `5s`, `500ms`,
//! `1min 30s`, `2h30min`, `1.5s`, `infinity`.
//!
//! A span too long to count is `infinity`, never an error or a panic:
//! `TimeoutStartSec=99999999999999999999` asks for no time-out. The limit
//! is systemd's: its spans are `u64` microseconds and `u64::MAX` of them
//! is its `USEC_INFINITY` (about 584,542 years).

use std::time::Duration;

/// Units in nanoseconds, longest spellings first where one is a prefix of
/// another is irrelevant: the whole alphabetic run is looked up.
const UNITS: &[(&str, u128)] = &[
    ("nsec", 1),
    ("ns", 1),
    ("usec", 1_000),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("msec", 1_000_000),
    ("ms", 1_000_000),
    ("seconds", SEC),
    ("second", SEC),
    ("sec", SEC),
    ("s", SEC),
    ("minutes", 60 * SEC),
    ("minute", 60 * SEC),
    ("min", 60 * SEC),
    ("m", 60 * SEC),
    ("hours", 3_600 * SEC),
    ("hour", 3_600 * SEC),
    ("hr", 3_600 * SEC),
    ("h", 3_600 * SEC),
    ("days", 86_400 * SEC),
    ("day", 86_400 * SEC),
    ("d", 86_400 * SEC),
    ("weeks", 604_800 * SEC),
    ("week", 604_800 * SEC),
    ("w", 604_800 * SEC),
    ("months", 2_629_800 * SEC),
    ("month", 2_629_800 * SEC),
    ("M", 2_629_800 * SEC),
    ("years", 31_557_600 * SEC),
    ("year", 31_557_600 * SEC),
    ("y", 31_557_600 * SEC),
];

const SEC: u128 = 1_000_000_000;

/// Nanoseconds from which a span is `infinity` (systemd's `USEC_INFINITY`).
const INFINITE: u128 = u64::MAX as u128 * 1_000;

/// Parses a time span; `Ok(None)` is `infinity`. A bare number is seconds.
pub fn parse_timespan(s: &str) -> Result<Option<Duration>, String> {
    let s = s.trim();
    if s == "infinity" {
        return Ok(None);
    }
    if s.is_empty() {
        return Err("empty time span".to_string());
    }
    let bad = || format!("invalid time span {s:?}");
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int, after) = rest.split_at_checked(int_len).ok_or_else(bad)?;
        let (frac, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
                if n == 0 {
                    return Err(bad());
                }
                a.split_at_checked(n).ok_or_else(bad)?
            }
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(bad());
        }
        let after = after.trim_start();
        let unit_len = after
            .find(|c: char| !c.is_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at_checked(unit_len).ok_or_else(bad)?;
        let mult = if unit.is_empty() {
            SEC
        } else {
            UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .map(|(_, m)| *m)
                .ok_or_else(|| format!("invalid time unit {unit:?} in {s:?}"))?
        };
        // Saturating: a number or product past what u128 holds is a span
        // far beyond `INFINITE`, so `infinity`; the rest is still parsed,
        // so a typo after it is an error all the same. (`parse` of a
        // non-empty run of ASCII digits fails only by overflowing.)
        let int: u128 = if int.is_empty() {
            0
        } else {
            int.parse().unwrap_or(u128::MAX)
        };
        let mut part = int.saturating_mul(mult);
        // Fractions beyond nanoseconds are dropped.
        let mut scale = mult;
        for d in frac.chars().filter_map(|c| c.to_digit(10)) {
            scale /= 10;
            part = part.saturating_add(u128::from(d).saturating_mul(scale));
        }
        total = total.saturating_add(part);
        rest = after.trim_start();
    }
    if total >= INFINITE {
        return Ok(None);
    }
    // Below `INFINITE`, so the seconds fit a u64 and the rest a u32.
    let secs = u64::try_from(total / SEC).map_err(|_| bad())?;
    let nanos = u32::try_from(total % SEC).map_err(|_| bad())?;
    Ok(Some(Duration::new(secs, nanos)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Duration {
        parse_timespan(s).unwrap().unwrap()
    }

    #[test]
    fn spans() {
        assert_eq!(d("5"), Duration::from_secs(5));
        assert_eq!(d("5s"), Duration::from_secs(5));
        assert_eq!(d("500ms"), Duration::from_millis(500));
        assert_eq!(d("1min 30s"), Duration::from_secs(90));
        assert_eq!(d("1min30s"), Duration::from_secs(90));
        assert_eq!(d("2h"), Duration::from_secs(7200));
        assert_eq!(d(" 1.5s "), Duration::from_millis(1500));
        assert_eq!(d(".5 min"), Duration::from_secs(30));
        assert_eq!(d("1d 2h 3m 4s 5ms 6us"), Duration::new(93_784, 5_006_000));
        assert_eq!(d("1M"), Duration::from_secs(2_629_800));
        assert_eq!(d("0"), Duration::ZERO);
        assert_eq!(parse_timespan("infinity").unwrap(), None);
    }

    #[test]
    fn invalid_spans() {
        for bad in [
            "",
            "abc",
            "5x",
            "-5s",
            "5 s s",
            "1..5s",
            "s",
            "99999999999999999999999999999999999y x",
        ] {
            assert!(parse_timespan(bad).is_err(), "{bad:?} should fail");
        }
        assert!(parse_timespan("5parsecs")
            .unwrap_err()
            .contains("invalid time unit"));
    }

    /// Spans too long to count are `infinity` (systemd's `USEC_INFINITY`
    /// and beyond), however they overflow: never a panic, never an error.
    #[test]
    fn overlong_spans_are_infinity() {
        for huge in [
            "18446744073709551615",
            "18446744073709551615s",
            "18446744073709551615min",
            "99999999999999999999s",
            "99999999999999999999999999999999999y",
            "1000000000000000000000000000000000000000000000",
            "18446744073709551615000000us",
            "584543y",
            "584542y 1y",
            "340282366920938463463374607431768211455ns 1s",
        ] {
            assert_eq!(parse_timespan(huge), Ok(None), "{huge:?}");
        }
        // Just below the limit still counts: u64::MAX - 1 microseconds.
        assert_eq!(
            parse_timespan("18446744073709551614us"),
            Ok(Some(Duration::from_micros(u64::MAX - 1)))
        );
        assert_eq!(d("584542y"), Duration::from_secs(584_542 * 31_557_600));
    }
}

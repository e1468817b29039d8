//! systemd time spans (`systemd.time(7)`): `5` (seconds), `5s`, `500ms`,
//! `1min 30s`, `2h30min`, `1.5s`, `infinity`.

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
        let int: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| bad())?
        };
        let mut part = int.checked_mul(mult).ok_or_else(bad)?;
        // Fractions beyond nanoseconds are dropped.
        let mut scale = mult;
        for d in frac.chars().filter_map(|c| c.to_digit(10)) {
            scale /= 10;
            part = part
                .checked_add(u128::from(d).checked_mul(scale).ok_or_else(bad)?)
                .ok_or_else(bad)?;
        }
        total = total.checked_add(part).ok_or_else(bad)?;
        rest = after.trim_start();
    }
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
            "99999999999999999999999999999999999y",
        ] {
            assert!(parse_timespan(bad).is_err(), "{bad:?} should fail");
        }
        assert!(parse_timespan("5parsecs")
            .unwrap_err()
            .contains("invalid time unit"));
    }
}

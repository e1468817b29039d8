//! Durations as Slipway's configuration files write them: Go's syntax
//! (`1h30m`, `45m`, `1.5h`, `300ms`), which cloud-config's `window_length`
//! and locksmith use, plus `d` for days and a bare number of seconds.
//!
//! [`is_go_duration`] tells the two apart: cloud-config accepts only what
//! Go's `time.ParseDuration` does, and every such string parses here to the
//! same value.

use std::time::Duration;

/// `whole.frac` times `unit`, rounded down; `None` on non-digits (which
/// includes a second '.') or a number too large to matter.
pub fn scaled(whole: &str, frac: &str, unit: u128) -> Option<u128> {
    if !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // u128 holds 38 digits; 20 whole digits times the largest unit (a day
    // in nanoseconds, under 10^14) fits, and anything bigger is nonsense
    // that the callers' range checks would refuse anyway.
    if whole.len() > 20 {
        return None;
    }
    let mut total = whole.parse::<u128>().ok()? * unit;
    // Digits beyond 18 are below a nanosecond or a byte for any unit here.
    let frac = &frac[..frac.len().min(18)];
    if !frac.is_empty() {
        let scale = 10u128.pow(frac.len() as u32);
        total += frac.parse::<u128>().ok()? * unit / scale;
    }
    Some(total)
}

/// A duration: Go's syntax (`1h30m`, `45m`, `1.5h`, `300ms`; units `ns`,
/// `us`/`µs`, `ms`, `s`, `m`, `h`) as cloud-config validates it, plus `d`
/// for days, and a bare number meaning seconds (`3600`). `0` is zero;
/// negative durations are refused.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    const UNITS: [(&str, u128); 9] = [
        ("ns", 1),
        ("us", 1_000),
        ("µs", 1_000),
        ("ms", 1_000_000),
        ("s", 1_000_000_000),
        ("m", 60 * 1_000_000_000),
        ("h", 3600 * 1_000_000_000),
        ("d", 86_400 * 1_000_000_000),
        // Go also takes U+03BC (Greek mu) for micro.
        ("μs", 1_000),
    ];
    let bad = |why: &str| format!("{s:?} is not a duration: {why}");
    let body = s.strip_prefix('+').unwrap_or(s);
    if body.starts_with('-') {
        return Err(bad("must not be negative"));
    }
    if body.is_empty() {
        return Err(bad("empty"));
    }
    let number_end = |t: &str| {
        t.find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len())
    };
    let mut nanos: u128 = 0;
    let mut rest = body;
    let bare = number_end(body) == body.len();
    while !rest.is_empty() {
        let n = number_end(rest);
        let (number, tail) = rest.split_at(n);
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        if number.is_empty() || number == "." {
            return Err(bad("expected a number before each unit"));
        }
        let (unit, after) = if bare {
            (1_000_000_000, "")
        } else {
            let (name, size) =
                UNITS
                    .iter()
                    .find(|(u, _)| tail.starts_with(u))
                    .ok_or_else(|| {
                        if tail.is_empty() {
                            bad(&format!("{number} has no unit (ns, us, ms, s, m, h, d)"))
                        } else {
                            bad("expected a unit: ns, us, ms, s, m, h or d")
                        }
                    })?;
            (*size, &tail[name.len()..])
        };
        let whole = if whole.is_empty() { "0" } else { whole };
        nanos = scaled(whole, frac, unit)
            .and_then(|n| nanos.checked_add(n))
            .ok_or_else(|| bad("malformed or far too large number"))?;
        rest = after;
    }
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| bad("too large"))?;
    Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

/// Writes a duration the way [`parse_duration`] reads it: `1h30m`, `45s`,
/// `0.25s`, `0s`. Days are written as hours, as Go does, so the result is
/// also valid where cloud-config expects a Go duration.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out += &format!("{h}h");
    }
    if m > 0 {
        out += &format!("{m}m");
    }
    let nanos = d.subsec_nanos();
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        out += &format!("{s}.{}s", frac.trim_end_matches('0'));
    } else if s > 0 || out.is_empty() {
        out += &format!("{s}s");
    }
    out
}

/// Whether `s` is a duration Go's `time.ParseDuration` accepts and
/// [`parse_duration`] reads to the same value: a unit on every number, no
/// `d`, not negative. (Go also takes `-1h`; a negative duration means
/// nothing where Slipway reads one, so it is refused alike.)
pub fn is_go_duration(s: &str) -> bool {
    let body = s.strip_prefix('+').unwrap_or(s);
    if body == "0" {
        return true;
    }
    let bare = body.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    !bare && !body.contains('d') && parse_duration(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let s = Duration::from_secs;
        for (text, d) in [
            ("1h30m", s(5400)),
            ("45m", s(2700)),
            ("10s", s(10)),
            ("3600", s(3600)),
            ("2h", s(7200)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("+1m", s(60)),
            ("1.5h", s(5400)),
            ("1.5", Duration::from_millis(1500)),
            (".5m", s(30)),
            ("300ms", Duration::from_millis(300)),
            ("2h45m30s", s(9930)),
            ("1d", s(86400)),
            ("90m", s(5400)),
            ("1m1m", s(120)),
            ("10us", Duration::from_micros(10)),
            ("10µs", Duration::from_micros(10)),
            ("10\u{3bc}s", Duration::from_micros(10)),
            ("7ns", Duration::from_nanos(7)),
        ] {
            assert_eq!(parse_duration(text), Ok(d), "{text}");
        }
        for bad in [
            "",
            "h",
            "1x",
            "1h30",
            "1h 30m",
            "1..5h",
            "-1h",
            "-0",
            "1.2.3s",
            "1H",
            "1 h",
            "99999999999999999999999h",
            "+",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert!(parse_duration("1h30")
            .unwrap_err()
            .contains("30 has no unit"));
        for d in [
            Duration::ZERO,
            s(1),
            s(59),
            s(60),
            s(5400),
            s(86400 * 9 + 1),
            Duration::from_millis(1500),
            Duration::from_nanos(1),
            Duration::new(3661, 250_000_000),
        ] {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{d:?}");
        }
        assert_eq!(format_duration(s(5400)), "1h30m");
        assert_eq!(format_duration(s(3600)), "1h");
        assert_eq!(format_duration(s(3601)), "1h1s");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_millis(250)), "0.25s");
        assert_eq!(format_duration(s(7 * 86400)), "168h");
    }

    #[test]
    fn go_durations_are_a_subset() {
        for ok in [
            "1h30m", "90m", "1.5h", "0", "300ms", "2h45m30s", "+5m", "10µs",
        ] {
            assert!(is_go_duration(ok), "{ok}");
            assert!(parse_duration(ok).is_ok(), "{ok}");
        }
        for not_go in ["2d", "3600", "1.5", "-1h", "", "1x", "1h 30m"] {
            assert!(!is_go_duration(not_go), "{not_go}");
        }
    }
}

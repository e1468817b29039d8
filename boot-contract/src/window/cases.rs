//! One table of maintenance windows, run against cloud-config's validator
//! (`coreos.locksmith.window_start`/`window_length`) and against the update
//! engine's configuration (`WINDOW_START`/`WINDOW_LENGTH`, as cloud-config
//! writes them) by each crate's tests. The rule they prove: whatever the
//! validator passes, the engine takes, so valid user-data can never stop
//! update checks. The validator is stricter in one way only, on purpose:
//! the length must be Go's syntax (no `d`, no bare seconds), as
//! coreos-cloudinit checks it.

/// A window as user-data or update.conf sets it, and each side's verdict.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// `None`: the key is not set at all.
    pub start: Option<&'static str>,
    pub length: Option<&'static str>,
    /// Whether cloud-config's validator passes it.
    pub validator: bool,
    /// Whether the update engine's configuration takes it.
    pub engine: bool,
}

const fn case(
    start: Option<&'static str>,
    length: Option<&'static str>,
    validator: bool,
    engine: bool,
) -> Case {
    Case {
        start,
        length,
        validator,
        engine,
    }
}

const fn both(start: &'static str, length: &'static str, ok: bool) -> Case {
    case(Some(start), Some(length), ok, ok)
}

pub const CASES: &[Case] = &[
    // Daily and weekly windows as the CoreOS docs write them.
    both("04:00", "1h", true),
    both("Thu 04:00", "1h30m", true),
    both("thu 4:30", "90m", true),
    both("Thursday 23:59", "1.5h", true),
    // One-digit fields and leading zeros, as locksmith takes them.
    both("Sun 0:0", "1h", true),
    both("4:5", "30m", true),
    both("004:05", "30m", true),
    // Limits: a day for a daily window, a week for a weekly one.
    both("00:00", "24h", true),
    both("00:00", "24h1s", false),
    both("04:00", "48h", false),
    both("Mon 04:00", "48h", true),
    both("Sun 00:00", "168h", true),
    both("Sun 00:00", "168h1s", false),
    // A window that never opens.
    both("04:00", "0", false),
    both("04:00", "0s", false),
    both("04:00", "-1h", false),
    // One key without the other: locksmith refuses it too.
    case(Some("04:00"), None, false, false),
    case(None, Some("1h"), false, false),
    case(Some("04:00"), Some(""), false, false),
    case(Some(""), Some("1h"), false, false),
    // Neither, or both empty: no window.
    case(None, None, true, true),
    case(Some(""), Some(""), true, true),
    // Malformed starts and lengths.
    both("24:00", "1h", false),
    both("04:60", "1h", false),
    both("Thx 04:00", "1h", false),
    both("Thu", "1h", false),
    both("Mon Tue 04:00", "1h", false),
    both("04:00:00", "1h", false),
    both("4h", "1h", false),
    both("04:00", "1x", false),
    both("04:00", "1h 30m", false),
    both("04:00", "h", false),
    // Only the engine's own files take days and bare seconds.
    case(Some("Mon 04:00"), Some("2d"), false, true),
    case(Some("04:00"), Some("3600"), false, true),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_validator_is_never_laxer_than_the_engine() {
        for c in CASES {
            assert!(!c.validator || c.engine, "{c:?}");
        }
    }

    /// The window grammar itself, for the cases with both keys set and not
    /// empty (the rest is about how each side reads a missing key).
    #[test]
    fn the_grammar_gives_the_engine_verdict() {
        for c in CASES {
            if let (Some(s), Some(l)) = (c.start, c.length) {
                if !s.is_empty() && !l.is_empty() {
                    assert_eq!(super::super::Window::parse(s, l).is_ok(), c.engine, "{c:?}");
                }
            }
        }
    }
}

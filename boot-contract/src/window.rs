//! The maintenance window: when the machine may reboot into an update.
//!
//! Same meaning as CoreOS locksmith's `window_start`/`window_length`: the
//! start is `H:MM` (every day) or `Day H:MM` (once a week), the length a
//! duration such as `1h30m`, and a reboot may begin only while the window
//! is open. Times are UTC: Slipway carries no time zone database, and one
//! clock for the whole fleet is easier to reason about than local time.
//!
//! A window is half-open, `[start, start + length)`, and may run over
//! midnight (daily) or over Sunday night into Monday (weekly).

pub mod cases;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

const MINUTE: u64 = 60;
const DAY: u64 = 24 * 60 * MINUTE;
const WEEK: u64 = 7 * DAY;
/// 1970-01-01, day 0 of Unix time, was a Thursday: the epoch lies this far
/// after the Monday 00:00 that starts its week.
const EPOCH_AFTER_MONDAY: u64 = 3 * DAY;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    /// Monday first, as the week starts in ISO 8601.
    pub const ALL: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];

    /// 0 for Monday to 6 for Sunday.
    pub fn days_from_monday(self) -> u64 {
        self as u64
    }

    pub fn short_name(self) -> &'static str {
        match self {
            Weekday::Mon => "Mon",
            Weekday::Tue => "Tue",
            Weekday::Wed => "Wed",
            Weekday::Thu => "Thu",
            Weekday::Fri => "Fri",
            Weekday::Sat => "Sat",
            Weekday::Sun => "Sun",
        }
    }

    pub fn full_name(self) -> &'static str {
        match self {
            Weekday::Mon => "Monday",
            Weekday::Tue => "Tuesday",
            Weekday::Wed => "Wednesday",
            Weekday::Thu => "Thursday",
            Weekday::Fri => "Friday",
            Weekday::Sat => "Saturday",
            Weekday::Sun => "Sunday",
        }
    }
}

impl FromStr for Weekday {
    type Err = String;

    /// "Thu" or "Thursday", any case: what cloud-config's validator lets
    /// through for `window_start`.
    fn from_str(s: &str) -> Result<Weekday, String> {
        Weekday::ALL
            .into_iter()
            .find(|d| {
                s.eq_ignore_ascii_case(d.short_name()) || s.eq_ignore_ascii_case(d.full_name())
            })
            .ok_or_else(|| format!("unknown day {s:?} (expected Mon to Sun, or a full day name)"))
    }
}

impl fmt::Display for Weekday {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short_name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    /// `None`: the window opens every day.
    pub day: Option<Weekday>,
    /// Minutes after midnight UTC, 0 to 1439.
    pub start_minute: u32,
    /// Greater than zero; at most a day for a daily window and a week for a
    /// weekly one (a longer window would overlap its next opening).
    pub length: Duration,
}

impl Window {
    /// Parses locksmith's pair, e.g. `("Thu 04:00", "1h30m")` or
    /// `("23:30", "1h")`.
    pub fn parse(start: &str, length: &str) -> Result<Window, String> {
        let (day, start_minute) = parse_start(start)?;
        let length = parse_length(length, day.is_some())?;
        Ok(Window {
            day,
            start_minute,
            length,
        })
    }

    /// The seconds the window repeats after: a day or a week.
    fn period(&self) -> u64 {
        if self.day.is_some() {
            WEEK
        } else {
            DAY
        }
    }

    /// Where the window opens, in seconds after the start of its period
    /// (midnight, or Monday 00:00). Reduced modulo the period so that a
    /// hand-built window with an out-of-range minute cannot underflow.
    fn opens_at(&self) -> u64 {
        let day = self.day.map_or(0, Weekday::days_from_monday);
        (day * DAY + u64::from(self.start_minute) * MINUTE) % self.period()
    }

    /// Given now as seconds since the Unix epoch (UTC), the wait until the
    /// window is open: `Duration::ZERO` if it is open now.
    pub fn wait_from(&self, now_unix: u64) -> Duration {
        let period = self.period();
        // Position in the current day or week. Both periods divide the
        // Monday shift's multiples evenly, so one formula serves both; the
        // sums are reduced first so no `now` can overflow.
        let now = (now_unix % period + EPOCH_AFTER_MONDAY % period) % period;
        // Time since the most recent opening, which may lie in the previous
        // period: this is what makes windows across midnight (or across
        // Sunday to Monday) work without a special case.
        let since_open = (now + period - self.opens_at()) % period;
        if Duration::from_secs(since_open) < self.length {
            Duration::ZERO
        } else {
            Duration::from_secs(period - since_open)
        }
    }

    /// The start as it is written in the configuration: `Thu 04:00` or
    /// `04:00`.
    pub fn start_string(&self) -> String {
        let hm = format!(
            "{:02}:{:02}",
            self.start_minute / 60,
            self.start_minute % 60
        );
        match self.day {
            Some(d) => format!("{d} {hm}"),
            None => hm,
        }
    }

    /// The length as it is written in the configuration, e.g. `1h30m`.
    pub fn length_string(&self) -> String {
        crate::duration::format_duration(self.length)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let every = if self.day.is_some() {
            "weekly"
        } else {
            "daily"
        };
        write!(
            f,
            "{} UTC for {} ({every})",
            self.start_string(),
            self.length_string()
        )
    }
}

/// `[Day ]H:MM`, as locksmith and cloud-config's reference validator read
/// it (`^((?i:sun|mon|…) )?0*([0-9]|1[0-9]|2[0-3]):0*([0-9]|[1-5][0-9])$`):
/// the hour 0-23 and the minute 0-59 in digits, leading zeros allowed, so
/// `Sun 0:0`, `4:05` and `04:05` all parse. Slightly wider than that
/// regex, on purpose and alike in the validator and the engine: full day
/// names (`Thursday`) and extra spaces.
pub fn parse_start(s: &str) -> Result<(Option<Weekday>, u32), String> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let (day, time) = match parts.as_slice() {
        [time] => (None, *time),
        [day, time] => (Some(day.parse::<Weekday>()?), *time),
        _ => {
            return Err(format!(
                "{s:?} is not a window start (expected H:MM or Day H:MM, e.g. \"Thu 04:00\")"
            ))
        }
    };
    let bad_time = || format!("{time:?} is not a time of day (expected H:MM, 00:00 to 23:59)");
    let (h, m) = time.split_once(':').ok_or_else(bad_time)?;
    let field = |t: &str, max: u32| -> Option<u32> {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Leading zeros are free; what is left is at most two digits.
        let t = t.trim_start_matches('0');
        if t.len() > 2 {
            return None;
        }
        let v = if t.is_empty() { 0 } else { t.parse().ok()? };
        (v <= max).then_some(v)
    };
    let (h, m) = (
        field(h, 23).ok_or_else(bad_time)?,
        field(m, 59).ok_or_else(bad_time)?,
    );
    Ok((day, h * 60 + m))
}

/// A window length: a duration (see [`crate::duration::parse_duration`]),
/// more than zero and at most one period.
pub fn parse_length(s: &str, weekly: bool) -> Result<Duration, String> {
    let d = crate::duration::parse_duration(s)?;
    if d.is_zero() {
        return Err("a window length must be more than zero".into());
    }
    let (max, what) = if weekly {
        (WEEK, "7 days (168h) for a weekly window")
    } else {
        (
            DAY,
            "1 day (24h) for a daily window; name a day for a weekly one",
        )
    };
    if d > Duration::from_secs(max) {
        return Err(format!(
            "{} is too long: at most {what}",
            crate::duration::format_duration(d)
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3600;
    const M: u64 = 60;
    /// Thursday 1970-01-01 00:00 UTC.
    const THU: u64 = 0;
    /// Monday 2024-01-01 00:00 UTC.
    const MON_2024: u64 = 1_704_067_200;

    fn w(start: &str, length: &str) -> Window {
        Window::parse(start, length).unwrap()
    }

    fn secs(d: Duration) -> u64 {
        d.as_secs()
    }

    #[test]
    fn weekdays() {
        for (s, d) in [
            ("Mon", Weekday::Mon),
            ("tue", Weekday::Tue),
            ("WED", Weekday::Wed),
            ("thursday", Weekday::Thu),
            ("Friday", Weekday::Fri),
            ("SATURDAY", Weekday::Sat),
            ("sun", Weekday::Sun),
        ] {
            assert_eq!(s.parse::<Weekday>(), Ok(d), "{s}");
        }
        for bad in ["Thx", "Th", "Thurs", "", "Monday1"] {
            assert!(bad.parse::<Weekday>().is_err(), "{bad}");
        }
        assert_eq!(Weekday::Sun.to_string(), "Sun");
        assert_eq!(Weekday::Sun.days_from_monday(), 6);
    }

    #[test]
    fn parsing() {
        assert_eq!(
            w("Thu 04:00", "1h30m"),
            Window {
                day: Some(Weekday::Thu),
                start_minute: 240,
                length: Duration::from_secs(90 * M),
            }
        );
        assert_eq!(
            w("4:30", "1h"),
            Window {
                day: None,
                start_minute: 270,
                length: Duration::from_secs(H),
            }
        );
        assert_eq!(w("  thursday   23:59 ", "1.5h").start_minute, 23 * 60 + 59);
        assert_eq!(w("00:00", "24h").length, Duration::from_secs(24 * H));
        assert_eq!(w("Sun 00:00", "168h").length, Duration::from_secs(168 * H));
        // One-digit fields and leading zeros, as locksmith takes them.
        assert_eq!(w("Sun 0:0", "1h").start_minute, 0);
        assert_eq!(w("4:5", "1h").start_minute, 4 * 60 + 5);
        assert_eq!(w("004:05", "1h").start_minute, 4 * 60 + 5);

        for bad in [
            "24:00",
            "Thu",
            "Thx 04:00",
            "4:",
            ":05",
            "100:00",
            "4:060",
            "4: 5",
            "Mon Tue 04:00",
            "",
            "04:60",
            "4h",
            "-1:00",
            "+4:00",
            "04:00:00",
        ] {
            assert!(Window::parse(bad, "1h").is_err(), "{bad:?}");
        }
        assert!(Window::parse("Thx 04:00", "1h")
            .unwrap_err()
            .contains("unknown day \"Thx\""));
        for bad in ["0", "0s", "", "1x", "-1h", "24h1s"] {
            assert!(Window::parse("04:00", bad).is_err(), "{bad:?}");
        }
        // A day is the most for a daily window, a week for a weekly one.
        let e = Window::parse("04:00", "25h").unwrap_err();
        assert!(e.contains("at most 1 day"), "{e}");
        assert!(Window::parse("Mon 04:00", "25h").is_ok());
        assert!(Window::parse("Mon 04:00", "168h1s").is_err());
    }

    #[test]
    fn formatting() {
        let x = w("thursday 4:05", "90m");
        assert_eq!(x.start_string(), "Thu 04:05");
        assert_eq!(x.length_string(), "1h30m");
        assert_eq!(x.to_string(), "Thu 04:05 UTC for 1h30m (weekly)");
        assert_eq!(w("23:00", "2h").to_string(), "23:00 UTC for 2h (daily)");
        // What is printed parses back to the same window.
        assert_eq!(w(&x.start_string(), &x.length_string()), x);
    }

    #[test]
    fn daily_inside_and_outside() {
        let x = w("04:00", "1h30m");
        let day = 19_000 * DAY; // any midnight
        assert_eq!(secs(x.wait_from(day)), 4 * H);
        assert_eq!(secs(x.wait_from(day + 3 * H + 59 * M + 59)), 1);
        assert_eq!(x.wait_from(day + 4 * H), Duration::ZERO);
        assert_eq!(x.wait_from(day + 5 * H + 29 * M + 59), Duration::ZERO);
        // The end is not in the window: the next opening is tomorrow.
        assert_eq!(secs(x.wait_from(day + 5 * H + 30 * M)), DAY - 90 * M);
        assert_eq!(secs(x.wait_from(day + 23 * H)), 5 * H);
    }

    #[test]
    fn daily_across_midnight() {
        let x = w("23:00", "2h");
        let day = 19_000 * DAY;
        assert_eq!(x.wait_from(day + 23 * H + 30 * M), Duration::ZERO);
        assert_eq!(x.wait_from(day + DAY), Duration::ZERO); // midnight
        assert_eq!(x.wait_from(day + DAY + 59 * M), Duration::ZERO);
        assert_eq!(secs(x.wait_from(day + DAY + H)), 22 * H);
        assert_eq!(secs(x.wait_from(day + 12 * H)), 11 * H);
    }

    #[test]
    fn whole_day_is_always_open() {
        let x = w("13:17", "24h");
        for t in [0, 1, 13 * H, 13 * H + 17 * M - 1, DAY - 1, MON_2024 + 12345] {
            assert_eq!(x.wait_from(t), Duration::ZERO, "{t}");
        }
    }

    #[test]
    fn weekly_uses_the_epoch_weekday() {
        // The epoch was a Thursday: a Thursday window is open at t = 0.
        assert_eq!(w("Thu 00:00", "1h").wait_from(THU), Duration::ZERO);
        assert_eq!(secs(w("Fri 00:00", "1h").wait_from(THU)), DAY);
        assert_eq!(secs(w("Wed 00:00", "1h").wait_from(THU)), 6 * DAY);
        assert_eq!(secs(w("Mon 00:00", "1h").wait_from(THU)), 4 * DAY);
        // 2024-01-01 was a Monday.
        assert_eq!(w("Mon 00:00", "1m").wait_from(MON_2024), Duration::ZERO);
        assert_eq!(secs(w("monday 04:00", "1h").wait_from(MON_2024)), 4 * H);
        assert_eq!(
            secs(w("Sun 04:00", "1h").wait_from(MON_2024)),
            6 * DAY + 4 * H
        );
    }

    #[test]
    fn weekly_inside_and_outside() {
        let x = w("Thu 04:00", "1h30m");
        let thu = MON_2024 + 3 * DAY;
        assert_eq!(secs(x.wait_from(thu)), 4 * H);
        assert_eq!(x.wait_from(thu + 4 * H), Duration::ZERO);
        assert_eq!(x.wait_from(thu + 5 * H + 29 * M), Duration::ZERO);
        assert_eq!(secs(x.wait_from(thu + 5 * H + 30 * M)), WEEK - 90 * M);
        // Same time of day, another day: not open.
        assert_eq!(
            secs(x.wait_from(thu + DAY + 4 * H + 10 * M)),
            6 * DAY - 10 * M
        );
    }

    #[test]
    fn weekly_across_sunday_night() {
        let x = w("Sun 23:00", "3h");
        let sun = MON_2024 + 6 * DAY;
        let next_mon = MON_2024 + WEEK;
        assert_eq!(secs(x.wait_from(sun + 22 * H)), H);
        assert_eq!(x.wait_from(sun + 23 * H), Duration::ZERO);
        assert_eq!(x.wait_from(next_mon), Duration::ZERO);
        assert_eq!(x.wait_from(next_mon + H + 59 * M + 59), Duration::ZERO);
        assert_eq!(secs(x.wait_from(next_mon + 2 * H)), WEEK - 3 * H);
        // Early Monday of the same week is also inside: the window that
        // opened the Sunday before.
        assert_eq!(x.wait_from(MON_2024 + H), Duration::ZERO);
    }

    #[test]
    fn whole_week_is_always_open() {
        let x = w("Wed 12:00", "168h");
        for t in [0, MON_2024, MON_2024 + 2 * DAY + 12 * H - 1, u64::MAX] {
            assert_eq!(x.wait_from(t), Duration::ZERO, "{t}");
        }
    }

    #[test]
    fn sub_second_lengths_and_extremes() {
        // A length of 1.5 s holds second 0 and second 1 of the window.
        let x = w("00:00", "1.5s");
        assert_eq!(x.wait_from(0), Duration::ZERO);
        assert_eq!(x.wait_from(1), Duration::ZERO);
        assert_eq!(secs(x.wait_from(2)), DAY - 2);
        // No overflow at the end of time.
        let y = w("Thu 04:00", "1h");
        assert!(y.wait_from(u64::MAX) <= Duration::from_secs(WEEK));
        // Hand-built windows out of range do not panic.
        let z = Window {
            day: None,
            start_minute: 5000,
            length: Duration::from_secs(60),
        };
        assert!(z.wait_from(123_456) <= Duration::from_secs(DAY));
    }

    #[test]
    fn wait_always_lands_in_the_window() {
        for x in [
            w("04:00", "1h30m"),
            w("23:59", "2m"),
            w("Sun 23:00", "3h"),
            w("Thu 00:00", "1s"),
        ] {
            for t in (MON_2024..MON_2024 + 2 * WEEK).step_by(7 * 60 + 13) {
                let wait = x.wait_from(t);
                assert_eq!(x.wait_from(t + wait.as_secs()), Duration::ZERO, "{x} {t}");
                if !wait.is_zero() {
                    // ... and is the first such moment.
                    assert_ne!(
                        x.wait_from(t + wait.as_secs() - 1),
                        Duration::ZERO,
                        "{x} {t}"
                    );
                }
            }
        }
    }
}

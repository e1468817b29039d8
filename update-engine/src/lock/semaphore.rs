//! locksmith's reboot semaphore as a plain value: its JSON form and the
//! three changes `lock`, `unlock` and `set-max`. No I/O here; the etcd
//! client reads a value, applies one change and writes it back with a
//! compare-and-swap.
//!
//! The JSON is locksmith's (`lock/semaphore.go`), byte for byte, so a fleet
//! can mix machines and `locksmithctl`-style tools:
//! `{"semaphore":1,"max":1,"holders":[]}`, held:
//! `{"semaphore":0,"max":1,"holders":["<machine-id>"]}`. Upstream writes
//! `"holders":null` for an empty list (a nil Go slice); both are read.

use serde::{Deserialize, Serialize};

/// The reboot semaphore: `semaphore` slots are free out of `max`;
/// `holders` are the machine IDs holding one, sorted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Semaphore {
    /// Free slots. May go below zero after `set-max` lowered `max` under
    /// the number of holders: nobody else gets the lock until enough of
    /// them unlock.
    pub semaphore: i64,
    pub max: i64,
    /// `null` in upstream's JSON when empty; always written as a list.
    #[serde(deserialize_with = "null_as_empty")]
    pub holders: Vec<String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SemaphoreError {
    /// The value is not locksmith's JSON. It is never overwritten: it may
    /// be another tool's data, or a hand edit that a person must look at.
    #[error(
        "holds {value}, which is not locksmith's semaphore JSON \
         {{\"semaphore\":N,\"max\":N,\"holders\":[...]}} ({reason}); \
         refusing to change it (fix or delete the key by hand)"
    )]
    NotSemaphore { value: String, reason: String },
    #[error("the reboot lock is busy: {} of {max} held by {}", .holders.len(), holders_list(.holders))]
    Busy {
        holders: Vec<String>,
        semaphore: i64,
        max: i64,
    },
    #[error("{id} does not hold the reboot lock (holders: {})", holders_list(.holders))]
    NotHolder { id: String, holders: Vec<String> },
    #[error("max must be 0 or more, not {0}")]
    BadMax(i64),
    #[error("a holder ID must be one line of printable text, not {0:?}")]
    BadId(String),
}

fn holders_list(holders: &[String]) -> String {
    if holders.is_empty() {
        "nobody".into()
    } else {
        holders.join(", ")
    }
}

/// What a change did: the etcd client writes only when something changed,
/// so locking twice costs no write and no conflict with other machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Changed,
    Unchanged,
}

impl Default for Semaphore {
    /// What locksmith creates when the key is absent: one machine at a time.
    fn default() -> Semaphore {
        Semaphore {
            semaphore: 1,
            max: 1,
            holders: Vec::new(),
        }
    }
}

impl Semaphore {
    /// Reads a key's value. Everything but the semaphore JSON is refused,
    /// with the value (shortened) in the error.
    pub fn parse(value: &[u8]) -> Result<Semaphore, SemaphoreError> {
        let not = |reason: String| SemaphoreError::NotSemaphore {
            value: shown(value),
            reason,
        };
        let text = std::str::from_utf8(value).map_err(|e| not(format!("not UTF-8: {e}")))?;
        if text.trim().is_empty() {
            return Err(not("empty".into()));
        }
        // Through a Value: serde would also take a struct from a JSON
        // array ([1,1,[]]), which is not locksmith's format.
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| not(e.to_string()))?;
        if !v.is_object() {
            return Err(not("not a JSON object".into()));
        }
        let mut s: Semaphore = serde_json::from_value(v).map_err(|e| not(e.to_string()))?;
        if s.max < 0 {
            return Err(not(format!("max is {}", s.max)));
        }
        // Sorted as locksmith keeps them; a hand-written value may not be.
        s.holders.sort();
        Ok(s)
    }

    /// The JSON locksmith writes (fields in its order, no blanks).
    pub fn to_json(&self) -> String {
        // Serialising three plain fields cannot fail; the fallback keeps
        // this function total without an unwrap.
        serde_json::to_string(self).unwrap_or_else(|_| {
            format!(
                "{{\"semaphore\":{},\"max\":{},\"holders\":[]}}",
                self.semaphore, self.max
            )
        })
    }

    /// Takes a slot for `id`. Already holding it is success with no change
    /// (a machine that rebooted while holding the lock asks again).
    pub fn lock(&mut self, id: &str) -> Result<Change, SemaphoreError> {
        check_id(id)?;
        if self.holders.iter().any(|h| h == id) {
            return Ok(Change::Unchanged);
        }
        if self.semaphore <= 0 {
            return Err(SemaphoreError::Busy {
                holders: self.holders.clone(),
                semaphore: self.semaphore,
                max: self.max,
            });
        }
        self.semaphore -= 1;
        let at = self.holders.partition_point(|h| h.as_str() < id);
        self.holders.insert(at, id.to_owned());
        Ok(Change::Changed)
    }

    /// Frees `id`'s slot; an error if `id` holds none.
    pub fn unlock(&mut self, id: &str) -> Result<Change, SemaphoreError> {
        let Some(at) = self.holders.iter().position(|h| h == id) else {
            return Err(SemaphoreError::NotHolder {
                id: id.to_owned(),
                holders: self.holders.clone(),
            });
        };
        self.holders.remove(at);
        self.semaphore += 1;
        Ok(Change::Changed)
    }

    /// Sets how many machines may hold the lock at once; the free count
    /// moves by the change of `max` (locksmith's rule), so holders keep
    /// their slots. 0 stops all reboots of the fleet (or group).
    pub fn set_max(&mut self, max: i64) -> Result<Change, SemaphoreError> {
        if max < 0 {
            return Err(SemaphoreError::BadMax(max));
        }
        if max == self.max {
            return Ok(Change::Unchanged);
        }
        self.semaphore += max - self.max;
        self.max = max;
        Ok(Change::Changed)
    }
}

/// Machine IDs are 32 hex digits, but locksmith allowed any string; only
/// what would make the JSON or `lock status` unreadable is refused.
fn check_id(id: &str) -> Result<(), SemaphoreError> {
    if id.is_empty() || id.chars().any(char::is_control) {
        return Err(SemaphoreError::BadId(id.to_owned()));
    }
    Ok(())
}

/// A value as an error shows it: as text when it is, at most 200 chars.
fn shown(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    let mut out: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        out.push('…');
    }
    format!("{out:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sem(semaphore: i64, max: i64, holders: &[&str]) -> Semaphore {
        Semaphore {
            semaphore,
            max,
            holders: holders.iter().map(|h| h.to_string()).collect(),
        }
    }

    #[test]
    fn default_is_locksmiths_initial_value() {
        assert_eq!(
            Semaphore::default().to_json(),
            r#"{"semaphore":1,"max":1,"holders":[]}"#
        );
    }

    #[test]
    fn parses_and_writes_locksmiths_json() {
        let v = br#"{"semaphore":0,"max":1,"holders":["4f2e"]}"#;
        let s = Semaphore::parse(v).unwrap();
        assert_eq!(s, sem(0, 1, &["4f2e"]));
        assert_eq!(s.to_json().as_bytes(), v);
    }

    #[test]
    fn null_holders_is_an_empty_list() {
        let s = Semaphore::parse(br#"{"semaphore":1,"max":1,"holders":null}"#).unwrap();
        assert_eq!(s, Semaphore::default());
        // Written back as a list, which upstream reads too.
        assert_eq!(s.to_json(), r#"{"semaphore":1,"max":1,"holders":[]}"#);
    }

    #[test]
    fn parse_sorts_holders_and_accepts_blanks() {
        let s = Semaphore::parse(b" {\"max\": 3, \"semaphore\": 1, \"holders\": [\"c\", \"a\"]}\n")
            .unwrap();
        assert_eq!(s, sem(1, 3, &["a", "c"]));
    }

    #[test]
    fn refuses_what_is_not_the_semaphore() {
        for (value, needle) in [
            (&b"hello"[..], "expected value"),
            (b"", "empty"),
            (b"  \n", "empty"),
            (b"\xff\xfe", "not UTF-8"),
            (b"[1,1,[]]", "not a JSON object"),
            (b"null", "not a JSON object"),
            (br#"{"semaphore":1,"max":1}"#, "missing field `holders`"),
            (br#"{"max":1,"holders":[]}"#, "missing field `semaphore`"),
            (br#"{"semaphore":"1","max":1,"holders":[]}"#, "invalid type"),
            (br#"{"semaphore":1,"max":1,"holders":[1]}"#, "invalid type"),
            (br#"{"semaphore":1,"max":-1,"holders":[]}"#, "max is -1"),
            (
                br#"{"semaphore":1,"max":1,"holders":[],"owner":"x"}"#,
                "unknown field `owner`",
            ),
        ] {
            let e = Semaphore::parse(value).unwrap_err();
            let text = e.to_string();
            assert!(
                matches!(e, SemaphoreError::NotSemaphore { .. }),
                "{value:?}: {e:?}"
            );
            assert!(text.contains(needle), "{value:?}: {text}");
            assert!(text.contains("refusing to change it"), "{text}");
        }
    }

    #[test]
    fn error_shows_a_long_value_shortened() {
        let long = "x".repeat(1000);
        let text = Semaphore::parse(long.as_bytes()).unwrap_err().to_string();
        assert!(
            text.contains(&format!("\"{}…\"", "x".repeat(200))),
            "{text}"
        );
        assert!(!text.contains(&"x".repeat(201)));
    }

    #[test]
    fn lock_takes_a_slot_and_keeps_holders_sorted() {
        let mut s = sem(3, 3, &[]);
        assert_eq!(s.lock("m"), Ok(Change::Changed));
        assert_eq!(s.lock("z"), Ok(Change::Changed));
        assert_eq!(s.lock("a"), Ok(Change::Changed));
        assert_eq!(s, sem(0, 3, &["a", "m", "z"]));
    }

    #[test]
    fn lock_again_by_a_holder_is_ok_and_changes_nothing() {
        let mut s = sem(0, 1, &["a"]);
        assert_eq!(s.lock("a"), Ok(Change::Unchanged));
        assert_eq!(s, sem(0, 1, &["a"]));
    }

    #[test]
    fn lock_when_full_is_busy_naming_the_holders() {
        let mut s = sem(0, 2, &["a", "b"]);
        let e = s.lock("c").unwrap_err();
        assert_eq!(
            e.to_string(),
            "the reboot lock is busy: 2 of 2 held by a, b"
        );
        assert_eq!(s, sem(0, 2, &["a", "b"]));
        // Below zero (max lowered under the holders) is busy too.
        let mut s = sem(-1, 1, &["a", "b"]);
        assert!(matches!(s.lock("c"), Err(SemaphoreError::Busy { .. })));
        // max 0: nobody reboots.
        let mut s = sem(0, 0, &[]);
        assert_eq!(
            s.lock("a").unwrap_err().to_string(),
            "the reboot lock is busy: 0 of 0 held by nobody"
        );
    }

    #[test]
    fn lock_refuses_unreadable_ids() {
        let mut s = Semaphore::default();
        assert!(matches!(s.lock(""), Err(SemaphoreError::BadId(_))));
        assert!(matches!(s.lock("a\nb"), Err(SemaphoreError::BadId(_))));
        assert_eq!(s, Semaphore::default());
    }

    #[test]
    fn unlock_frees_the_slot() {
        let mut s = sem(0, 2, &["a", "b"]);
        assert_eq!(s.unlock("a"), Ok(Change::Changed));
        assert_eq!(s, sem(1, 2, &["b"]));
        assert_eq!(s.unlock("b"), Ok(Change::Changed));
        assert_eq!(s, sem(2, 2, &[]));
    }

    #[test]
    fn unlock_by_a_non_holder_is_an_error_and_changes_nothing() {
        let mut s = sem(0, 1, &["a"]);
        let e = s.unlock("b").unwrap_err();
        assert_eq!(
            e.to_string(),
            "b does not hold the reboot lock (holders: a)"
        );
        assert_eq!(s, sem(0, 1, &["a"]));
        let mut s = Semaphore::default();
        assert!(s
            .unlock("a")
            .unwrap_err()
            .to_string()
            .contains("holders: nobody"));
    }

    #[test]
    fn set_max_moves_the_semaphore_by_the_change() {
        let mut s = sem(0, 1, &["a"]);
        assert_eq!(s.set_max(3), Ok(Change::Changed));
        assert_eq!(s, sem(2, 3, &["a"]));
        assert_eq!(s.set_max(3), Ok(Change::Unchanged));
        // Lowering under the holders leaves it negative: holders keep
        // their slots, and nobody else gets one until enough unlock.
        let mut s = sem(0, 3, &["a", "b", "c"]);
        assert_eq!(s.set_max(1), Ok(Change::Changed));
        assert_eq!(s, sem(-2, 1, &["a", "b", "c"]));
        assert!(matches!(s.lock("d"), Err(SemaphoreError::Busy { .. })));
        s.unlock("a").unwrap();
        s.unlock("b").unwrap();
        assert!(matches!(s.lock("d"), Err(SemaphoreError::Busy { .. })));
        s.unlock("c").unwrap();
        assert_eq!(s, sem(1, 1, &[]));
        assert_eq!(s.lock("d"), Ok(Change::Changed));
    }

    #[test]
    fn set_max_refuses_negative() {
        let mut s = Semaphore::default();
        assert_eq!(s.set_max(-1), Err(SemaphoreError::BadMax(-1)));
        assert_eq!(s, Semaphore::default());
        assert_eq!(s.set_max(0), Ok(Change::Changed));
        assert_eq!(s, sem(0, 0, &[]));
    }
}

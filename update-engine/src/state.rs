//! What the engine remembers between runs, in
//! `/var/lib/slipway/update/state.json`: the last check, the current or
//! last apply (step, progress, error) and where an interrupted apply can
//! resume. Written by temporary name and rename, so a reader (`status`, a
//! power cut) sees the old file or the new one. Only bookkeeping lives
//! here: what boots is decided by the entries on the ESP alone.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::apply::{Observer, ResumePoint, Step};

pub const STATE_FILE: &str = "/var/lib/slipway/update/state.json";

pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub at: u64,
    /// `up to date`, `available 1.2.3`, or the error.
    pub result: String,
    pub available: Option<String>,
}

/// Where an apply is (`running`), or how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Running,
    Installed,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyRecord {
    pub source: String,
    pub slot: char,
    pub version: Option<String>,
    pub step: String,
    pub outcome: Outcome,
    pub done: u64,
    pub total: u64,
    pub started: u64,
    pub updated: u64,
    pub error: Option<String>,
    pub resume: Option<ResumePoint>,
    /// Bytes per second written while streaming (when installed).
    pub write_rate: Option<u64>,
    /// How the data arrived (when installed): delta or whole, bytes over
    /// the network. Absent in state files of older engines.
    #[serde(default)]
    pub download: Option<crate::delta::Download>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub last_check: Option<Check>,
    pub apply: Option<ApplyRecord>,
}

impl State {
    /// A missing or unreadable file is an empty state (with the reason),
    /// never a reason to refuse an update.
    pub fn load(path: &Path) -> (State, Option<String>) {
        crate::files::read_json_or_default(path)
    }

    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        crate::files::write_json(path, self)
    }
}

/// Where a transition is refused: steps run in order, each once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutOfOrder {
    pub from: Option<Step>,
    pub to: Step,
}

/// The apply's state machine as the state file records it. Steps must
/// come in `Step::ALL` order (a skipped or repeated step is a bug, refused
/// loudly); `fail` ends it at the current step; `finish` only after the
/// last step.
#[derive(Debug)]
pub struct Tracker {
    path: Option<PathBuf>,
    pub state: State,
    current: Option<Step>,
    last_save: Option<Instant>,
    /// Save progress at most this often (the file is on /var).
    pub save_every: Duration,
    /// Abort before this step (tests and the daemon's stop).
    pub stop_before: Option<Step>,
}

impl Tracker {
    pub fn new(path: Option<PathBuf>, mut state: State, source: &str, slot: char) -> Tracker {
        let now = now_unix();
        // Keep an unfinished apply's resume point for the same slot.
        let resume = state
            .apply
            .as_ref()
            .filter(|a| a.outcome != Outcome::Installed && a.slot == slot)
            .and_then(|a| a.resume.clone());
        state.apply = Some(ApplyRecord {
            source: source.to_string(),
            slot,
            version: None,
            step: "starting".into(),
            outcome: Outcome::Running,
            done: 0,
            total: 0,
            started: now,
            updated: now,
            error: None,
            resume,
            write_rate: None,
            download: None,
        });
        Tracker {
            path,
            state,
            current: None,
            last_save: None,
            save_every: Duration::from_secs(2),
            stop_before: None,
        }
    }

    pub fn resume_point(&self) -> Option<ResumePoint> {
        self.state.apply.as_ref().and_then(|a| a.resume.clone())
    }

    fn record(&mut self) -> &mut ApplyRecord {
        // `new` always sets it.
        self.state.apply.get_or_insert_with(|| ApplyRecord {
            source: String::new(),
            slot: '?',
            version: None,
            step: String::new(),
            outcome: Outcome::Running,
            done: 0,
            total: 0,
            started: 0,
            updated: 0,
            error: None,
            resume: None,
            write_rate: None,
            download: None,
        })
    }

    pub fn advance(&mut self, to: Step) -> Result<(), OutOfOrder> {
        let expected = match self.current {
            None => Some(Step::ALL[0]),
            Some(s) => Step::ALL
                .iter()
                .position(|x| *x == s)
                .and_then(|i| Step::ALL.get(i + 1).copied()),
        };
        if expected != Some(to) || self.finished() {
            return Err(OutOfOrder {
                from: self.current,
                to,
            });
        }
        self.current = Some(to);
        let r = self.record();
        r.step = to.name().to_string();
        r.updated = now_unix();
        self.save();
        Ok(())
    }

    pub fn set_version(&mut self, v: &str) {
        self.record().version = Some(v.to_string());
    }

    fn finished(&self) -> bool {
        self.state
            .apply
            .as_ref()
            .is_some_and(|a| a.outcome != Outcome::Running)
    }

    pub fn fail(&mut self, error: &str) {
        let r = self.record();
        r.outcome = Outcome::Failed;
        r.error = Some(error.to_string());
        r.updated = now_unix();
        self.save();
    }

    /// Ends a successful apply; refused unless every step ran.
    pub fn finish(
        &mut self,
        version: &str,
        write_rate: u64,
        download: crate::delta::Download,
    ) -> Result<(), OutOfOrder> {
        if self.current != Some(Step::InstallEntry) || self.finished() {
            return Err(OutOfOrder {
                from: self.current,
                to: Step::InstallEntry,
            });
        }
        let r = self.record();
        r.outcome = Outcome::Installed;
        r.version = Some(version.to_string());
        r.resume = None;
        r.write_rate = Some(write_rate);
        r.download = Some(download);
        r.updated = now_unix();
        self.save();
        Ok(())
    }

    pub fn outcome(&self) -> Option<Outcome> {
        self.state.apply.as_ref().map(|a| a.outcome)
    }

    fn save(&mut self) {
        self.last_save = Some(Instant::now());
        if let Some(p) = &self.path {
            // Bookkeeping only: a failed save must not fail the update.
            if let Err(e) = self.state.save(p) {
                eprintln!("update-engine: warning: saving {}: {e}", p.display());
            }
        }
    }
}

impl Observer for Tracker {
    fn step(&mut self, step: Step, _detail: &str) -> Result<(), String> {
        if self.stop_before == Some(step) {
            return Err("stop requested".into());
        }
        self.advance(step)
            .map_err(|e| format!("step {} out of order after {:?}", e.to.name(), e.from))
    }

    fn progress(&mut self, done: u64, total: u64, resume: &ResumePoint) {
        let r = self.record();
        r.done = done;
        r.total = total;
        r.resume = Some(resume.clone());
        let due = self
            .last_save
            .is_none_or(|t| t.elapsed() >= self.save_every)
            || done == total;
        if due {
            self.record().updated = now_unix();
            self.save();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker() -> Tracker {
        Tracker::new(None, State::default(), "file", 'b')
    }

    #[test]
    fn steps_run_in_order_once() {
        let mut t = tracker();
        assert!(t.advance(Step::Write).is_err(), "skipping verify");
        for s in Step::ALL {
            t.advance(s).unwrap();
        }
        assert!(t.advance(Step::InstallEntry).is_err(), "repeat");
        t.finish("2.0", 1, Default::default()).unwrap();
        assert_eq!(t.outcome(), Some(Outcome::Installed));
        assert!(
            t.finish("2.0", 1, Default::default()).is_err(),
            "finish twice"
        );
        assert!(t.advance(Step::Verify).is_err(), "after the end");
    }

    #[test]
    fn every_step_can_fail_and_then_nothing_advances() {
        for (i, s) in Step::ALL.iter().enumerate() {
            let mut t = tracker();
            for s in &Step::ALL[..=i] {
                t.advance(*s).unwrap();
            }
            t.fail("boom");
            assert_eq!(t.outcome(), Some(Outcome::Failed));
            assert_eq!(t.state.apply.as_ref().unwrap().step, s.name());
            if let Some(next) = Step::ALL.get(i + 1) {
                assert!(t.advance(*next).is_err());
            }
            assert!(t.finish("2.0", 1, Default::default()).is_err());
        }
    }

    #[test]
    fn finish_needs_the_last_step() {
        let mut t = tracker();
        t.advance(Step::Verify).unwrap();
        assert!(t.finish("2.0", 1, Default::default()).is_err());
    }

    #[test]
    fn resume_point_survives_a_failed_run_for_the_same_slot_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut t = Tracker::new(Some(path.clone()), State::default(), "f", 'b');
        t.advance(Step::Verify).unwrap();
        let rp = ResumePoint {
            manifest_sha256: "x".into(),
            slot: 'b',
            chunks_done: 7,
        };
        t.progress(7, 10, &rp);
        t.fail("power cut");
        let (loaded, warn) = State::load(&path);
        assert!(warn.is_none());
        assert_eq!(
            Tracker::new(None, loaded.clone(), "f", 'b').resume_point(),
            Some(rp)
        );
        assert_eq!(Tracker::new(None, loaded, "f", 'a').resume_point(), None);
        std::fs::write(&path, "{").unwrap();
        assert!(State::load(&path).1.is_some());
    }
}

//! Progress of long build work (compiling the guest programs, fetching
//! packages) on stderr, so a first build is never minutes of silence.
//!
//! On a terminal a [`Counter`] is an indicatif spinner that counts what is
//! done and names the last item; lines printed with [`line`] go above it.
//! Anywhere else (CI logs, pipes) it is line-based: a line at most every
//! [`LINE_EVERY`] and one at the end, so logs stay readable and greppable.
//! `--quiet` builds make counters that print nothing.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a line-based counter says where it is.
pub const LINE_EVERY: Duration = Duration::from_secs(15);

/// The terminal's bars, if stderr is one. Shared by every counter, so two
/// pieces of work running at once (guest programs and package downloads)
/// each keep their own line.
fn bars() -> Option<&'static MultiProgress> {
    static BARS: OnceLock<Option<MultiProgress>> = OnceLock::new();
    BARS.get_or_init(|| {
        std::io::stderr()
            .is_terminal()
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
    })
    .as_ref()
}

/// Prints one line on stderr, above the bars when there are any (a plain
/// `eprintln!` would be overdrawn by the next tick).
pub fn line(text: &str) {
    match bars() {
        Some(bars) => {
            // println fails only when the bars are hidden; then say it plainly.
            if bars.println(text).is_err() {
                eprintln!("{text}");
            }
        }
        None => eprintln!("{text}"),
    }
}

/// How a counter shows itself.
#[derive(Debug)]
enum Show {
    Bar(ProgressBar),
    Lines { last: Instant },
    Nothing,
}

/// Counts finished items of one piece of work (`guest: compiled 57 crates
/// (last: serde_json)`).
#[derive(Debug)]
pub struct Counter {
    what: &'static str,
    unit: &'static str,
    done: u64,
    started: Instant,
    show: Show,
}

impl Counter {
    /// `what` names the work (`guest`), `unit` what is counted, in the
    /// plural (`crates compiled`). Quiet counters print nothing.
    pub fn new(what: &'static str, unit: &'static str, quiet: bool) -> Self {
        let show = match (quiet, bars()) {
            (true, _) => Show::Nothing,
            (false, Some(bars)) => {
                let bar = bars.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix}: {pos} {msg} [{elapsed}]")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_prefix(what);
                bar.set_message(unit);
                bar.enable_steady_tick(Duration::from_millis(120));
                Show::Bar(bar)
            }
            (false, None) => Show::Lines {
                last: Instant::now(),
            },
        };
        Self {
            what,
            unit,
            done: 0,
            started: Instant::now(),
            show,
        }
    }

    /// One more item done; `item` names it.
    pub fn step(&mut self, item: &str) {
        self.done += 1;
        match &mut self.show {
            Show::Bar(bar) => {
                bar.set_position(self.done);
                bar.set_message(format!("{} (last: {item})", self.unit));
            }
            Show::Lines { last } => {
                if last.elapsed() >= LINE_EVERY {
                    *last = Instant::now();
                    eprintln!(
                        "{}: {} {} so far, {:.0} s (last: {item})",
                        self.what,
                        self.done,
                        self.unit,
                        self.started.elapsed().as_secs_f64()
                    );
                }
            }
            Show::Nothing => {}
        }
    }

    /// How many items are done.
    pub fn done(&self) -> u64 {
        self.done
    }

    /// Ends the counter with a summary line (none when quiet or when
    /// nothing was counted: a warm build has nothing to report).
    pub fn finish(self) {
        let summary = format!(
            "{}: {} {} in {:.1} s",
            self.what,
            self.done,
            self.unit,
            self.started.elapsed().as_secs_f64()
        );
        match self.show {
            Show::Bar(bar) => {
                bar.finish_and_clear();
                if self.done > 0 {
                    line(&summary);
                }
            }
            Show::Lines { .. } if self.done > 0 => eprintln!("{summary}"),
            _ => {}
        }
    }
}

/// The name of what a `cargo --message-format=json` line says was just
/// compiled (`compiler-artifact`, not `fresh`), e.g. `serde_json`; `None`
/// for every other message (up-to-date crates, build-script output,
/// diagnostics, the final `build-finished`).
pub fn cargo_artifact(json_line: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(json_line).ok()?;
    if v.get("reason")?.as_str()? != "compiler-artifact"
        || v.get("fresh").and_then(|f| f.as_bool()) == Some(true)
    {
        return None;
    }
    v.get("target")?
        .get("name")?
        .as_str()
        .map(|s| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_artifact_lines_name_the_crate_and_others_are_skipped() {
        let artifact = r#"{"reason":"compiler-artifact","package_id":"x","target":{"kind":["lib"],"name":"serde_json"},"fresh":false}"#;
        assert_eq!(cargo_artifact(artifact).as_deref(), Some("serde_json"));
        for other in [
            r#"{"reason":"build-script-executed","package_id":"x"}"#,
            r#"{"reason":"build-finished","success":true}"#,
            r#"{"reason":"compiler-artifact","target":{"name":"serde"},"fresh":true}"#,
            "not json at all",
            r#"{"reason":"compiler-artifact"}"#,
        ] {
            assert_eq!(cargo_artifact(other), None, "{other}");
        }
    }

    #[test]
    fn a_quiet_counter_counts_without_printing() {
        let mut c = Counter::new("guest", "crates compiled", true);
        c.step("a");
        c.step("b");
        assert_eq!(c.done(), 2);
        assert!(matches!(c.show, Show::Nothing));
        c.finish();
    }
}

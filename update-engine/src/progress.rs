//! What a person watching an apply sees: a bar on a terminal, or a line
//! every few seconds on a log or serial console, over the state file's
//! bookkeeping.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::apply::{Observer, ResumePoint, Step};
use crate::state::Tracker;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// A bar on a terminal, lines otherwise.
    Auto,
    Bar,
    Lines,
    None,
}

pub struct Progress {
    pub tracker: Tracker,
    mode: Mode,
    bar: Option<ProgressBar>,
    last_line: Option<Instant>,
    started: Instant,
}

impl Progress {
    pub fn new(tracker: Tracker, mode: Mode) -> Progress {
        let mode = match mode {
            Mode::Auto if std::io::stderr().is_terminal() => Mode::Bar,
            Mode::Auto => Mode::Lines,
            m => m,
        };
        Progress {
            tracker,
            mode,
            bar: None,
            last_line: None,
            started: Instant::now(),
        }
    }

    pub fn say(&self, text: &str) {
        if self.mode == Mode::None {
            return;
        }
        match &self.bar {
            Some(bar) => bar.println(format!("update-engine: {text}")),
            None => eprintln!("update-engine: {text}"),
        }
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

fn describe(step: Step, detail: &str) -> String {
    match step {
        Step::Verify => format!("reading and verifying the manifest of {detail}"),
        Step::RemoveEntry => format!("removing the boot entry of {detail}"),
        Step::Write => format!("writing {detail} (each chunk verified first)"),
        Step::ReadBack => "re-reading what was written and comparing with the manifest".into(),
        Step::InstallBootFiles => {
            "installing the kernel and initramfs on the ESP (while the re-read goes on)".into()
        }
        Step::InstallEntry => "writing the boot entry".into(),
    }
}

pub use crate::human::mib;

impl Observer for Progress {
    fn say(&mut self, text: &str) {
        Progress::say(self, text);
    }

    fn step(&mut self, step: Step, detail: &str) -> Result<(), String> {
        if step == Step::ReadBack {
            self.finish();
        }
        self.say(&describe(step, detail));
        self.tracker.step(step, detail)
    }

    fn progress(&mut self, done: u64, total: u64, resume: &ResumePoint) {
        self.tracker.progress(done, total, resume);
        match self.mode {
            Mode::Bar => {
                let bar = self.bar.get_or_insert_with(|| {
                    let b =
                        ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
                    b.set_style(
                        ProgressStyle::with_template(
                            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                    );
                    b
                });
                bar.set_position(done);
            }
            Mode::Lines => {
                let due = self
                    .last_line
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(3))
                    || done == total;
                if due {
                    self.last_line = Some(Instant::now());
                    let secs = self.started.elapsed().as_secs_f64().max(0.001);
                    eprintln!(
                        "update-engine: {} of {} ({}%), {}/s",
                        mib(done),
                        mib(total),
                        done * 100 / total.max(1),
                        mib((done as f64 / secs) as u64)
                    );
                }
            }
            Mode::Auto | Mode::None => {}
        }
    }
}

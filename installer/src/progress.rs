//! What someone watching an install sees: an indicatif bar on a terminal,
//! a line every few seconds otherwise (a serial console, a CI log).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::human;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Bar,
    Lines,
    Quiet,
}

#[derive(Debug)]
pub struct Progress {
    mode: Mode,
    /// The program name lines start with.
    prefix: &'static str,
    bar: Option<ProgressBar>,
    total: u64,
    done: u64,
    started: Instant,
    last_line: Option<Instant>,
}

impl Progress {
    /// A bar if stderr is a terminal, else lines.
    pub fn auto(prefix: &'static str) -> Progress {
        let mode = if std::io::stderr().is_terminal() {
            Mode::Bar
        } else {
            Mode::Lines
        };
        Progress::new(prefix, mode)
    }

    pub fn new(prefix: &'static str, mode: Mode) -> Progress {
        Progress {
            mode,
            prefix,
            bar: None,
            total: 0,
            done: 0,
            started: Instant::now(),
            last_line: None,
        }
    }

    pub fn start(&mut self, target: &str, total: u64) {
        self.total = total;
        self.started = Instant::now();
        match self.mode {
            Mode::Bar => {
                eprintln!("{}: writing {target}", self.prefix);
                // A few redraws a second: on a serial console every redraw is a line.
                let bar = ProgressBar::with_draw_target(
                    Some(total),
                    ProgressDrawTarget::stderr_with_hz(4),
                );
                bar.set_style(
                    ProgressStyle::with_template(
                        "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                self.bar = Some(bar);
            }
            Mode::Lines => eprintln!(
                "{}: writing {target}: reading {} of image",
                self.prefix,
                human(total)
            ),
            Mode::Quiet => {}
        }
    }

    pub fn advance(&mut self, bytes: u64) {
        self.done += bytes;
        match self.mode {
            Mode::Bar => {
                if let Some(bar) = &self.bar {
                    bar.set_position(self.done);
                }
            }
            Mode::Lines => {
                let due = self
                    .last_line
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(5));
                if due && self.done < self.total {
                    self.last_line = Some(Instant::now());
                    self.line();
                }
            }
            Mode::Quiet => {}
        }
    }

    fn line(&self) {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        eprintln!(
            "{}: {} of {} ({}%), {}/s",
            self.prefix,
            human(self.done),
            human(self.total),
            self.done * 100 / self.total.max(1),
            human((self.done as f64 / secs) as u64)
        );
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if self.mode == Mode::Lines {
            self.line();
        }
    }
}

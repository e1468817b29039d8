//! The serial console transcript: QEMU's stdout (the guest's serial port)
//! and stderr read by two threads into a list of lines that tests wait on,
//! mirrored to a log file.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

#[derive(Default)]
struct State {
    lines: Vec<String>,
    /// Bytes after the last newline (a shell prompt, say).
    partial: String,
    /// Index of the first line later waits look at.
    cursor: usize,
    /// Open reader threads; 0 once QEMU closed both pipes.
    open: u32,
}

#[derive(Clone)]
pub struct Transcript {
    state: Arc<(Mutex<State>, Condvar)>,
    path: PathBuf,
}

impl Transcript {
    pub fn spawn(
        stdout: impl Read + Send + 'static,
        stderr: impl Read + Send + 'static,
        log: &Path,
    ) -> Result<Self> {
        let file = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let log_file = Arc::new(Mutex::new(BufWriter::new(file)));
        let t = Transcript {
            state: Arc::new((
                Mutex::new(State {
                    open: 2,
                    ..State::default()
                }),
                Condvar::new(),
            )),
            path: log.to_path_buf(),
        };
        t.reader(stdout, "", log_file.clone());
        t.reader(stderr, "qemu: ", log_file);
        Ok(t)
    }

    fn reader(
        &self,
        mut from: impl Read + Send + 'static,
        prefix: &'static str,
        log: Arc<Mutex<BufWriter<File>>>,
    ) {
        let state = self.state.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Bytes, not text, until a line is complete: a read can end in
            // the middle of a multi-byte character.
            let mut pending: Vec<u8> = Vec::new();
            loop {
                let n = match from.read(&mut buf) {
                    Ok(0) | Err(_) => 0,
                    Ok(n) => n,
                };
                if n == 0 {
                    break;
                }
                if let Ok(mut f) = log.lock() {
                    let _ = f.write_all(&buf[..n]);
                    let _ = f.flush();
                }
                pending.extend(buf[..n].iter().filter(|b| **b != b'\r'));
                let (lock, cvar) = &*state;
                let mut s = lock.lock().unwrap_or_else(|e| e.into_inner());
                while let Some(i) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=i).collect();
                    let text = String::from_utf8_lossy(&line[..line.len() - 1]);
                    s.lines.push(format!("{prefix}{text}"));
                }
                s.partial = String::from_utf8_lossy(&pending).into_owned();
                cvar.notify_all();
            }
            let (lock, cvar) = &*state;
            let mut s = lock.lock().unwrap_or_else(|e| e.into_inner());
            if !pending.is_empty() {
                s.lines
                    .push(format!("{prefix}{}", String::from_utf8_lossy(&pending)));
            }
            s.open -= 1;
            cvar.notify_all();
        });
    }

    /// Waits for a line after the cursor matching `pred`; moves the cursor
    /// past it. `None` on timeout or when QEMU has gone and no line matched.
    pub fn wait_line(&self, pred: &dyn Fn(&str) -> bool, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let (lock, cvar) = &*self.state;
        let mut s = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(i) = (s.cursor..s.lines.len()).find(|&i| pred(&s.lines[i])) {
                s.cursor = i + 1;
                return Some(s.lines[i].clone());
            }
            let now = Instant::now();
            if now >= deadline || s.open == 0 {
                return None;
            }
            s = cvar
                .wait_timeout(s, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// The position after the last line seen so far.
    pub fn cursor(&self) -> usize {
        let s = self.state.0.lock().unwrap_or_else(|e| e.into_inner());
        s.lines.len()
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.state
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .lines
            .clone()
    }

    pub fn tail(&self, n: usize) -> String {
        let s = self.state.0.lock().unwrap_or_else(|e| e.into_inner());
        let start = s.lines.len().saturating_sub(n);
        let mut out = s.lines[start..].join("\n");
        if !s.partial.is_empty() {
            out.push('\n');
            out.push_str(&s.partial);
        }
        out
    }

    pub fn closed(&self) -> bool {
        self.state.0.lock().unwrap_or_else(|e| e.into_inner()).open == 0
    }

    /// Waits until both pipes are closed (QEMU exited), so the transcript
    /// is complete.
    pub fn wait_closed(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let (lock, cvar) = &*self.state;
        let mut s = lock.lock().unwrap_or_else(|e| e.into_inner());
        while s.open > 0 && Instant::now() < deadline {
            s = cvar
                .wait_timeout(s, deadline - Instant::now())
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

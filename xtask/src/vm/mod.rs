//! The VM test harness: a QEMU process with its serial console read into a
//! transcript, waits with timeouts, commands typed into the guest's rescue
//! shell, and a QMP socket for power events (`system_powerdown`,
//! `system_reset`, `quit`). Later tests (updates, power cuts) build on it.
//! [`Cluster`] runs several machines on a private LAN ([`lan`]).

pub mod cluster;
pub mod lan;
mod qmp;
mod serial;
pub mod ssh;

pub use cluster::Cluster;
pub use qmp::Qmp;
pub use serial::Transcript;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::qemu::{self, Machine};

pub struct Vm {
    child: Child,
    stdin: ChildStdin,
    transcript: Transcript,
    qmp_path: PathBuf,
    started: Instant,
    shell_ready: bool,
    // Holds the overlay and VARS copy; removed with the VM.
    _dir: tempfile::TempDir,
    name: String,
}

static MARKERS: AtomicU32 = AtomicU32::new(1);

impl Vm {
    /// Starts QEMU; `name` labels the transcript file kept for debugging
    /// under `target/slipway/vm-logs/`.
    pub fn start(name: &str, machine: &Machine) -> Result<Vm> {
        let dir = tempfile::Builder::new()
            .prefix("slipway-vm-")
            .tempdir()
            .context("creating the VM's folder")?;
        let (files, fw) = qemu::prepare(machine, dir.path())?;
        let mut cmd = qemu::command(machine, &files, &fw)?;
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().context("starting qemu")?;
        let started = Instant::now();
        let stdin = child.stdin.take().context("qemu stdin")?;
        let stdout = child.stdout.take().context("qemu stdout")?;
        let stderr = child.stderr.take().context("qemu stderr")?;
        let log_dir = crate::paths::slipway_dir().join("vm-logs");
        std::fs::create_dir_all(&log_dir)?;
        let transcript = Transcript::spawn(stdout, stderr, &log_dir.join(format!("{name}.log")))?;
        Ok(Vm {
            child,
            stdin,
            transcript,
            qmp_path: files.qmp,
            started,
            shell_ready: false,
            _dir: dir,
            name: name.to_string(),
        })
    }

    /// Time since QEMU was started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn transcript(&self) -> &Transcript {
        &self.transcript
    }

    /// Waits for a console line containing `needle` that appears after the
    /// last line matched by a previous wait; returns the line.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> Result<String> {
        self.wait_line(|l| l.contains(needle), timeout)
            .with_context(|| format!("{}: waiting for `{needle}`", self.name))
    }

    /// Like [`Self::wait_for`] with a predicate.
    pub fn wait_line(&mut self, pred: impl Fn(&str) -> bool, timeout: Duration) -> Result<String> {
        match self.transcript.wait_line(&pred, timeout) {
            Some(line) => Ok(line),
            None => bail!(
                "not seen within {} s; qemu {}; last console lines:\n{}",
                timeout.as_secs(),
                if self.transcript.closed() {
                    "has exited"
                } else {
                    "is running"
                },
                self.transcript.tail(25)
            ),
        }
    }

    /// Types raw text into the serial console.
    pub fn send(&mut self, text: &str) -> Result<()> {
        self.stdin.write_all(text.as_bytes())?;
        self.stdin.flush()?;
        Ok(())
    }

    /// Waits until the rescue shell answers. Text typed before the shell
    /// runs is lost (ash reads the terminal's answer to its cursor query
    /// from the same input), so this pokes it until an echo comes back.
    pub fn wait_shell(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            self.send("echo @@'r'eady@@\n")?;
            let poke =
                Duration::from_secs(3).min(deadline.saturating_duration_since(Instant::now()));
            if self
                .transcript
                .wait_line(&|l: &str| l.contains("@@ready@@"), poke)
                .is_some()
            {
                self.shell_ready = true;
                return Ok(());
            }
            if self.transcript.closed() {
                break;
            }
        }
        bail!(
            "{}: the rescue shell did not answer within {} s; last console lines:\n{}",
            self.name,
            timeout.as_secs(),
            self.transcript.tail(25)
        )
    }

    /// Runs a shell command in the guest's rescue shell and returns its
    /// output and exit status. The command's output must not contain the
    /// markers, which are unique per call; lines the init prints meanwhile
    /// ([`is_init_line`]) are left out.
    pub fn run(&mut self, command: &str, timeout: Duration) -> Result<(i32, String)> {
        if !self.shell_ready {
            self.wait_shell(timeout)?;
        }
        let n = MARKERS.fetch_add(1, Ordering::Relaxed);
        // The output is what comes between a start and an end marker line.
        // Each marker is split by quotes in the typed command, so the echo
        // of the command line (which the terminal may wrap and redraw at
        // any column) never contains it; only the command's output does.
        let (begin, begin_typed) = (format!("@@begin{n}@@"), format!("@@'b'egin{n}@@"));
        let (end, end_typed) = (format!("@@done{n}@@"), format!("@@'d'one{n}@@"));
        let start = self.transcript.cursor();
        self.send(&format!(
            "echo {begin_typed}; {command}; echo {end_typed}\"$?\"\n"
        ))?;
        let line = self
            .wait_line(|l| l.contains(&end) && !l.contains(&end_typed), timeout)
            .with_context(|| format!("{}: running `{command}`", self.name))?;
        let status = line
            .split(&end)
            .nth(1)
            .and_then(|s| s.trim().parse::<i32>().ok())
            .with_context(|| format!("no exit status in `{line}`"))?;
        let lines = self.transcript.lines();
        let mut output: Vec<&str> = lines
            .iter()
            .skip(start)
            .skip_while(|l| !l.contains(&begin))
            .skip(1)
            .take_while(|l| !l.contains(&end))
            // PID 1 writes its own lines (services started, health, a
            // unit that failed) to the same console at any moment; they
            // are not the command's output.
            .filter(|l| !is_init_line(l))
            .map(String::as_str)
            .collect();
        // Output without a final newline shares its last line with the
        // end marker.
        if let Some(unterminated) = line.split(&end).next().filter(|p| !p.is_empty()) {
            output.push(unterminated);
        }
        Ok((status, output.join("\n")))
    }

    /// Asks the guest for a clean reboot from the rescue shell (busybox
    /// `reboot`, which signals PID 1). The next [`Self::run`] waits for the
    /// new boot's shell.
    pub fn reboot(&mut self) -> Result<()> {
        if !self.shell_ready {
            self.wait_shell(Duration::from_secs(60))?;
        }
        self.send("reboot\n")?;
        self.shell_ready = false;
        Ok(())
    }

    pub fn qmp(&self) -> Result<Qmp> {
        Qmp::connect(&self.qmp_path)
    }

    /// Waits for QEMU to exit (a guest poweroff, or a reboot with
    /// `no_reboot`).
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                self.transcript.wait_closed(Duration::from_secs(5));
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!(
                    "{}: qemu still running after {} s; last console lines:\n{}",
                    self.name,
                    timeout.as_secs(),
                    self.transcript.tail(25)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_path(&self) -> &Path {
        self.transcript.path()
    }
}

/// A line the init printed on the console (`slipway: …`), as opposed to
/// output of a command typed into the shell.
pub fn is_init_line(line: &str) -> bool {
    line.starts_with("slipway: ")
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

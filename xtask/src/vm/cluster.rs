//! Several machines on one private LAN ([`super::lan`]): [`Cluster`] for VM
//! tests (a [`Vm`] per machine, the switch kept alive beside them) and
//! [`run_foreground`] for `cargo xtask qemu --cluster N`.
//!
//! Machine `n` (1-based) is on LAN port `n`: its second NIC (`eth1`) has the
//! MAC [`super::lan::mac`]`(n)`, and its console transcript is
//! `<name>-<n>.log`. Each machine keeps its own user-mode NIC (`eth0`,
//! DHCP from QEMU, the host as 10.0.2.2), its own overlay and seed disk.

use std::io::{BufRead, BufReader, Read, Write};
use std::ops::{Index, IndexMut};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::lan::{Lan, LanStats};
use super::Vm;
use crate::qemu::{self, Machine};

/// Running machines sharing a LAN; `cluster[i]` is machine `i + 1`. Dropping
/// it stops the machines, then the switch.
pub struct Cluster {
    // Field order is drop order: the QEMUs go before their switch.
    vms: Vec<Vm>,
    lan: Lan,
}

impl Cluster {
    /// Starts every machine, each with a port on a new LAN (any `lan` the
    /// machines had is replaced). `name` labels the transcripts
    /// (`<name>-1.log`, …, under `target/slipway/vm-logs/`).
    pub fn start(name: &str, machines: Vec<Machine>) -> Result<Cluster> {
        let lan = Lan::start()?;
        let mut vms = Vec::with_capacity(machines.len());
        for (i, mut machine) in machines.into_iter().enumerate() {
            let port = lan.add_port()?;
            machine.lan = Some(port);
            let vm = Vm::start(&format!("{name}-{}", i + 1), &machine)
                .with_context(|| format!("starting machine {} of {name}", i + 1))?;
            vms.push(vm);
        }
        Ok(Cluster { vms, lan })
    }

    pub fn len(&self) -> usize {
        self.vms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vms.is_empty()
    }

    pub fn vms(&mut self) -> &mut [Vm] {
        &mut self.vms
    }

    pub fn lan(&self) -> &Lan {
        &self.lan
    }

    /// The switch's frame counters.
    pub fn lan_stats(&self) -> LanStats {
        self.lan.stats()
    }

    /// Waits on every machine, in order, for a console line containing
    /// `needle` (as [`Vm::wait_for`]); `timeout` is for all of them
    /// together, since they boot side by side. Returns the lines.
    pub fn wait_all(&mut self, needle: &str, timeout: Duration) -> Result<Vec<String>> {
        let deadline = Instant::now() + timeout;
        let mut lines = Vec::with_capacity(self.vms.len());
        for (i, vm) in self.vms.iter_mut().enumerate() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = vm
                .wait_for(needle, left)
                .with_context(|| format!("machine {}", i + 1))?;
            lines.push(line);
        }
        Ok(lines)
    }
}

impl Index<usize> for Cluster {
    type Output = Vm;
    fn index(&self, i: usize) -> &Vm {
        &self.vms[i]
    }
}

impl IndexMut<usize> for Cluster {
    fn index_mut(&mut self, i: usize) -> &mut Vm {
        &mut self.vms[i]
    }
}

/// The user-data of machine `n` in `dir`: the one file whose name without
/// its extension is `n` (`1.yaml`, `2.yml`, `3.sh`, `4`).
pub fn user_data_for(dir: &Path, n: usize) -> Result<PathBuf> {
    let want = n.to_string();
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading the user-data folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.file_stem().is_some_and(|s| s == want.as_str()))
        .collect();
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => bail!(
            "{} has no user-data for machine {n} (a file named {n}.yaml, {n}.sh or {n})",
            dir.display()
        ),
        _ => bail!(
            "{} has more than one user-data for machine {n}: {}",
            dir.display(),
            found
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Prefix of the run folders of [`run_foreground`] in the temporary folder,
/// followed by the process ID.
const RUN_PREFIX: &str = "slipway-cluster-";

/// Removes run folders left by `cargo xtask qemu --cluster` processes that
/// no longer run (Ctrl-C ends this process as well as the QEMUs, so it
/// cannot clean up after itself then; the overlays can be large).
fn sweep_stale_runs(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(RUN_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// How [`run_foreground`] runs.
#[derive(Debug, Clone)]
pub struct ForegroundOptions {
    /// Stop every machine after this long.
    pub timeout: Option<Duration>,
    /// Where each machine's console goes, as `qemu-cluster-<n>.log`.
    pub log_dir: PathBuf,
}

/// Runs the machines on one LAN in the foreground: each console line is
/// printed as `[n] line` and written whole to its log file; a line typed on
/// standard input goes to the console of the machine last named by a line
/// `@n` (machine 1 at first). Returns when every QEMU has exited (or after
/// the timeout, which kills them); true if all exited successfully.
pub fn run_foreground(machines: Vec<Machine>, opts: &ForegroundOptions) -> Result<bool> {
    let tmp = std::env::temp_dir();
    sweep_stale_runs(&tmp);
    let run = tempfile::Builder::new()
        .prefix(&format!("{RUN_PREFIX}{}-", std::process::id()))
        .tempdir_in(&tmp)
        .context("creating the cluster's folder")?;
    let lan = Lan::start_in(run.path())?;
    std::fs::create_dir_all(&opts.log_dir)
        .with_context(|| format!("creating {}", opts.log_dir.display()))?;
    let out = Arc::new(Mutex::new(()));
    let mut children: Vec<(usize, Child)> = Vec::new();
    let mut inputs: Vec<Option<ChildStdin>> = Vec::new();
    let mut readers = Vec::new();
    let count = machines.len();
    for (i, mut machine) in machines.into_iter().enumerate() {
        let n = i + 1;
        machine.lan = Some(lan.add_port()?);
        let dir = run.path().join(format!("machine-{n}"));
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let (files, fw) = qemu::prepare(&machine, &dir)?;
        let mut cmd = qemu::command(&machine, &files, &fw)?;
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting qemu for machine {n}"))?;
        let log_path = opts.log_dir.join(format!("qemu-cluster-{n}.log"));
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let log = Arc::new(Mutex::new(log));
        inputs.push(child.stdin.take());
        if let Some(stdout) = child.stdout.take() {
            readers.push(prefix_lines(
                stdout,
                format!("[{n}] "),
                log.clone(),
                out.clone(),
            ));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(prefix_lines(
                stderr,
                format!("[{n}] qemu: "),
                log,
                out.clone(),
            ));
        }
        children.push((n, child));
    }
    {
        let _g = out.lock().unwrap_or_else(|e| e.into_inner());
        println!(
            "cluster: {count} machines on a private LAN (eth1, 52:54:00:12:34:01…); consoles \
             in {}/qemu-cluster-<n>.log; type `@n` to send your lines to machine n's console \
             (now 1); Ctrl-C stops them all",
            opts.log_dir.display()
        );
    }
    forward_stdin(inputs);
    let deadline = opts.timeout.map(|t| Instant::now() + t);
    let mut all_ok = true;
    while !children.is_empty() {
        let mut i = 0;
        while i < children.len() {
            if let Some(status) = children[i].1.try_wait()? {
                let (n, _) = children.remove(i);
                all_ok &= status.success();
                let _g = out.lock().unwrap_or_else(|e| e.into_inner());
                println!("[{n}] qemu exited ({status})");
            } else {
                i += 1;
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) && !children.is_empty() {
            for (_, child) in &mut children {
                let _ = child.kill();
                let _ = child.wait();
            }
            children.clear();
            let _g = out.lock().unwrap_or_else(|e| e.into_inner());
            println!(
                "cluster: stopped after {} s (--timeout)",
                opts.timeout.unwrap_or_default().as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for reader in readers {
        let _ = reader.join();
    }
    let s = lan.stats();
    println!(
        "cluster: LAN frames received {}, delivered {}, dropped {}",
        s.received, s.delivered, s.dropped
    );
    Ok(all_ok)
}

/// Copies `from` line by line to stdout with `prefix`, and its bytes to
/// `log` as they come.
fn prefix_lines(
    from: impl Read + Send + 'static,
    prefix: String,
    log: Arc<Mutex<std::fs::File>>,
    out: Arc<Mutex<()>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(from);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if let Ok(mut f) = log.lock() {
                let _ = f.write_all(&line);
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\n', '\r']);
            let _g = out.lock().unwrap_or_else(|e| e.into_inner());
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{prefix}{text}");
        }
    })
}

/// A line of standard input that picks the machine later lines go to.
fn parse_switch(line: &str) -> Option<usize> {
    line.trim().strip_prefix('@')?.parse().ok()
}

/// Sends typed lines to one machine's console (see [`run_foreground`]).
fn forward_stdin(mut inputs: Vec<Option<ChildStdin>>) {
    std::thread::spawn(move || {
        let mut target = 1usize;
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if let Some(n) = parse_switch(&line) {
                if (1..=inputs.len()).contains(&n) {
                    target = n;
                    println!("cluster: typing to machine {n}");
                } else {
                    println!("cluster: no machine {n} (1–{})", inputs.len());
                }
                continue;
            }
            if let Some(Some(stdin)) = inputs.get_mut(target - 1) {
                let _ = stdin.write_all(format!("{line}\n").as_bytes());
                let _ = stdin.flush();
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_by_machine_number() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("1.yaml"), "#cloud-config\n").unwrap();
        std::fs::write(dir.path().join("2.sh"), "#!/bin/sh\n").unwrap();
        std::fs::write(dir.path().join("12.yaml"), "#cloud-config\n").unwrap();
        std::fs::write(dir.path().join("3"), "#cloud-config\n").unwrap();
        std::fs::write(dir.path().join("3.yaml"), "#cloud-config\n").unwrap();
        assert_eq!(
            user_data_for(dir.path(), 1).unwrap(),
            dir.path().join("1.yaml")
        );
        assert_eq!(
            user_data_for(dir.path(), 2).unwrap(),
            dir.path().join("2.sh")
        );
        let e = format!("{:#}", user_data_for(dir.path(), 3).unwrap_err());
        assert!(e.contains("more than one") && e.contains("3.yaml"), "{e}");
        let e = format!("{:#}", user_data_for(dir.path(), 4).unwrap_err());
        assert!(e.contains("no user-data for machine 4"), "{e}");
        let e = format!(
            "{:#}",
            user_data_for(&dir.path().join("nope"), 1).unwrap_err()
        );
        assert!(e.contains("reading the user-data folder"), "{e}");
    }

    #[test]
    fn switch_lines() {
        assert_eq!(parse_switch("@2"), Some(2));
        assert_eq!(parse_switch(" @10 "), Some(10));
        assert_eq!(parse_switch("@x"), None);
        assert_eq!(parse_switch("echo @2"), None);
    }

    #[test]
    fn stale_run_folders_are_swept_live_ones_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let live = tmp
            .path()
            .join(format!("{RUN_PREFIX}{}-abc", std::process::id()));
        // No process has this ID (above the kernel's pid_max limit).
        let dead = tmp.path().join(format!("{RUN_PREFIX}4194305-abc"));
        let other = tmp.path().join("slipway-vm-xyz");
        for d in [&live, &dead, &other] {
            std::fs::create_dir(d).unwrap();
            std::fs::write(d.join("overlay.qcow2"), b"x").unwrap();
        }
        sweep_stale_runs(tmp.path());
        assert!(live.exists());
        assert!(!dead.exists());
        assert!(other.exists());
    }
}

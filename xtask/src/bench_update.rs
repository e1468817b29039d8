//! `cargo xtask bench update`: the update engine applying a signed payload
//! to a file-backed slot, timed against `dd bs=1M conv=fsync` writing the
//! same payload file to the same filesystem in the same run plus dd
//! re-reading it from the medium (the engine verifies what it wrote the
//! same way), and the engine's peak resident memory. Figures only, never assertions: the
//! machines here are noisy, so medians and ratios are what count.
//!
//! The engine measured is the static guest binary the image carries, run
//! through its hidden `apply-files` subcommand: the real program, minus the
//! machine discovery and the cgroup limits.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use slipway_update::keys::SecretKey;
use slipway_update::manifest::{VerityInfo, DEFAULT_CHUNK};
use slipway_update::payload;

use crate::{guest, paths, release};

const MIB: u64 = 1 << 20;
/// The targets the issue sets.
const RATIO_TARGET: f64 = 1.15;
const RSS_TARGET_MIB: f64 = 32.0;
/// The payload's board and versions: anything the engine accepts.
const BOARD: &str = "bench";
const NEW_VERSION: &str = "1.0";
const RUNNING_VERSION: &str = "0";
/// Kernel and initramfs of a plausible size, so the boot-file part of the
/// apply (staged, then copied to the ESP, fsynced, re-read, renamed) is in
/// the figure too.
const KERNEL_BYTES: usize = 8 << 20;
const INITRD_BYTES: usize = 4 << 20;
/// How often the child's high-water mark is sampled.
const RSS_POLL: Duration = Duration::from_millis(2);

#[derive(Debug, Clone)]
pub struct Options {
    /// Size of the root image in the payload.
    pub size_mib: u64,
    pub runs: usize,
}

/// The files of one bench run, all in one folder on one filesystem so dd
/// and the engine write to the same medium.
struct Files {
    dir: PathBuf,
    payload: PathBuf,
    keys: PathBuf,
    esp: PathBuf,
    root: PathBuf,
    verity: PathBuf,
    dd_out: PathBuf,
    root_capacity: u64,
    verity_capacity: u64,
}

/// Removes the bench's folder (gigabytes of scratch) however the bench ends.
struct Cleanup<'a>(&'a Path);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.0);
    }
}

/// One timed child process.
#[derive(Debug)]
pub(crate) struct Measured {
    pub(crate) secs: f64,
    /// Peak resident memory (VmHWM) in KiB, if it could be read.
    pub(crate) peak_kib: Option<u64>,
    pub(crate) stdout: String,
}

/// The static guest `update-engine` the image carries, built if needed.
pub(crate) fn guest_engine() -> Result<PathBuf> {
    guest::build()?
        .root_programs
        .into_iter()
        .find(|(path, _)| *path == "usr/bin/update-engine")
        .map(|(_, bin)| bin)
        .context("the guest build has no usr/bin/update-engine")
}

pub fn run(opts: &Options) -> Result<()> {
    if opts.size_mib == 0 {
        bail!("--size-mib must be at least 1");
    }
    let runs = opts.runs.max(1);
    eprintln!("bench: building the guest programs (update-engine, static musl)");
    let engine = guest_engine()?;

    let dir = paths::slipway_dir().join("bench").join("update");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let _cleanup = Cleanup(&dir);
    let files = make_payload(&dir, opts.size_mib)?;
    let payload_bytes = std::fs::metadata(&files.payload)?.len();

    let (mut dd, mut reread, mut apply) = (Vec::new(), Vec::new(), Vec::new());
    let (mut write_phase, mut total_phase) = (Vec::new(), Vec::new());
    let (mut dd_rss, mut apply_rss) = (Vec::new(), Vec::new());
    // Each run's own ratio too: a run's apply and dd share the machine's
    // state of that moment (its load, the host's), so their ratio varies
    // less than the ratio of two medians taken over different moments.
    let mut ratios = Vec::new();
    for i in 0..runs {
        // Alternate the order, so drift in the machine's load (and whatever
        // writeback one run leaves to the next) hits both alike.
        let ((d, r), a) = if i % 2 == 0 {
            let d = run_dd(&files)?;
            (d, run_apply(&engine, &files)?)
        } else {
            let a = run_apply(&engine, &files)?;
            (run_dd(&files)?, a)
        };
        let (w, t) = parse_installed(&a.stdout)
            .with_context(|| format!("unexpected update-engine output: {:?}", a.stdout))?;
        eprintln!(
            "bench: run {}/{runs}: dd {:.2} s (+ re-read {:.2} s), apply {:.2} s \
             (its write {w:.2} s, total {t:.2} s), apply peak RSS {}",
            i + 1,
            d.secs,
            r.secs,
            a.secs,
            show_kib(a.peak_kib)
        );
        ratios.push(a.secs / (d.secs + r.secs).max(1e-9));
        dd.push(d.secs);
        reread.push(r.secs);
        apply.push(a.secs);
        write_phase.push(w);
        total_phase.push(t);
        dd_rss.extend(d.peak_kib.map(|k| k as f64 / 1024.0));
        apply_rss.extend(a.peak_kib.map(|k| k as f64 / 1024.0));
    }

    let (d, r, a) = (median(dd), median(reread), median(apply));
    let rate = |secs: f64| payload_bytes as f64 / 1e6 / secs.max(1e-9);
    let rss = |v: &[f64]| {
        if v.is_empty() {
            "n/a".to_string()
        } else {
            format!("{:.1} MiB", median(v.to_vec()))
        }
    };
    println!(
        "\n== update apply: {:.1} MB payload ({} MiB root + verity tree + {} MiB kernel + {} MiB \
         initramfs), median of {runs}",
        payload_bytes as f64 / 1e6,
        opts.size_mib,
        KERNEL_BYTES >> 20,
        INITRD_BYTES >> 20
    );
    let row = |name: &str, secs: f64, rss_text: String| {
        println!(
            "  {name:<40} {secs:>6.2} s  {:>5.0} MB/s  peak RSS {rss_text}",
            rate(secs)
        );
    };
    row("reference: dd bs=1M conv=fsync", d, rss(&dd_rss));
    row("  + dd re-read (cache dropped)", r, "n/a".into());
    row("update-engine apply-files", a, rss(&apply_rss));
    println!(
        "    {:<38} {:>6.2} s",
        "its write phase (check, write, fsync)",
        median(write_phase)
    );
    println!(
        "    {:<38} {:>6.2} s",
        "its total (+ re-read, boot files)",
        median(total_phase)
    );
    // The apply verifies what it wrote by re-reading it from the medium,
    // so its reference is dd writing and then re-reading (issue 16).
    println!(
        "  {:<40} {:>6.2}    (target <= {RATIO_TARGET})",
        "ratio apply / (dd + re-read)",
        a / (d + r)
    );
    let (lo, hi) = ratios
        .iter()
        .fold((f64::MAX, 0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    println!(
        "  {:<40} {:>6.2}    (runs ranged {lo:.2}-{hi:.2})",
        "  median of the runs' own ratios",
        median(ratios)
    );
    println!(
        "  {:<40} {:>8}  (target <= {RSS_TARGET_MIB} MiB whatever the payload size)",
        "apply peak RSS",
        rss(&apply_rss)
    );
    println!("  for scale: apply / dd without its re-read {:.2}", a / d);
    Ok(())
}

/// Writes a realistic signed payload: pseudo-random root data (so neither
/// the filesystem nor the disk can shortcut zeros), its real dm-verity
/// tree, a kernel and an initramfs; signed by a fresh key the engine is
/// told to trust.
fn make_payload(dir: &Path, size_mib: u64) -> Result<Files> {
    eprintln!("bench: making a payload with {size_mib} MiB of root data");
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let root = rng.bytes(usize::try_from(size_mib * MIB)?);
    let kernel = rng.bytes(KERNEL_BYTES);
    let initrd = rng.bytes(INITRD_BYTES);
    let tree = slipway_image::verity::build(
        &root,
        &slipway_image::verity::params_from_identity("bench", "root"),
    )?;
    let key = SecretKey::generate().context("reading random bytes for a key")?;
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys)?;
    std::fs::write(
        keys.join("bench.pub"),
        key.public().to_line("bench update key"),
    )?;
    let payload_path = dir.join("update.payload");
    release::write_payload(
        &payload_path,
        &payload::Release {
            os_name: "Slipway".into(),
            version: NEW_VERSION.into(),
            board: BOARD.into(),
            build_id: "bench".into(),
            cmdline: "console=ttyS0".into(),
            verity: VerityInfo {
                root_hash: tree.root_hash_hex(),
                salt: tree.salt_hex(),
                data_blocks: tree.data_blocks,
            },
            chunk_size: DEFAULT_CHUNK,
        },
        [&root, &tree.hash_image, &kernel, &initrd],
        &key,
    )?;
    // A slot's partitions are whole MiB, as the image's layout aligns them.
    let round = |n: usize| (n as u64).div_ceil(MIB) * MIB;
    Ok(Files {
        payload: payload_path,
        keys,
        esp: dir.join("esp"),
        root: dir.join("slot-b-root.img"),
        verity: dir.join("slot-b-verity.img"),
        dd_out: dir.join("dd.out"),
        root_capacity: round(root.len()),
        verity_capacity: round(tree.hash_image.len()),
        dir: dir.to_path_buf(),
    })
}

/// The same start for every timed command: the payload in the page cache
/// (the engine and dd both read it; neither should pay for a cold read the
/// other did not), and nothing dirty left over from the run before.
fn settle(files: &Files) -> Result<()> {
    let mut f = File::open(&files.payload)?;
    std::io::copy(&mut f, &mut std::io::sink())?;
    let status = Command::new("sync").status().context("running sync")?;
    if !status.success() {
        bail!("sync failed: {status}");
    }
    Ok(())
}

/// dd of the whole payload file, then (not in its time) dd re-reading what
/// it wrote after dropping that file's cached pages, as the engine's
/// verification does: the floor of any apply that checks the medium.
fn run_dd(files: &Files) -> Result<(Measured, Measured)> {
    // A fresh file each time: the engine's slot files are fresh too.
    let _ = std::fs::remove_file(&files.dd_out);
    settle(files)?;
    let write = measure(
        Command::new("dd")
            .arg(format!("if={}", files.payload.display()))
            .arg(format!("of={}", files.dd_out.display()))
            .args(["bs=1M", "conv=fsync", "status=none"]),
    )
    .context("running dd")?;
    // GNU dd: `iflag=nocache count=0` advises the kernel to drop the
    // file's cached pages, as the engine does after its fsync. It is part
    // of re-reading from the medium, so it counts in the re-read's time as
    // it counts in the engine's.
    let drop = measure(
        Command::new("dd")
            .arg(format!("if={}", files.dd_out.display()))
            .args(["iflag=nocache", "count=0", "status=none"]),
    )?;
    let mut reread = measure(
        Command::new("dd")
            .arg(format!("if={}", files.dd_out.display()))
            .args(["of=/dev/null", "bs=1M", "status=none"]),
    )?;
    reread.secs += drop.secs;
    Ok((write, reread))
}

fn run_apply(engine: &Path, files: &Files) -> Result<Measured> {
    // Fresh slot files of the partitions' size, sparse: the blocks get
    // allocated on write, as dd's new output file's are, so the two pay
    // the same filesystem costs.
    for (path, len) in [
        (&files.root, files.root_capacity),
        (&files.verity, files.verity_capacity),
    ] {
        let _ = std::fs::remove_file(path);
        File::create(path)
            .and_then(|f| f.set_len(len))
            .with_context(|| format!("making {}", path.display()))?;
    }
    // The running slot A has a good entry (the engine refuses to replace
    // the fallback of a boot on trial); B's entry and files from the
    // previous run go, and so does the folder where apply-files stages
    // the kernel and initramfs (`<esp>.staging`), so each run does the
    // same work.
    let _ = std::fs::remove_dir_all(&files.esp);
    let _ = std::fs::remove_dir_all(files.esp.with_extension("staging"));
    let entries = files.esp.join("loader/entries");
    std::fs::create_dir_all(&entries)?;
    std::fs::write(
        entries.join("slipway-a.conf"),
        format!("title Slipway\nversion {RUNNING_VERSION}\n"),
    )?;
    settle(files)?;
    measure(
        Command::new(engine)
            .arg("apply-files")
            .arg("--payload")
            .arg(&files.payload)
            .arg("--root")
            .arg(&files.root)
            .arg("--verity")
            .arg(&files.verity)
            .arg("--esp")
            .arg(&files.esp)
            .arg("--keys")
            .arg(&files.keys)
            .args(["--board", BOARD, "--running-version", RUNNING_VERSION])
            .current_dir(&files.dir),
    )
    .with_context(|| format!("running {} apply-files", engine.display()))
}

/// Runs `cmd` to completion: wall time from spawn to exit, and the peak
/// resident memory sampled from `/proc/<pid>/status` while it runs.
///
/// `VmHWM` is the kernel's own high-water mark, so sampling misses nothing
/// but growth in the last poll interval before exit. (`wait4`'s
/// `ru_maxrss` would be exact, but `std` does not expose it and this crate
/// has no libc binding; `getrusage(RUSAGE_CHILDREN)` would also count the
/// nested cargo build.)
pub(crate) fn measure(cmd: &mut Command) -> Result<Measured> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let child = cmd.spawn()?;
    // Opened while the child cannot have been reaped, so the file stays
    // bound to this process even if its PID is reused later.
    let status_file = File::open(format!("/proc/{}/status", child.id())).ok();
    let done = AtomicBool::new(false);
    let (output, secs, peak_kib) = std::thread::scope(|s| {
        let poller = s.spawn(|| status_file.map(|f| poll_hwm(f, &done)));
        let output = child.wait_with_output();
        let secs = started.elapsed().as_secs_f64();
        done.store(true, Ordering::Relaxed);
        (output, secs, poller.join().ok().flatten().flatten())
    });
    let output = output?;
    if !output.status.success() {
        bail!(
            "{:?} failed ({}): {}",
            cmd.get_program(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(Measured {
        secs,
        peak_kib,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
    })
}

/// The highest `VmHWM` seen until the process loses its memory (a zombie's
/// status has no `Vm` lines) or `done` is set.
fn poll_hwm(mut f: File, done: &AtomicBool) -> Option<u64> {
    let mut peak = None;
    let mut text = String::new();
    while !done.load(Ordering::Relaxed) {
        text.clear();
        if f.seek(SeekFrom::Start(0)).is_err() || f.read_to_string(&mut text).is_err() {
            break;
        }
        let Some(kib) = vm_hwm_kib(&text) else { break };
        peak = peak.max(Some(kib));
        std::thread::sleep(RSS_POLL);
    }
    peak
}

/// `VmHWM:     1234 kB` → 1234.
fn vm_hwm_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `installed V (N bytes): write X s, total Y s` → (X, Y).
fn parse_installed(stdout: &str) -> Option<(f64, f64)> {
    let line = stdout.lines().find(|l| l.starts_with("installed "))?;
    let num = |after: &str| -> Option<f64> {
        line.split(after)
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some((num(": write ")?, num(", total ")?))
}

fn show_kib(k: Option<u64>) -> String {
    match k {
        Some(k) => format!("{:.1} MiB", k as f64 / 1024.0),
        None => "n/a".into(),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// xorshift64: incompressible enough for a disk and a filesystem, fast,
/// and the same bytes every run.
struct XorShift(u64);

impl XorShift {
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        let mut words = out.chunks_exact_mut(8);
        for w in &mut words {
            w.copy_from_slice(&self.next().to_le_bytes());
        }
        let tail = words.into_remainder();
        let last = self.next().to_le_bytes();
        tail.copy_from_slice(&last[..tail.len()]);
        out
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_summary_line_parses() {
        assert_eq!(
            parse_installed("installed 1.0 (553648128 bytes): write 1.234 s, total 2.500 s\n"),
            Some((1.234, 2.5))
        );
        assert_eq!(parse_installed("something else"), None);
    }

    #[test]
    fn high_water_mark_parses() {
        let status = "Name:\tdd\nVmPeak:\t  9000 kB\nVmHWM:\t    2312 kB\nVmRSS:\t 2000 kB\n";
        assert_eq!(vm_hwm_kib(status), Some(2312));
        assert_eq!(vm_hwm_kib("Name:\tzombie\nState:\tZ (zombie)\n"), None);
    }

    #[test]
    fn own_high_water_mark_is_sampled() {
        let f = File::open("/proc/self/status").unwrap();
        let done = AtomicBool::new(true);
        // `done` already set: nothing sampled.
        assert_eq!(poll_hwm(f, &done), None);
        let text = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(vm_hwm_kib(&text).unwrap() > 0);
    }

    #[test]
    fn random_bytes_fill_odd_lengths() {
        let b = XorShift(1).bytes(13);
        assert_eq!(b.len(), 13);
        assert!(b.iter().any(|&x| x != 0));
        assert_eq!(XorShift(1).bytes(13), b);
    }
}

//! `cargo xtask fuzz`: the cargo-fuzz targets of every crate, listed or run
//! for a number of executions, one at a time.
//!
//! Each crate that has targets keeps them in its own `fuzz/` folder, a
//! workspace of its own (so the main workspace needs neither nightly nor
//! libFuzzer) with its own `target/`; a target is a `[[bin]]` of that
//! folder's `Cargo.toml`. Their bodies live in `<crate>/tests/fuzz_bodies/`
//! and the ordinary test suite (`tests/fuzz_smoke.rs`) replays each
//! target's regression inputs and a deterministic corpus through them, so
//! CI needs no fuzzer; this command is for the long runs.
//!
//! Before running a crate's targets the valid seeds of its smoke test are
//! written to `fuzz/corpus/<target>/` (the smoke test with
//! `SLIPWAY_FUZZ_SEEDS`), so libFuzzer starts past magic bytes, checksums
//! and signatures.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

/// One cargo-fuzz target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The crate's folder, relative to the workspace root (`update-engine`).
    pub crate_dir: PathBuf,
    /// The crate's package name, for `cargo test -p`.
    pub package: String,
    pub name: String,
}

impl Target {
    pub fn fuzz_dir(&self, root: &Path) -> PathBuf {
        root.join(&self.crate_dir).join("fuzz")
    }
}

/// Every target under `root`: the `[[bin]]`s of each `fuzz/Cargo.toml`
/// marked `cargo-fuzz = true`, in a crate folder at most two levels down,
/// sorted by crate then name.
pub fn targets(root: &Path) -> Result<Vec<Target>> {
    let mut manifests = Vec::new();
    for level1 in read_dirs(root)? {
        manifests.push(level1.join("fuzz/Cargo.toml"));
        for level2 in read_dirs(&level1)? {
            manifests.push(level2.join("fuzz/Cargo.toml"));
        }
    }
    let mut found = Vec::new();
    for manifest in manifests.into_iter().filter(|m| m.is_file()) {
        let text = std::fs::read_to_string(&manifest)
            .with_context(|| format!("reading {}", manifest.display()))?;
        let doc: toml::Table =
            toml::from_str(&text).with_context(|| format!("parsing {}", manifest.display()))?;
        let is_fuzz = doc
            .get("package")
            .and_then(|p| p.get("metadata"))
            .and_then(|m| m.get("cargo-fuzz"))
            .and_then(toml::Value::as_bool)
            == Some(true);
        if !is_fuzz {
            continue;
        }
        let crate_root = manifest
            .parent()
            .and_then(Path::parent)
            .context("a fuzz manifest outside a crate")?;
        let crate_dir = crate_root.strip_prefix(root).unwrap_or(crate_root);
        let package = package_name(&crate_root.join("Cargo.toml"))?;
        let bins = doc.get("bin").and_then(toml::Value::as_array);
        for bin in bins.into_iter().flatten() {
            if let Some(name) = bin.get("name").and_then(toml::Value::as_str) {
                found.push(Target {
                    crate_dir: crate_dir.to_path_buf(),
                    package: package.clone(),
                    name: name.to_string(),
                });
            }
        }
    }
    found.sort_by(|a, b| (&a.crate_dir, &a.name).cmp(&(&b.crate_dir, &b.name)));
    let mut names = BTreeSet::new();
    for t in &found {
        if !names.insert(&t.name) {
            bail!(
                "two fuzz targets are named {}: names must be unique",
                t.name
            );
        }
    }
    Ok(found)
}

/// The folders in `dir`, sorted, leaving out hidden ones and `target`.
fn read_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            !name.starts_with('.') && name != "target" && name != "fuzz"
        })
        .map(|e| e.path())
        .collect();
    dirs.sort();
    Ok(dirs)
}

fn package_name(manifest: &Path) -> Result<String> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let doc: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing {}", manifest.display()))?;
    doc.get("package")
        .and_then(|p| p.get("name"))
        .and_then(toml::Value::as_str)
        .map(str::to_string)
        .with_context(|| format!("{}: no package name", manifest.display()))
}

/// Stops with the command to run if nightly or cargo-fuzz is missing.
pub fn check_tools() -> Result<()> {
    let works = |args: &[&str]| {
        Command::new("cargo")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !works(&["+nightly", "--version"]) {
        bail!(
            "the nightly toolchain is missing (cargo-fuzz needs it); install it with:\n  \
             rustup toolchain install nightly"
        );
    }
    if !works(&["+nightly", "fuzz", "--version"]) {
        bail!("cargo-fuzz is missing; install it with:\n  cargo install cargo-fuzz --locked");
    }
    Ok(())
}

/// What libFuzzer's output says about one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// From `Done N runs in S second(s)`.
    pub executions: Option<u64>,
    pub seconds: Option<u64>,
    /// The input that failed, from `Test unit written to PATH`.
    pub artifact: Option<PathBuf>,
}

impl Report {
    /// Takes one line of libFuzzer's output into account (paths are
    /// relative to `dir`, where the fuzzer ran).
    pub fn read_line(&mut self, line: &str, dir: &Path) {
        if let Some(rest) = line.strip_prefix("Done ") {
            let mut words = rest.split_whitespace();
            self.executions = words.next().and_then(|n| n.parse().ok());
            // "runs in S second(s)"
            self.seconds = words.nth(2).and_then(|n| n.parse().ok());
        }
        if let Some((_, path)) = line.split_once("Test unit written to ") {
            self.artifact = Some(dir.join(path.trim()));
        }
    }
}

/// The outcome of one target's run.
#[derive(Debug)]
pub struct Outcome {
    pub target: Target,
    pub report: Report,
    /// Build and run, as this command measured it.
    pub wall_seconds: f64,
    pub success: bool,
}

/// Writes the crate's smoke-test seeds into its `fuzz/corpus/`.
pub fn write_seeds(root: &Path, target: &Target) -> Result<()> {
    if !root
        .join(&target.crate_dir)
        .join("tests/fuzz_smoke.rs")
        .is_file()
    {
        return Ok(());
    }
    let corpus = target.fuzz_dir(root).join("corpus");
    eprintln!(
        "fuzz: writing the seeds of {} into {}",
        target.package,
        corpus.display()
    );
    let status = Command::new("cargo")
        .args(["test", "-q", "-p", &target.package, "--test", "fuzz_smoke"])
        .env("SLIPWAY_FUZZ_SEEDS", &corpus)
        .current_dir(root)
        .stdout(Stdio::null())
        .status()
        .context("running cargo test")?;
    if !status.success() {
        bail!(
            "the smoke test of {} fails: fix it before fuzzing (cargo test -p {} --test fuzz_smoke)",
            target.package,
            target.package
        );
    }
    Ok(())
}

/// `cargo +nightly fuzz run <target> -- -runs=<runs> -timeout=60` in the target's
/// `fuzz/` folder (with its own target folder, whatever
/// `CARGO_TARGET_DIR` says), echoing libFuzzer's progress lines.
pub fn run(root: &Path, target: &Target, runs: u64) -> Result<Outcome> {
    let dir = target.fuzz_dir(root);
    let started = Instant::now();
    let mut child = Command::new("cargo")
        .args(["+nightly", "fuzz", "run", &target.name, "--"])
        .arg(format!("-runs={runs}"))
        // A hang is a finding: reported (and its input kept) after a
        // minute, not libFuzzer's default twenty.
        .arg("-timeout=60")
        .env_remove("CARGO_TARGET_DIR")
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting cargo fuzz in {}", dir.display()))?;
    // libFuzzer writes to stderr; stdout is drained on a thread so that
    // neither pipe fills up.
    let stdout = child.stdout.take().context("no stdout")?;
    let drain = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let mut report = Report::default();
    let mut tail: Vec<String> = Vec::new();
    let stderr = child.stderr.take().context("no stderr")?;
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        report.read_line(&line, &dir);
        if line.contains(" pulse ") || line.contains(" DONE ") || line.starts_with("Done ") {
            eprintln!("[{}] {line}", target.name);
        }
        tail.push(line);
        if tail.len() > 60 {
            tail.remove(0);
        }
    }
    let status = child.wait().context("waiting for cargo fuzz")?;
    let out = drain.join().unwrap_or_default();
    let success = status.success() && report.artifact.is_none();
    if !success {
        for line in out.iter().chain(&tail) {
            eprintln!("[{}] {line}", target.name);
        }
    }
    Ok(Outcome {
        target: target.clone(),
        report,
        wall_seconds: started.elapsed().as_secs_f64(),
        success,
    })
}

/// One line per outcome: executions, libFuzzer's time, the wall time,
/// and where a failing input is.
pub fn summary_line(o: &Outcome) -> String {
    let r = &o.report;
    let execs = r
        .executions
        .map_or("?".to_string(), |n| format!("{n} executions"));
    let secs = r.seconds.map_or("?".to_string(), |s| format!("{s} s"));
    let rate = match (r.executions, r.seconds) {
        (Some(n), Some(s)) if s > 0 => format!(", {}/s", n / s),
        _ => String::new(),
    };
    let mut line = format!(
        "{:<18} {:<18} {execs} in {secs}{rate} ({:.0} s with the build)",
        o.target.name,
        o.target.crate_dir.display(),
        o.wall_seconds
    );
    if !o.success {
        match &r.artifact {
            Some(path) => line += &format!(": FAILED on {}", path.display()),
            None => line += ": FAILED (see the output above)",
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzer_output() {
        let dir = Path::new("/w/update-engine/fuzz");
        let mut r = Report::default();
        for line in [
            "#1048576\tpulse  cov: 10 ft: 20 corp: 5/1Kb exec/s: 30000 rss: 60Mb",
            "#1000000\tDONE   cov: 2740 ft: 5793 corp: 1427/59Kb lim: 1680 exec/s: 1414 rss: 475Mb",
            "Done 1000000 runs in 707 second(s)",
        ] {
            r.read_line(line, dir);
        }
        assert_eq!(
            r,
            Report {
                executions: Some(1_000_000),
                seconds: Some(707),
                artifact: None
            }
        );
        r.read_line(
            "artifact_prefix='/w/update-engine/fuzz/artifacts/feed/'; Test unit written to \
             /w/update-engine/fuzz/artifacts/feed/crash-0a1b",
            dir,
        );
        assert_eq!(
            r.artifact.as_deref(),
            Some(Path::new("/w/update-engine/fuzz/artifacts/feed/crash-0a1b"))
        );
        let mut relative = Report::default();
        relative.read_line("Test unit written to ./artifacts/x/crash-1", dir);
        assert_eq!(
            relative.artifact.as_deref(),
            Some(Path::new("/w/update-engine/fuzz/./artifacts/x/crash-1"))
        );
    }

    #[test]
    fn finds_every_crates_targets() {
        let root = crate::paths::project_root();
        let all = targets(&root).unwrap();
        let names: Vec<&str> = all.iter().map(|t| t.name.as_str()).collect();
        for name in [
            "cmdline",
            "payload",
            "user_data",
            "dhcp",
            "gpt_grow",
            "deb",
            "request",
        ] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
        let dhcp = all.iter().find(|t| t.name == "dhcp").unwrap();
        assert_eq!(dhcp.crate_dir, Path::new("network"));
        assert_eq!(dhcp.package, "slipway-network");
        for t in &all {
            let body = root.join(&t.crate_dir).join("tests/fuzz_bodies/mod.rs");
            assert!(body.is_file(), "{}: no {}", t.name, body.display());
        }
    }
}

//! The whole suite of `cargo xtask test` as steps, so that it fits the CI
//! budget on a machine with two cores: a VM runs under TCG with `-smp 1`
//! and leaves the other core idle, so the test binaries that boot one VM
//! at a time run in two lanes at once; the binaries that boot three VMs
//! run alone, after them.
//!
//! Every step is a `cargo test --workspace --locked` with its own targets.
//! `--workspace` on every step, never `-p` or `--exclude`: cargo unifies
//! dependency features over the packages selected, so a narrower
//! selection can rebuild dependencies that the first `--no-run` step built,
//! and the two lanes would then wait on each other's build lock. Cargo
//! releases that lock once it has compiled, before it runs the tests, so
//! two fresh invocations run their tests at the same time.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The xtask test targets that boot three machines: each runs alone, after
/// the lanes, one after another in this order. A name the workspace does
/// not have is left out.
pub const MULTI_VM: &[&str] = &["vm_cluster", "vm_fleet"];

/// Lane 1: the longest single-VM binary (vm_update, about 710 s under CI)
/// and short ones that balance the lanes (vm_hardware's three boots of
/// the generic board); every other `vm_*` binary of xtask not in
/// [`MULTI_VM`] goes to lane 2 (about 835 s with vm_containers' 530 s).
/// In this order; a name the workspace does not have is left out.
pub const LANE_1: &[&str] = &["vm_update", "vm_hardware"];

/// The package whose `vm_*` integration tests boot VMs.
const VM_PACKAGE: &str = "xtask";

/// Lanes run their tests one at a time: a binary such as `vm_boot` would
/// otherwise boot two VMs at once next to the other lane's, three TCG
/// machines on two cores, and the VM tests' timeouts assume a core each.
const LANE_TEST_THREADS: &str = "--test-threads=1";

/// Every binary of a step runs, whatever the others' results.
const NO_FAIL_FAST: &str = "--no-fail-fast";

/// A test-bearing target of a workspace member, from `cargo metadata`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub package: String,
    /// `test`, `bench`, `example`, `lib`, `bin`, … (cargo's first kind).
    pub kind: String,
    pub name: String,
    /// The manifest's `test` flag: run by a plain `cargo test`.
    pub test: bool,
}

/// The targets of the workspace's members, from
/// `cargo metadata --format-version 1 --no-deps` (which lists members only).
pub fn workspace_targets(cargo: &str, root: &Path) -> Result<Vec<Target>> {
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--locked"])
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed ({})", out.status);
    }
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parsing cargo metadata's output")?;
    targets_from_metadata(&json)
}

fn targets_from_metadata(json: &serde_json::Value) -> Result<Vec<Target>> {
    let str_field = |v: &serde_json::Value, k: &str, what: &str| {
        v[k].as_str()
            .map(str::to_string)
            .with_context(|| format!("cargo metadata: {what} has no string `{k}`"))
    };
    let mut targets = Vec::new();
    let packages = json["packages"]
        .as_array()
        .context("cargo metadata: no `packages` array")?;
    for p in packages {
        let package = str_field(p, "name", "a package")?;
        let list = p["targets"]
            .as_array()
            .with_context(|| format!("cargo metadata: package {package} has no `targets`"))?;
        for t in list {
            let name = str_field(t, "name", &format!("a target of {package}"))?;
            let kind = t["kind"][0]
                .as_str()
                .with_context(|| format!("cargo metadata: target {package}/{name} has no kind"))?
                .to_string();
            targets.push(Target {
                package: package.clone(),
                kind,
                name,
                test: t["test"].as_bool().unwrap_or(false),
            });
        }
    }
    Ok(targets)
}

/// Which step runs which test binaries.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// `(--test|--bench|--example, name)` of every integration test (and
    /// test-flagged bench or example) that boots no VM, any package.
    pub host: Vec<(&'static str, String)>,
    /// The [`LANE_1`] binaries present, in that list's order.
    pub lane_1: Vec<String>,
    /// The other single-VM binaries, by name.
    pub lane_2: Vec<String>,
    /// The [`MULTI_VM`] binaries present, in that list's order.
    pub multi_vm: Vec<String>,
}

/// Sorts the targets into the steps; libraries and binaries are left to
/// the host step's `--lib --bins`, and targets a plain `cargo test` skips
/// (`test = false`) are skipped here too.
pub fn plan(targets: &[Target]) -> Plan {
    let mut plan = Plan::default();
    let mut multi = Vec::new();
    let mut lane_1 = Vec::new();
    for t in targets.iter().filter(|t| t.test) {
        let flag = match t.kind.as_str() {
            "test" => "--test",
            "bench" => "--bench",
            "example" => "--example",
            _ => continue,
        };
        let vm = t.package == VM_PACKAGE && flag == "--test" && t.name.starts_with("vm_");
        if !vm {
            plan.host.push((flag, t.name.clone()));
        } else if let Some(i) = MULTI_VM.iter().position(|m| *m == t.name) {
            multi.push((i, t.name.clone()));
        } else if let Some(i) = LANE_1.iter().position(|m| *m == t.name) {
            lane_1.push((i, t.name.clone()));
        } else {
            plan.lane_2.push(t.name.clone());
        }
    }
    multi.sort();
    lane_1.sort();
    plan.lane_1 = lane_1.into_iter().map(|(_, n)| n).collect();
    plan.multi_vm = multi.into_iter().map(|(_, n)| n).collect();
    plan
}

/// One `cargo test --workspace --locked <args>`.
#[derive(Debug, PartialEq, Eq)]
pub struct Step {
    /// The name in the summary; a lane's also prefixes its output lines.
    pub name: String,
    pub args: Vec<String>,
}

/// The steps in order: `before` one after another, then `lanes` at the
/// same time, then `after` one after another.
#[derive(Debug, PartialEq, Eq)]
pub struct Schedule {
    pub before: Vec<Step>,
    pub lanes: Vec<Step>,
    pub after: Vec<Step>,
}

/// The steps of [`plan`]: build every test binary first (so the later,
/// concurrent invocations find everything fresh), the host tests and the
/// doctests, the lanes, then the multi-VM binaries.
pub fn schedule(plan: &Plan) -> Schedule {
    let step = |name: &str, args: Vec<String>| Step {
        name: name.to_string(),
        args,
    };
    let tests = |names: &[String]| -> Vec<String> {
        names
            .iter()
            .flat_map(|n| ["--test".to_string(), n.clone()])
            .collect()
    };
    // A step of several binaries runs all of them even when one fails
    // (cargo stops at the first failing binary otherwise: a vm_hardware
    // failure once left vm_update unrun).
    let no_fail_fast = || NO_FAIL_FAST.to_string();
    let lane = |name: String, names: &[String]| {
        let mut args = vec![no_fail_fast()];
        args.extend(tests(names));
        args.extend(["--".to_string(), LANE_TEST_THREADS.to_string()]);
        Step { name, args }
    };
    let mut host = vec![no_fail_fast(), "--lib".to_string(), "--bins".to_string()];
    for (flag, name) in &plan.host {
        host.extend([flag.to_string(), name.clone()]);
    }
    let mut lanes = Vec::new();
    if !plan.lane_1.is_empty() {
        lanes.push(lane("lane 1".to_string(), &plan.lane_1));
    }
    if !plan.lane_2.is_empty() {
        lanes.push(lane("lane 2".to_string(), &plan.lane_2));
    }
    Schedule {
        before: vec![
            step("build", vec!["--no-run".to_string()]),
            step("host tests", host),
            step("doctests", vec!["--doc".to_string()]),
        ],
        lanes,
        after: plan
            .multi_vm
            .iter()
            .map(|n| step(n, tests(std::slice::from_ref(n))))
            .collect(),
    }
}

/// How a step ended.
#[derive(Debug)]
pub struct Outcome {
    pub name: String,
    pub wall: Duration,
    /// `Err` holds why: the exit status, or why cargo could not run.
    pub result: Result<(), String>,
}

impl Outcome {
    /// The summary line, e.g. `test: vm_update 650 s ok`.
    pub fn line(&self) -> String {
        let status = match &self.result {
            Ok(()) => "ok".to_string(),
            Err(why) => format!("FAILED ({why})"),
        };
        format!(
            "test: {} {} s {status}",
            self.name,
            self.wall.as_secs_f64().round()
        )
    }
}

/// Runs `cmd` with its output on ours.
pub fn run_step(name: &str, mut cmd: Command) -> Outcome {
    timed(name, || finished(cmd.status()))
}

/// Runs the lanes at the same time, each line of their output on our
/// stderr behind `[<lane name>] `; returns when all have ended.
pub fn run_lanes(lanes: Vec<(String, Command)>) -> Vec<Outcome> {
    std::thread::scope(|s| {
        let handles: Vec<_> = lanes
            .into_iter()
            .map(|(name, cmd)| s.spawn(move || timed(&name, || run_prefixed(&name, cmd))))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a lane's thread panicked"))
            .collect()
    })
}

fn timed(name: &str, f: impl FnOnce() -> Result<(), String>) -> Outcome {
    let start = Instant::now();
    let result = f();
    Outcome {
        name: name.to_string(),
        wall: start.elapsed(),
        result,
    }
}

fn finished(status: std::io::Result<ExitStatus>) -> Result<(), String> {
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(s.to_string()),
        Err(e) => Err(format!("cannot run cargo: {e}")),
    }
}

fn run_prefixed(name: &str, mut cmd: Command) -> Result<(), String> {
    let prefix = format!("[{name}] ");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let pipes: [Option<Box<dyn Read + Send>>; 2] = [
        child.stdout.take().map(|p| Box::new(p) as _),
        child.stderr.take().map(|p| Box::new(p) as _),
    ];
    std::thread::scope(|s| {
        for pipe in pipes.into_iter().flatten() {
            let prefix = &prefix;
            // Our stderr gone: nothing left to show the lines to.
            s.spawn(move || copy_prefixed(BufReader::new(pipe), prefix, &mut StderrLines));
        }
    });
    finished(child.wait())
}

/// Our stderr, one `write_all` held under its lock, so that the lines of
/// the lanes' four pipes never mix within a line.
struct StderrLines;

impl Write for StderrLines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf).map(|()| buf.len())
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        std::io::stderr().lock().write_all(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Copies `reader` to `out` line by line, each line (bytes as they are,
/// a newline added to a last line without one) behind `prefix`, and each
/// in one `write_all` call.
pub fn copy_prefixed<R: BufRead, W: Write>(
    mut reader: R,
    prefix: &str,
    out: &mut W,
) -> std::io::Result<()> {
    let mut line = Vec::new();
    loop {
        line.clear();
        line.extend_from_slice(prefix.as_bytes());
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        if line.last() != Some(&b'\n') {
            line.push(b'\n');
        }
        out.write_all(&line)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(package: &str, kind: &str, name: &str) -> Target {
        Target {
            package: package.into(),
            kind: kind.into(),
            name: name.into(),
            test: true,
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn targets_are_sorted_into_host_lanes_and_multi_vm() {
        let mut off = t("image", "test", "slow");
        off.test = false;
        let targets = vec![
            t("xtask", "lib", "xtask"),
            t("xtask", "bin", "xtask"),
            t("xtask", "test", "vm_fleet"),
            t("xtask", "test", "vm_hardware"),
            t("xtask", "test", "board_locks"),
            t("xtask", "test", "vm_boot"),
            t("xtask", "test", "vm_update"),
            t("xtask", "test", "vm_cluster"),
            t("xtask", "test", "vm_containers"),
            t("xtask", "test", "vm_newly_added"),
            t("swarm", "test", "vm_like_name"),
            t("image", "bench", "speed"),
            off,
        ];
        let p = plan(&targets);
        assert_eq!(
            p.host,
            vec![
                ("--test", "board_locks".to_string()),
                ("--test", "vm_like_name".to_string()),
                ("--bench", "speed".to_string()),
            ]
        );
        // LANE_1's order, whatever the metadata's.
        assert_eq!(p.lane_1, names(&["vm_update", "vm_hardware"]));
        assert_eq!(
            p.lane_2,
            names(&["vm_boot", "vm_containers", "vm_newly_added"])
        );
        // MULTI_VM's order, whatever the metadata's.
        assert_eq!(p.multi_vm, names(&["vm_cluster", "vm_fleet"]));
    }

    #[test]
    fn schedule_builds_first_and_passes_every_target_by_name() {
        let p = Plan {
            host: vec![("--test", "board_locks".into())],
            lane_1: names(&["vm_update", "vm_hardware"]),
            lane_2: names(&["vm_boot", "vm_state"]),
            multi_vm: names(&["vm_cluster", "vm_fleet"]),
        };
        let s = schedule(&p);
        let args = |v: &[Step]| -> Vec<(String, String)> {
            v.iter()
                .map(|s| (s.name.clone(), s.args.join(" ")))
                .collect()
        };
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(
            args(&s.before),
            pairs(&[
                ("build", "--no-run"),
                (
                    "host tests",
                    "--no-fail-fast --lib --bins --test board_locks"
                ),
                ("doctests", "--doc"),
            ])
        );
        assert_eq!(
            args(&s.lanes),
            pairs(&[
                (
                    "lane 1",
                    "--no-fail-fast --test vm_update --test vm_hardware -- --test-threads=1"
                ),
                (
                    "lane 2",
                    "--no-fail-fast --test vm_boot --test vm_state -- --test-threads=1"
                ),
            ])
        );
        assert_eq!(
            args(&s.after),
            pairs(&[
                ("vm_cluster", "--test vm_cluster"),
                ("vm_fleet", "--test vm_fleet"),
            ])
        );
    }

    #[test]
    fn an_empty_lane_is_no_step() {
        let p = Plan {
            lane_2: names(&["vm_boot"]),
            ..Plan::default()
        };
        let s = schedule(&p);
        assert_eq!(s.lanes.len(), 1);
        assert_eq!(s.lanes[0].name, "lane 2");
        assert!(s.after.is_empty());
    }

    #[test]
    fn metadata_targets_are_read_with_their_test_flag() {
        let json = serde_json::json!({"packages": [
            {"name": "xtask", "targets": [
                {"name": "xtask", "kind": ["lib"], "test": true},
                {"name": "vm_boot", "kind": ["test"], "test": true},
                {"name": "gen", "kind": ["example"], "test": false},
            ]},
        ]});
        let got = targets_from_metadata(&json).unwrap();
        let mut gen = t("xtask", "example", "gen");
        gen.test = false;
        assert_eq!(
            got,
            vec![
                t("xtask", "lib", "xtask"),
                t("xtask", "test", "vm_boot"),
                gen
            ]
        );
        let bad = serde_json::json!({"packages": [{"name": "x", "targets": [{"kind": ["test"]}]}]});
        let err = targets_from_metadata(&bad).unwrap_err().to_string();
        assert!(err.contains("a target of x has no string `name`"), "{err}");
    }

    #[test]
    fn every_xtask_test_file_lands_in_one_step() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let root = crate::paths::project_root();
        let p = plan(&workspace_targets(&cargo, &root).unwrap());
        let files = std::fs::read_dir(root.join("xtask/tests")).unwrap();
        for f in files.map(|e| e.unwrap().path()) {
            if f.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let name = f.file_stem().unwrap().to_string_lossy().to_string();
            let places = [
                p.host.iter().any(|(_, n)| *n == name),
                p.lane_1.contains(&name),
                p.lane_2.contains(&name),
                p.multi_vm.contains(&name),
            ];
            assert_eq!(places.iter().filter(|x| **x).count(), 1, "{name}: {p:?}");
        }
        assert!(p.lane_1.iter().all(|n| LANE_1.contains(&n.as_str())));
        assert!(p.lane_1.contains(&"vm_update".to_string()), "{p:?}");
    }

    #[test]
    fn lines_are_prefixed_whole_and_bytes_kept() {
        let input: &[u8] = b"running 1 test\n\xff raw\nlast without newline";
        let mut out = Vec::new();
        copy_prefixed(input, "[lane 2] ", &mut out).unwrap();
        assert_eq!(
            out,
            b"[lane 2] running 1 test\n[lane 2] \xff raw\n[lane 2] last without newline\n"
        );
        let mut none = Vec::new();
        copy_prefixed(&b""[..], "[x] ", &mut none).unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn every_line_is_one_write() {
        /// Records each `write_all` call on its own.
        struct Calls(Vec<Vec<u8>>);
        impl Write for Calls {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.push(buf.to_vec());
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut calls = Calls(Vec::new());
        copy_prefixed(&b"a\nb\n"[..], "[p] ", &mut calls).unwrap();
        assert_eq!(calls.0, vec![b"[p] a\n".to_vec(), b"[p] b\n".to_vec()]);
    }

    #[test]
    fn outcome_lines_name_the_step_time_and_status() {
        let ok = Outcome {
            name: "vm_update".into(),
            wall: Duration::from_millis(649_600),
            result: Ok(()),
        };
        assert_eq!(ok.line(), "test: vm_update 650 s ok");
        let bad = Outcome {
            name: "lane 2".into(),
            wall: Duration::from_secs(3),
            result: Err("exit status: 101".into()),
        };
        assert_eq!(bad.line(), "test: lane 2 3 s FAILED (exit status: 101)");
    }

    #[test]
    fn lanes_run_at_the_same_time_and_report_each_status() {
        let sh = |script: &str| {
            let mut c = Command::new("sh");
            c.args(["-c", script]);
            c
        };
        // Each lane waits for the other's file: they finish only if both
        // run at once (bounded, so a serial run fails instead of hanging).
        let dir = tempfile::tempdir().unwrap();
        let wait_for = |mine: &str, other: &str| {
            format!(
                "touch {d}/{mine}; i=0; while [ ! -e {d}/{other} ]; do \
                 i=$((i+1)); [ $i -gt 100 ] && exit 3; sleep 0.05; done; echo {mine} done",
                d = dir.path().display()
            )
        };
        let out = run_lanes(vec![
            ("a".into(), sh(&wait_for("a", "b"))),
            ("b".into(), sh(&format!("{}; exit 7", wait_for("b", "a")))),
        ]);
        assert_eq!(out[0].name, "a");
        assert_eq!(out[0].result, Ok(()));
        assert_eq!(out[1].result, Err("exit status: 7".to_string()));
    }
}

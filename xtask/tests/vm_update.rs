//! The update engine on a running machine, end to end, on one VM:
//!
//! 1. v1 boots from slot A; `update-engine apply` installs v2 from a feed
//!    the host serves, as a delta: the engine's status and the server both
//!    say that under a tenth of the payload came over the network; after a
//!    reboot v2 runs from slot B and is blessed.
//! 2. Power cuts (QMP `system_reset`) at random moments of a delta apply of
//!    v3: each time the machine comes back on v2; then the apply is re-run
//!    (resuming where the intact data ends) and succeeds, still as a delta. With `IO_WRITE_MAX` set, the
//!    apply's write rate stays within 5 % of the limit.
//! 3. v3 fails its health check: it is tried three times, then the machine
//!    is back on v2 by itself and `status` reports v3 bad.
//! 4. The daemon picks up v4 from the feed it follows, installs it into
//!    slot A and reboots into it.

use std::path::Path;
use std::time::{Duration, Instant};

use xtask::qemu::Machine;
use xtask::release::{self, PublishOptions};
use xtask::serve::{ServeOptions, Server};
use xtask::testing::{failing_unit, test_release, vm_test_image};
use xtask::vm::Vm;

const BOOT: Duration = Duration::from_secs(300);
const CMD: Duration = Duration::from_secs(60);
const APPLY: Duration = Duration::from_secs(300);
/// The write limit for the power-cut applies: slow enough that random cut
/// moments fall inside the write, and the figure the io.max check uses.
const IO_LIMIT: u64 = 1 << 20;

fn manifest(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("manifest.json")).expect("manifest.json");
    serde_json::from_str(&text).expect("manifest.json parses")
}

fn ok(vm: &mut Vm, command: &str, timeout: Duration) -> String {
    let (rc, out) = vm.run(command, timeout).unwrap();
    assert_eq!(rc, 0, "`{command}` failed:\n{out}");
    out.trim().to_string()
}

fn publish(image: &Path, dir: &Path, channel: &str) {
    release::publish(&PublishOptions {
        image_dir: image.to_path_buf(),
        dir: dir.to_path_buf(),
        channel: channel.to_string(),
        valid_for: 86_400,
        key: None,
    })
    .unwrap_or_else(|e| panic!("publishing {}: {e:#}", image.display()));
}

/// A small pseudo-random source seeded from the clock, printed so a
/// failing run can be repeated.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("SLIPWAY_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("vm_update: random seed {seed} (SLIPWAY_TEST_SEED to repeat)");
        Rng(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn ready_line(version: &str, slot: char) -> String {
    format!("slipway: ready version={version} slot={slot} ")
}

/// `status` lines for a slot, e.g. `slot b: 1.0.2  good ...`.
fn slot_status(vm: &mut Vm, slot: char) -> String {
    let out = ok(vm, "update-engine status", CMD);
    out.lines()
        .find(|l| l.starts_with(&format!("slot {slot}:")))
        .unwrap_or_else(|| panic!("no slot {slot} in status:\n{out}"))
        .to_string()
}

/// Waits until the booted slot's entry is blessed (PID 1 runs
/// `update-engine on-health healthy` once the boot is healthy).
fn wait_blessed(vm: &mut Vm, slot: char) {
    let deadline = Instant::now() + BOOT;
    loop {
        let line = slot_status(vm, slot);
        if line.contains(" good ") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "slot {slot} never blessed: {line}"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

#[test]
fn update_power_cuts_rollback_and_daemon() {
    let Some(dir) = vm_test_image("vm_update") else {
        return;
    };
    let m = manifest(&dir);
    let v1 = m["version"].as_str().unwrap().to_string();
    let (v2, v3, v4) = (format!("{v1}.2"), format!("{v1}.3"), format!("{v1}.4"));
    let t0 = Instant::now();
    let img2 = test_release(&dir, &v2, Vec::new()).unwrap();
    let img3 = test_release(&dir, &v3, failing_unit()).unwrap();
    let img4 = test_release(&dir, &v4, Vec::new()).unwrap();
    eprintln!("vm_update: three releases built in {:.0?}", t0.elapsed());
    let feed_dir = tempfile::tempdir().unwrap();
    publish(&img2, feed_dir.path(), "test");
    let server = Server::start(ServeOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        log: false,
        ..ServeOptions::new(feed_dir.path())
    })
    .unwrap();
    // QEMU's user network reaches the host's loopback at 10.0.2.2.
    let guest_url = format!("http://10.0.2.2:{}", server.addr.port());
    let mut rng = Rng::new();

    let mut vm = Vm::start("update", &Machine::new(dir.join("disk.qcow2"))).unwrap();
    vm.wait_for(&ready_line(&v1, 'a'), BOOT).unwrap();
    let status = ok(&mut vm, "update-engine status", CMD);
    assert!(
        status.contains(&format!("booted: slot a running {v1}")),
        "{status}"
    );
    assert!(status.contains("slot b: -"), "{status}");
    // The daemon follows `stable`, where nothing is published until step 4;
    // the writer's cgroup gets the I/O limit for every apply.
    ok(
        &mut vm,
        &format!(
            "mkdir -p /etc/slipway && printf 'SERVER={guest_url}\\nGROUP=stable\\n\
             IO_WRITE_MAX={IO_LIMIT}\\nINTERVAL=1m\\nJITTER=0s\\nREBOOT_STRATEGY=reboot\\n' \
             > /etc/slipway/update.conf"
        ),
        CMD,
    );

    // 1. v1 → v2 from the feed, as a delta.
    let served_before = server.bytes_served();
    let out = ok(
        &mut vm,
        "update-engine apply --channel test --progress lines 2>&1",
        APPLY,
    );
    assert!(
        out.contains(&format!("installed {v2} into slot b (slipway-b+3.conf)")),
        "{out}"
    );
    let served = server.bytes_served() - served_before;
    let (mode, downloaded, payload) = download_status(&mut vm);
    eprintln!(
        "vm_update: v2 as a {mode}: {downloaded} of {payload} bytes downloaded, {served} served"
    );
    assert_eq!(mode, "delta", "{out}");
    assert!(
        downloaded * 10 < payload,
        "{downloaded} of {payload}:\n{out}"
    );
    // The server's count has the feed besides (a few KiB).
    assert!(
        served >= downloaded && served < downloaded + (64 << 10),
        "server sent {served} bytes, the engine counted {downloaded}"
    );
    assert!(slot_status(&mut vm, 'b').contains("trying, 3 tries left"));
    vm.reboot().unwrap();
    vm.wait_for(&ready_line(&v2, 'b'), BOOT).unwrap();
    wait_blessed(&mut vm, 'b');
    let a = slot_status(&mut vm, 'a');
    assert!(a.contains(&v1) && a.contains(" good "), "{a}");

    // 2. Power cuts while v3 is applied: back on v2 every time.
    publish(&img3, feed_dir.path(), "test");
    let mut qmp = vm.qmp().unwrap();
    for cut in 0..3 {
        vm.send("update-engine apply --channel test --progress lines\n")
            .unwrap();
        vm.wait_for("update-engine: writing", APPLY).unwrap();
        let delay = Duration::from_millis(300 + rng.below(4000));
        std::thread::sleep(delay);
        let tail = vm.transcript().tail(3);
        assert!(
            !tail.contains("installed"),
            "cut {cut}: the apply ended before the cut at {delay:?}:\n{tail}"
        );
        eprintln!("vm_update: power cut {cut} at {delay:?} into the write");
        qmp.system_reset().unwrap();
        vm.wait_for(&ready_line(&v2, 'b'), BOOT).unwrap();
        // Typing before the new boot's shell runs would be lost.
        vm.wait_shell(BOOT).unwrap();
        let a = slot_status(&mut vm, 'a');
        assert!(
            a.contains("no boot entry"),
            "cut {cut}: slot a after the cut: {a}"
        );
    }
    // The re-run resumes and finishes; the write rate respects io.max.
    let before = ok(
        &mut vm,
        "cat /sys/fs/cgroup/slipway-update/io.stat 2>/dev/null; true",
        CMD,
    );
    let out = ok(
        &mut vm,
        "s=$(cut -d' ' -f1 /proc/uptime); update-engine apply --channel test --progress lines 2>&1; \
         e=$(cut -d' ' -f1 /proc/uptime); echo \"elapsed $s $e\"",
        APPLY,
    );
    assert!(
        out.contains(&format!("installed {v3} into slot a (slipway-a+3.conf)")),
        "{out}"
    );
    let (mode, downloaded, payload) = download_status(&mut vm);
    eprintln!("vm_update: v3 resumed as a {mode}: {downloaded} of {payload} bytes downloaded");
    assert_eq!(mode, "delta", "{out}");
    let after = ok(&mut vm, "cat /sys/fs/cgroup/slipway-update/io.stat", CMD);
    check_io_limit(&out, &before, &after);

    // 3. v3 fails its health check three times; the loader falls back.
    vm.reboot().unwrap();
    for attempt in 1..=3 {
        vm.wait_for(&ready_line(&v3, 'a'), BOOT)
            .unwrap_or_else(|e| panic!("try {attempt} of v3: {e:#}"));
        vm.wait_for("unhealthy on", BOOT).unwrap();
    }
    vm.wait_for(&ready_line(&v2, 'b'), BOOT).unwrap();
    let a = slot_status(&mut vm, 'a');
    assert!(
        a.contains(&v3) && a.contains(" bad "),
        "slot a after the rollback: {a}"
    );
    let b = slot_status(&mut vm, 'b');
    assert!(
        b.contains(&v2) && b.contains(" good ") && b.contains("(booted)"),
        "{b}"
    );

    // 4. The daemon picks v4 up from `stable` and reboots into it.
    publish(&img4, feed_dir.path(), "stable");
    ok(&mut vm, "slipctl restart update-engine.service", CMD);
    vm.wait_for(&ready_line(&v4, 'a'), Duration::from_secs(600))
        .unwrap();
    wait_blessed(&mut vm, 'a');
    let log = ok(
        &mut vm,
        "tail -n 20 /var/log/services/update-engine.service.log",
        CMD,
    );
    eprintln!("vm_update: daemon log before the reboot into v4:\n{log}");
    server.stop();
}

/// How the last apply's data arrived, from `update-engine status --json`:
/// mode, bytes over the network, payload size.
fn download_status(vm: &mut Vm) -> (String, u64, u64) {
    let out = ok(
        vm,
        "update-engine status --json | grep -E '\"(mode|downloaded|payload)\":'",
        CMD,
    );
    let value = |key: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("\"{key}\": ")))
            .map(|v| v.trim_end_matches(',').trim_matches('"').to_string())
            .unwrap_or_else(|| panic!("no {key} in the status:\n{out}"))
    };
    let number = |key: &str| value(key).parse::<u64>().unwrap();
    (value("mode"), number("downloaded"), number("payload"))
}

/// The apply's own figure and the cgroup's io.stat both within 5 % of
/// `IO_LIMIT`.
fn check_io_limit(out: &str, before: &str, after: &str) {
    let reported = out
        .lines()
        .find_map(|l| {
            l.split_once("update-engine: wrote ")
                .map(|(_, r)| r.to_string())
        })
        .unwrap_or_else(|| panic!("no `wrote` line in:\n{out}"));
    // "21.6 MiB in 5.4 s (4.0 MiB/s)"
    let rate: f64 = reported
        .rsplit_once('(')
        .and_then(|(_, r)| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("rate in `{reported}`"));
    let limit_mib = IO_LIMIT as f64 / (1 << 20) as f64;
    eprintln!("vm_update: apply reports {reported}; io.max {limit_mib} MiB/s");
    assert!(
        rate <= 1.05 * limit_mib,
        "apply wrote at {rate} MiB/s over the limit"
    );
    let wbytes = |text: &str| -> u64 {
        text.split_whitespace()
            .filter_map(|w| w.strip_prefix("wbytes="))
            .filter_map(|n| n.parse::<u64>().ok())
            .sum()
    };
    let written = wbytes(after) - wbytes(before);
    let (s, e) = out
        .lines()
        .find_map(|l| l.strip_prefix("elapsed "))
        .and_then(|r| r.split_once(' '))
        .map(|(s, e)| (s.parse::<f64>().unwrap(), e.parse::<f64>().unwrap()))
        .unwrap_or_else(|| panic!("no elapsed line in:\n{out}"));
    let io_rate = written as f64 / (1 << 20) as f64 / (e - s);
    eprintln!(
        "vm_update: io.stat: {written} bytes written in {:.1} s = {io_rate:.2} MiB/s",
        e - s
    );
    assert!(written > 0, "io.stat shows no writes: {after}");
    assert!(
        io_rate <= 1.05 * limit_mib,
        "{io_rate} MiB/s over the limit"
    );
}

//! `cargo xtask bench cluster`: a fleet of three machines under TCG, as the
//! cluster issue asks it to be measured (figures, never asserted):
//! - power-on → a 3-member etcd cluster healthy (`etcdctl endpoint health
//!   --cluster` answers for all three);
//! - a rolling update under `etcd-lock`: from publishing a release to all
//!   three blessed on it, next to one machine alone updating under
//!   `reboot` measured in the same run (and three times that: what three
//!   single-machine updates one after another would take);
//! - each machine's reboot-lock hold, taken → released, from the daemons'
//!   console lines.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::build::{build_image, BuildOptions};
use crate::fleet::{self, count, lock_holds, ready_line, ETCDCTL};
use crate::qemu::Machine;
use crate::seed::SeedKind;
use crate::serve::{ServeOptions, Server};
use crate::vm::{Cluster, Vm};

const MACHINES: usize = 3;
const MEMORY_MIB: u32 = 768;
const DISK_BYTES: u64 = 4 << 30;
const CMD: Duration = Duration::from_secs(120);
/// The longest any phase may take before the bench gives up.
const PHASE: Duration = Duration::from_secs(2400);

pub struct Options {
    pub board: String,
    /// A built image folder instead of building the board's.
    pub image: Option<PathBuf>,
}

fn version_of(dir: &Path) -> Result<String> {
    let text = std::fs::read_to_string(dir.join("manifest.json"))
        .with_context(|| format!("reading {}/manifest.json", dir.display()))?;
    let m: serde_json::Value = serde_json::from_str(&text).context("manifest.json")?;
    m["version"]
        .as_str()
        .map(str::to_string)
        .context("manifest.json has no version")
}

/// A feed folder served on loopback, and its URL as guests see it.
fn feed() -> Result<(tempfile::TempDir, Server, String)> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(ServeOptions {
        addr: "127.0.0.1:0".parse()?,
        log: false,
        ..ServeOptions::new(dir.path())
    })?;
    let url = format!("http://10.0.2.2:{}", server.addr.port());
    Ok((dir, server, url))
}

fn machine(image_dir: &Path, user_data: &Path) -> Machine {
    let mut m = Machine::new(crate::bench_containers::boot_disk(image_dir));
    m.memory_mib = MEMORY_MIB;
    m.disk_size = Some(DISK_BYTES);
    m.user_data = Some((SeedKind::NoCloud, user_data.to_path_buf()));
    m
}

/// Polls every console until `done(lines)` holds for all of them.
fn wait_consoles(vms: &[Vm], what: &str, done: impl Fn(&[String]) -> bool) -> Result<()> {
    let deadline = Instant::now() + PHASE;
    while !vms.iter().all(|vm| done(&vm.transcript().lines())) {
        if Instant::now() > deadline {
            bail!("{what}: not done within {} s", PHASE.as_secs());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(())
}

/// One machine alone, reboot strategy `reboot`: publish → blessed.
fn single_update(image_dir: &Path, img2: &Path, v1: &str, v2: &str) -> Result<Duration> {
    let (feed_dir, server, url) = feed()?;
    let seeds = tempfile::tempdir()?;
    let path = seeds.path().join("user-data");
    std::fs::write(
        &path,
        format!(
            "#cloud-config\nhostname: alone\nwrite_files:\n  - path: /etc/slipway/update.conf\n    \
             append: true\n    defer: true\n    content: |\n      INTERVAL=1m\n      JITTER=0s\n\
             coreos:\n  update:\n    reboot_strategy: reboot\n    server: {url}\n    group: test\n"
        ),
    )?;
    let mut vm = Vm::start("bench-cluster-alone", &machine(image_dir, &path))?;
    vm.wait_for(&ready_line(v1, 'a'), PHASE)?;
    let t = Instant::now();
    fleet::publish(img2, feed_dir.path())?;
    vm.wait_for(&format!("({v2}) marked good"), PHASE)?;
    let took = t.elapsed();
    vm.qmp()?.quit()?;
    server.stop();
    Ok(took)
}

pub fn run(opts: &Options) -> Result<()> {
    let image_dir = match &opts.image {
        Some(dir) => dir.clone(),
        None => build_image(&BuildOptions::new(&opts.board)?)?.out_dir,
    };
    let v1 = version_of(&image_dir)?;
    let v2 = format!("{v1}.2");
    let img2 = crate::testing::test_release(&image_dir, &v2, Vec::new())?;

    eprintln!("bench: one machine alone, reboot strategy reboot");
    let alone = single_update(&image_dir, &img2, &v1, &v2)?;

    eprintln!("bench: {MACHINES} machines, etcd-lock");
    let (feed_dir, server, url) = feed()?;
    let window = fleet::window_start_now();
    let seeds = tempfile::tempdir()?;
    let mut machines = Vec::new();
    for n in 1..=MACHINES {
        let path = seeds.path().join(format!("{n}.yaml"));
        std::fs::write(&path, fleet::user_data(n, MACHINES, &url, &window))?;
        machines.push(machine(&image_dir, &path));
    }
    let power_on = Instant::now();
    let mut cluster = Cluster::start("bench-cluster", machines)?;
    cluster.wait_all(&ready_line(&v1, 'a'), PHASE)?;
    let vm = &mut cluster[0];
    let deadline = Instant::now() + PHASE;
    loop {
        let (_, out) = vm.run(&format!("{ETCDCTL} endpoint health --cluster 2>&1"), CMD)?;
        if out.matches(" is healthy").count() == MACHINES {
            break;
        }
        if Instant::now() > deadline {
            bail!("etcd never became healthy: {out}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let healthy = power_on.elapsed();

    let t = Instant::now();
    fleet::publish(&img2, feed_dir.path())?;
    let v2_ready = ready_line(&v2, 'b');
    wait_consoles(cluster.vms(), "the roll", |lines| {
        count(lines, &v2_ready) >= 1 && count(lines, "reboot lock released by") >= 1
    })?;
    let roll = t.elapsed();
    let holds: Vec<u64> = cluster
        .vms()
        .iter()
        .filter_map(|vm| {
            let h = lock_holds(&vm.transcript().lines());
            h.first().and_then(|(a, b)| b.map(|b| b.saturating_sub(*a)))
        })
        .collect();
    for vm in cluster.vms() {
        vm.qmp()?.quit()?;
    }
    server.stop();

    let s = |d: Duration| d.as_secs_f64();
    println!("\n== cluster of {MACHINES} ({MEMORY_MIB} MiB each, TCG, on this machine's cores)");
    println!(
        "  power-on → {MACHINES}-member etcd healthy      {:>6.0} s",
        s(healthy)
    );
    println!(
        "  rolling update, publish → all blessed  {:>6.0} s   reference: one machine alone {:.0} s, \
         × {MACHINES} = {:.0} s (ratio {:.2})",
        s(roll),
        s(alone),
        s(alone) * MACHINES as f64,
        s(roll) / (s(alone) * MACHINES as f64)
    );
    println!("  reboot-lock hold per machine (s)       {holds:?}");
    Ok(())
}

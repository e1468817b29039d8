//! `cargo xtask bench swarm`: Docker's swarm mode on three machines under
//! TCG, the figures the swarm issue asks for (printed, never asserted):
//! - `docker service create` of 3 replicas (image from the host's
//!   registry) → every machine's mesh port answering;
//! - a machine halted (QMP `stop`, as a power loss looks to the others) →
//!   its replica running on another machine;
//! - HTTP requests per second through the routing mesh on machine 1 next
//!   to the same image published in host mode on machine 1 (no mesh:
//!   straight to the local container), measured in the same run,
//!   alternating, medians of rounds: the mesh's overhead ratio.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::bench_containers::{free_port, IMAGE_NAME, PAGE};
use crate::build::{build_image, BuildOptions};
use crate::qemu::Machine;
use crate::registry::{self, push_web_image, Registry};
use crate::seed::SeedKind;
use crate::vm::{Cluster, Vm};

const MACHINES: usize = 3;
const MEMORY_MIB: u32 = 1280;
const DISK_BYTES: u64 = 4 << 30;
const CMD: Duration = Duration::from_secs(180);
const PHASE: Duration = Duration::from_secs(2400);
const MESH: u16 = 8080;
const DIRECT: u16 = 8082;
/// Each throughput round, per port.
const ROUND: Duration = Duration::from_secs(10);
const ROUNDS: usize = 3;
/// Client threads per measurement.
const CLIENTS: usize = 4;

pub struct Options {
    pub board: String,
    pub image: Option<PathBuf>,
}

fn page_ok(addr: SocketAddr) -> bool {
    matches!(registry::http_get(addr, "/", Duration::from_secs(3)), Ok((200, b)) if b.contains(PAGE))
}

fn wait_page(addr: SocketAddr, what: &str) -> Result<()> {
    let deadline = Instant::now() + PHASE;
    while !page_ok(addr) {
        if Instant::now() > deadline {
            bail!("{what}: {addr} never answered");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(())
}

fn run_ok(vm: &mut Vm, command: &str) -> Result<String> {
    let (rc, out) = vm.run(command, CMD)?;
    if rc != 0 {
        bail!("`{command}` failed: {out}");
    }
    Ok(out)
}

fn wait_output(vm: &mut Vm, command: &str, enough: impl Fn(&str) -> bool) -> Result<()> {
    let deadline = Instant::now() + PHASE;
    loop {
        let (_, out) = vm.run(command, CMD)?;
        if enough(&out) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("`{command}` never gave what was wanted; last: {out}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Requests per second `CLIENTS` threads get from `addr` in [`ROUND`].
fn throughput(addr: SocketAddr) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (done, stop) = (done.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if page_ok(addr) {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let t = Instant::now();
    std::thread::sleep(ROUND);
    stop.store(true, Ordering::Relaxed);
    for th in threads {
        let _ = th.join();
    }
    done.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub fn run(opts: &Options) -> Result<()> {
    let image_dir: PathBuf = match &opts.image {
        Some(dir) => dir.clone(),
        None => build_image(&BuildOptions::new(&opts.board)?)?.out_dir,
    };
    if let Some(why) = registry::missing_tools() {
        bail!("bench swarm needs the registry tools: {why}");
    }
    let registry = Registry::start()?;
    push_web_image(&registry, &image_dir, PAGE, IMAGE_NAME)?;
    let reg = registry.guest_host();
    let window = crate::fleet::window_start_now();
    let seeds = tempfile::tempdir()?;
    let mut mesh = Vec::new();
    let mut direct = Vec::new();
    let mut machines = Vec::new();
    for n in 1..=MACHINES {
        let path = seeds.path().join(format!("{n}.yaml"));
        // No feed: nothing to update during the bench.
        let text = crate::fleet::swarm_user_data(n, MACHINES, "http://10.0.2.2:9", &window, &reg);
        std::fs::write(&path, text)?;
        let mut m = Machine::new(crate::bench_containers::boot_disk(&image_dir));
        m.memory_mib = MEMORY_MIB;
        m.disk_size = Some(DISK_BYTES);
        m.user_data = Some((SeedKind::NoCloud, path));
        let (a, b) = (free_port()?, free_port()?);
        mesh.push(SocketAddr::from(([127, 0, 0, 1], a)));
        direct.push(SocketAddr::from(([127, 0, 0, 1], b)));
        m.host_forwards = vec![(a, MESH), (b, DIRECT)];
        machines.push(m);
    }
    eprintln!("bench: booting {MACHINES} machines that form a swarm from user-data");
    let power_on = Instant::now();
    let mut cluster = Cluster::start("bench-swarm", machines)?;
    cluster.wait_all("slipway: swarm: member: node", PHASE)?;
    wait_output(
        &mut cluster[0],
        "docker node ls --format '{{.Status}} {{.ManagerStatus}}'",
        |o| {
            o.lines()
                .filter(|l| {
                    l.starts_with("Ready ") && (l.ends_with("Leader") || l.ends_with("Reachable"))
                })
                .count()
                == MACHINES
        },
    )?;
    let formed = power_on.elapsed();

    let t = Instant::now();
    run_ok(
        &mut cluster[0],
        &format!("docker service create --detach --name web --replicas 3 -p {MESH}:80 {reg}/{IMAGE_NAME}"),
    )?;
    for a in &mesh {
        wait_page(*a, "the replicated service")?;
    }
    let create = t.elapsed();

    // The same image on every node in host mode: no mesh in the way.
    run_ok(
        &mut cluster[0],
        &format!(
            "docker service create --detach --name direct --mode global \
             --publish mode=host,target=80,published={DIRECT} {reg}/{IMAGE_NAME}"
        ),
    )?;
    wait_page(direct[0], "the host-mode service")?;
    let (mut through_mesh, mut straight) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        through_mesh.push(throughput(mesh[0]));
        straight.push(throughput(direct[0]));
    }
    let (m, d) = (median(through_mesh.clone()), median(straight.clone()));
    run_ok(&mut cluster[0], "docker service rm direct")?;

    // Machine 3 halted: how long until its replica runs elsewhere.
    let t = Instant::now();
    cluster[2].qmp()?.execute("stop", None)?;
    wait_output(
        &mut cluster[0],
        "docker service ps web --filter desired-state=running --format '{{.Node}} {{.CurrentState}}'",
        |o| {
            let running: Vec<&str> = o.lines().filter(|l| l.contains("Running")).collect();
            running.len() == 3 && running.iter().all(|l| !l.starts_with("node3 "))
        },
    )
    .context("machine 3's replica never moved")?;
    let moved = t.elapsed();
    for vm in cluster.vms() {
        let _ = vm.qmp().and_then(|mut q| q.quit());
    }

    println!("bench swarm ({MACHINES} machines, TCG, {MEMORY_MIB} MiB each):");
    println!(
        "  power-on → 3 managers (etcd, dockerd, init/join):  {:>7.1} s",
        formed.as_secs_f64()
    );
    println!(
        "  service create (3 replicas) → all machines answer: {:>7.1} s",
        create.as_secs_f64()
    );
    println!(
        "  machine halted → its replica running elsewhere:    {:>7.1} s",
        moved.as_secs_f64()
    );
    println!(
        "  HTTP through the routing mesh on machine 1:        {m:>7.1} req/s (rounds {})",
        fmt_rounds(&through_mesh)
    );
    println!(
        "  HTTP to the host-mode container on machine 1:      {d:>7.1} req/s (rounds {})",
        fmt_rounds(&straight)
    );
    println!(
        "  mesh / direct:                                     {:>7.2} ({CLIENTS} clients, {} s rounds, medians of {ROUNDS})",
        if d > 0.0 { m / d } else { 0.0 },
        ROUND.as_secs()
    );
    Ok(())
}

fn fmt_rounds(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.1}"))
        .collect::<Vec<_>>()
        .join(", ")
}

//! Docker's swarm mode across three machines of the image under test,
//! formed from user-data alone (`coreos.swarm`, join tokens through the
//! etcd cluster `coreos.etcd2` forms), booted once; every check runs on
//! that one boot, in order:
//!
//! 1. The swarm: one machine initialised it, the other two joined through
//!    etcd; three Ready managers; each node carries the label its
//!    user-data gave.
//! 2. A replicated web service from the host's registry (Debian's
//!    `docker-registry`): three replicas on three nodes, reached from the
//!    host through the routing mesh on every machine; a service pinned by
//!    a label constraint to machine 1 answers on machines 2 and 3 too (the
//!    mesh, not a local container); a constraint no node meets leaves the
//!    service pending with the scheduler's reason.
//! 3. Machine 3 is halted (QMP `stop`: from the swarm's side, a machine
//!    that lost power) and its replica comes back on the others; it is
//!    resumed and rejoins.
//! 4. A rolling OS update under etcd-lock: each machine drains itself
//!    before its reboot and is active again after the healthy boot, while
//!    a poller on the host asks every machine's mesh port for the page;
//!    the failed requests are counted (machines not rebooting must keep
//!    answering). No machine initialises or joins again after a reboot.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use xtask::bench_containers::{free_port, IMAGE_NAME, PAGE};
use xtask::fleet::{self, count, lock_holds, ready_line};
use xtask::qemu::Machine;
use xtask::registry::{self, push_web_image, Registry};
use xtask::seed::SeedKind;
use xtask::serve::{ServeOptions, Server};
use xtask::testing::{in_ci, test_release, vm_test_image};
use xtask::vm::{Cluster, Vm};

const MACHINES: usize = 3;
/// dockerd, containerd and etcd side by side, with room for page cache.
const MEMORY_MIB: u32 = 1280;
/// Three guests share two host cores under TCG.
const BOOT: Duration = Duration::from_secs(1200);
const CMD: Duration = Duration::from_secs(180);
const DISK_BYTES: u64 = 4 << 30;
/// From the ready lines to three managers: etcd forms, dockerd starts
/// (its first start reads ~100 MB of programs from the xz root), the
/// swarm is initialised and joined.
const SWARM_UP: Duration = Duration::from_secs(1500);
/// From `docker service create` to every machine answering: three pulls
/// from the host's registry under TCG.
const SERVICE_UP: Duration = Duration::from_secs(900);
/// Swarm notices a node gone after its heartbeats stop (5 s period).
const RESCHEDULE: Duration = Duration::from_secs(600);
const ROLL: Duration = Duration::from_secs(3000);
/// Guest ports the mesh publishes.
const WEB: u16 = 8080;
const PINNED: u16 = 8081;

fn ok(vm: &mut Vm, command: &str) -> String {
    let (rc, out) = vm.run(command, CMD).unwrap();
    assert_eq!(rc, 0, "`{command}` failed:\n{out}");
    out.trim().to_string()
}

/// Runs `command` until `enough` holds for its output; panics with the
/// last output and the agent's log after `timeout`.
fn wait_until(
    vm: &mut Vm,
    command: &str,
    timeout: Duration,
    enough: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let (_, out) = vm.run(command, CMD).unwrap();
        if enough(&out) {
            return out;
        }
        if Instant::now() > deadline {
            let (_, log) = vm
                .run(
                    "cat /etc/slipway/swarm.conf; \
                     tail -n 30 /var/log/services/slipway-swarm.service.log; \
                     tail -n 20 /var/log/services/docker.service.log",
                    CMD,
                )
                .unwrap();
            panic!(
                "`{command}` never gave what was wanted within {} s; last output:\n{out}\n\
                 logs:\n{log}\nconsole ({}):\n{}",
                timeout.as_secs(),
                vm.log_path().display(),
                vm.transcript().tail(30)
            );
        }
        std::thread::sleep(Duration::from_secs(5));
    }
}

/// Nodes that are Ready managers (Leader or Reachable) in the output of
/// `docker node ls --format '{{.Hostname}} {{.Status}} {{.ManagerStatus}}'`.
fn ready_managers(node_ls: &str) -> usize {
    node_ls
        .lines()
        .filter(|l| l.contains(" Ready ") && (l.ends_with("Leader") || l.ends_with("Reachable")))
        .count()
}

fn page_ok(addr: SocketAddr) -> bool {
    matches!(registry::http_get(addr, "/", Duration::from_secs(3)), Ok((200, body)) if body.contains(PAGE))
}

fn wait_pages(addrs: &[SocketAddr], timeout: Duration, what: &str) {
    let deadline = Instant::now() + timeout;
    for (i, a) in addrs.iter().enumerate() {
        while !page_ok(*a) {
            assert!(
                Instant::now() < deadline,
                "{what}: machine {} ({a}) never answered",
                i + 1
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// `docker service ps` lines of the running tasks: `node state`.
fn running_tasks(vm: &mut Vm, service: &str) -> Vec<String> {
    ok(
        vm,
        &format!(
            "docker service ps {service} --filter desired-state=running \
             --format '{{{{.Node}}}} {{{{.CurrentState}}}}'"
        ),
    )
    .lines()
    .map(str::to_string)
    .collect()
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One request of the poller: when (UNIX ms), to which machine, and
/// how long the answer took (ms) or why there was none.
type Sample = (u64, usize, Result<u64, String>);

/// Generous, since three TCG guests share two cores and one of them may
/// be booting: a request this slow is counted as slow, not as failed.
const POLL_TIMEOUT: Duration = Duration::from_secs(10);
const SLOW_MS: u64 = 3000;

fn ask(addr: SocketAddr) -> Result<u64, String> {
    let t = Instant::now();
    match registry::http_get(addr, "/", POLL_TIMEOUT) {
        Ok((200, body)) if body.contains(PAGE) => Ok(t.elapsed().as_millis() as u64),
        Ok((code, body)) => Err(format!("HTTP {code} {:.60}", body.trim())),
        Err(e) => Err(format!("{e:#}").chars().take(100).collect()),
    }
}

/// Asks each machine's mesh port for the page in turn until stopped.
fn poll(addrs: Vec<SocketAddr>, stop: Arc<AtomicBool>, out: Arc<Mutex<Vec<Sample>>>) {
    while !stop.load(Ordering::Relaxed) {
        for (i, a) in addrs.iter().enumerate() {
            let t = unix_ms();
            let answer = ask(*a);
            out.lock().unwrap().push((t, i + 1, answer));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn swarm_forms_from_user_data_serves_through_the_mesh_and_survives_a_rolling_update() {
    let test = "swarm";
    let started = Instant::now();
    let Some(image) = vm_test_image(test) else {
        return;
    };
    if let Some(why) = registry::missing_tools() {
        assert!(!in_ci(), "{test}: cannot run in CI: {why}");
        eprintln!("{test}: SKIPPED (not in CI): {why}");
        return;
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(image.join("manifest.json")).unwrap()).unwrap();
    let v1 = manifest["version"].as_str().unwrap().to_string();
    let v2 = format!("{v1}.2");
    let release = {
        let (image, v2) = (image.clone(), v2.clone());
        std::thread::spawn(move || {
            test_release(&image, &v2, Vec::new()).unwrap_or_else(|e| panic!("building {v2}: {e:#}"))
        })
    };
    let registry = Registry::start().unwrap();
    push_web_image(&registry, &image, PAGE, IMAGE_NAME).unwrap();
    let reg = registry.guest_host();
    let feed_dir = tempfile::tempdir().unwrap();
    let server = Server::start(ServeOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        log: false,
        ..ServeOptions::new(feed_dir.path())
    })
    .unwrap();
    let feed = format!("http://10.0.2.2:{}", server.addr.port());
    let window = fleet::window_start_now();

    let seeds = tempfile::tempdir().unwrap();
    let mut web = Vec::new();
    let mut pinned = Vec::new();
    let machines: Vec<Machine> = (1..=MACHINES)
        .map(|n| {
            let path = seeds.path().join(format!("{n}.yaml"));
            let text = fleet::swarm_user_data(n, MACHINES, &feed, &window, &reg);
            std::fs::write(&path, text).unwrap();
            let mut m = Machine::new(image.join("disk.qcow2"));
            m.memory_mib = MEMORY_MIB;
            m.disk_size = Some(DISK_BYTES);
            m.user_data = Some((SeedKind::NoCloud, path));
            let (w, p) = (free_port().unwrap(), free_port().unwrap());
            web.push(SocketAddr::from(([127, 0, 0, 1], w)));
            pinned.push(SocketAddr::from(([127, 0, 0, 1], p)));
            m.host_forwards = vec![(w, WEB), (p, PINNED)];
            m
        })
        .collect();
    let mut cluster = Cluster::start(test, machines).unwrap();
    cluster.wait_all("slipway: ready ", BOOT).unwrap();
    eprintln!(
        "{test}: ready after {:.0} s",
        started.elapsed().as_secs_f64()
    );

    // 1. The swarm, from user-data alone.
    cluster
        .wait_all("slipway: swarm: member: node", SWARM_UP)
        .unwrap();
    let nodes = wait_until(
        &mut cluster[0],
        "docker node ls --format '{{.Hostname}} {{.Status}} {{.Availability}} {{.ManagerStatus}}'",
        SWARM_UP,
        |out| {
            out.lines()
                .filter(|l| {
                    l.contains(" Ready Active ")
                        && (l.ends_with("Leader") || l.ends_with("Reachable"))
                })
                .count()
                == MACHINES
        },
    );
    eprintln!(
        "{test}: {MACHINES} managers after {:.0} s:\n{nodes}",
        started.elapsed().as_secs_f64()
    );
    let consoles: Vec<Vec<String>> = cluster
        .vms()
        .iter()
        .map(|vm| vm.transcript().lines())
        .collect();
    let inits: usize = consoles
        .iter()
        .map(|l| count(l, "slipway: swarm: initialised a new swarm"))
        .sum();
    let joins: usize = consoles
        .iter()
        .map(|l| count(l, "slipway: swarm: joined the swarm as a manager"))
        .sum();
    assert_eq!(
        (inits, joins),
        (1, MACHINES - 1),
        "one init, the others join"
    );
    for n in 1..=MACHINES {
        // The agents set them right after joining; a round may pass first.
        let command = format!(
            "docker node inspect node{n} --format 'label={{{{index .Spec.Labels \"machine\"}}}}'"
        );
        let want = format!("label={n}");
        wait_until(&mut cluster[n - 1], &command, CMD, |o| {
            o.lines().any(|l| l.trim() == want)
        });
    }
    // coreos.etcd2's drop-in lives under /run/systemd/system, which would
    // make dockerd pick the systemd cgroup driver (no systemd: no
    // container could start); the image pins cgroupfs.
    ok(&mut cluster[0], "test -d /run/systemd/system");
    assert_eq!(
        ok(&mut cluster[0], "docker info --format '{{.CgroupDriver}}'"),
        "cgroupfs"
    );
    // The swarm's ports listen on the private address (what the kernel's
    // VXLAN socket does is the kernel's: printed for the record).
    let sockets = ok(
        &mut cluster[0],
        "netstat -tuln | grep -E ':(2377|7946|4789) '",
    );
    eprintln!("{test}: swarm sockets on machine 1:\n{sockets}");
    for l in sockets.lines().filter(|l| l.contains(":2377 ")) {
        assert!(l.contains("10.77.0.1:2377"), "2377 beyond the LAN: {l}");
    }
    // The join tokens are in etcd, where the joiners read them.
    let token = ok(
        &mut cluster[1],
        &format!(
            "{} get slipway/swarm/join-token/worker --print-value-only",
            fleet::ETCDCTL
        ),
    );
    assert!(token.starts_with("SWMTKN-1-"), "{token}");

    // 2. A replicated service, through the mesh on every machine.
    let t = Instant::now();
    ok(
        &mut cluster[0],
        &format!(
            "docker service create --detach --name web --replicas 3 -p {WEB}:80 {reg}/{IMAGE_NAME}"
        ),
    );
    wait_pages(&web, SERVICE_UP, "the replicated service");
    let tasks = wait_until(
        &mut cluster[0],
        "docker service ls --format '{{.Name}} {{.Replicas}}'",
        SERVICE_UP,
        |o| o.contains("web 3/3"),
    );
    eprintln!(
        "{test}: service create to every machine answering: {:.0} s ({tasks})",
        t.elapsed().as_secs_f64()
    );
    let mut on: Vec<String> = running_tasks(&mut cluster[0], "web")
        .iter()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    on.sort();
    assert_eq!(on, ["node1", "node2", "node3"], "spread over the nodes");
    // Pinned to machine 1 by its label; machines 2 and 3 answer anyway.
    ok(
        &mut cluster[0],
        &format!(
            "docker service create --detach --name pinned --constraint node.labels.machine==1 \
             -p {PINNED}:80 {reg}/{IMAGE_NAME}"
        ),
    );
    wait_pages(&pinned, SERVICE_UP, "the pinned service");
    let where_pinned = running_tasks(&mut cluster[0], "pinned");
    assert!(
        where_pinned.len() == 1 && where_pinned[0].starts_with("node1 "),
        "{where_pinned:?}"
    );
    // A constraint nobody meets: pending, with the scheduler's reason.
    ok(
        &mut cluster[0],
        &format!("docker service create --detach --name nowhere --constraint node.labels.machine==9 {reg}/{IMAGE_NAME}"),
    );
    let pending = wait_until(
        &mut cluster[0],
        "docker service ps nowhere --no-trunc --format '{{.CurrentState}} | {{.Error}}'",
        CMD,
        |o| o.contains("Pending") && o.contains("no suitable node"),
    );
    eprintln!("{test}: unsatisfiable constraint: {pending}");
    ok(&mut cluster[0], "docker service rm pinned nowhere");

    // 3. Machine 3 loses power (halted); its replica moves.
    let t = Instant::now();
    cluster[2].qmp().unwrap().execute("stop", None).unwrap();
    wait_until(&mut cluster[0], "docker service ps web --filter desired-state=running --format '{{.Node}} {{.CurrentState}}'", RESCHEDULE, |o| {
        let lines: Vec<&str> = o.lines().filter(|l| l.contains("Running")).collect();
        lines.len() == 3 && lines.iter().all(|l| !l.starts_with("node3 "))
    });
    let moved = t.elapsed();
    eprintln!(
        "{test}: machine 3 halted; its replica running elsewhere after {:.0} s",
        moved.as_secs_f64()
    );
    wait_pages(&web[..2], CMD, "machines 1 and 2 after machine 3 stopped");
    // With one of three managers gone, another reboot would cost the
    // quorum: the drain an update runs refuses (exit 75) and changes nothing.
    let (rc, out) = cluster[0]
        .run("slipway-swarm drain --timeout 60", CMD)
        .unwrap();
    assert_eq!(rc, 75, "drain with a manager down:\n{out}");
    assert!(out.contains("below the quorum of 2"), "{out}");
    let availability = ok(
        &mut cluster[0],
        "docker node inspect self --format '{{.Spec.Availability}}'",
    );
    assert_eq!(availability, "active");
    assert!(
        !ok(&mut cluster[0], "ls /var/lib/slipway/swarm/ 2>&1 || true")
            .contains("drained-for-update")
    );
    cluster[2].qmp().unwrap().execute("cont", None).unwrap();
    wait_until(
        &mut cluster[0],
        "docker node ls --format '{{.Hostname}} {{.Status}} {{.ManagerStatus}}'",
        RESCHEDULE,
        |o| ready_managers(o) == MACHINES,
    );
    eprintln!(
        "{test}: machine 3 back after {:.0} s",
        t.elapsed().as_secs_f64()
    );

    // 3b. Machine 3 leaves the swarm (demoted first, as a manager must be)
    // right after the manager token was rotated: the copy in etcd is stale
    // until a manager's agent publishes the new one (every minute). Its
    // agent notices, retries with backoff, and rejoins as a new manager.
    let old_id = ok(&mut cluster[2], "docker info --format '{{.Swarm.NodeID}}'");
    let rejoins_before = count(
        &cluster[2].transcript().lines(),
        "slipway: swarm: joined the swarm as a manager",
    );
    ok(
        &mut cluster[0],
        "docker swarm join-token --rotate --quiet manager",
    );
    ok(&mut cluster[0], "docker node demote node3");
    ok(&mut cluster[2], "docker swarm leave");
    wait_until(
        &mut cluster[0],
        "docker node ls --format '{{.ID}} {{.Status}}'",
        RESCHEDULE,
        |o| o.contains(&format!("{old_id} Down")),
    );
    ok(&mut cluster[0], &format!("docker node rm {old_id}"));
    cluster[2]
        .wait_line(
            |l| l.contains("slipway: swarm: joined the swarm as a manager"),
            RESCHEDULE,
        )
        .unwrap();
    let lines = cluster[2].transcript().lines();
    assert_eq!(
        count(&lines, "slipway: swarm: joined the swarm as a manager"),
        rejoins_before + 1
    );
    let stale = count(&lines, "invalid join token") > 0;
    wait_until(
        &mut cluster[0],
        "docker node ls --format '{{.Hostname}} {{.Status}} {{.ManagerStatus}}'",
        RESCHEDULE,
        |o| ready_managers(o) == MACHINES && o.lines().count() == MACHINES,
    );
    eprintln!(
        "{test}: machine 3 left and rejoined as a new manager (stale token tried first: {stale})"
    );

    // What each machine said about joining before the update's reboots.
    let consoles: Vec<Vec<String>> = cluster
        .vms()
        .iter()
        .map(|vm| vm.transcript().lines())
        .collect();

    // 4. The rolling update, polled from the host throughout, from a
    // swarm whose mesh answers everywhere (machine 3's, rebuilt after its
    // rejoin, can take a while under TCG).
    wait_pages(&web, SERVICE_UP, "every machine before the rolling update");
    let img2 = release.join().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let poller = {
        let (addrs, stop, samples) = (web.clone(), stop.clone(), samples.clone());
        std::thread::spawn(move || poll(addrs, stop, samples))
    };
    let t = Instant::now();
    fleet::publish(&img2, feed_dir.path()).unwrap();
    let v2_ready = ready_line(&v2, 'b');
    let deadline = Instant::now() + ROLL;
    loop {
        let done = cluster.vms().iter().all(|vm| {
            let lines = vm.transcript().lines();
            count(&lines, &v2_ready) >= 1 && count(&lines, "reboot lock released by") >= 1
        });
        if done {
            break;
        }
        if Instant::now() > deadline {
            let tails: Vec<String> = cluster
                .vms()
                .iter()
                .map(|vm| vm.transcript().tail(40))
                .collect();
            panic!(
                "the roll to {v2} did not finish within {} s:\n{}",
                ROLL.as_secs(),
                tails.join("\n---\n")
            );
        }
        std::thread::sleep(Duration::from_secs(5));
    }
    // The poller goes on until every machine's mesh port has answered
    // again (after its engine restarted and rebuilt the mesh's rules).
    let deadline = Instant::now() + SERVICE_UP;
    while !web.iter().all(|a| page_ok(*a)) {
        assert!(
            Instant::now() < deadline,
            "after the roll, not every machine's mesh port answers within {} s",
            SERVICE_UP.as_secs()
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    poller.join().unwrap();
    let roll = t.elapsed();
    let samples = samples.lock().unwrap().clone();

    let mut holds = Vec::new();
    for (i, vm) in cluster.vms().iter().enumerate() {
        let lines = vm.transcript().lines();
        let h = lock_holds(&lines);
        assert_eq!(h.len(), 1, "machine {}: lock holds {h:?}", i + 1);
        let (taken, released) = (h[0].0, h[0].1.expect("released"));
        holds.push((taken * 1000, released * 1000));
        assert_eq!(
            count(&lines, "slipway: swarm: draining node"),
            1,
            "machine {} drained once",
            i + 1
        );
        // Its tasks ran elsewhere before it rebooted (not "drain incomplete").
        assert_eq!(
            count(&lines, "drained in"),
            1,
            "machine {} drained before its reboot",
            i + 1
        );
        assert_eq!(
            count(&lines, "active again after the update"),
            1,
            "machine {} active again",
            i + 1
        );
        // Already a member after its reboot: no init, no join.
        assert_eq!(
            count(&lines, "slipway: swarm: initialised") + count(&lines, "slipway: swarm: joined"),
            count(&consoles[i], "slipway: swarm: initialised")
                + count(&consoles[i], "slipway: swarm: joined"),
            "machine {} joined again after its reboot",
            i + 1
        );
    }
    // Every request, for a closer look: target/slipway/vm-logs/swarm-requests.tsv.
    let tsv: String = samples
        .iter()
        .map(|(t, m, a)| match a {
            Ok(ms) => format!("{t}\t{m}\tok\t{ms}\n"),
            Err(e) => format!("{t}\t{m}\tfailed\t{e}\n"),
        })
        .collect();
    let tsv_path = cluster[0].log_path().with_file_name("swarm-requests.tsv");
    std::fs::write(&tsv_path, tsv).unwrap();
    // A machine's own port is out from taking the lock (it drains, then
    // reboots) until it answers again after the reboot (its engine has
    // started and rebuilt the mesh's rules): requests to it then are not
    // counted. Every other request is, and is the service's.
    let mut out_windows = Vec::new();
    for (m, (taken, released)) in holds.iter().enumerate() {
        let back = samples
            .iter()
            .find(|(t, n, a)| *n == m + 1 && *t > *released && a.is_ok())
            .map(|s| s.0)
            .unwrap_or_else(|| {
                panic!(
                    "machine {}'s mesh port never answered after its reboot",
                    m + 1
                )
            });
        eprintln!(
            "{test}: machine {}: lock held {:.0} s; its port answered again {:.1} s after the lock was freed",
            m + 1,
            (released - taken) as f64 / 1000.0,
            (back - released) as f64 / 1000.0
        );
        out_windows.push((taken.saturating_sub(5000), back));
    }
    let out = |m: usize, t: u64| t >= out_windows[m - 1].0 && t < out_windows[m - 1].1;
    let counted: Vec<&Sample> = samples.iter().filter(|(t, m, _)| !out(*m, *t)).collect();
    let failed: Vec<&&Sample> = counted.iter().filter(|(_, _, a)| a.is_err()).collect();
    let slow = counted
        .iter()
        .filter(|(_, _, a)| a.as_ref().is_ok_and(|ms| *ms > SLOW_MS))
        .count();
    let mut latencies: Vec<u64> = counted
        .iter()
        .filter_map(|(_, _, a)| a.as_ref().ok().copied())
        .collect();
    latencies.sort_unstable();
    let median = latencies.get(latencies.len() / 2).copied().unwrap_or(0);
    // The longest time no machine answered at all.
    let mut gap = 0u64;
    let mut last_ok = samples.first().map_or(0, |s| s.0);
    for (t, _, a) in &samples {
        if a.is_ok() {
            gap = gap.max(t - last_ok);
            last_ok = *t;
        }
    }
    let mut reasons: std::collections::BTreeMap<String, usize> = Default::default();
    for (_, _, a) in &failed {
        if let Err(e) = a {
            *reasons.entry(e.clone()).or_default() += 1;
        }
    }
    eprintln!(
        "{test}: rolling update {:.0} s; {} requests; {} to machines in service: {} failed ({:.2} %), \
         {slow} slower than {} s, median {median} ms; {} to machines draining/rebooting/starting; \
         longest time without any answer {:.1} s; failures by reason: {reasons:?} (all in {})",
        roll.as_secs_f64(),
        samples.len(),
        counted.len(),
        failed.len(),
        100.0 * failed.len() as f64 / counted.len().max(1) as f64,
        SLOW_MS / 1000,
        samples.len() - counted.len(),
        gap as f64 / 1000.0,
        tsv_path.display()
    );
    assert!(
        counted.len() > 100,
        "too few requests to judge: {}",
        counted.len()
    );
    // The failed requests and the silence are figures, not assertions:
    // Docker's drain stops a node's tasks before their replacements run,
    // and swarm never moves tasks back to a node that returns, so late in
    // a rolling reboot a service whose tasks all sit on the draining node
    // answers nowhere until they run again (120 s once under TCG; see the
    // README).
    let nodes = ok(
        &mut cluster[0],
        "docker node ls --format '{{.Hostname}} {{.Status}} {{.Availability}}'",
    );
    assert_eq!(
        nodes
            .lines()
            .filter(|l| l.ends_with(" Ready Active"))
            .count(),
        MACHINES,
        "{nodes}"
    );
    for vm in cluster.vms() {
        vm.qmp().unwrap().quit().unwrap();
    }
    server.stop();
    eprintln!(
        "{test}: whole test {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

//! The fleet scenario: three machines of the image under test on one
//! private LAN (a switch in this process, unix sockets only:
//! `xtask::vm::Cluster`), each configured by user-data in the seeds' style
//! (`coreos.etcd2`, `coreos.swarm`, `reboot-strategy: etcd-lock`), booted
//! once. The three-machine boot is the most expensive thing the suite does
//! under TCG, so every check of the cluster and of the swarm runs on this
//! one boot, in order:
//!
//! 1. The LAN: each machine applied its own user-data (hostname
//!    `node<n>`), `eth1` carries the LAN MAC of its port and
//!    `10.77.0.<n>/24` from a `.network` unit, `eth0` keeps its DHCP lease
//!    from QEMU's user networking; machines reach each other (ICMP, HTTP),
//!    an address nobody holds does not answer, and the frames went through
//!    the switch.
//! 2. etcd: every member lists three started members, every endpoint is
//!    healthy, a key written on machine 1 is read on machine 3.
//! 3. The swarm, from user-data alone: one machine initialised it, the
//!    other two joined with tokens read from etcd; three Ready managers,
//!    each node with the label its user-data gave; the swarm's ports on the
//!    private address only.
//! 4. A replicated web service from the host's registry (Debian's
//!    `docker-registry`): three replicas on three nodes, reached from the
//!    host through the routing mesh on every machine; a service pinned by
//!    a label to machine 1 answers on machines 2 and 3 too; a constraint no
//!    node meets leaves its service pending with the scheduler's reason.
//! 5. Machine 3 is halted (QMP `stop`: a machine that lost power): its
//!    replica comes back on the others, and a drain on machine 1 refuses
//!    to cost the managers their quorum; machine 3 is resumed and is back.
//! 6. The machine that initialised the swarm leaves it right after the
//!    manager token was rotated, and its agent rejoins it by itself (it
//!    holds the init claim in etcd, and must not start a second swarm).
//! 7. A rolling update to v2 under etcd-lock: each machine holds the
//!    reboot lock once and no two holds overlap; each drains itself before
//!    its reboot and is active again after the healthy boot, while a poller
//!    on the host asks every machine's mesh port for the page; no machine
//!    initialises or joins the swarm again; the lock ends free, `max` 1.
//! 8. v3 fails its trial boots (a unit that exits 1): the one machine that
//!    takes the lock tries it three times, is back on v2, records the
//!    failure in etcd, is active in the swarm again and frees the lock; the
//!    other two never boot v3.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use xtask::bench_containers::{free_port, IMAGE_NAME, PAGE};
use xtask::fleet::{self, count, lan_ip, lock_holds, ready_line, ETCDCTL};
use xtask::qemu::Machine;
use xtask::registry::{self, push_web_image, Registry};
use xtask::seed::SeedKind;
use xtask::serve::{ServeOptions, Server};
use xtask::testing::{failing_unit, in_ci, test_release, vm_test_image};
use xtask::vm::{lan, Cluster, Vm};

const MACHINES: usize = 3;
/// dockerd, containerd and etcd side by side, with room for page cache.
const MEMORY_MIB: u32 = 1280;
/// Three guests share two host cores under TCG.
const BOOT: Duration = Duration::from_secs(1200);
const CMD: Duration = Duration::from_secs(180);
/// Each machine's disk (a thin qcow2 overlay: only what is written costs).
/// /var grows into it at first boot; the image alone leaves it 128 MiB,
/// less than etcd's preallocated WAL, the engine's images and an update.
const DISK_BYTES: u64 = 4 << 30;
/// slipway-networkd scans links every 5 s; it starts late in a slow boot.
const ADDRESS: Duration = Duration::from_secs(300);
/// From the LAN checks to a 3-member etcd cluster with a leader.
const ETCD_UP: Duration = Duration::from_secs(600);
/// From etcd to three managers: dockerd starts (its first start reads
/// ~100 MB of programs from the xz root), the swarm is initialised and
/// joined.
const SWARM_UP: Duration = Duration::from_secs(1500);
/// From `docker service create` to every machine answering: three pulls
/// from the host's registry under TCG.
const SERVICE_UP: Duration = Duration::from_secs(900);
/// Swarm notices a node gone after its heartbeats stop (5 s period).
const RESCHEDULE: Duration = Duration::from_secs(600);
/// From publishing a release to the whole fleet having rolled (installs
/// side by side, then three drains and reboots one at a time).
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
/// last output, the logs of etcd, the swarm agent and dockerd, and the
/// console after `timeout`.
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
                    "tail -n 20 /var/log/services/etcd.service.log; \
                     cat /etc/slipway/swarm.conf; \
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

/// Waits until `done` holds for the console lines of every machine.
fn wait_fleet(
    cluster: &mut Cluster,
    what: &str,
    timeout: Duration,
    done: impl Fn(&[String]) -> bool,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let states: Vec<bool> = cluster
            .vms()
            .iter()
            .map(|vm| done(&vm.transcript().lines()))
            .collect();
        if states.iter().all(|d| *d) {
            return;
        }
        if Instant::now() > deadline {
            let mut tails = String::new();
            for (i, vm) in cluster.vms().iter().enumerate() {
                tails.push_str(&format!(
                    "--- machine {} (done: {}), {}:\n{}\n",
                    i + 1,
                    states[i],
                    vm.log_path().display(),
                    vm.transcript().tail(40)
                ));
            }
            panic!("{what}: not done within {} s\n{tails}", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_secs(5));
    }
}

/// Whether `to` answers a ping from `vm`; a few tries, since the first
/// one also resolves the MAC and a guest slowed down by TCG may miss it.
fn pings(vm: &mut Vm, to: &str, tries: usize) -> (bool, String) {
    let mut out = String::new();
    for _ in 0..tries {
        let (rc, o) = vm.run(&format!("ping -c 1 -W 5 {to}"), CMD).unwrap();
        out = o;
        if rc == 0 {
            return (true, out);
        }
    }
    (false, out)
}

/// Step 1: Each machine's own user-data, addresses on the right NICs, and
/// machines reaching each other through the switch.
fn check_lan(cluster: &mut Cluster) {
    for (i, vm) in cluster.vms().iter_mut().enumerate() {
        let n = i + 1;
        wait_until(vm, "ip -4 addr show dev eth1", ADDRESS, |o| {
            o.contains(&format!("inet {}/24", lan_ip(n)))
        });
        assert_eq!(ok(vm, "hostname"), format!("node{n}"));
        assert_eq!(
            ok(vm, "cat /sys/class/net/eth1/address"),
            lan::mac_string(lan::mac(n))
        );
        // The user-mode NIC is untouched: still eth0, still DHCP.
        wait_until(vm, "ip -4 addr show dev eth0", ADDRESS, |o| {
            o.contains("inet 10.0.2.15/24")
        });
        let route = ok(vm, "ip -4 route show 10.77.0.0/24");
        assert!(route.contains("dev eth1"), "machine {n}: {route}");
    }
    for to in [2, 3] {
        let (answered, out) = pings(&mut cluster[0], &lan_ip(to), 3);
        assert!(answered, "machine 1 cannot ping machine {to}:\n{out}");
    }
    let (answered, out) = pings(&mut cluster[2], &lan_ip(1), 3);
    assert!(answered, "machine 3 cannot ping machine 1:\n{out}");
    // An address nobody holds stays silent: the answers above are real.
    let (answered, out) = pings(&mut cluster[0], &lan_ip(9), 1);
    assert!(!answered, "10.77.0.9 answered:\n{out}");
    // TCP across the LAN: machine 2 serves its hostname, machine 1 reads it.
    ok(
        &mut cluster[1],
        "mkdir -p /run/lan-www && hostname > /run/lan-www/name && \
         busybox httpd -p 8077 -h /run/lan-www",
    );
    // No `-T`: busybox 1.35's wget crashes with it (SIGSEGV); `run` has
    // its own timeout.
    let page = ok(
        &mut cluster[0],
        &format!("wget -q -O - http://{}:8077/name", lan_ip(2)),
    );
    assert_eq!(page, "node2");
    let stats = cluster.lan_stats();
    assert!(
        stats.received > 0 && stats.delivered > 0,
        "the switch saw no traffic: {stats:?}"
    );
    eprintln!("fleet: LAN switch: {stats:?}");
}

/// Step 2: Every member lists three started members; every endpoint is
/// healthy (each commits a proposal through the leader); a key written on
/// one machine is read on another.
fn check_etcd(cluster: &mut Cluster) {
    let started = Instant::now();
    for vm in cluster.vms() {
        wait_until(vm, &format!("{ETCDCTL} member list 2>&1"), ETCD_UP, |o| {
            o.lines().filter(|l| l.contains(", started, node")).count() == MACHINES
        });
        wait_until(
            vm,
            &format!("{ETCDCTL} endpoint health --cluster 2>&1"),
            ETCD_UP,
            |o| o.matches(" is healthy").count() == MACHINES,
        );
    }
    eprintln!(
        "fleet: etcd cluster of {MACHINES} healthy {:.0} s after the LAN checks",
        started.elapsed().as_secs_f64()
    );
    ok(
        &mut cluster[0],
        &format!("{ETCDCTL} put slipway-vm-test written-on-node1"),
    );
    assert_eq!(
        ok(
            &mut cluster[2],
            &format!("{ETCDCTL} get slipway-vm-test --print-value-only")
        ),
        "written-on-node1"
    );
}

fn lock_status(vm: &mut Vm) -> serde_json::Value {
    let out = ok(vm, "update-engine lock status --json 2>/dev/null");
    let json = out.find('{').map_or("", |i| &out[i..]);
    serde_json::from_str(json).unwrap_or_else(|e| panic!("lock status --json: {e}: {out}"))
}

/// Nodes that are Ready managers (Leader or Reachable) in the output of
/// `docker node ls --format '{{.Hostname}} {{.Status}} {{.ManagerStatus}}'`.
fn ready_managers(node_ls: &str) -> usize {
    node_ls
        .lines()
        .filter(|l| l.contains(" Ready ") && (l.ends_with("Leader") || l.ends_with("Reachable")))
        .count()
}

const NODE_LS: &str = "docker node ls --format '{{.Hostname}} {{.Status}} {{.ManagerStatus}}'";

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

/// Step 3: The swarm from user-data alone: one init, two joins through etcd,
/// three Ready managers with their labels, its ports on the LAN only.
fn check_swarm_formed(cluster: &mut Cluster, started: Instant) {
    cluster
        .wait_all("slipway: swarm: member: node", SWARM_UP)
        .unwrap();
    let nodes = wait_until(
        &mut cluster[0],
        "docker node ls --format '{{.Hostname}} {{.Status}} {{.Availability}} {{.ManagerStatus}}'",
        SWARM_UP,
        |o| {
            o.lines()
                .filter(|l| {
                    l.contains(" Ready Active ")
                        && (l.ends_with("Leader") || l.ends_with("Reachable"))
                })
                .count()
                == MACHINES
        },
    );
    eprintln!(
        "fleet: {MACHINES} swarm managers after {:.0} s:\n{nodes}",
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
    eprintln!("fleet: swarm sockets on machine 1:\n{sockets}");
    let managers: Vec<&str> = sockets.lines().filter(|l| l.contains(":2377 ")).collect();
    assert!(!managers.is_empty(), "nothing listens on 2377:\n{sockets}");
    for l in managers {
        assert!(l.contains("10.77.0.1:2377"), "2377 beyond the LAN: {l}");
    }
    // The join tokens are in etcd, where the joiners read them.
    let token = ok(
        &mut cluster[1],
        &format!("{ETCDCTL} get slipway/swarm/join-token/worker --print-value-only"),
    );
    assert!(token.starts_with("SWMTKN-1-"), "{token}");
}

/// Step 4: A replicated service through the mesh on every machine, a pinned
/// one, and one no node can take.
fn check_services(cluster: &mut Cluster, web: &[SocketAddr], pinned: &[SocketAddr], reg: &str) {
    let t = Instant::now();
    ok(
        &mut cluster[0],
        &format!(
            "docker service create --detach --name web --replicas 3 -p {WEB}:80 {reg}/{IMAGE_NAME}"
        ),
    );
    wait_pages(web, SERVICE_UP, "the replicated service");
    let tasks = wait_until(
        &mut cluster[0],
        "docker service ls --format '{{.Name}} {{.Replicas}}'",
        SERVICE_UP,
        |o| o.contains("web 3/3"),
    );
    eprintln!(
        "fleet: service create to every machine answering: {:.0} s ({tasks})",
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
    wait_pages(pinned, SERVICE_UP, "the pinned service");
    let where_pinned = running_tasks(&mut cluster[0], "pinned");
    assert!(
        where_pinned.len() == 1 && where_pinned[0].starts_with("node1 "),
        "{where_pinned:?}"
    );
    // A constraint nobody meets: pending, with the scheduler's reason.
    ok(
        &mut cluster[0],
        &format!(
            "docker service create --detach --name nowhere \
             --constraint node.labels.machine==9 {reg}/{IMAGE_NAME}"
        ),
    );
    let pending = wait_until(
        &mut cluster[0],
        "docker service ps nowhere --no-trunc --format '{{.CurrentState}} | {{.Error}}'",
        CMD,
        |o| o.contains("Pending") && o.contains("no suitable node"),
    );
    eprintln!("fleet: unsatisfiable constraint: {pending}");
    ok(&mut cluster[0], "docker service rm pinned nowhere");
}

/// Step 5: Machine 3 loses power (halted): its replica moves, and a drain on
/// machine 1 would cost the quorum, so it refuses and changes nothing.
fn check_power_loss(cluster: &mut Cluster, web: &[SocketAddr]) {
    let t = Instant::now();
    cluster[2].qmp().unwrap().execute("stop", None).unwrap();
    wait_until(
        &mut cluster[0],
        "docker service ps web --filter desired-state=running --format '{{.Node}} {{.CurrentState}}'",
        RESCHEDULE,
        |o| {
            let lines: Vec<&str> = o.lines().filter(|l| l.contains("Running")).collect();
            lines.len() == 3 && lines.iter().all(|l| !l.starts_with("node3 "))
        },
    );
    eprintln!(
        "fleet: machine 3 halted; its replica running elsewhere after {:.0} s",
        t.elapsed().as_secs_f64()
    );
    wait_pages(&web[..2], CMD, "machines 1 and 2 after machine 3 stopped");
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
    // A halted guest's clock stood still: set it from the host's, so the
    // times its daemon prints (the reboot lock's) compare with the others'.
    let now = unix_ms() / 1000;
    ok(&mut cluster[2], &format!("date -u -s @{now} >/dev/null"));
    wait_until(&mut cluster[0], NODE_LS, RESCHEDULE, |o| {
        ready_managers(o) == MACHINES
    });
    eprintln!(
        "fleet: machine 3 back after {:.0} s",
        t.elapsed().as_secs_f64()
    );
}

/// Step 6: The machine that initialised the swarm leaves it (demoted first, as a manager must be)
/// right after the manager token was rotated: the copy in etcd is stale
/// until a manager's agent publishes the new one (every minute). Its agent
/// notices, retries with backoff, and rejoins as a new manager.
fn check_leave_and_rejoin(cluster: &mut Cluster) {
    // The machine that initialised the swarm leaves: it holds the init
    // claim in etcd, and must join the swarm it made, not start another.
    let k = cluster
        .vms()
        .iter()
        .position(|vm| count(&vm.transcript().lines(), "initialised a new swarm") > 0)
        .expect("a machine initialised the swarm");
    let (n, other) = (k + 1, if k == 0 { 1 } else { 0 });
    let old_id = ok(&mut cluster[k], "docker info --format '{{.Swarm.NodeID}}'");
    let rejoins_before = count(
        &cluster[k].transcript().lines(),
        "slipway: swarm: joined the swarm as a manager",
    );
    ok(
        &mut cluster[other],
        "docker swarm join-token --rotate --quiet manager",
    );
    ok(&mut cluster[other], &format!("docker node demote node{n}"));
    // The demotion reaches the machine through the managers' log; a leave
    // while it still runs its manager part can time out ("context
    // deadline exceeded", seen once in CI), so it leaves as a worker.
    wait_until(
        &mut cluster[k],
        "docker info --format '{{.Swarm.ControlAvailable}}'",
        RESCHEDULE,
        |o| o.trim() == "false",
    );
    leave_swarm(&mut cluster[k]);
    wait_until(
        &mut cluster[other],
        "docker node ls --format '{{.ID}} {{.Status}}'",
        RESCHEDULE,
        |o| o.contains(&format!("{old_id} Down")),
    );
    ok(&mut cluster[other], &format!("docker node rm {old_id}"));
    cluster[k]
        .wait_line(
            |l| l.contains("slipway: swarm: joined the swarm as a manager"),
            RESCHEDULE,
        )
        .unwrap();
    let lines = cluster[k].transcript().lines();
    assert_eq!(
        count(&lines, "slipway: swarm: joined the swarm as a manager"),
        rejoins_before + 1
    );
    assert_eq!(
        count(&lines, "initialised a new swarm"),
        1,
        "machine {n} started a second swarm"
    );
    let stale = count(&lines, "invalid join token") > 0;
    wait_until(&mut cluster[other], NODE_LS, RESCHEDULE, |o| {
        ready_managers(o) == MACHINES && o.lines().count() == MACHINES
    });
    eprintln!(
        "fleet: machine {n}, which had initialised the swarm, left and rejoined as a new manager \
         (stale token tried first: {stale})"
    );
}

/// `docker swarm leave` on a worker, tried again if the engine's own
/// deadline ran out before it had left (under TCG stopping the node's
/// swarm parts can take longer than the engine waits).
fn leave_swarm(vm: &mut Vm) {
    let mut out = String::new();
    for _ in 0..3 {
        let (rc, o) = vm.run("docker swarm leave 2>&1", CMD).unwrap();
        out = o;
        if rc == 0 {
            return;
        }
        let state = ok(vm, "docker info --format '{{.Swarm.LocalNodeState}}'");
        eprintln!(
            "fleet: `docker swarm leave` said: {}; node state {state}",
            out.trim()
        );
        if state == "inactive" {
            return;
        }
        std::thread::sleep(Duration::from_secs(10));
    }
    panic!("machine 3 never left the swarm:\n{out}");
}

/// Step 7: v2 rolls across the fleet one reboot at a time under etcd-lock,
/// each machine drained before its reboot and active after it, while a
/// poller on the host asks every machine's mesh port for the page.
fn check_rolling_update(cluster: &mut Cluster, web: &[SocketAddr], img2: &Path, feed: &Path) {
    let v2 = manifest_version(img2);
    // What each machine said about joining before the update's reboots.
    let consoles: Vec<Vec<String>> = cluster
        .vms()
        .iter()
        .map(|vm| vm.transcript().lines())
        .collect();
    // From a swarm whose mesh answers everywhere (machine 3's, rebuilt
    // after its rejoin, can take a while under TCG).
    wait_pages(web, SERVICE_UP, "every machine before the rolling update");
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let poller = {
        let (addrs, stop, samples) = (web.to_vec(), stop.clone(), samples.clone());
        std::thread::spawn(move || poll(addrs, stop, samples))
    };
    let t = Instant::now();
    fleet::publish(img2, feed).unwrap();
    let v2_ready = ready_line(&v2, 'b');
    wait_fleet(cluster, &format!("the roll to {v2}"), ROLL, |lines| {
        count(lines, &v2_ready) >= 1 && count(lines, "reboot lock released by") >= 1
    });
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

    // One lock hold per machine, none overlapping another.
    let mut holds = Vec::new();
    for (i, vm) in cluster.vms().iter().enumerate() {
        let lines = vm.transcript().lines();
        let h = lock_holds(&lines);
        assert_eq!(h.len(), 1, "machine {}: lock holds {h:?}", i + 1);
        let released = h[0]
            .1
            .unwrap_or_else(|| panic!("machine {}: never released", i + 1));
        holds.push((h[0].0, released, i + 1));
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
    let mut sorted = holds.clone();
    sorted.sort();
    for pair in sorted.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0,
            "machines {} and {} held the reboot lock at once: {sorted:?}",
            pair[0].2,
            pair[1].2
        );
    }
    for vm in cluster.vms() {
        let status = ok(vm, "update-engine status");
        assert!(
            status.contains(&format!("booted: slot b running {v2}")),
            "{status}"
        );
    }
    let lock = lock_status(&mut cluster[0]);
    assert_eq!(lock["holders"], serde_json::json!([]), "{lock}");
    assert_eq!(lock["max"], 1, "{lock}");
    assert_eq!(lock["semaphore"], 1, "{lock}");
    report_availability(cluster, &holds, &samples, roll);
}

/// The poller's figures, printed, not asserted: Docker's drain stops a
/// node's tasks before their replacements run, and swarm never moves
/// tasks back to a node that returns, so late in a rolling reboot a
/// service whose tasks all sit on the draining node answers nowhere until
/// they run again (120 s once under TCG; see the README).
fn report_availability(
    cluster: &mut Cluster,
    holds: &[(u64, u64, usize)],
    samples: &[Sample],
    roll: Duration,
) {
    // Every request, for a closer look: target/slipway/vm-logs/fleet-requests.tsv.
    let tsv: String = samples
        .iter()
        .map(|(t, m, a)| match a {
            Ok(ms) => format!("{t}\t{m}\tok\t{ms}\n"),
            Err(e) => format!("{t}\t{m}\tfailed\t{e}\n"),
        })
        .collect();
    let tsv_path = cluster[0].log_path().with_file_name("fleet-requests.tsv");
    std::fs::write(&tsv_path, tsv).unwrap();
    // A machine's own port is out from taking the lock (it drains, then
    // reboots) until it answers again after the reboot (its engine has
    // started and rebuilt the mesh's rules): requests to it then are not
    // counted. Every other request is, and is the service's.
    let mut out_windows = vec![(0, 0); holds.len()];
    for &(taken, released, m) in holds {
        let (taken, released) = (taken * 1000, released * 1000);
        let back = samples
            .iter()
            .find(|(t, n, a)| *n == m && *t > released && a.is_ok())
            .map(|s| s.0)
            .unwrap_or_else(|| panic!("machine {m}'s mesh port never answered after its reboot"));
        eprintln!(
            "fleet: machine {m}: lock held {:.0} s; its port answered again {:.1} s after the lock was freed",
            (released - taken) as f64 / 1000.0,
            (back - released) as f64 / 1000.0
        );
        out_windows[m - 1] = (taken.saturating_sub(5000), back);
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
    for (t, _, a) in samples {
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
        "fleet: rolling update {:.0} s; {} requests; {} to machines in service: {} failed ({:.2} %), \
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
}

/// Step 8: v3 fails its trial boots on the first machine to take the lock;
/// nobody else boots it, and the swarm has all three nodes active after.
fn check_failed_release(cluster: &mut Cluster, img3: &Path, feed: &Path, v2: &str) {
    let v3 = manifest_version(img3);
    let t = Instant::now();
    fleet::publish(img3, feed).unwrap();
    let back = format!("{v3} failed its trial boots; back on {v2}");
    let refused_reboot = format!("not rebooting into {v3}");
    let refused_install = format!("not installing {v3}");
    wait_fleet(cluster, "the fleet turning v3 down", ROLL, |lines| {
        count(lines, &back) + count(lines, &refused_reboot) + count(lines, &refused_install) >= 1
    });
    let v3_ready = ready_line(&v3, 'a');
    let mut failed_on = Vec::new();
    for (i, vm) in cluster.vms().iter_mut().enumerate() {
        let lines = vm.transcript().lines();
        let tries = count(&lines, &v3_ready);
        if count(&lines, &back) > 0 {
            failed_on.push(i + 1);
            assert_eq!(tries, 3, "machine {}: v3 tried {tries} times", i + 1);
        } else {
            assert_eq!(tries, 0, "machine {} booted v3", i + 1);
        }
        let status = ok(vm, "update-engine status");
        assert!(
            status.contains(&format!("booted: slot b running {v2}")),
            "machine {}: {status}",
            i + 1
        );
    }
    assert_eq!(failed_on.len(), 1, "machines that tried v3: {failed_on:?}");
    let m = failed_on[0];
    // Back on v2, the machine that tried takes work again before the lock
    // is freed (its slot is blessed from before: the same hook runs).
    let deadline = Instant::now() + CMD;
    while count(
        &cluster[m - 1].transcript().lines(),
        "reboot lock released by",
    ) < 2
    {
        assert!(
            Instant::now() < deadline,
            "machine {m} kept the reboot lock after {v3}:\n{}",
            cluster[m - 1].transcript().tail(30)
        );
        std::thread::sleep(Duration::from_secs(5));
    }
    let lines = cluster[m - 1].transcript().lines();
    assert_eq!(
        count(&lines, "active again after the update"),
        2,
        "machine {m}"
    );
    let lock = lock_status(&mut cluster[0]);
    assert_eq!(lock["holders"], serde_json::json!([]), "{lock}");
    let record = ok(
        &mut cluster[1],
        &format!("{ETCDCTL} get slipway/updateengine/failed-releases/{v3} --print-value-only"),
    );
    assert!(record.contains("rolled_back_to"), "{record}");
    let nodes = wait_until(
        &mut cluster[0],
        "docker node ls --format '{{.Hostname}} {{.Status}} {{.Availability}}'",
        RESCHEDULE,
        |o| o.lines().filter(|l| l.ends_with(" Ready Active")).count() == MACHINES,
    );
    eprintln!(
        "fleet: {v3} turned down by machine {m} after {:.0} s; nodes:\n{nodes}",
        t.elapsed().as_secs_f64()
    );
}

fn manifest_version(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("manifest.json")).expect("manifest.json");
    let m: serde_json::Value = serde_json::from_str(&text).expect("manifest.json parses");
    m["version"].as_str().unwrap().to_string()
}

#[test]
fn fleet_forms_etcd_and_a_swarm_and_rolls_updates_one_reboot_at_a_time() {
    let started = Instant::now();
    let Some(image) = vm_test_image("fleet") else {
        return;
    };
    if let Some(why) = registry::missing_tools() {
        assert!(!in_ci(), "fleet: cannot run in CI: {why}");
        eprintln!("fleet: SKIPPED (not in CI): {why}");
        return;
    }
    // The releases build while the machines boot.
    let v1 = manifest_version(&image);
    let releases = {
        let image = image.clone();
        std::thread::spawn(move || {
            let build = |v: String, extra| {
                test_release(&image, &v, extra).unwrap_or_else(|e| panic!("building {v}: {e:#}"))
            };
            (
                build(format!("{v1}.2"), Vec::new()),
                build(format!("{v1}.3"), failing_unit()),
            )
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
    // QEMU's user network reaches the host's loopback at 10.0.2.2.
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
    let mut cluster = Cluster::start("fleet", machines).unwrap();
    cluster.wait_all("slipway: ready ", BOOT).unwrap();
    eprintln!(
        "fleet: {MACHINES} machines ready after {:.0} s",
        started.elapsed().as_secs_f64()
    );

    check_lan(&mut cluster);
    check_etcd(&mut cluster);
    check_swarm_formed(&mut cluster, started);
    check_services(&mut cluster, &web, &pinned, &reg);
    check_power_loss(&mut cluster, &web);
    check_leave_and_rejoin(&mut cluster);
    let (img2, img3) = releases.join().unwrap();
    check_rolling_update(&mut cluster, &web, &img2, feed_dir.path());
    check_failed_release(
        &mut cluster,
        &img3,
        feed_dir.path(),
        &manifest_version(&img2),
    );

    for vm in cluster.vms() {
        vm.qmp().unwrap().quit().unwrap();
    }
    server.stop();
    eprintln!("fleet: whole test {:.0} s", started.elapsed().as_secs_f64());
}

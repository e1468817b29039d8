//! A fleet of three machines of the image under test, booted once from
//! user-data in the seeds' style, on one private LAN (a switch in this
//! process, unix sockets only: `xtask::vm::Cluster`). Every check runs on
//! that one boot, in order:
//!
//! 1. The LAN: each machine applied its own user-data (hostname
//!    `node<n>`), `eth1` carries the LAN MAC of its port and
//!    `10.77.0.<n>/24` from a `.network` unit, `eth0` still has its DHCP
//!    lease from QEMU's user networking; machine 1 reaches machines 2 and 3
//!    (ICMP, HTTP), machine 3 reaches machine 1, an address nobody holds
//!    does not answer, and the frames went through the switch.
//! 2. etcd from `coreos.etcd2` (`$private_ipv4` from the `.network` unit,
//!    `etcd2.service` started by `coreos.units`): every member lists three
//!    started members, and a key written on machine 1 is read on machine 3.
//! 3. A rolling update under `reboot-strategy: etcd-lock`: v2 is published;
//!    all three install it side by side and reboot one at a time (each
//!    machine's lock hold, taken → released as its daemon prints them on
//!    the console, overlaps no other), all end on v2 blessed, and the lock
//!    is free with `max` unchanged.
//! 4. A release whose trial boot fails (v3, a unit that exits 1): the one
//!    machine that takes the lock tries it three times, is back on v2,
//!    records the failure in etcd and frees the lock; the other two never
//!    boot v3.

use std::time::{Duration, Instant};

use xtask::fleet::{self, count, lan_ip, lock_holds, ready_line, ETCDCTL};
use xtask::qemu::Machine;
use xtask::seed::SeedKind;
use xtask::serve::{ServeOptions, Server};
use xtask::testing::{failing_unit, test_release, vm_test_image};
use xtask::vm::{lan, Cluster, Vm};

const MACHINES: usize = 3;

/// One cluster at a time: the tests of this file would otherwise boot
/// their machines side by side (six TCG guests on two cores).
static ONE_CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());
/// Each guest's memory: enough for the services and a page cache under
/// TCG; three of them fit the CI machine many times over.
const MEMORY_MIB: u32 = 768;
/// Three guests under TCG share two host cores, so a boot takes about
/// three times as long as one alone (which takes up to a few minutes on a
/// loaded CI machine).
const BOOT: Duration = Duration::from_secs(1200);
const CMD: Duration = Duration::from_secs(120);
/// Each machine's disk (a thin qcow2 overlay: only what is written costs).
const DISK_BYTES: u64 = 4 << 30;
/// slipway-networkd scans links every 5 s; it starts late in a slow boot.
const ADDRESS: Duration = Duration::from_secs(300);

/// Boots [`MACHINES`] machines of the image under test on one LAN, machine
/// `n` with `user_data(n)` on a NoCloud seed, and waits until each is
/// ready and holds its LAN address on `eth1`. `None` when VM tests are
/// skipped (outside CI without an image).
fn boot_cluster(test: &str, user_data: impl Fn(usize) -> String) -> Option<Cluster> {
    let image = vm_test_image(test)?;
    let seeds = tempfile::tempdir().unwrap();
    let machines: Vec<Machine> = (1..=MACHINES)
        .map(|n| {
            let path = seeds.path().join(format!("{n}.yaml"));
            std::fs::write(&path, user_data(n)).unwrap();
            let mut m = Machine::new(image.join("disk.qcow2"));
            m.memory_mib = MEMORY_MIB;
            // /var grows into the disk at first boot; the image alone
            // leaves it 128 MiB, less than etcd's preallocated WAL (64 MB
            // a file) and a page cache of updates need.
            m.disk_size = Some(DISK_BYTES);
            m.user_data = Some((SeedKind::NoCloud, path));
            m
        })
        .collect();
    let started = Instant::now();
    // The seeds are written into each machine's own folder at start.
    let mut cluster = Cluster::start(test, machines).unwrap();
    cluster.wait_all("slipway: ready ", BOOT).unwrap();
    eprintln!(
        "{test}: {MACHINES} machines ready after {:.0} s",
        started.elapsed().as_secs_f64()
    );
    for (i, vm) in cluster.vms().iter_mut().enumerate() {
        let want = format!("inet {}/24", lan_ip(i + 1));
        wait_output(vm, "ip -4 addr show dev eth1", &want, ADDRESS);
    }
    eprintln!(
        "{test}: LAN addresses up after {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Some(cluster)
}

fn ok(vm: &mut Vm, command: &str) -> String {
    let (rc, out) = vm.run(command, CMD).unwrap();
    assert_eq!(rc, 0, "`{command}` failed:\n{out}");
    out.trim().to_string()
}

/// Runs `command` until its output contains `want`; panics with the last
/// output after `timeout`.
fn wait_output(vm: &mut Vm, command: &str, want: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let (_, out) = vm.run(command, CMD).unwrap();
        if out.contains(want) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "`{command}` did not show `{want}` within {} s; last output:\n{out}\n\
             console (see {}):\n{}",
            timeout.as_secs(),
            vm.log_path().display(),
            vm.transcript().tail(30)
        );
        std::thread::sleep(Duration::from_secs(2));
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

/// What the LAN must give every scenario: each machine's own user-data,
/// addresses on the right NICs, and machines reaching each other.
fn check_lan(cluster: &mut Cluster) {
    for (i, vm) in cluster.vms().iter_mut().enumerate() {
        let n = i + 1;
        assert_eq!(ok(vm, "hostname"), format!("node{n}"));
        assert_eq!(
            ok(vm, "cat /sys/class/net/eth1/address"),
            lan::mac_string(lan::mac(n))
        );
        // The user-mode NIC is untouched: still eth0, still DHCP.
        wait_output(vm, "ip -4 addr show dev eth0", "inet 10.0.2.15/24", ADDRESS);
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
    eprintln!("LAN switch: {stats:?}");
}

/// From the ready lines to a 3-member cluster with a leader.
const ETCD_UP: Duration = Duration::from_secs(600);
/// From publishing a release to the whole fleet having rolled (installs
/// side by side, then three reboots one at a time, each to a blessed boot).
const ROLL: Duration = Duration::from_secs(2400);

/// Waits until `done` holds for the console lines of every machine.
fn wait_fleet(
    cluster: &mut Cluster,
    what: &str,
    timeout: Duration,
    done: impl Fn(usize, &[String]) -> bool,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let states: Vec<bool> = cluster
            .vms()
            .iter()
            .enumerate()
            .map(|(i, vm)| done(i, &vm.transcript().lines()))
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

/// Runs `command` on `vm` until `enough` says its output is what is
/// wanted; panics with the last output after `timeout`.
fn wait_until(vm: &mut Vm, command: &str, timeout: Duration, enough: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        let (_, out) = vm.run(command, CMD).unwrap();
        if enough(&out) {
            return;
        }
        if Instant::now() > deadline {
            let (_, log) = vm
                .run(
                    "tail -n 40 /var/log/services/etcd.service.log; slipctl status etcd.service",
                    CMD,
                )
                .unwrap();
            panic!(
                "`{command}` never gave what was wanted within {} s; last output:\n{out}\n\
                 etcd's log:\n{log}\nconsole ({}):\n{}",
                timeout.as_secs(),
                vm.log_path().display(),
                vm.transcript().tail(30)
            );
        }
        std::thread::sleep(Duration::from_secs(3));
    }
}

/// Waits until `vm`'s member lists all [`MACHINES`] members as started.
fn wait_members_started(vm: &mut Vm) {
    wait_until(vm, &format!("{ETCDCTL} member list 2>&1"), ETCD_UP, |out| {
        out.lines()
            .filter(|l| l.contains(", started, node"))
            .count()
            == MACHINES
    });
}

fn check_etcd(cluster: &mut Cluster) {
    let started = Instant::now();
    // Every member lists three started members; every endpoint is healthy
    // (each commits a proposal through the leader).
    for vm in cluster.vms() {
        wait_members_started(vm);
        wait_until(
            vm,
            &format!("{ETCDCTL} endpoint health --cluster 2>&1"),
            ETCD_UP,
            |out| out.matches(" is healthy").count() == MACHINES,
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

fn manifest_version(dir: &std::path::Path) -> String {
    let text = std::fs::read_to_string(dir.join("manifest.json")).expect("manifest.json");
    let m: serde_json::Value = serde_json::from_str(&text).expect("manifest.json parses");
    m["version"].as_str().unwrap().to_string()
}

fn publish(image: &std::path::Path, dir: &std::path::Path) {
    fleet::publish(image, dir).unwrap_or_else(|e| panic!("publishing {}: {e:#}", image.display()));
}

#[test]
fn fleet_forms_etcd_and_rolls_updates_one_reboot_at_a_time() {
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let Some(image) = vm_test_image("fleet") else {
        return;
    };
    let v1 = manifest_version(&image);
    let (v2, v3) = (format!("{v1}.2"), format!("{v1}.3"));
    let img2 = test_release(&image, &v2, Vec::new()).unwrap();
    let img3 = test_release(&image, &v3, failing_unit()).unwrap();
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
    let Some(mut cluster) =
        boot_cluster("fleet", |n| fleet::user_data(n, MACHINES, &feed, &window))
    else {
        return;
    };

    // 1, 2: the LAN and etcd.
    check_lan(&mut cluster);
    check_etcd(&mut cluster);

    // 3. v2 rolls across the fleet one reboot at a time.
    let t_publish = Instant::now();
    publish(&img2, feed_dir.path());
    let v2_ready = ready_line(&v2, 'b');
    wait_fleet(&mut cluster, "the roll to v2", ROLL, |_, lines| {
        count(lines, &v2_ready) >= 1 && count(lines, "reboot lock released by") >= 1
    });
    let roll = t_publish.elapsed();
    let holds: Vec<_> = cluster
        .vms()
        .iter()
        .map(|vm| lock_holds(&vm.transcript().lines()))
        .collect();
    let mut all: Vec<(u64, u64, usize)> = Vec::new();
    for (i, h) in holds.iter().enumerate() {
        assert_eq!(h.len(), 1, "machine {}: lock holds {h:?}", i + 1);
        let (taken, released) = h[0];
        let released = released.unwrap_or_else(|| panic!("machine {}: never released", i + 1));
        all.push((taken, released, i + 1));
        eprintln!(
            "fleet: machine {} held the reboot lock {} s",
            i + 1,
            released - taken
        );
    }
    all.sort();
    for pair in all.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0,
            "machines {} and {} held the lock at once: {all:?}",
            pair[0].2,
            pair[1].2
        );
    }
    eprintln!(
        "fleet: publish to all {MACHINES} blessed on {v2}: {:.0} s",
        roll.as_secs_f64()
    );
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

    // 4. v3 fails its trial boots on the first machine to take the lock;
    // nobody else boots it.
    publish(&img3, feed_dir.path());
    let back = format!("{v3} failed its trial boots; back on {v2}");
    let refused_reboot = format!("not rebooting into {v3}");
    let refused_install = format!("not installing {v3}");
    wait_fleet(
        &mut cluster,
        "the fleet turning v3 down",
        ROLL,
        |_, lines| {
            count(lines, &back) + count(lines, &refused_reboot) + count(lines, &refused_install)
                >= 1
        },
    );
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
    let lock = lock_status(&mut cluster[0]);
    assert_eq!(lock["holders"], serde_json::json!([]), "{lock}");
    let record = ok(
        &mut cluster[1],
        &format!("{ETCDCTL} get slipway/updateengine/failed-releases/{v3} --print-value-only"),
    );
    assert!(record.contains("rolled_back_to"), "{record}");

    for vm in cluster.vms() {
        vm.qmp().unwrap().quit().unwrap();
    }
    server.stop();
    eprintln!("fleet: whole test {:.0} s", started.elapsed().as_secs_f64());
}

/// etcd's v2 discovery protocol, as Container Linux fleets bootstrapped
/// with discovery.etcd.io: a real etcd on the host (v2 API on) holds the
/// token's `_config/size`; three machines whose user-data names only the
/// discovery URL find each other through it and form one cluster.
#[test]
fn etcd_forms_through_the_v2_discovery_protocol() {
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    if vm_test_image("fleet-discovery").is_none() {
        return;
    }
    let host = fleet::HostEtcd::start().unwrap();
    let token = "slipway-vm-discovery";
    let url = host.new_discovery(token, MACHINES).unwrap();
    let window = fleet::window_start_now();
    let bootstrap = fleet::Bootstrap::Discovery(url);
    // No feed: the daemons find nothing to install.
    let feed = "http://10.0.2.2:9";
    let Some(mut cluster) = boot_cluster("fleet-discovery", |n| {
        fleet::user_data_with(n, &bootstrap, feed, &window)
    }) else {
        return;
    };
    for vm in cluster.vms() {
        wait_members_started(vm);
    }
    let members = host.registered(token).unwrap();
    assert_eq!(members.len(), MACHINES, "registered: {members:?}");
    ok(
        &mut cluster[1],
        &format!("{ETCDCTL} put slipway-vm-test found-by-discovery"),
    );
    assert_eq!(
        ok(
            &mut cluster[2],
            &format!("{ETCDCTL} get slipway-vm-test --print-value-only")
        ),
        "found-by-discovery"
    );
    for vm in cluster.vms() {
        vm.qmp().unwrap().quit().unwrap();
    }
    eprintln!(
        "fleet-discovery: whole test {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

//! etcd's v2 discovery protocol across three machines of the image under
//! test on one private LAN (a switch in this process, unix sockets only:
//! `xtask::vm::Cluster`): what Container Linux fleets bootstrapped with
//! discovery.etcd.io. The rest of the cluster (the LAN, etcd from static
//! members, the reboot lock, the swarm) is checked on the one boot of
//! `vm_fleet.rs`.

use std::time::{Duration, Instant};

use xtask::fleet::{self, lan_ip, ETCDCTL};
use xtask::qemu::Machine;
use xtask::seed::SeedKind;
use xtask::testing::vm_test_image;
use xtask::vm::{Cluster, Vm};

const MACHINES: usize = 3;

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

/// From the ready lines to a 3-member cluster with a leader.
const ETCD_UP: Duration = Duration::from_secs(600);
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

/// etcd's v2 discovery protocol, as Container Linux fleets bootstrapped
/// with discovery.etcd.io: a real etcd on the host (v2 API on) holds the
/// token's `_config/size`; three machines whose user-data names only the
/// discovery URL find each other through it and form one cluster.
#[test]
fn etcd_forms_through_the_v2_discovery_protocol() {
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

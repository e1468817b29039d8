//! VM test of the multi-machine harness (`xtask::vm::Cluster`): three
//! machines of the image under test on one private LAN (a switch in this
//! process, unix sockets only), each given a static address on its second
//! NIC (`eth1`) by a `.network` unit in its own user-data, as a
//! Container Linux fleet's private network was. One boot of the three
//! machines; every check runs on it:
//! - each machine applied its own user-data (hostname `node<n>`), `eth1`
//!   carries the LAN MAC of its port and `10.77.0.<n>/24`, and `eth0` still
//!   has its DHCP lease from QEMU's user networking;
//! - machine 1 reaches machines 2 and 3 (ICMP, and HTTP to a busybox
//!   `httpd` on machine 2), machine 3 reaches machine 1, an address nobody
//!   holds does not answer, and the frames went through the switch.
//!
//! Later scenarios (an etcd cluster, a rolling update) boot the same way
//! with [`boot_cluster`], adding their own user-data to
//! [`base_user_data`], and run their checks after [`check_lan`].

use std::time::{Duration, Instant};

use xtask::qemu::Machine;
use xtask::seed::SeedKind;
use xtask::testing::vm_test_image;
use xtask::vm::{lan, Cluster, Vm};

const MACHINES: usize = 3;
/// Each guest's memory: enough for the services and a page cache under
/// TCG; three of them fit the CI machine many times over.
const MEMORY_MIB: u32 = 768;
/// Three guests under TCG share two host cores, so a boot takes about
/// three times as long as one alone (which takes up to a few minutes on a
/// loaded CI machine).
const BOOT: Duration = Duration::from_secs(1200);
const CMD: Duration = Duration::from_secs(120);
/// slipway-networkd scans links every 5 s; it starts late in a slow boot.
const ADDRESS: Duration = Duration::from_secs(300);

/// Machine `n`'s address on the LAN (an RFC 1918 range that exists only
/// between the guests: it is never routed to the host).
fn lan_ip(n: usize) -> String {
    format!("10.77.0.{n}")
}

/// The `coreos.units` entry that gives machine `n` its LAN address, as a
/// list item indented for `coreos:` → `units:`.
fn lan_network_unit(n: usize) -> String {
    format!(
        "    - name: 20-lan.network
      content: |
        [Match]
        Name=eth1
        [Network]
        Address={}/24
",
        lan_ip(n)
    )
}

/// Machine `n`'s user-data: its hostname and LAN address, plus `units`
/// (more `coreos.units` items, indented as [`lan_network_unit`]'s) and
/// `top` (more top-level keys).
fn base_user_data(n: usize, units: &str, top: &str) -> String {
    format!(
        "#cloud-config\nhostname: node{n}\n{top}coreos:\n  units:\n{}{units}",
        lan_network_unit(n)
    )
}

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

#[test]
fn three_machines_reach_each_other_on_a_private_lan() {
    let started = Instant::now();
    let Some(mut cluster) = boot_cluster("cluster", |n| base_user_data(n, "", "")) else {
        return;
    };
    check_lan(&mut cluster);
    for vm in cluster.vms() {
        vm.qmp().unwrap().quit().unwrap();
    }
    eprintln!(
        "cluster: whole test {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

//! VM tests of the machine's state: `/var` grown at first boot and left
//! alone at the second, `/etc` edits, `/root` and `/home` surviving a
//! reboot, the machine ID (stable across reboots, different between two
//! fresh instances), and a `var` partition that is not ext4.

use std::path::Path;
use std::time::{Duration, Instant};

use xtask::qemu::Machine;
use xtask::testing::vm_test_image;
use xtask::vm::Vm;

/// Generous: up to three VMs boot at once on two cores under TCG.
const BOOT: Duration = Duration::from_secs(300);
const CMD: Duration = Duration::from_secs(60);
/// Stopping the services before a reboot: a unit that ignores SIGTERM is
/// killed after its `TimeoutStopSec=` (90 s by default), and CI (three VMs
/// under TCG on two cores) once saw a stop outlast 60 s.
const STOP: Duration = Duration::from_secs(240);
const GIB: u64 = 1024 * 1024 * 1024;

fn manifest(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("manifest.json")).expect("manifest.json");
    serde_json::from_str(&text).expect("manifest.json parses")
}

fn var_partition(dir: &Path) -> serde_json::Value {
    manifest(dir)["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["label"] == "var")
        .expect("a var partition in the manifest")
        .clone()
}

/// Runs a command that must succeed; returns its output, trimmed.
fn ok(vm: &mut Vm, command: &str) -> String {
    let (rc, out) = vm.run(command, CMD).unwrap();
    assert_eq!(rc, 0, "`{command}` failed:\n{out}");
    out.trim().to_string()
}

/// The size of the filesystem mounted on `path`, in bytes (busybox `df`).
fn fs_size(vm: &mut Vm, path: &str) -> u64 {
    let out = ok(vm, &format!("df -k {path} | tail -n 1"));
    let kib: u64 = out
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .unwrap_or_else(|| panic!("df output: {out}"));
    kib * 1024
}

/// sha256 of the primary GPT (sectors 0-33) and of the disk's last 33
/// sectors (the backup GPT), as the guest reads them.
fn gpt_digest(vm: &mut Vm) -> String {
    ok(
        vm,
        "n=$(cat /sys/block/vda/size); \
         { dd if=/dev/vda bs=512 count=34; dd if=/dev/vda bs=512 skip=$((n - 33)); } \
         2>/dev/null | sha256sum",
    )
}

fn machine_id(vm: &mut Vm) -> String {
    let id = ok(vm, "cat /etc/machine-id");
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "machine-id `{id}`"
    );
    id
}

/// Console lines from `start` to the next ready line.
fn boot_lines(vm: &Vm, start: usize) -> Vec<String> {
    vm.transcript()
        .lines()
        .into_iter()
        .skip(start)
        .take_while(|l| !l.contains("slipway: ready "))
        .filter(|l| l.contains("slipway: "))
        .collect()
}

#[test]
fn var_grows_once_and_state_survives_a_reboot() {
    let Some(dir) = vm_test_image("var_grows_once") else {
        return;
    };
    let image_size = manifest(&dir)["disk"]["size"].as_u64().unwrap();
    // A disk 4 GiB bigger than the image. (A 4 GiB disk would leave /var
    // only 1.6 GiB: the two 1 GiB slots, their verity partitions and the
    // ESP take 2.4 GiB.)
    let mut big = Machine::new(dir.join("disk.qcow2"));
    big.disk_size = Some(image_size + 4 * GIB);
    let mut a = Vm::start("state-grow", &big).unwrap();
    // A second fresh instance of the same image, at the image's own size.
    let mut b = Vm::start("state-fresh", &Machine::new(dir.join("disk.qcow2"))).unwrap();

    // First boot: the table and the filesystem grow.
    a.wait_for("slipway: ready ", BOOT).unwrap();
    let first = boot_lines(&a, 0);
    assert!(
        first
            .iter()
            .any(|l| l.contains("slipway: /var: partition /dev/vda6 grown from 128 MiB to 4.1 GiB")),
        "{first:#?}"
    );
    assert!(
        first
            .iter()
            .any(|l| l.contains("slipway: /var: ext4 on /dev/vda6 grown from 128 MiB to 4.1 GiB")),
        "{first:#?}"
    );
    let var_size = fs_size(&mut a, "/var");
    assert!(var_size >= 3 * GIB + GIB / 2, "/var is {var_size} bytes");
    let mounts = ok(&mut a, "cat /proc/mounts");
    for want in [
        "/dev/vda6 /var ext4 rw",
        "overlay /etc overlay rw",
        "/dev/vda6 /home ext4 rw",
        "/dev/vda6 /root ext4 rw",
        "tmpfs /tmp tmpfs rw",
    ] {
        assert!(mounts.contains(want), "no `{want}` in\n{mounts}");
    }
    let gpt = gpt_digest(&mut a);
    let id = machine_id(&mut a);
    ok(
        &mut a,
        "echo kept > /etc/slipway-test && echo r > /root/r && echo h > /home/h",
    );

    // The other instance: nothing to grow, its own machine ID.
    b.wait_for("slipway: ready ", BOOT).unwrap();
    let fresh = boot_lines(&b, 0);
    assert!(
        fresh
            .iter()
            .any(|l| l.contains("slipway: /var: /dev/vda6 mounted (ext4, 128 MiB)")),
        "{fresh:#?}"
    );
    assert!(!fresh.iter().any(|l| l.contains("grown")), "{fresh:#?}");
    let other_id = machine_id(&mut b);
    assert_ne!(id, other_id, "two fresh instances share a machine ID");
    b.qmp().unwrap().quit().unwrap();

    // Second boot of the first instance: a clean reboot, then nothing
    // grows, nothing is written to the table, and everything is still there.
    let start = a.transcript().cursor();
    a.reboot().unwrap();
    let stop = Instant::now();
    a.wait_for("slipway: rebooting", STOP).unwrap();
    if stop.elapsed() > Duration::from_secs(30) {
        eprintln!(
            "state-grow: stopping the services took {:.0?}:\n{}",
            stop.elapsed(),
            a.transcript().tail(30)
        );
    }
    a.wait_for("slipway: ready ", BOOT).unwrap();
    let second = boot_lines(&a, start);
    assert!(!second.iter().any(|l| l.contains("grown")), "{second:#?}");
    assert!(
        second
            .iter()
            .any(|l| l.contains("slipway: /var: /dev/vda6 mounted (ext4, 4.1 GiB)")),
        "{second:#?}"
    );
    assert!(
        !second.iter().any(|l| l.contains("machine-id")),
        "{second:#?}"
    );
    assert_eq!(gpt_digest(&mut a), gpt, "the partition table changed");
    assert_eq!(fs_size(&mut a, "/var"), var_size);
    assert_eq!(machine_id(&mut a), id);
    assert_eq!(
        ok(&mut a, "cat /etc/slipway-test /root/r /home/h"),
        "kept\nr\nh"
    );
    // /var was unmounted cleanly: no journal to replay.
    let (_, dmesg) = a.run("dmesg | grep 'EXT4-fs (vda6)'", CMD).unwrap();
    assert!(!dmesg.contains("recovery"), "{dmesg}");
    a.qmp().unwrap().quit().unwrap();
}

#[test]
fn a_var_partition_that_is_not_ext4_is_left_alone() {
    let Some(dir) = vm_test_image("var_not_ext4") else {
        return;
    };
    let var = var_partition(&dir);
    let offset = var["offset"].as_u64().unwrap();
    // Break the ext4 magic (0xef53 at byte 1080) in the VM's overlay.
    let mut machine = Machine::new(dir.join("disk.qcow2"));
    machine.patches = vec![(offset + 1080, 0), (offset + 1081, 0)];
    let mut vm = Vm::start("state-not-ext4", &machine).unwrap();
    vm.wait_for("slipway: ready ", BOOT).unwrap();
    let lines = boot_lines(&vm, 0);
    assert!(
        lines.iter().any(|l| l.contains(
            "slipway: /var: /dev/vda6 (partition 6 of /dev/vda) holds no ext4 filesystem; \
             left untouched"
        )),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("WARNING: /var is a tmpfs for this boot")),
        "{lines:#?}"
    );
    assert!(
        ok(&mut vm, "grep ' /var ' /proc/mounts").starts_with("tmpfs /var tmpfs"),
        "/var should be a tmpfs"
    );
    // The partition itself was not written: its first 4 KiB are as the
    // patch left them (no mkfs, no growth).
    let magic = ok(
        &mut vm,
        "dd if=/dev/vda6 bs=1 skip=1080 count=2 2>/dev/null | od -An -tx1",
    );
    assert_eq!(magic, "00 00");
    vm.qmp().unwrap().quit().unwrap();
}

#[test]
fn a_power_cut_while_var_grows_loses_nothing() {
    let Some(dir) = vm_test_image("power_cut_grow") else {
        return;
    };
    let image_size = manifest(&dir)["disk"]["size"].as_u64().unwrap();
    let mut big = Machine::new(dir.join("disk.qcow2"));
    big.disk_size = Some(image_size + 4 * GIB);
    let mut vm = Vm::start("state-power-cut", &big).unwrap();
    // The table is written; the filesystem is about to grow, or growing.
    vm.wait_for("slipway: /var: partition /dev/vda6 grown", BOOT)
        .unwrap();
    // A power cut: no sync, no unmount.
    vm.qmp().unwrap().system_reset().unwrap();
    vm.wait_for("slipway: slot a root", BOOT).unwrap();
    let start = vm.transcript().cursor();
    vm.wait_for("slipway: ready ", BOOT).unwrap();
    let lines = boot_lines(&vm, start.saturating_sub(1));
    // The table was complete before the cut: it does not grow again, and
    // /var is the ext4 on the partition, whatever size the cut left it at
    // (the filesystem then grows on, or already filled the partition).
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("partition /dev/vda6 grown")),
        "{lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.contains("tmpfs")), "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("ext4 on /dev/vda6 grown from")
                || l.contains("/dev/vda6 mounted (ext4, 4.1 GiB)")),
        "{lines:#?}"
    );
    assert!(fs_size(&mut vm, "/var") >= 3 * GIB + GIB / 2);
    assert_eq!(
        ok(
            &mut vm,
            "echo after-cut > /var/probe && sync && cat /var/probe"
        ),
        "after-cut"
    );
    let (_, errors) = vm.run("dmesg | grep -i 'EXT4-fs error'", CMD).unwrap();
    assert!(errors.trim().is_empty(), "{errors}");
    vm.qmp().unwrap().quit().unwrap();
}

//! VM tests of the spine: boot the built image under TCG through OVMF and
//! systemd-boot, and check what a user would see on the serial console.
//! They need the image `cargo xtask test` builds; in CI they fail rather
//! than skip when it or QEMU is missing.

use std::path::Path;
use std::time::Duration;

use xtask::qemu::{Boot, Machine};
use xtask::testing::{slot_a_direct_boot, vm_test_image};
use xtask::vm::Vm;

/// Generous: two VMs may boot at once on two cores under TCG.
const BOOT: Duration = Duration::from_secs(240);
const CMD: Duration = Duration::from_secs(30);

fn manifest(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("manifest.json")).expect("manifest.json");
    serde_json::from_str(&text).expect("manifest.json parses")
}

#[test]
fn boots_to_ready_line_with_read_only_root_and_powers_off_cleanly() {
    let Some(dir) = vm_test_image("boots_to_ready_line") else {
        return;
    };
    let version = manifest(&dir)["version"].as_str().unwrap().to_string();
    let mut vm = Vm::start("boot-ready", &Machine::new(dir.join("disk.qcow2"))).unwrap();

    let line = vm.wait_for("slipway: ready ", BOOT).unwrap();
    let fields = line.trim_start_matches(|c| c != 's');
    let want = format!("slipway: ready version={version} slot=a boot_ms=");
    assert!(
        fields.starts_with(&want),
        "ready line `{line}`, want `{want}<ms>`"
    );
    let ms: u64 = fields[want.len()..]
        .trim()
        .parse()
        .expect("boot_ms is a number");
    assert!(ms > 0 && ms < BOOT.as_millis() as u64, "boot_ms={ms}");
    // Exactly one ready line on the serial console.
    vm.wait_for("rescue shell", CMD).unwrap();
    let ready_lines = vm
        .transcript()
        .lines()
        .iter()
        .filter(|l| l.contains("slipway: ready "))
        .count();
    assert_eq!(ready_lines, 1, "{}", vm.transcript().tail(40));

    // The shell answers, and the root is the read-only slot A image.
    let (rc, out) = vm.run("cat /etc/os-release", CMD).unwrap();
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains("ID=slipway"), "{out}");
    assert!(out.contains(&format!("IMAGE_VERSION={version}")), "{out}");
    let (rc, out) = vm.run("touch /probe", CMD).unwrap();
    assert_ne!(rc, 0, "writing to / succeeded: {out}");
    assert!(out.contains("Read-only file system"), "{out}");
    let (rc, out) = vm.run("grep ' / ' /proc/mounts", CMD).unwrap();
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains("squashfs ro"), "root mount: {out}");
    assert!(
        out.starts_with("/dev/dm-") || out.contains("\n/dev/dm-"),
        "root not on dm-verity: {out}"
    );
    assert!(
        !vm.transcript()
            .lines()
            .iter()
            .any(|l| l.contains("dm-verity disabled")),
        "{}",
        vm.transcript().tail(40)
    );
    let (rc, out) = vm.run("echo hi > /tmp/t && cat /tmp/t", CMD).unwrap();
    assert_eq!((rc, out.trim().ends_with("hi")), (0, true), "{out}");

    // The ACPI power button: a clean poweroff, QEMU exits by itself.
    vm.qmp().unwrap().system_powerdown().unwrap();
    vm.wait_for("slipway: poweroff requested", Duration::from_secs(60))
        .unwrap();
    let status = vm.wait_exit(Duration::from_secs(60)).unwrap();
    assert!(status.success(), "qemu exit {status}");
    let lines = vm.transcript().lines();
    assert!(
        lines.iter().any(|l| l.contains("slipway: powering off")),
        "{}",
        vm.transcript().tail(20)
    );
    assert!(
        !lines.iter().any(|l| l.contains("Kernel panic")),
        "{}",
        vm.transcript().tail(40)
    );
}

#[test]
fn stage1_failure_reports_and_reboots() {
    let Some(dir) = vm_test_image("stage1_failure") else {
        return;
    };
    // Boot slot A's own kernel and initramfs, taken from the ESP, with a
    // command line that names no root partition.
    let work = tempfile::tempdir().unwrap();
    let (kernel, initrd, _) = slot_a_direct_boot(&dir, work.path()).unwrap();
    let mut machine = Machine::new(dir.join("disk.qcow2"));
    machine.no_reboot = true;
    machine.boot = Boot::Kernel {
        kernel,
        initrd,
        append: "console=ttyS0,115200 panic=5 slipway.slot=a".into(),
    };
    let mut vm = Vm::start("stage1-failure", &machine).unwrap();
    let line = vm.wait_for("slipway: stage1 failed: ", BOOT).unwrap();
    assert!(
        line.contains("slipway.root"),
        "reason should name the missing key: {line}"
    );
    // It reboots by itself (QEMU exits because of -no-reboot) and never
    // panics the kernel or reaches the ready line.
    vm.wait_exit(Duration::from_secs(60)).unwrap();
    let lines = vm.transcript().lines();
    assert!(
        !lines.iter().any(|l| l.contains("Kernel panic")),
        "{}",
        vm.transcript().tail(30)
    );
    assert!(!lines.iter().any(|l| l.contains("slipway: ready")));
}

#[test]
fn tampered_root_is_caught_by_verity_and_never_reaches_ready() {
    let Some(dir) = vm_test_image("tampered_root") else {
        return;
    };
    let m = manifest(&dir);
    assert_eq!(
        m["verity"]["enabled"], true,
        "the test image must use verity"
    );
    let root = &m["partitions"][1];
    assert_eq!(root["label"], "root-a");
    // A byte inside the first data block (squashfs superblock and the
    // first metadata), which stage 1 reads when it mounts the root. Flip it
    // so the value surely changes.
    let offset = root["offset"].as_u64().unwrap() + 100;
    let original = {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(dir.join("disk.raw")).unwrap();
        f.seek(SeekFrom::Start(offset)).unwrap();
        let mut b = [0u8; 1];
        f.read_exact(&mut b).unwrap();
        b[0]
    };
    let mut machine = Machine::new(dir.join("disk.qcow2"));
    machine.no_reboot = true;
    machine.patches.push((offset, original ^ 0x01));
    let mut vm = Vm::start("tampered-root", &machine).unwrap();
    vm.wait_line(
        |l| {
            (l.contains("slipway: stage1 failed: ") && l.contains("verity"))
                || (l.contains("verity") && l.contains("corrupted"))
        },
        BOOT,
    )
    .unwrap();
    // It reboots (QEMU exits under -no-reboot) and never says ready.
    vm.wait_exit(Duration::from_secs(60)).unwrap();
    let lines = vm.transcript().lines();
    assert!(
        !lines.iter().any(|l| l.contains("slipway: ready")),
        "{}",
        vm.transcript().tail(30)
    );
    assert!(
        !lines.iter().any(|l| l.contains("Kernel panic")),
        "{}",
        vm.transcript().tail(30)
    );
}

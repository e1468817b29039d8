//! VM test of the `generic-x86_64` board (Debian's generic kernel, the
//! bare-metal board) booted under QEMU on virtio: `/var` is the ext4 on the
//! disk, not a tmpfs fallback, and what is written there survives a reboot.
//! The generic kernel builds ext4, jbd2, mbcache and crc16 as modules (the
//! cloud kernel builds them in), so this is what proves stage 1 loads them.

use std::path::Path;
use std::time::{Duration, Instant};

use xtask::qemu::Machine;
use xtask::testing::{vm_test_generic_image, GENERIC_BOARD};
use xtask::vm::Vm;

/// Generous: other VMs may boot at once on two cores under TCG, and the
/// generic kernel's initramfs is larger than the cloud one's.
const BOOT: Duration = Duration::from_secs(300);
const CMD: Duration = Duration::from_secs(60);
/// Stopping the services before the reboot (see vm_state.rs).
const STOP: Duration = Duration::from_secs(240);

fn manifest(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("manifest.json")).expect("manifest.json");
    serde_json::from_str(&text).expect("manifest.json parses")
}

/// Runs a command that must succeed; returns its output, trimmed.
fn ok(vm: &mut Vm, command: &str) -> String {
    let (rc, out) = vm.run(command, CMD).unwrap();
    assert_eq!(rc, 0, "`{command}` failed:\n{out}");
    out.trim().to_string()
}

/// The init's console lines from `start` up to the next ready line.
fn boot_lines(vm: &Vm, start: usize) -> Vec<String> {
    vm.transcript()
        .lines()
        .into_iter()
        .skip(start)
        .take_while(|l| !l.contains("slipway: ready "))
        .filter(|l| l.contains("slipway: "))
        .collect()
}

/// `/var` of this boot is the disk's ext4: the init said so, it never fell
/// back to a tmpfs, and the mount table agrees.
fn assert_var_on_disk(vm: &mut Vm, start: usize) {
    let lines = boot_lines(vm, start);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("slipway: /var: /dev/vda6 mounted (ext4")),
        "{lines:#?}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("tmpfs") || l.contains("No such device")),
        "{lines:#?}"
    );
    let var = ok(vm, "grep ' /var ' /proc/mounts");
    assert!(var.starts_with("/dev/vda6 /var ext4 rw"), "{var}");
}

#[test]
fn generic_board_mounts_var_from_the_disk_and_keeps_it_across_a_reboot() {
    let Some(dir) = vm_test_generic_image("generic_var_persists") else {
        return;
    };
    assert_eq!(manifest(&dir)["board"], GENERIC_BOARD, "{}", dir.display());
    let mut vm = Vm::start("generic-var", &Machine::new(dir.join("disk.qcow2"))).unwrap();
    vm.wait_for("slipway: ready ", BOOT).unwrap();
    assert_var_on_disk(&mut vm, 0);
    // ext4 came from the initramfs as a module (a kernel that built it in
    // would pass the rest of this test without the board's list mattering).
    let modules = ok(&mut vm, "cut -d' ' -f1 /proc/modules");
    for m in ["ext4", "jbd2", "mbcache"] {
        assert!(
            modules.lines().any(|l| l == m),
            "{m} not loaded:\n{modules}"
        );
    }
    let token = format!("kept-{}", std::process::id());
    ok(
        &mut vm,
        &format!("echo {token} > /var/generic-probe && sync"),
    );

    let start = vm.transcript().cursor();
    vm.reboot().unwrap();
    let stop = Instant::now();
    vm.wait_for("slipway: rebooting", STOP).unwrap();
    if stop.elapsed() > Duration::from_secs(30) {
        eprintln!(
            "generic-var: stopping the services took {:.0?}",
            stop.elapsed()
        );
    }
    vm.wait_for("slipway: ready ", BOOT).unwrap();
    assert_var_on_disk(&mut vm, start);
    assert_eq!(ok(&mut vm, "cat /var/generic-probe"), token);
    vm.qmp().unwrap().quit().unwrap();
}

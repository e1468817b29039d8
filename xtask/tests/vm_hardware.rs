//! VM tests of the `generic-x86_64` board on emulated hardware that real
//! servers have and the qemu board never sees: an AHCI (SATA) disk with an
//! Intel 82574L NIC (`e1000e`), an NVMe disk with an Intel 8254x (`e1000`;
//! QEMU 7.2 has no `igb`), and a USB stick on xHCI as the only disk. Each
//! boots once, on a disk bigger than the image, and must reach the ready
//! line through the board's own modules (nothing on these machines is
//! virtio: no seed disk, no LAN NIC), grow `/var` to the disk's end, get a
//! DHCP lease on its NIC, and have both of the board's consoles (the
//! display's drawn on a VGA framebuffer, as a server's BMC shows it).

use std::time::{Duration, Instant};

use xtask::qemu::{DiskBus, Machine, NicModel};
use xtask::testing::{vm_test_generic_image, GENERIC_BOARD};
use xtask::vm::Vm;

/// Generous: other VMs share two cores under TCG, and the generic kernel's
/// initramfs is larger than the cloud one's.
const BOOT: Duration = Duration::from_secs(300);
const CMD: Duration = Duration::from_secs(60);
/// QEMU's user network hands out this address first.
const LEASE: &str = "10.0.2.15/24";
/// How much bigger than the image the disk is: enough that a `/var` left at
/// its 128 MiB cannot pass for grown, small enough that the online resize
/// stays cheap under TCG.
const EXTRA: u64 = 2 * 1024 * 1024 * 1024;

/// One machine: how QEMU shows it, and what the guest must make of it.
struct Hardware {
    /// Labels the VM and its transcript in `target/slipway/vm-logs/`.
    name: &'static str,
    bus: DiskBus,
    nic: NicModel,
    /// The disk's name in `/sys/block`, and the partition `var` must be.
    disk: &'static str,
    var: &'static str,
    /// A piece of the disk's sysfs path that only this bus gives it.
    sysfs_path: &'static str,
    /// Modules the disk and the NIC need (from the board's initramfs list
    /// or their dependencies), all of which must be loaded.
    modules: &'static [&'static str],
    /// The driver `eth0` must be bound to.
    nic_driver: &'static str,
}

#[test]
fn ahci_disk_and_e1000e_nic() {
    boots_on(&Hardware {
        name: "hw-ahci-e1000e",
        bus: DiskBus::Ahci,
        nic: NicModel::E1000e,
        disk: "sda",
        var: "sda6",
        sysfs_path: "/ata1/",
        modules: &["ahci", "libahci", "libata", "sd_mod", "e1000e"],
        nic_driver: "e1000e",
    });
}

#[test]
fn nvme_disk_and_e1000_nic() {
    boots_on(&Hardware {
        name: "hw-nvme-e1000",
        bus: DiskBus::Nvme,
        nic: NicModel::E1000,
        disk: "nvme0n1",
        var: "nvme0n1p6",
        sysfs_path: "/nvme/nvme0/",
        modules: &["nvme", "nvme_core", "e1000"],
        nic_driver: "e1000",
    });
}

#[test]
fn usb_stick_as_the_only_disk_and_e1000e_nic() {
    boots_on(&Hardware {
        name: "hw-usb-e1000e",
        bus: DiskBus::Usb,
        nic: NicModel::E1000e,
        disk: "sda",
        var: "sda6",
        sysfs_path: "/usb",
        modules: &["xhci_pci", "xhci_hcd", "usb_storage", "sd_mod", "e1000e"],
        nic_driver: "e1000e",
    });
}

fn boots_on(hw: &Hardware) {
    let Some(dir) = vm_test_generic_image(hw.name) else {
        return;
    };
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["board"], GENERIC_BOARD, "{}", dir.display());
    let image_size = manifest["disk"]["size"].as_u64().unwrap();
    let mut machine = Machine::new(dir.join("disk.qcow2"));
    machine.disk_bus = hw.bus;
    machine.nic = hw.nic;
    machine.disk_size = Some(image_size + EXTRA);
    // Servers have a display (the BMC's): the board's tty0 console is
    // drawn on its framebuffer.
    machine.vga = true;

    let started = Instant::now();
    let mut vm = Vm::start(hw.name, &machine).unwrap();
    let ready = vm.wait_for("slipway: ready ", BOOT).unwrap();
    eprintln!(
        "{}: ready in {:.1} s (`{}`)",
        hw.name,
        started.elapsed().as_secs_f64(),
        ready.trim()
    );

    // The generic board's kernel is not `quiet`: a NIC's "Link is Up" once
    // landed inside a command's output on the shared serial console. Only
    // emergencies reach the console from here on (this command's own
    // output may still catch one, and is not read).
    let _ = vm.run("dmesg -n 1", CMD);

    let (disk, var) = (format!("/dev/{}", hw.disk), format!("/dev/{}", hw.var));
    let disk_path = ok(&mut vm, &format!("readlink -f /sys/block/{}", hw.disk));
    assert!(disk_path.contains(hw.sysfs_path), "{disk_path}");
    let modules = ok(&mut vm, "cut -d' ' -f1 /proc/modules");
    for m in hw.modules {
        assert!(
            modules.lines().any(|l| l == *m),
            "{m} not loaded:\n{modules}"
        );
    }

    assert_var_fills_the_disk(&mut vm, hw, &disk, &var, image_size + EXTRA);
    assert_dhcp_lease(&mut vm, hw);
    assert_both_consoles(&mut vm);
    vm.qmp().unwrap().quit().unwrap();
}

/// Runs a command that must succeed; returns its output, trimmed.
fn ok(vm: &mut Vm, command: &str) -> String {
    let (rc, out) = vm.run(command, CMD).unwrap();
    assert_eq!(rc, 0, "`{command}` failed:\n{out}");
    out.trim().to_string()
}

/// A number from the guest (one command's whole output).
fn number(vm: &mut Vm, command: &str) -> u64 {
    let out = ok(vm, command);
    out.parse()
        .unwrap_or_else(|_| panic!("`{command}`: not a number: {out}"))
}

/// The init grew the `var` partition to the disk's end and its ext4 to the
/// partition's, and mounted that on `/var` (no tmpfs fallback).
fn assert_var_fills_the_disk(vm: &mut Vm, hw: &Hardware, disk: &str, var: &str, size: u64) {
    let lines: Vec<String> = vm
        .transcript()
        .lines()
        .into_iter()
        .filter(|l| l.contains("slipway: /var: "))
        .collect();
    for want in [
        format!("partition {var} grown from 128 MiB to "),
        format!("ext4 on {var} grown from 128 MiB to "),
    ] {
        assert!(
            lines.iter().any(|l| l.contains(&want)),
            "{want}: {lines:#?}"
        );
    }
    let mount = ok(vm, "grep ' /var ' /proc/mounts");
    assert!(mount.starts_with(&format!("{var} /var ext4 rw")), "{mount}");

    let sectors = number(vm, &format!("cat /sys/block/{}/size", hw.disk));
    assert_eq!(sectors * 512, size, "{disk} is not the size QEMU was given");
    let base = format!("/sys/block/{}/{}", hw.disk, hw.var);
    let start = number(vm, &format!("cat {base}/start"));
    let part = number(vm, &format!("cat {base}/size"));
    // The backup GPT's 33 sectors follow the partition, which ends on a
    // 1 MiB boundary: nothing else may be left over.
    let left = sectors - (start + part);
    assert!(
        left < 2048 + 33,
        "{var} ends {left} sectors before the end of {disk}"
    );
    // The ext4's own size, from its superblock (df leaves out the
    // filesystem's metadata): s_blocks_count_lo at byte 4 and
    // s_log_block_size at byte 24 of the superblock at 1024.
    let words = ok(
        vm,
        &format!("dd if={var} bs=1024 skip=1 count=1 2>/dev/null | od -An -tu4 -N28"),
    );
    let words: Vec<u64> = words
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect();
    let block = 1024u64 << words[6];
    let fs = words[1] * block;
    assert_eq!(
        fs,
        part * 512 / block * block,
        "the ext4 on {var} does not fill its {} byte partition",
        part * 512
    );
    eprintln!(
        "{}: /var is {:.2} GiB on a {:.2} GiB disk",
        hw.name,
        fs as f64 / (1u64 << 30) as f64,
        size as f64 / (1u64 << 30) as f64
    );
}

/// `eth0` is the NIC QEMU was given, bound to its driver, and holds the
/// address QEMU's DHCP server leased it.
fn assert_dhcp_lease(vm: &mut Vm, hw: &Hardware) {
    let driver = ok(vm, "basename $(readlink /sys/class/net/eth0/device/driver)");
    assert_eq!(driver, hw.nic_driver);
    let state = ok(
        vm,
        &format!(
            "f=/run/slipway/network/eth0.json; \
             for i in $(seq 1 90); do grep -q '\"{LEASE}\"' $f 2>/dev/null && break; sleep 1; done; \
             cat $f"
        ),
    );
    // The kernel's own lines (the link coming up) may come in between.
    let json = state.lines().find(|l| l.starts_with('{')).unwrap_or("");
    let state: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("eth0.json: {e}: {state}"));
    assert_eq!(state["source"], "dhcp4", "{state}");
    assert_eq!(state["state"], "bound", "{state}");
    assert_eq!(state["addresses"][0], LEASE, "{state}");
    assert_eq!(state["gateway"], "10.0.2.2", "{state}");
    let addr = ok(vm, "ip -4 addr show dev eth0");
    assert!(addr.contains(&format!("inet {LEASE}")), "{addr}");
}

/// The kernel writes to the display's console and to the serial port (the
/// board's `consoles`), and the serial one is `/dev/console`, the last
/// `console=` (the ready line and the rescue shell this test used are on
/// it); the display's console is the VGA adapter's framebuffer.
fn assert_both_consoles(vm: &mut Vm) {
    let consoles = ok(vm, "cat /proc/consoles");
    let flags = |name: &str| {
        let line = consoles
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} not in /proc/consoles:\n{consoles}"));
        // The flags in parentheses: E enabled, C the preferred console.
        line.split(['(', ')']).nth(1).unwrap_or("").to_string()
    };
    let (tty0, serial) = (flags("tty0"), flags("ttyS0"));
    assert!(tty0.contains('E'), "{consoles}");
    assert!(serial.contains('E') && serial.contains('C'), "{consoles}");
    let fb = ok(vm, "cat /proc/fb");
    assert!(fb.contains("EFI VGA"), "no EFI framebuffer: {fb}");
    // The VTs' driver: `(M) frame buffer device` bound, not the dummy.
    let bound = ok(
        vm,
        "for c in /sys/class/vtconsole/*; do [ $(cat $c/bind) = 1 ] && cat $c/name; done; true",
    );
    assert!(bound.contains("frame buffer device"), "{bound}");
}

//! VM test of `slipway-install`: a machine with a second, blank disk
//! installs the running system onto it with user-data (after refusing its
//! own boot disk), powers off, and the second disk alone then boots to the
//! ready line with the user-data applied and a machine identity of its own.
//! Two boots, no more.

use std::process::Command;
use std::time::{Duration, Instant};

use xtask::qemu::Machine;
use xtask::testing::vm_test_image;
use xtask::vm::Vm;

/// Generous: up to three VMs boot at once on two cores under TCG.
const BOOT: Duration = Duration::from_secs(300);
const CMD: Duration = Duration::from_secs(60);
/// The install under TCG: reading about 1.4 GiB of the boot disk.
const INSTALL: Duration = Duration::from_secs(900);
const STOP: Duration = Duration::from_secs(240);

const USER_DATA: &str = "#cloud-config\n\
hostname: installed-box\n\
write_files:\n\
\x20 - path: /etc/installed-by\n\
\x20   content: slipway-install\n";

fn ok(vm: &mut Vm, command: &str) -> String {
    let (rc, out) = vm.run(command, CMD).unwrap();
    assert_eq!(rc, 0, "`{command}` failed:\n{out}");
    out.trim().to_string()
}

#[test]
fn installs_the_running_system_on_a_second_disk_that_boots_with_the_user_data() {
    let Some(dir) = vm_test_image("vm_install") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("target.qcow2");
    let out = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&target)
        .arg("4G")
        .output()
        .expect("qemu-img");
    assert!(out.status.success(), "qemu-img: {out:?}");

    let mut machine = Machine::new(dir.join("disk.qcow2"));
    machine.extra_args = vec![
        "-drive".into(),
        format!("if=virtio,format=qcow2,file={}", target.display()),
    ];
    let mut vm = Vm::start("install", &machine).unwrap();
    vm.wait_for("slipway: ready ", BOOT).unwrap();
    assert_eq!(
        ok(&mut vm, "cat /sys/block/vdb/size"),
        (8u64 << 20).to_string()
    );
    let first_id = ok(&mut vm, "cat /etc/machine-id");

    // The user-data, typed in through the console (printf turns \n into
    // newlines).
    let typed = USER_DATA.replace('\n', "\\n");
    ok(&mut vm, &format!("printf '{typed}' > /tmp/user-data.yaml"));
    assert_eq!(ok(&mut vm, "cat /tmp/user-data.yaml"), USER_DATA.trim_end());

    // The boot disk is refused, and stays as it was.
    let digest = "dd if=/dev/vda bs=1M count=2 2>/dev/null | sha256sum";
    let before = ok(&mut vm, digest);
    let (rc, out) = vm
        .run("slipway-install -i /tmp/user-data.yaml /dev/vda", CMD)
        .unwrap();
    assert_ne!(rc, 0, "installing on the boot disk succeeded:\n{out}");
    assert!(
        out.contains(
            "slipway-install: refusing to install on /dev/vda: it is the disk this system booted from"
        ),
        "{out}"
    );
    assert_eq!(ok(&mut vm, digest), before);

    let started = Instant::now();
    let (rc, out) = vm
        .run("slipway-install -i /tmp/user-data.yaml /dev/vdb", INSTALL)
        .unwrap();
    println!(
        "vm_install: install took {:.1} s in the guest:\n{out}",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(rc, 0, "slipway-install failed:\n{out}");
    assert!(
        out.contains("slipway-install: installed on /dev/vdb: "),
        "{out}"
    );
    vm.send("poweroff\n").unwrap();
    vm.wait_exit(STOP).unwrap();
    drop(vm);

    // The installed disk alone.
    let mut vm = Vm::start("installed", &Machine::new(target.clone())).unwrap();
    let ready = vm.wait_for("slipway: ready ", BOOT).unwrap();
    assert!(ready.contains("slot=a"), "{ready}");
    assert_eq!(ok(&mut vm, "cat /etc/installed-by"), "slipway-install");
    assert_eq!(ok(&mut vm, "hostname"), "installed-box");
    let id = ok(&mut vm, "cat /etc/machine-id");
    assert_ne!(
        id, first_id,
        "the installed system kept the installer's machine ID"
    );
    // The fresh var was grown to the end of the 4 GiB disk at first boot.
    let var_kib: u64 = ok(&mut vm, "df -k /var | tail -n 1 | awk '{print $2}'")
        .parse()
        .unwrap();
    assert!(var_kib > 1024 * 1024, "/var is {var_kib} KiB");
}

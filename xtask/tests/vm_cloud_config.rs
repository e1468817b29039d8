//! VM tests of cloud-config: user-data on a NoCloud seed disk (the one
//! `cargo xtask qemu --user-data` makes) is applied at first boot, its
//! per-instance items do not run again at the second boot, broken
//! user-data is reported with line and column while the machine comes up,
//! and a `#!` script on a config drive runs once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use xtask::qemu::Machine;
use xtask::seed::SeedKind;
use xtask::testing::vm_test_image;
use xtask::vm::Vm;

const BOOT: Duration = Duration::from_secs(300);
const CMD: Duration = Duration::from_secs(60);
/// Stopping the services before a reboot: a unit that ignores SIGTERM is
/// killed after its `TimeoutStopSec=` (90 s by default), and CI (three VMs
/// under TCG on two cores) once saw a stop outlast 60 s.
const STOP: Duration = Duration::from_secs(240);

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn ok(vm: &mut Vm, command: &str) -> String {
    let (rc, out) = vm.run(command, CMD).unwrap();
    assert_eq!(rc, 0, "`{command}` failed:\n{out}");
    out.trim().to_string()
}

fn console_has(vm: &Vm, needle: &str) -> bool {
    vm.transcript().lines().iter().any(|l| l.contains(needle))
}

#[test]
fn user_data_is_applied_once_per_instance() {
    let Some(dir) = vm_test_image("cloud_config_applied") else {
        return;
    };
    let mut machine = Machine::new(dir.join("disk.qcow2"));
    machine.user_data = Some((SeedKind::NoCloud, fixture("user-data.yaml")));
    let mut vm = Vm::start("cloud-config", &machine).unwrap();
    vm.wait_for("slipway: ready ", BOOT).unwrap();
    assert!(
        console_has(
            &vm,
            "slipway: cloud-config: user-data (NoCloud (/dev/vdb)): "
        ) && console_has(&vm, " done, 0 failed"),
        "{}",
        vm.transcript().tail(30)
    );

    assert_eq!(ok(&mut vm, "hostname"), "cc-test");
    let passwd = ok(&mut vm, "grep '^alice:' /etc/passwd");
    assert!(
        passwd.starts_with("alice:x:") && passwd.contains(":Alice Example:/home/alice:"),
        "{passwd}"
    );
    assert!(ok(&mut vm, "grep '^wheel:' /etc/group").contains("alice"));
    assert!(ok(&mut vm, "grep '^alice:' /etc/shadow").starts_with("alice:!"));
    let keys = ok(&mut vm, "cat /home/alice/.ssh/authorized_keys");
    assert!(keys.contains("alice@laptop"), "{keys}");
    assert_eq!(
        ok(
            &mut vm,
            "stat -c '%a %U' /home/alice/.ssh /home/alice/.ssh/authorized_keys"
        ),
        "700 alice\n600 alice"
    );
    assert_eq!(
        ok(&mut vm, "cat /etc/motd-test"),
        "Welcome to a Slipway test machine.\nwritten from gzip+base64 user-data"
    );
    assert_eq!(ok(&mut vm, "stat -c '%a' /etc/motd-test"), "640");
    assert!(
        ok(&mut vm, "cat /etc/systemd/system/hello.service").contains("ExecStart=/bin/echo hello")
    );
    assert_eq!(
        ok(
            &mut vm,
            "readlink /etc/systemd/system/multi-user.target.wants/hello.service"
        ),
        "../hello.service"
    );
    assert_eq!(ok(&mut vm, "cat /var/lib/runcmd-count"), "ran");
    ok(&mut vm, "test -e /var/lib/runcmd-argv");
    assert!(ok(&mut vm, "cat /var/log/cloud-config.log").contains("runcmd"));

    // Second boot: the same instance, so nothing per-instance runs again.
    vm.reboot().unwrap();
    vm.wait_for("slipway: rebooting", STOP).unwrap();
    vm.wait_for("already configured", BOOT).unwrap();
    vm.wait_for("slipway: ready ", BOOT).unwrap();
    assert_eq!(ok(&mut vm, "cat /var/lib/runcmd-count"), "ran");
    assert_eq!(ok(&mut vm, "grep -c '^alice:' /etc/passwd"), "1");
    assert_eq!(ok(&mut vm, "hostname"), "cc-test");
    vm.qmp().unwrap().quit().unwrap();
}

#[test]
fn broken_user_data_is_reported_with_positions_and_not_applied() {
    let Some(dir) = vm_test_image("cloud_config_broken") else {
        return;
    };
    let mut machine = Machine::new(dir.join("disk.qcow2"));
    machine.user_data = Some((SeedKind::NoCloud, fixture("broken-user-data.yaml")));
    let mut vm = Vm::start("cloud-config-broken", &machine).unwrap();
    vm.wait_for("slipway: ready ", BOOT).unwrap();
    let line = vm
        .transcript()
        .lines()
        .into_iter()
        .find(|l| l.contains(":5:22: error: invalid value \"sometimes\""))
        .unwrap_or_else(|| panic!("no finding on the console:\n{}", vm.transcript().tail(30)));
    assert!(line.contains("user-data (NoCloud"), "{line}");
    assert!(console_has(
        &vm,
        ":7:11: error: \"write_files[0].path\": /usr/local/bin/tool is on the read-only root"
    ));
    assert!(console_has(&vm, "nothing was applied"));
    // Nothing of it was applied, and the machine is up with its default name.
    assert_eq!(ok(&mut vm, "hostname"), "slipway");
    vm.qmp().unwrap().quit().unwrap();
}

#[test]
fn a_script_on_a_config_drive_runs_once() {
    let Some(dir) = vm_test_image("cloud_config_script") else {
        return;
    };
    let mut machine = Machine::new(dir.join("disk.qcow2"));
    machine.user_data = Some((SeedKind::ConfigDrive, fixture("user-data-script.sh")));
    let mut vm = Vm::start("cloud-config-script", &machine).unwrap();
    vm.wait_for("slipway: cloud-config: user-data script: done", BOOT)
        .unwrap();
    vm.wait_for("slipway: ready ", BOOT).unwrap();
    assert_eq!(ok(&mut vm, "cat /var/lib/script-runs"), "x");
    assert!(ok(&mut vm, "cat /var/log/cloud-config.log").contains("script ran as 0"));
    vm.reboot().unwrap();
    vm.wait_for("slipway: rebooting", STOP).unwrap();
    vm.wait_for("slipway: ready ", BOOT).unwrap();
    assert_eq!(ok(&mut vm, "cat /var/lib/script-runs"), "x");
    vm.qmp().unwrap().quit().unwrap();
}

#[test]
fn user_data_from_fw_cfg_is_applied() {
    let Some(dir) = vm_test_image("cloud_config_fw_cfg") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let user_data = work.path().join("user-data");
    std::fs::write(
        &user_data,
        "#cloud-config\nhostname: from-fw-cfg\nwrite_files:\n  - path: /var/lib/fw-cfg-marker\n    content: hi\n",
    )
    .unwrap();
    let mut machine = Machine::new(dir.join("disk.qcow2"));
    machine.fw_cfg_user_data = Some(user_data);
    let mut vm = Vm::start("cloud-config-fw-cfg", &machine).unwrap();
    vm.wait_for("slipway: cloud-config: user-data (fw_cfg", BOOT)
        .unwrap();
    vm.wait_for("slipway: ready ", BOOT).unwrap();
    assert_eq!(ok(&mut vm, "hostname"), "from-fw-cfg");
    assert_eq!(ok(&mut vm, "cat /var/lib/fw-cfg-marker"), "hi");
    vm.qmp().unwrap().quit().unwrap();
}

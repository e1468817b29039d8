//! VM tests of cloud-config: user-data on a NoCloud seed disk (the one
//! `cargo xtask qemu --user-data` makes) is applied at first boot, its
//! per-instance items do not run again at the second boot, broken
//! user-data is reported with line and column while the machine comes up,
//! and a `#!` script on a config drive runs once.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use xtask::bench_containers::free_port;
use xtask::imds::{self, ImdsData};
use xtask::qemu::{Boot, Machine};
use xtask::seed::SeedKind;
use xtask::serve::{ServeOptions, Server};
use xtask::testing::{slot_a_direct_boot, vm_test_image};
use xtask::vm::{ssh, Vm};

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

/// A real web server for `dir` on a free host port, quiet.
fn serve(dir: &Path) -> Server {
    Server::start(ServeOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        log: false,
        ..ServeOptions::new(dir)
    })
    .unwrap()
}

/// Waits until `slipctl status UNIT` says it is active (a oneshot with
/// `RemainAfterExit=` once its command has finished).
fn wait_active(vm: &mut Vm, unit: &str) {
    let deadline = Instant::now() + BOOT;
    loop {
        let (_, out) = vm.run(&format!("slipctl status {unit}"), CMD).unwrap();
        // (slipctl colours the state on the serial console.)
        if out.contains("active (exited)") || out.contains("active (running)") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{unit} never became active:\n{out}"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

#[test]
fn user_data_is_applied_once_per_instance() {
    let Some(dir) = vm_test_image("cloud_config_applied") else {
        return;
    };
    // A real web server on the host for runcmd to fetch from.
    let site = tempfile::tempdir().unwrap();
    std::fs::write(site.path().join("hello.txt"), "fetched by runcmd\n").unwrap();
    let server = serve(site.path());
    let user_data = site.path().join("user-data.yaml");
    let text = std::fs::read_to_string(fixture("user-data.yaml")).unwrap();
    std::fs::write(
        &user_data,
        text.replace("@PORT@", &server.addr.port().to_string()),
    )
    .unwrap();

    let mut machine = Machine::new(dir.join("disk.qcow2"));
    machine.user_data = Some((SeedKind::NoCloud, user_data));
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
    // runcmd runs in the network stage, after network-online.target:
    // every command, the fetch from the host included, succeeds.
    vm.wait_for(
        "slipway: cloud-config: user-data (NoCloud (/dev/vdb)): runcmd: 3 of 3 done, 0 failed",
        BOOT,
    )
    .unwrap();
    assert_eq!(
        ok(&mut vm, "cat /var/lib/runcmd-fetched"),
        "fetched by runcmd"
    );
    let order = ok(
        &mut vm,
        "grep -n -e '--- boot, local stage' -e '--- boot, network stage' /var/log/cloud-config.log",
    );
    assert!(
        order.contains("local stage") && order.contains("network stage"),
        "{order}"
    );
    assert_eq!(
        ok(&mut vm, "stat -c '%a' /var/log/cloud-config.log"),
        "600",
        "the log holds command output: root only"
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
    // The network stage has run by the time the unit is active, and ran
    // nothing again.
    wait_active(&mut vm, "slipway-cloud-config.service");
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
    // Scripts run in the network stage, after the ready line.
    vm.wait_for("slipway: ready ", BOOT).unwrap();
    vm.wait_for("slipway: cloud-config: user-data script: done", BOOT)
        .unwrap();
    assert_eq!(ok(&mut vm, "cat /var/lib/script-runs"), "x");
    assert!(ok(&mut vm, "cat /var/log/cloud-config.log").contains("script ran as 0"));
    assert_eq!(
        ok(
            &mut vm,
            "stat -c '%a' /var/lib/slipway/cloud-config/user-data-script"
        ),
        "700"
    );
    vm.reboot().unwrap();
    vm.wait_for("slipway: rebooting", STOP).unwrap();
    vm.wait_for("slipway: ready ", BOOT).unwrap();
    wait_active(&mut vm, "slipway-cloud-config.service");
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

/// The machine believes it is on EC2 (the firmware's DMI strings say so)
/// and finds no local source: the network stage asks the metadata service
/// at 169.254.169.254 (the test's, reached through QEMU's `guestfwd`) with
/// the IMDSv2 token flow, applies its user-data, installs its SSH key for
/// `core`, and runs `runcmd` with the network up.
#[test]
fn user_data_and_a_key_from_an_ec2_metadata_service() {
    let Some(dir) = vm_test_image("cloud_config_ec2") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let site = work.path().join("site");
    std::fs::create_dir(&site).unwrap();
    std::fs::write(site.join("hello.txt"), "fetched on EC2\n").unwrap();
    let server = serve(&site);
    let (key, pubkey) = ssh::keygen(work.path());
    // The guest network is 169.254.0.0/16 here: the host is 169.254.0.2.
    let user_data = format!(
        "#cloud-config\n\
         write_files:\n  - path: /var/lib/from-imds\n    content: \"from the metadata service\\n\"\n\
         runcmd:\n  - [wget, -q, -O, /var/lib/imds-fetched, \"http://169.254.0.2:{}/hello.txt\"]\n",
        server.addr.port()
    );
    let data = ImdsData::instance("i-0123456789abcdef0", "ec2-test", &pubkey, Some(&user_data));
    let data_file = work.path().join("imds.json");
    data.write(&data_file).unwrap();

    let ssh_port = free_port().unwrap();
    let mut machine = Machine::new(dir.join("disk.qcow2"));
    machine.user_net_options = Some(
        imds::netdev_options(
            Path::new(env!("CARGO_BIN_EXE_slipway-test-imds")),
            &data_file,
        )
        .unwrap(),
    );
    machine.host_forwards = vec![(ssh_port, 22)];
    machine.extra_args = ["-smbios", "type=1,manufacturer=Amazon EC2,product=t3.micro"]
        .map(String::from)
        .to_vec();
    let mut vm = Vm::start("cloud-config-ec2", &machine).unwrap();
    vm.wait_for("slipway: ready ", BOOT).unwrap();
    let source = "user-data (EC2 metadata (http://169.254.169.254, IMDSv2))";
    let applied = vm
        .wait_for(&format!("slipway: cloud-config: {source}: "), BOOT)
        .unwrap();
    assert!(applied.contains(" 0 failed"), "{applied}");
    vm.wait_for(
        &format!("slipway: cloud-config: {source}: runcmd: 1 of 1 done, 0 failed"),
        BOOT,
    )
    .unwrap();

    assert_eq!(
        ok(&mut vm, "cat /var/lib/from-imds"),
        "from the metadata service"
    );
    assert_eq!(ok(&mut vm, "cat /var/lib/imds-fetched"), "fetched on EC2");
    assert_eq!(ok(&mut vm, "hostname"), "ec2-test");
    // No seed disk was mounted, so the hand-off made /run/slipway itself:
    // it must stay open to the services' users (etcd's notify socket is
    // in it); only the hand-off's own folder is root's alone.
    assert_eq!(
        ok(
            &mut vm,
            "stat -c '%a' /run/slipway /run/slipway/cloud-config"
        ),
        "755\n700"
    );

    // The token flow: one PUT for the token first, then only GETs that
    // carried it; nothing was refused.
    let log = std::fs::read_to_string(imds::request_log(&data_file)).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some("PUT /latest/api/token token=missing -> 200"),
        "{log}"
    );
    assert!(
        lines
            .iter()
            .skip(1)
            .all(|l| l.starts_with("GET ") && l.contains(" token=ok ")),
        "{log}"
    );
    assert!(
        log.contains("GET /latest/meta-data/public-keys/0/openssh-key token=ok -> 200"),
        "{log}"
    );
    assert!(
        log.contains("GET /latest/user-data token=ok -> 200"),
        "{log}"
    );

    // The key from the metadata logs `core` in.
    let deadline = Instant::now() + CMD;
    let out = loop {
        let out = ssh::ssh_core(&key, ssh_port, &[], "id -un");
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "core",
        "ssh core@: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // `core` runs the machine with Debian's sudo, no password asked (-n
    // fails rather than prompt); without it, status commands say plainly
    // that they need root.
    let run = |command: &str| {
        let out = ssh::ssh_core(&key, ssh_port, &[], command);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok_sudo, text) = run("sudo -n slipctl status");
    assert!(
        ok_sudo && text.contains("slipway-cloud-config.service"),
        "sudo slipctl status:\n{text}"
    );
    let (ok_id, text) = run("sudo -n id -u");
    assert!(ok_id && text.trim() == "0", "sudo id -u:\n{text}");
    let (ok_login, text) = run("sudo -n -i id -un");
    assert!(ok_login && text.trim() == "root", "sudo -i:\n{text}");
    let (ok_plain, text) = run("slipctl status");
    assert!(
        !ok_plain && text.contains("for root only") && text.contains("sudo slipctl status"),
        "slipctl status as core:\n{text}"
    );
    let (ok_engine, text) = run("update-engine status");
    assert!(
        !ok_engine && text.contains("needs root") && !text.contains("no disk holds"),
        "update-engine status as core:\n{text}"
    );
    vm.qmp().unwrap().quit().unwrap();
}

/// No local source and `cloud-config-url=` on the kernel command line: the
/// network stage fetches the user-data from a server on the host and
/// applies all of it, the host name included, once the network is up.
#[test]
fn user_data_from_cloud_config_url_on_the_kernel_command_line() {
    let Some(dir) = vm_test_image("cloud_config_url") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("user-data"),
        "#cloud-config\nhostname: from-url\nwrite_files:\n  - path: /var/lib/url-marker\n    content: over http\n",
    )
    .unwrap();
    let server = serve(work.path());
    let url = format!("http://10.0.2.2:{}/user-data", server.addr.port());

    // Slot A's kernel, initramfs and command line, straight from QEMU, with
    // the URL added: the way a PXE or iPXE boot hands one over.
    let (kernel, initrd, options) = slot_a_direct_boot(&dir, work.path()).unwrap();
    assert!(options.contains("slipway.slot=a"), "{options}");
    let mut machine = Machine::new(dir.join("disk.qcow2"));
    machine.boot = Boot::Kernel {
        kernel,
        initrd,
        append: format!("{options} cloud-config-url={url}"),
    };
    let mut vm = Vm::start("cloud-config-url", &machine).unwrap();
    vm.wait_for("slipway: ready ", BOOT).unwrap();
    let line = vm
        .wait_for(
            &format!("slipway: cloud-config: user-data (cloud-config-url ({url})): "),
            BOOT,
        )
        .unwrap();
    assert!(line.contains(" 0 failed"), "{line}");
    assert_eq!(ok(&mut vm, "cat /var/lib/url-marker"), "over http");
    assert_eq!(ok(&mut vm, "hostname"), "from-url");
    vm.qmp().unwrap().quit().unwrap();
}

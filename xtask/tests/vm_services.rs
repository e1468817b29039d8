//! VM tests of the service manager, networking and SSH, on one machine
//! configured the CoreOS way (a unit with a drop-in in `coreos.units`,
//! an SSH key for `core`):
//! - the unit's drop-in replaces its `ExecStart=`, the service runs and
//!   logs, `slipctl` reports it, a crash-looping unit is reported failed
//!   by name and cause while the rest comes up;
//! - with no network configuration the guest gets a DHCP lease from QEMU
//!   and fetches a page from an HTTP server this test runs on the host's
//!   loopback;
//! - `ssh core@` with the user-data key runs a command, passwords are
//!   refused;
//! - the ACPI power button stops the services (one ignores SIGTERM and is
//!   killed after its `TimeoutStopSec=`), and the next boot finds the
//!   data written up to the stop and an ext4 that needs no recovery.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use xtask::qemu::Machine;
use xtask::seed::SeedKind;
use xtask::testing::vm_test_image;
use xtask::vm::{ssh, Vm};

const BOOT: Duration = Duration::from_secs(300);
const CMD: Duration = Duration::from_secs(60);
const PAGE: &str = "hello from the slipway test host";

fn ok(vm: &mut Vm, command: &str) -> String {
    let (rc, out) = vm.run(command, CMD).unwrap();
    assert_eq!(rc, 0, "`{command}` failed:\n{out}");
    out.trim().to_string()
}

/// A one-page HTTP server on 127.0.0.1 (the guest reaches it as
/// 10.0.2.2 through QEMU's user networking). Serves at most a few
/// requests, then the thread ends.
fn http_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let Ok(mut s) = stream else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{PAGE}",
                PAGE.len()
            );
        }
    });
    port
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn user_data(dir: &Path, pubkey: &str) -> std::path::PathBuf {
    let text = format!(
        r#"#cloud-config
ssh_authorized_keys:
  - {pubkey}
write_files:
  - path: /var/lib/writer/writer.sh
    permissions: "0755"
    content: |
      #!/bin/sh
      mkdir -p /var/lib/writer
      trap 'echo stopped-cleanly >> /var/lib/writer/data; exit 0' TERM
      n=0
      while true; do
        n=$((n + 1))
        echo "line $n" >> /var/lib/writer/data
        echo "wrote line $n"
        sleep 0.2
      done
coreos:
  units:
    - name: writer.service
      command: start
      enable: true
      content: |
        [Unit]
        Description=Writes a line to /var every 0.2 s
        [Service]
        ExecStart=/bin/sh -c 'echo the drop-in did not apply; exit 1'
        [Install]
        WantedBy=multi-user.target
      drop_ins:
        - name: 10-run.conf
          content: |
            [Service]
            ExecStart=
            ExecStart=/var/lib/writer/writer.sh
    - name: stubborn.service
      command: start
      enable: true
      content: |
        [Unit]
        Description=Ignores SIGTERM
        [Service]
        ExecStart=/bin/sh -c 'trap "" TERM; while true; do sleep 1; done'
        TimeoutStopSec=3
        [Install]
        WantedBy=multi-user.target
    - name: crashloop.service
      command: start
      content: |
        [Unit]
        Description=Exits at once, every time
        [Service]
        ExecStart=/bin/sh -c 'echo giving up; exit 7'
        Restart=always
        RestartSec=100ms
"#
    );
    let path = dir.join("user-data.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn units_network_ssh_and_a_clean_poweroff() {
    let Some(image) = vm_test_image("units_network_ssh_and_a_clean_poweroff") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (key, pubkey) = ssh::keygen(tmp.path());
    let http_port = http_server();
    let ssh_port = free_port();

    let mut machine = Machine::new(image.join("disk.qcow2"));
    machine.user_data = Some((SeedKind::NoCloud, user_data(tmp.path(), &pubkey)));
    machine.host_forwards = vec![(ssh_port, 22)];
    // Stay alive after the guest powers off, so the same disk boots again.
    machine.extra_args = vec!["-no-shutdown".into()];
    let mut vm = Vm::start("services", &machine).unwrap();
    vm.wait_for("slipway: ready ", BOOT).unwrap();
    let summary = vm.wait_for("slipway: services started: ", BOOT).unwrap();
    assert!(summary.contains(" failed"), "{summary}");

    // The unit with its drop-in runs and logs.
    let mut log = String::new();
    for _ in 0..30 {
        log = ok(
            &mut vm,
            "cat /var/log/services/writer.service.log 2>/dev/null; true",
        );
        if log.contains("wrote line 3") {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(log.contains("wrote line 3"), "{log}");
    assert!(!log.contains("drop-in did not apply"), "{log}");
    let status = ok(&mut vm, "slipctl status writer.service");
    assert!(status.contains("active (running)"), "{status}");

    // The crash loop is reported by name and cause; the rest is up.
    let mut json = String::new();
    for _ in 0..30 {
        json = ok(&mut vm, "slipctl status --json");
        if json.contains("start limit hit") {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let status: serde_json::Value = serde_json::from_str(&json).unwrap();
    let unit = |name: &str| {
        status["units"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in {json}"))
            .clone()
    };
    assert_eq!(unit("crashloop.service")["active"], "failed", "{json}");
    assert!(
        unit("crashloop.service")["result"]
            .as_str()
            .unwrap()
            .contains("start limit hit"),
        "{json}"
    );
    assert_eq!(unit("writer.service")["active"], "active", "{json}");
    assert_eq!(unit("sshd.service")["active"], "active", "{json}");
    assert_eq!(
        unit("slipway-networkd.service")["active"],
        "active",
        "{json}"
    );
    assert_eq!(status["health"], "unhealthy", "{json}");
    assert!(
        status["health_detail"]
            .as_str()
            .unwrap()
            .contains("crashloop.service failed"),
        "{json}"
    );
    assert!(ok(&mut vm, "cat /run/slipway/health").starts_with("unhealthy: "));

    // DHCP from QEMU's user network, then a page from the host.
    let page = ok(
        &mut vm,
        &format!(
            "for i in $(seq 1 60); do wget -O - http://10.0.2.2:{http_port}/ 2>/dev/null && break; sleep 1; done"
        ),
    );
    assert!(page.contains(PAGE), "{page}");
    let resolv = ok(&mut vm, "cat /etc/resolv.conf");
    assert!(resolv.contains("nameserver 10.0.2.3"), "{resolv}");

    // SSH with the user-data key; passwords are not accepted.
    let deadline = Instant::now() + Duration::from_secs(120);
    let out = loop {
        let out = ssh::ssh_core(&key, ssh_port, &[], "cat /etc/os-release; id -un");
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && stdout.contains("ID=slipway")
            && stdout.trim_end().ends_with("core"),
        "ssh failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let pw = ssh::ssh_core(
        &key,
        ssh_port,
        &[
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PreferredAuthentications=password,keyboard-interactive",
        ],
        "true",
    );
    assert!(!pw.status.success(), "password login was accepted");

    // The power button: services stop in order, the stubborn one is
    // killed after 3 s, /var is unmounted cleanly.
    let lines_before = ok(&mut vm, "wc -l < /var/lib/writer/data")
        .parse::<u64>()
        .unwrap();
    let start = vm.transcript().cursor();
    vm.qmp().unwrap().system_powerdown().unwrap();
    vm.wait_for("slipway: poweroff requested", CMD).unwrap();
    vm.wait_for("slipway: powering off", CMD).unwrap();
    let shutdown = vm.transcript().lines()[start..].join("\n");
    assert!(
        !shutdown.contains("did not stop in time; killing"),
        "{shutdown}"
    );

    // Boot the same disk again.
    std::thread::sleep(Duration::from_secs(1));
    let mut qmp = vm.qmp().unwrap();
    qmp.system_reset().unwrap();
    qmp.execute("cont", None).unwrap();
    vm.wait_for("slipway: ready ", BOOT).unwrap();
    vm.wait_for("slipway: services started: ", BOOT).unwrap();
    let data = ok(&mut vm, "cat /var/lib/writer/data");
    let first_boot: Vec<&str> = data
        .lines()
        .take_while(|l| *l != "stopped-cleanly")
        .collect();
    assert!(first_boot.len() as u64 >= lines_before, "{data}");
    assert!(
        data.contains("stopped-cleanly"),
        "the writer was not stopped with SIGTERM:\n{data}"
    );
    let (_, dmesg) = vm.run("dmesg | grep 'EXT4-fs (vda6)'", CMD).unwrap();
    assert!(!dmesg.contains("recovery"), "{dmesg}");
    assert!(dmesg.contains("mounted filesystem"), "{dmesg}");
    // The stubborn service's stop was logged.
    let stubborn = ok(&mut vm, "cat /var/log/services/stubborn.service.log");
    assert!(
        stubborn.contains("did not stop in time: SIGKILL"),
        "{stubborn}"
    );
    // QEMU takes one QMP client at a time: reuse the connection.
    qmp.quit().unwrap();
}

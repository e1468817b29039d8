//! Containers the Container Linux way, against a real registry on the host:
//!
//! - host: Debian's `docker-registry` started by the test, the busybox web
//!   image the xtask writes as an OCI layout pushed with `skopeo copy`,
//!   and `skopeo inspect` showing the layer, config and manifest we wrote;
//! - VM (one machine, three boots): user-data with `daemon.json` naming the
//!   host's registry as insecure, an SSH key for `core` and a `web.service`
//!   that `docker run`s the image with `-p 8080:80` and a named volume.
//!   The host fetches the page through a forwarded port; `docker info`
//!   reports cgroup v2 and overlay2; `core` runs `docker ps` over SSH
//!   without sudo; a unit naming a missing image fails with the cause
//!   while the rest runs; the web unit comes back after the engine is
//!   restarted; the volume's data is there after a reboot and after an A/B
//!   update to a new release, whose trial boot is judged healthy.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use xtask::bench_containers::{
    boot_disk, diagnose, free_port, indent, wait_page, web_user_data, GUEST_WEB_PORT, IMAGE_NAME,
    PAGE,
};
use xtask::qemu::Machine;
use xtask::registry::{self, push_web_image, Registry};
use xtask::release::{self, PublishOptions};
use xtask::seed::SeedKind;
use xtask::serve::{ServeOptions, Server};
use xtask::testing::{in_ci, test_release, vm_test_image};
use xtask::vm::{ssh, Vm};

const BOOT: Duration = Duration::from_secs(600);
const CMD: Duration = Duration::from_secs(120);
/// dockerd's first start and the pull under TCG are slow.
const PAGE_WAIT: Duration = Duration::from_secs(900);

/// The registry tools, or `None` to skip outside CI (CI installs them).
fn registry_tools(test: &str) -> Option<()> {
    match registry::missing_tools() {
        None => Some(()),
        Some(why) if in_ci() => panic!("{test}: cannot run in CI: {why}"),
        Some(why) => {
            eprintln!("{test}: SKIPPED (not in CI): {why}");
            None
        }
    }
}

fn manifest(image: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(image.join("manifest.json")).expect("manifest.json");
    serde_json::from_str(&text).expect("manifest.json parses")
}

#[test]
fn registry_serves_the_test_image() {
    if registry_tools("registry_serves_the_test_image").is_none() {
        return;
    }
    // The image's busybox: the suite has built it; without an image, the
    // board's pinned one.
    let registry = Registry::start().unwrap();
    let image = match std::env::var_os(xtask::testing::IMAGE_ENV) {
        Some(dir) => push_web_image(&registry, Path::new(&dir), PAGE, IMAGE_NAME).unwrap(),
        None => {
            let busybox = xtask::oci::board_busybox("qemu-x86_64").unwrap();
            let epoch = xtask::build::default_source_date_epoch().unwrap();
            let image = xtask::oci::write_busybox_web(
                &busybox,
                PAGE,
                epoch,
                &registry::layout_dir("web-host"),
            )
            .unwrap();
            registry.push(&image, IMAGE_NAME).unwrap();
            image
        }
    };

    let summary = registry.inspect(IMAGE_NAME, false).unwrap();
    assert_eq!(
        summary["Layers"],
        serde_json::json!([image.layer_digest]),
        "{summary:#}"
    );
    // skopeo copied our manifest unchanged: the registry serves its digest.
    assert_eq!(
        summary["Digest"],
        image.manifest_digest.as_str(),
        "{summary:#}"
    );
    assert_eq!(summary["Architecture"], "amd64", "{summary:#}");
    assert_eq!(summary["Os"], "linux", "{summary:#}");
    let config = registry.inspect(IMAGE_NAME, true).unwrap();
    assert_eq!(
        config["config"]["Cmd"],
        serde_json::json!(image.cmd),
        "{config:#}"
    );
    assert_eq!(
        config["rootfs"]["diff_ids"],
        serde_json::json!([image.diff_id]),
        "{config:#}"
    );

    // The distribution API itself: the tag is listed, the layer blob is
    // served with the bytes we wrote.
    let (code, tags) = registry::http_get(registry.addr, "/v2/slipway/web/tags/list", CMD).unwrap();
    assert_eq!(code, 200, "{tags}");
    assert!(tags.contains("\"1\""), "{tags}");
    let (code, _) = registry::http_get(
        registry.addr,
        &format!("/v2/slipway/web/blobs/{}", image.layer_digest),
        CMD,
    )
    .unwrap();
    assert_eq!(code, 200);
    let (code, _) =
        registry::http_get(registry.addr, "/v2/slipway/missing/manifests/1", CMD).unwrap();
    assert_eq!(code, 404);
}

fn ok(vm: &mut Vm, command: &str) -> String {
    let (rc, out) = vm.run(command, CMD).unwrap();
    assert_eq!(rc, 0, "`{command}` failed:\n{out}");
    out.trim().to_string()
}

/// Waits for the page, or fails with what the guest says about the units;
/// while waiting, the guest's state is printed every two minutes.
fn page(vm: &mut Vm, web: SocketAddr, what: &str) {
    let t = Instant::now();
    loop {
        match wait_page(web, Duration::from_secs(120)) {
            Ok(_) => break,
            Err(e) if t.elapsed() >= PAGE_WAIT => {
                let state = diagnose(vm);
                panic!("{what}: {e:#}\n{state}");
            }
            Err(_) => eprintln!(
                "vm_containers: {what}: no page after {:.0?}; {}",
                t.elapsed(),
                diagnose(vm)
            ),
        }
    }
    eprintln!("vm_containers: {what}: page after {:.0?}", t.elapsed());
}

/// The web container's ID.
fn web_id(vm: &mut Vm) -> String {
    ok(vm, "docker inspect -f '{{.Id}}' web")
}

#[test]
fn web_container_from_the_host_registry_survives_restarts_reboot_and_update() {
    let test = "web_container_from_the_host_registry_survives_restarts_reboot_and_update";
    let Some(image) = vm_test_image(test) else {
        return;
    };
    if registry_tools(test).is_none() {
        return;
    }
    let m = manifest(&image);
    let v1 = m["version"].as_str().unwrap().to_string();
    let v2 = format!("{v1}.2");
    // The next release, built (or reused from vm_update) while the first
    // boot runs.
    let release = {
        let (image, v2) = (image.clone(), v2.clone());
        std::thread::spawn(move || {
            test_release(&image, &v2, Vec::new()).unwrap_or_else(|e| panic!("building {v2}: {e:#}"))
        })
    };

    let registry = Registry::start().unwrap();
    push_web_image(&registry, &image, PAGE, IMAGE_NAME).unwrap();
    let reg = registry.guest_host();

    let tmp = tempfile::tempdir().unwrap();
    let (key, pubkey) = ssh::keygen(tmp.path());
    // Not started by the user-data (its failure would make every later
    // boot unhealthy and roll the update back); the test starts it.
    let missing = format!(
        "[Unit]\nDescription=Names an image the registry does not have\n\
         After=docker.service\nRequires=docker.service\n\
         [Service]\nExecStart=/usr/bin/docker run --rm --name missing {reg}/slipway/missing:1\n"
    );
    let user_data = web_user_data(
        &reg,
        &format!("ssh_authorized_keys:\n  - {pubkey}\n"),
        &format!(
            "    - name: missing.service\n      content: |\n{}",
            indent(&missing, 8)
        ),
    );
    let report = cloud_config::validate(user_data.as_bytes());
    assert!(!report.has_errors(), "{user_data}\n{:?}", report.findings);
    let user_data_path = tmp.path().join("user-data.yaml");
    std::fs::write(&user_data_path, &user_data).unwrap();

    let (web_port, ssh_port) = (free_port().unwrap(), free_port().unwrap());
    let web = SocketAddr::from(([127, 0, 0, 1], web_port));
    let mut machine = Machine::new(boot_disk(&image));
    machine.memory_mib = 1536;
    // Room on /var for the engine's state (the image's /var grows into it).
    machine.disk_size = Some(4 << 30);
    machine.user_data = Some((SeedKind::NoCloud, user_data_path));
    machine.host_forwards = vec![(web_port, GUEST_WEB_PORT), (ssh_port, 22)];
    let mut vm = Vm::start("containers", &machine).unwrap();
    vm.wait_for(&format!("slipway: ready version={v1} slot=a "), BOOT)
        .unwrap();

    // 1. The page from the host, through dockerd's published port.
    page(&mut vm, web, "first boot");
    let status = ok(&mut vm, "slipctl status docker.service");
    assert!(status.contains("active (running)"), "{status}");
    let info = ok(&mut vm, "docker info 2>&1");
    assert!(info.contains("Cgroup Version: 2"), "{info}");
    assert!(info.contains("Storage Driver: overlay2"), "{info}");
    // Warnings name what the engine misses (a cgroup controller, a
    // netfilter module, a sysctl): none are expected on this image.
    assert!(!info.contains("WARNING"), "docker info warns:\n{info}");

    // 2. `core` is in the docker group: docker ps over SSH, no sudo.
    let deadline = Instant::now() + CMD;
    let out = loop {
        let out = ssh::ssh_core(
            &key,
            ssh_port,
            &[],
            "id -Gn; docker ps --format '{{.Names}}'",
        );
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && stdout
                .lines()
                .next()
                .unwrap_or("")
                .split_whitespace()
                .any(|g| g == "docker")
            && stdout.lines().any(|l| l.trim() == "web"),
        "ssh core@ docker ps: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    // 3. A unit naming an image that does not exist fails with the cause;
    // the web unit keeps running.
    ok(&mut vm, "slipctl start missing.service");
    let deadline = Instant::now() + CMD;
    let status = loop {
        let (_, status) = vm.run("slipctl status missing.service", CMD).unwrap();
        if status.contains("failed") || Instant::now() > deadline {
            break status;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    let log = ok(&mut vm, "cat /var/log/services/missing.service.log");
    assert!(status.contains("failed"), "{status}\n{log}");
    // The cause, as the registry gave it, in the log and in the status's
    // tail of the log.
    assert!(
        log.contains("manifest unknown"),
        "no cause in the log:\n{log}"
    );
    assert!(
        status.contains("manifest unknown"),
        "no cause in slipctl status:\n{status}"
    );
    eprintln!("vm_containers: the missing image's unit:\n{status}");
    let status = ok(&mut vm, "slipctl status web.service");
    assert!(status.contains("active (running)"), "{status}");

    // 4. Data in the named volume.
    ok(&mut vm, "docker exec web sh -c 'echo kept-data > /data/f'");

    // 5. Restarting the engine: the web unit (Restart=always) comes back
    // with a new container on the same volume.
    let before = web_id(&mut vm);
    ok(&mut vm, "slipctl restart docker");
    page(&mut vm, web, "after the engine restart");
    let deadline = Instant::now() + CMD;
    let after = loop {
        let id = vm
            .run("docker inspect -f '{{.Id}}' web 2>&1", CMD)
            .unwrap()
            .1;
        if id.trim() != before || Instant::now() > deadline {
            break id;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    assert_ne!(after.trim(), before, "the web container was not recreated");
    assert_eq!(ok(&mut vm, "docker exec web cat /data/f"), "kept-data");

    // 6. A reboot: the unit starts again at boot, the volume is kept.
    vm.reboot().unwrap();
    vm.wait_for(&format!("slipway: ready version={v1} slot=a "), BOOT)
        .unwrap();
    page(&mut vm, web, "after the reboot");
    assert_eq!(ok(&mut vm, "docker exec web cat /data/f"), "kept-data");

    // 7. An A/B update to the next release: the engine's state on /var is
    // untouched, the trial boot is healthy with the user's units.
    let img2 = release.join().expect("building the next release");
    let feed = tempfile::tempdir().unwrap();
    release::publish(&PublishOptions {
        image_dir: img2,
        dir: feed.path().to_path_buf(),
        channel: "test".to_string(),
        valid_for: 86_400,
        key: None,
    })
    .unwrap();
    let server = Server::start(ServeOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        log: false,
        ..ServeOptions::new(feed.path())
    })
    .unwrap();
    ok(
        &mut vm,
        &format!(
            "mkdir -p /etc/slipway && printf 'SERVER=http://10.0.2.2:{}\\nGROUP=stable\\n' \
             > /etc/slipway/update.conf",
            server.addr.port()
        ),
    );
    let (rc, out) = vm
        .run(
            "update-engine apply --channel test --progress lines 2>&1",
            Duration::from_secs(600),
        )
        .unwrap();
    assert!(
        rc == 0 && out.contains(&format!("installed {v2} into slot b")),
        "{out}"
    );
    vm.reboot().unwrap();
    vm.wait_for(&format!("slipway: ready version={v2} slot=b "), BOOT)
        .unwrap();
    page(&mut vm, web, "after the update");
    assert_eq!(ok(&mut vm, "docker exec web cat /data/f"), "kept-data");
    let deadline = Instant::now() + BOOT;
    loop {
        let status = ok(&mut vm, "update-engine status");
        let b = status
            .lines()
            .find(|l| l.starts_with("slot b:"))
            .unwrap_or("")
            .to_string();
        if b.contains(" good ") {
            break;
        }
        assert!(
            Instant::now() < deadline && !b.contains(" bad "),
            "the trial boot of {v2} was not blessed:\n{status}\n{}",
            diagnose(&mut vm)
        );
        std::thread::sleep(Duration::from_secs(3));
    }
    server.stop();
}

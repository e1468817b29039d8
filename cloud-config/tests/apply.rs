//! Applying a realistic cloud-config to a temporary root and checking the
//! exact files, modes, owners and symlinks it leaves.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use cloud_config::apply::{
    already_applied, apply, apply_report, bootcmds, commands_to_run, record_applied, ApplyOptions,
    Outcome, RefusedConfig, StepResult, UnitCommand,
};
use cloud_config::schema::{CloudConfig, WriteFile};
use cloud_config::validate;

const KEY_A: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGm5bWq6o1f3j8T7K9nqH4pKzR0X7m1yYQ6m0x3Yb8sW alice@laptop";
const KEY_CORE: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ops@example.org";
const KEY_META: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHfGq0gLZ2V0bWV0YWRhdGFrZXlzZm9ydGVzdGluZzE meta@cloud";

fn seed_root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    fs::create_dir_all(&etc).unwrap();
    fs::write(etc.join("passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    fs::write(etc.join("group"), "root:x:0:\nwheel:x:10:\ndocker:x:999:\n").unwrap();
    fs::write(etc.join("shadow"), "root:*:19000:0:99999:7:::\n").unwrap();
    fs::write(etc.join("append.txt"), "first\n").unwrap();
    fs::create_dir_all(dir.path().join("root")).unwrap();
    fs::create_dir_all(dir.path().join("usr/lib/systemd/system")).unwrap();
    fs::write(
        dir.path().join("usr/lib/systemd/system/docker.service"),
        "[Service]\nExecStart=/usr/bin/dockerd\n\n[Install]\nWantedBy=multi-user.target sockets.target\n",
    )
    .unwrap();
    dir
}

fn gzip_b64(data: &[u8]) -> String {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    base64::engine::general_purpose::STANDARD.encode(e.finish().unwrap())
}

fn user_data() -> String {
    format!(
        r#"#cloud-config
hostname: node-1.example.com
manage_etc_hosts: localhost
ssh_authorized_keys:
  - {KEY_CORE}
groups:
  - ops: [alice]
users:
  - name: alice
    gecos: Alice Liddell
    shell: /bin/bash
    groups: [wheel, docker]
    passwd: $6$salt$hashhashhash
    sudo: ALL=(ALL) NOPASSWD:ALL
    ssh_authorized_keys:
      - {KEY_A}
  - name: svc
    system: true
  - name: carol
    groups: [wheel, nosuch]
    ssh_authorized_keys:
      - {KEY_A}
  - name: dave
    no_user_group: true
    no_create_home: true
    lock_passwd: false
    uid: 2000
write_files:
  - path: /etc/motd
    content: |
      Welcome to Slipway
  - path: /etc/b64.txt
    encoding: b64
    permissions: "0600"
    content: aGVsbG8gYmFzZTY0Cg==
  - path: /var/lib/app/data.txt
    encoding: gzip+base64
    permissions: "0640"
    owner: alice:docker
    content: {gz}
  - path: /etc/append.txt
    append: true
    content: |
      second
  - path: /home/alice/notes/todo
    owner: alice
    permissions: "0600"
    content: buy milk
  - path: /home/carol/x
    owner: carol
    content: never
  - path: /etc/late.conf
    defer: true
    owner: "1000:10"
    content: late
coreos:
  update:
    reboot-strategy: etcd-lock
    group: stable
    server: https://updates.example.com/v1/update/
  locksmith:
    endpoint: http://10.0.0.1:2379
    group: web
    window-start: Thu 04:00
    window-length: 1h30m
  etcd2:
    name: node-1
    advertise-client-urls: http://10.0.0.11:2379
    initial-cluster: 'node-1=http://10.0.0.11:2380,node-2=http://10.0.0.12:2380'
  fleet:
    metadata: region=eu-west,role=etcd
  flannel:
    interface: eth1
  oem:
    id: acme
    name: Acme Cloud
    version-id: 1.2.3
    home-url: https://acme.example.com/
    bug-report-url: https://acme.example.com/bugs
  units:
    - name: hello.service
      enable: true
      command: start
      content: |
        [Unit]
        Description=Hello

        [Service]
        ExecStart=/usr/bin/echo hello

        [Install]
        WantedBy=multi-user.target network-online.target
    - name: docker.service
      enable: true
      drop-ins:
        - name: 50-opts.conf
          content: |
            [Service]
            Environment=DOCKER_OPTS=--debug
    - name: bad.service
      mask: true
    - name: tmp.service
      runtime: true
      enable: true
      command: restart
      content: |
        [Service]
        ExecStart=/bin/true
    - name: 00-eth0.network
      content: |
        [Match]
        Name=eth0
runcmd:
  - echo hi > /tmp/x
  - [touch, /tmp/y]
bootcmd:
  - [modprobe, dummy]
"#,
        gz = gzip_b64(b"compressed data\n"),
    )
}

fn options(root: &Path) -> ApplyOptions {
    ApplyOptions {
        root: root.to_path_buf(),
        instance_id: "i-0123".to_string(),
        default_user: "core".to_string(),
        metadata_keys: vec![KEY_META.to_string()],
        metadata_hostname: Some("from-metadata".to_string()),
    }
}

fn config() -> CloudConfig {
    let report = validate(user_data().as_bytes());
    assert!(!report.has_errors(), "{}", report.render_text("user-data"));
    report.config.unwrap()
}

fn read(root: &Path, path: &str) -> String {
    let p = root.join(path.trim_start_matches('/'));
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn meta(root: &Path, path: &str) -> fs::Metadata {
    fs::symlink_metadata(root.join(path.trim_start_matches('/'))).unwrap()
}

fn mode(root: &Path, path: &str) -> u32 {
    meta(root, path).mode() & 0o7777
}

/// Numeric owner; `None` when not running as root (chown is then skipped
/// by design, so ownership cannot be checked).
fn owner(root: &Path, path: &str) -> Option<(u32, u32)> {
    let m = meta(root, path);
    is_root().then_some((m.uid(), m.gid()))
}

fn assert_owner(root: &Path, path: &str, ids: (u32, u32)) {
    if let Some(actual) = owner(root, path) {
        assert_eq!(actual, ids, "{path}");
    }
}

fn link(root: &Path, path: &str) -> PathBuf {
    fs::read_link(root.join(path.trim_start_matches('/'))).unwrap()
}

fn result<'a>(outcome: &'a Outcome, name: &str) -> &'a StepResult {
    &outcome
        .steps
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no step {name:?} in\n{}", outcome.log_text()))
        .result
}

fn today() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 86_400
}

fn is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

#[test]
fn applies_a_realistic_config() {
    let dir = seed_root();
    let root = dir.path();
    let outcome = apply(&config(), &options(root));
    let log = outcome.log_text();

    // Failures are exactly the broken items.
    let failed: Vec<&str> = outcome
        .steps
        .iter()
        .filter(|s| matches!(s.result, StepResult::Failed(_)))
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(
        failed,
        [
            "users[2] carol",
            "users[2] carol ssh keys",
            "write_files[5] /home/carol/x"
        ],
        "{log}"
    );
    match result(&outcome, "users[2] carol") {
        StepResult::Failed(m) => assert!(m.contains("group nosuch does not exist"), "{m}"),
        other => panic!("{other:?}"),
    }
    match result(&outcome, "write_files[5] /home/carol/x") {
        StepResult::Failed(m) => assert!(m.contains("step \"users[2] carol\" failed"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(outcome.failed());
    assert!(log.contains("lock_passwd: false has no effect without a passwd hash"));
    assert!(outcome.summary().starts_with("cloud-config: "));
    assert!(outcome.summary().contains(" done, 3 failed, 0 skipped"));

    // Hostname: user-data wins over metadata.
    assert_eq!(read(root, "/etc/hostname"), "node-1.example.com\n");
    assert_eq!(
        read(root, "/etc/hosts"),
        "# Written by slipway cloud-config (manage_etc_hosts: localhost)\n\
         127.0.0.1 localhost\n::1 localhost\n127.0.0.1 node-1.example.com node-1\n"
    );

    // Accounts. ops takes gid 1000 first, so alice's group gets 1001; the
    // system user takes the highest free ids below 1000 (999 is docker).
    assert_eq!(
        read(root, "/etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\n\
         alice:x:1000:1001:Alice Liddell:/home/alice:/bin/bash\n\
         svc:x:999:998::/home/svc:/bin/sh\n\
         dave:x:2000:100::/home/dave:/bin/sh\n\
         core:x:1001:1002::/home/core:/bin/sh\n"
    );
    assert_eq!(
        read(root, "/etc/group"),
        "root:x:0:\nwheel:x:10:alice,core\ndocker:x:999:alice,core\nops:x:1000:alice\n\
         alice:x:1001:\nsvc:x:998:\ncore:x:1002:\n"
    );
    let d = today();
    assert_eq!(
        read(root, "/etc/shadow"),
        format!(
            "root:*:19000:0:99999:7:::\nalice:$6$salt$hashhashhash:{d}::::::\n\
             svc:!:{d}::::::\ndave:!:{d}::::::\ncore:!:{d}::::::\n"
        )
    );
    assert_eq!(mode(root, "/home/alice"), 0o700);
    assert_owner(root, "/home/alice", (1000, 1001));
    assert!(!root.join("home/svc").exists());
    assert!(!root.join("home/dave").exists());
    assert!(!root.join("home/carol").exists());
    assert_eq!(
        read(root, "/etc/sudoers.d/90-cloud-config"),
        "# Written by slipway cloud-config from users[].sudo.\nalice ALL=(ALL) NOPASSWD:ALL\n"
    );
    assert_eq!(mode(root, "/etc/sudoers.d/90-cloud-config"), 0o440);

    // SSH keys.
    let header = "# Generated by slipway cloud-config from ~/.ssh/authorized_keys.d/ (edit the files there)\n";
    assert_eq!(
        read(root, "/home/alice/.ssh/authorized_keys"),
        format!("{header}{KEY_A}\n")
    );
    assert_eq!(
        read(root, "/home/core/.ssh/authorized_keys.d/cloud-config"),
        format!("{KEY_CORE}\n")
    );
    assert_eq!(
        read(root, "/home/core/.ssh/authorized_keys.d/metadata"),
        format!("{KEY_META}\n")
    );
    assert_eq!(
        read(root, "/home/core/.ssh/authorized_keys"),
        format!("{header}{KEY_CORE}\n{KEY_META}\n")
    );
    for (path, m) in [
        ("/home/core/.ssh", 0o700),
        ("/home/core/.ssh/authorized_keys.d", 0o700),
        ("/home/core/.ssh/authorized_keys.d/metadata", 0o600),
        ("/home/core/.ssh/authorized_keys", 0o600),
    ] {
        assert_eq!(mode(root, path), m, "{path}");
        assert_owner(root, path, (1001, 1002));
    }

    // Files.
    assert_eq!(read(root, "/etc/motd"), "Welcome to Slipway\n");
    assert_eq!(mode(root, "/etc/motd"), 0o644);
    assert_eq!(read(root, "/etc/b64.txt"), "hello base64\n");
    assert_eq!(mode(root, "/etc/b64.txt"), 0o600);
    assert_eq!(read(root, "/var/lib/app/data.txt"), "compressed data\n");
    assert_eq!(mode(root, "/var/lib/app/data.txt"), 0o640);
    assert_owner(root, "/var/lib/app/data.txt", (1000, 999));
    assert_eq!(mode(root, "/var/lib/app"), 0o755);
    assert_eq!(read(root, "/etc/append.txt"), "first\nsecond\n");
    assert_eq!(read(root, "/home/alice/notes/todo"), "buy milk");
    assert_owner(root, "/home/alice/notes/todo", (1000, 0));
    assert_eq!(read(root, "/etc/late.conf"), "late");
    assert_owner(root, "/etc/late.conf", (1000, 10));
    // The deferred file is the last step.
    assert_eq!(
        outcome.steps.last().map(|s| s.name.as_str()),
        Some("write_files[6] /etc/late.conf")
    );

    // Generated files.
    assert_eq!(
        read(root, "/etc/slipway/update.conf"),
        "# Written by slipway cloud-config from coreos.update and coreos.locksmith\n\
         REBOOT_STRATEGY=etcd-lock\nGROUP=stable\nSERVER=https://updates.example.com/v1/update/\n\
         LOCKSMITHD_ENDPOINT=http://10.0.0.1:2379\nLOCKSMITHD_GROUP=web\n\
         WINDOW_START=Thu 04:00\nWINDOW_LENGTH=1h30m\n"
    );
    assert_eq!(
        read(root, "/run/systemd/system/etcd2.service.d/20-cloudinit.conf"),
        "[Service]\nEnvironment=\"ETCD_NAME=node-1\"\n\
         Environment=\"ETCD_ADVERTISE_CLIENT_URLS=http://10.0.0.11:2379\"\n\
         Environment=\"ETCD_INITIAL_CLUSTER=node-1=http://10.0.0.11:2380,node-2=http://10.0.0.12:2380\"\n"
    );
    assert_eq!(
        read(
            root,
            "/run/systemd/system/fleet.service.d/20-cloudinit.conf"
        ),
        "[Service]\nEnvironment=\"FLEET_METADATA=region=eu-west,role=etcd\"\n"
    );
    assert_eq!(
        read(
            root,
            "/run/systemd/system/flanneld.service.d/20-cloudinit.conf"
        ),
        "[Service]\nEnvironment=\"FLANNELD_IFACE=eth1\"\n"
    );
    assert_eq!(
        read(root, "/etc/oem-release"),
        "ID=\"acme\"\nNAME=\"Acme Cloud\"\nVERSION_ID=\"1.2.3\"\n\
         HOME_URL=\"https://acme.example.com/\"\nBUG_REPORT_URL=\"https://acme.example.com/bugs\"\n"
    );

    // Units.
    assert!(
        read(root, "/etc/systemd/system/hello.service").contains("ExecStart=/usr/bin/echo hello")
    );
    assert_eq!(
        link(
            root,
            "/etc/systemd/system/multi-user.target.wants/hello.service"
        ),
        Path::new("../hello.service")
    );
    assert_eq!(
        link(
            root,
            "/etc/systemd/system/network-online.target.wants/hello.service"
        ),
        Path::new("../hello.service")
    );
    assert_eq!(
        read(root, "/etc/systemd/system/docker.service.d/50-opts.conf"),
        "[Service]\nEnvironment=DOCKER_OPTS=--debug\n"
    );
    // A vendor unit is enabled by its absolute path, from its own [Install].
    assert_eq!(
        link(
            root,
            "/etc/systemd/system/sockets.target.wants/docker.service"
        ),
        Path::new("/usr/lib/systemd/system/docker.service")
    );
    assert_eq!(
        link(root, "/etc/systemd/system/bad.service"),
        Path::new("/dev/null")
    );
    assert_eq!(
        read(root, "/run/systemd/system/tmp.service"),
        "[Service]\nExecStart=/bin/true\n"
    );
    assert_eq!(
        link(
            root,
            "/run/systemd/system/multi-user.target.wants/tmp.service"
        ),
        Path::new("../tmp.service")
    );
    assert_eq!(
        read(root, "/etc/systemd/network/00-eth0.network"),
        "[Match]\nName=eth0\n"
    );
    assert_eq!(
        read(root, "/run/slipway/unit-commands"),
        "start hello.service\nrestart tmp.service\n"
    );
    assert_eq!(
        outcome.unit_commands,
        [
            UnitCommand {
                command: "start".into(),
                unit: "hello.service".into()
            },
            UnitCommand {
                command: "restart".into(),
                unit: "tmp.service".into()
            },
        ]
    );
}

#[test]
fn a_second_apply_is_idempotent() {
    let dir = seed_root();
    let root = dir.path();
    let config = config();
    let opts = options(root);
    let first = apply(&config, &opts);
    let files = [
        "/etc/passwd",
        "/etc/group",
        "/etc/shadow",
        "/home/core/.ssh/authorized_keys",
        "/home/alice/.ssh/authorized_keys",
        "/etc/sudoers.d/90-cloud-config",
        "/etc/hostname",
        "/run/slipway/unit-commands",
    ];
    let before: Vec<String> = files.iter().map(|f| read(root, f)).collect();
    let second = apply(&config, &opts);
    let after: Vec<String> = files.iter().map(|f| read(root, f)).collect();
    assert_eq!(before, after);
    assert_eq!(first.failed(), second.failed());
    // The default user exists now: only its keys step remains.
    assert_eq!(
        first.steps.len(),
        second.steps.len() + 1,
        "{}",
        second.log_text()
    );
    assert!(second
        .log_text()
        .contains("existing user: only the password and SSH keys are applied"));
    // Appending is not idempotent, by definition.
    assert_eq!(read(root, "/etc/append.txt"), "first\nsecond\nsecond\n");
}

#[test]
fn runtime_failures_are_isolated() {
    let dir = seed_root();
    let root = dir.path();
    let config = CloudConfig {
        write_files: vec![
            WriteFile {
                path: "/usr/x".into(),
                content: "x".into(),
                ..WriteFile::default()
            },
            WriteFile {
                path: "/etc/ok".into(),
                content: "ok".into(),
                ..WriteFile::default()
            },
            WriteFile {
                path: "/etc/owned".into(),
                content: "x".into(),
                owner: Some("nobody:nogroup".into()),
                ..WriteFile::default()
            },
        ],
        ..CloudConfig::default()
    };
    let outcome = apply(&config, &ApplyOptions::new(root, "i-1"));
    assert!(
        matches!(result(&outcome, "write_files[0] /usr/x"), StepResult::Failed(m) if m.contains("read-only"))
    );
    assert_eq!(
        result(&outcome, "write_files[1] /etc/ok"),
        &StepResult::Done
    );
    assert!(
        matches!(result(&outcome, "write_files[2] /etc/owned"), StepResult::Failed(m) if m.contains("no user \"nobody\""))
    );
    assert!(!root.join("usr/x").exists());
    assert!(!root.join("etc/owned").exists());
    assert_eq!(
        outcome.summary(),
        "cloud-config: 1 done, 2 failed, 0 skipped"
    );
    assert_eq!(
        outcome.log_text().lines().next(),
        Some("write_files[0] /usr/x: FAILED: /usr/x is on the read-only root filesystem; files can only be written under /etc, /var, /home, /root, /opt, /run, /tmp")
    );
}

#[test]
fn apply_report_refuses_configs_with_errors() {
    let dir = seed_root();
    let root = dir.path();
    let listing = || {
        let mut v: Vec<PathBuf> = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p.clone());
                }
                v.push(p);
            }
        }
        v.sort();
        v
    };
    let before = listing();
    let bad = "#cloud-config\nhostname: node-1\nwrite_files:\n  - path: /usr/x\n    content: x\ncoreos:\n  update:\n    reboot-strategy: always\n";
    let report = validate(bad.as_bytes());
    let opts = ApplyOptions::new(root, "i-1");
    assert_eq!(
        apply_report(&report, &opts),
        Err(RefusedConfig::HasErrors { errors: 2 })
    );
    assert_eq!(
        RefusedConfig::HasErrors { errors: 2 }.to_string(),
        "not applied: the cloud-config has 2 errors"
    );
    assert_eq!(
        apply_report(&validate(b"#!/bin/sh\necho hi\n"), &opts),
        Err(RefusedConfig::NoConfig)
    );
    assert_eq!(listing(), before);
    let good = validate(b"#cloud-config\nhostname: node-1\n");
    let outcome = apply_report(&good, &opts).unwrap();
    assert_eq!(
        outcome.summary(),
        "cloud-config: 1 done, 0 failed, 0 skipped"
    );
}

#[test]
fn instance_bookkeeping() {
    let dir = seed_root();
    let opts = ApplyOptions::new(dir.path(), "i-abc");
    assert!(!already_applied(&opts));
    record_applied(&opts);
    assert!(already_applied(&opts));
    assert_eq!(
        read(dir.path(), "/var/lib/slipway/cloud-config/instance"),
        "i-abc\n"
    );
    let other = ApplyOptions::new(dir.path(), "i-def");
    assert!(!already_applied(&other));
}

#[test]
fn commands_are_planned_not_run() {
    let dir = seed_root();
    let config = config();
    let opts = options(dir.path());
    let planned = commands_to_run(&config, &opts);
    let argvs: Vec<Vec<String>> = planned.iter().map(|p| p.argv.clone()).collect();
    assert_eq!(
        argvs,
        [
            vec![
                "/bin/sh".to_string(),
                "-c".into(),
                "echo hi > /tmp/x".into()
            ],
            vec!["touch".to_string(), "/tmp/y".into()],
        ]
    );
    assert!(planned[0].step.starts_with("runcmd[0] (line "));
    let boot = bootcmds(&config);
    assert_eq!(boot.len(), 1);
    assert_eq!(boot[0].argv, ["modprobe", "dummy"]);
}

#[test]
fn existing_user_gets_password_and_keys_only() {
    let dir = seed_root();
    let root = dir.path();
    let bytes = format!(
        "#cloud-config\nusers:\n  - name: root\n    passwd: $6$x$y\n    shell: /bin/zsh\n    groups: [wheel]\n    ssh_authorized_keys:\n      - {KEY_A}\n"
    );
    let report = validate(bytes.as_bytes());
    let outcome = apply_report(&report, &ApplyOptions::new(root, "i")).unwrap();
    assert!(!outcome.failed(), "{}", outcome.log_text());
    assert_eq!(read(root, "/etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
    assert_eq!(
        read(root, "/etc/group"),
        "root:x:0:\nwheel:x:10:\ndocker:x:999:\n"
    );
    assert_eq!(
        read(root, "/etc/shadow"),
        format!("root:$6$x$y:{}:0:99999:7:::\n", today())
    );
    assert!(read(root, "/root/.ssh/authorized_keys").ends_with(&format!("{KEY_A}\n")));
}

// ---- Hardening: users' files are never trusted (symlinks, FIFOs, owners).

/// A root with an existing user `alice` (1000:1000) whose home exists and
/// belongs to her, and a secret `/etc/secret` she must not get.
fn seed_alice() -> tempfile::TempDir {
    let dir = seed_root();
    let root = dir.path();
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n",
    )
    .unwrap();
    fs::write(
        root.join("etc/group"),
        "root:x:0:\nwheel:x:10:\ndocker:x:999:\nalice:x:1000:\n",
    )
    .unwrap();
    fs::write(root.join("etc/secret"), "root:$6$secret-hash:19000::::::\n").unwrap();
    let home = root.join("home/alice");
    fs::create_dir_all(home.join(".ssh")).unwrap();
    for p in [home.clone(), home.join(".ssh")] {
        std::os::unix::fs::chown(&p, Some(1000), Some(1000)).unwrap();
    }
    dir
}

fn apply_text(root: &Path, text: &str, metadata_keys: &[&str]) -> Outcome {
    let report = validate(text.as_bytes());
    assert!(!report.has_errors(), "{}", report.render_text("user-data"));
    let mut opts = ApplyOptions::new(root, "i-1");
    opts.metadata_keys = metadata_keys.iter().map(|k| k.to_string()).collect();
    apply_report(&report, &opts).unwrap()
}

fn notes<'a>(outcome: &'a Outcome, name: &str) -> &'a [String] {
    &outcome
        .steps
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no step {name:?} in\n{}", outcome.log_text()))
        .notes
}

fn alice_keys() -> String {
    format!("#cloud-config\nusers:\n  - name: alice\n    ssh_authorized_keys:\n      - {KEY_A}\n")
}

#[test]
fn old_authorized_keys_symlink_is_not_followed() {
    let dir = seed_alice();
    let root = dir.path();
    std::os::unix::fs::symlink(
        root.join("etc/secret"),
        root.join("home/alice/.ssh/authorized_keys"),
    )
    .unwrap();
    let outcome = apply_text(root, &alice_keys(), &[]);
    assert_eq!(
        *result(&outcome, "users[0] alice ssh keys"),
        StepResult::Done
    );
    assert!(
        notes(&outcome, "users[0] alice ssh keys")
            .iter()
            .any(|n| n.contains("authorized_keys is a symlink; ignored")),
        "{}",
        outcome.log_text()
    );
    // The secret was not copied into a set, nor into authorized_keys.
    assert!(!root
        .join("home/alice/.ssh/authorized_keys.d/old_authorized_keys")
        .exists());
    let keys = read(root, "/home/alice/.ssh/authorized_keys");
    assert!(!keys.contains("secret-hash"));
    assert!(keys.ends_with(&format!("{KEY_A}\n")));
    // The symlink was replaced by a file; its target is untouched.
    assert!(meta(root, "/home/alice/.ssh/authorized_keys").is_file());
    assert_eq!(
        read(root, "/etc/secret"),
        "root:$6$secret-hash:19000::::::\n"
    );
}

#[test]
fn old_authorized_keys_fifo_and_foreign_files_are_skipped() {
    // A FIFO used to hang the applier (and the boot) for good.
    let dir = seed_alice();
    let root = dir.path().to_path_buf();
    nix::unistd::mkfifo(
        &root.join("home/alice/.ssh/authorized_keys"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let r = root.clone();
    std::thread::spawn(move || {
        let _ = tx.send(apply_text(&r, &alice_keys(), &[]));
    });
    let outcome = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("apply hung on a FIFO authorized_keys");
    assert_eq!(
        *result(&outcome, "users[0] alice ssh keys"),
        StepResult::Done
    );
    assert!(notes(&outcome, "users[0] alice ssh keys")
        .iter()
        .any(|n| n.contains("not a regular file")));

    // A file owned by someone else (a hard link to it, say) and one too big
    // to be keys are not copied either.
    for (content, uid, why) in [
        ("ssh-rsa FOREIGN\n".to_string(), 2000, "owned by uid 2000"),
        (format!("{}\n", "x".repeat(2 << 20)), 1000, "larger than"),
    ] {
        let dir = seed_alice();
        let root = dir.path();
        let ak = root.join("home/alice/.ssh/authorized_keys");
        fs::write(&ak, content).unwrap();
        std::os::unix::fs::chown(&ak, Some(uid), Some(uid)).unwrap();
        let outcome = apply_text(root, &alice_keys(), &[]);
        assert!(
            notes(&outcome, "users[0] alice ssh keys")
                .iter()
                .any(|n| n.contains(why)),
            "{}",
            outcome.log_text()
        );
        assert!(!root
            .join("home/alice/.ssh/authorized_keys.d/old_authorized_keys")
            .exists());
    }

    // Her own regular file is still kept, as before.
    let dir = seed_alice();
    let root = dir.path();
    let ak = root.join("home/alice/.ssh/authorized_keys");
    fs::write(&ak, "ssh-rsa OLDKEY old@host\n").unwrap();
    std::os::unix::fs::chown(&ak, Some(1000), Some(1000)).unwrap();
    let outcome = apply_text(root, &alice_keys(), &[]);
    assert!(!outcome.failed(), "{}", outcome.log_text());
    assert_eq!(
        read(
            root,
            "/home/alice/.ssh/authorized_keys.d/old_authorized_keys"
        ),
        "ssh-rsa OLDKEY old@host\n"
    );
}

#[test]
fn key_sets_are_not_read_through_symlinks() {
    let dir = seed_alice();
    let root = dir.path();
    let outcome = apply_text(root, &alice_keys(), &[]);
    assert!(!outcome.failed(), "{}", outcome.log_text());
    // Alice plants a "set" pointing at the secret; the next run must not
    // copy it into authorized_keys.
    std::os::unix::fs::symlink(
        root.join("etc/secret"),
        root.join("home/alice/.ssh/authorized_keys.d/evil"),
    )
    .unwrap();
    let outcome = apply_text(root, &alice_keys(), &[]);
    assert_eq!(
        *result(&outcome, "users[0] alice ssh keys"),
        StepResult::Done
    );
    assert!(notes(&outcome, "users[0] alice ssh keys")
        .iter()
        .any(|n| n.contains("evil is a symlink; ignored")));
    assert!(!read(root, "/home/alice/.ssh/authorized_keys").contains("secret-hash"));
}

#[test]
fn empty_key_sets_are_revoked() {
    let dir = seed_alice();
    let root = dir.path();
    let with_keys = format!(
        "#cloud-config\nssh_authorized_keys:\n  - {KEY_CORE}\nusers:\n  - name: alice\n    ssh_authorized_keys:\n      - {KEY_A}\n"
    );
    let outcome = apply_text(root, &with_keys, &[KEY_META]);
    assert!(!outcome.failed(), "{}", outcome.log_text());
    assert!(read(root, "/home/core/.ssh/authorized_keys").contains(KEY_CORE));
    assert!(read(root, "/home/core/.ssh/authorized_keys").contains(KEY_META));

    // A new instance without any keys: the old ones must not survive.
    let without = "#cloud-config\nusers:\n  - name: alice\n";
    let outcome = apply_text(root, without, &[]);
    assert!(!outcome.failed(), "{}", outcome.log_text());
    let header = "# Generated by slipway cloud-config from ~/.ssh/authorized_keys.d/ (edit the files there)\n";
    assert_eq!(read(root, "/home/core/.ssh/authorized_keys"), header);
    assert_eq!(read(root, "/home/alice/.ssh/authorized_keys"), header);
    for set in [
        "/home/core/.ssh/authorized_keys.d/cloud-config",
        "/home/core/.ssh/authorized_keys.d/metadata",
        "/home/alice/.ssh/authorized_keys.d/cloud-config",
    ] {
        assert!(!root.join(set.trim_start_matches('/')).exists(), "{set}");
    }
    assert!(notes(&outcome, "default user core ssh keys")
        .iter()
        .any(|n| n.contains("key set metadata removed")));

    // Metadata keys only: the user-data set goes, the metadata one stays.
    apply_text(root, &with_keys, &[KEY_META]);
    let outcome = apply_text(root, without, &[KEY_META]);
    assert!(!outcome.failed(), "{}", outcome.log_text());
    assert_eq!(
        read(root, "/home/core/.ssh/authorized_keys"),
        format!("{header}{KEY_META}\n")
    );

    // A set that is a symlink is unlinked itself; its target survives.
    let set = root.join("home/alice/.ssh/authorized_keys.d/cloud-config");
    std::os::unix::fs::symlink(root.join("etc/secret"), &set).unwrap();
    let outcome = apply_text(root, without, &[]);
    assert!(!outcome.failed(), "{}", outcome.log_text());
    assert!(fs::symlink_metadata(&set).is_err());
    assert_eq!(
        read(root, "/etc/secret"),
        "root:$6$secret-hash:19000::::::\n"
    );
}

#[test]
fn an_existing_home_of_a_new_user_is_left_alone() {
    let dir = seed_root();
    let root = dir.path();
    let data = root.join("var/data");
    fs::create_dir_all(&data).unwrap();
    fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).unwrap();
    let outcome = apply_text(
        root,
        "#cloud-config\nusers:\n  - name: bob\n    homedir: /var/data\n",
        &[],
    );
    assert_eq!(*result(&outcome, "users[0] bob"), StepResult::Done);
    assert!(notes(&outcome, "users[0] bob")
        .iter()
        .any(|n| n == "home /var/data exists; left as it is"));
    assert_eq!(mode(root, "/var/data"), 0o755);
    assert_owner(root, "/var/data", (0, 0));
    assert!(read(root, "/etc/passwd").contains("bob:x:1000:1000::/var/data:/bin/sh\n"));
}

#[test]
fn setuid_bits_survive_an_owner() {
    let dir = seed_alice();
    let root = dir.path();
    let outcome = apply_text(
        root,
        "#cloud-config\nwrite_files:\n  - path: /home/alice/bin/tool\n    owner: alice:alice\n    permissions: '6755'\n    content: x\n  - path: /home/alice/log\n    owner: alice\n    permissions: '2750'\n    append: true\n    content: y\n",
        &[],
    );
    assert!(!outcome.failed(), "{}", outcome.log_text());
    assert_eq!(mode(root, "/home/alice/bin/tool"), 0o6755);
    assert_owner(root, "/home/alice/bin/tool", (1000, 1000));
    assert_eq!(mode(root, "/home/alice/log"), 0o2750);
    assert_owner(root, "/home/alice/log", (1000, 0));
}

#[test]
fn symlinked_directories_under_the_root_are_refused() {
    let dir = seed_alice();
    let root = dir.path();
    // Alice points ~/.config at /etc (an absolute link, as she would).
    std::os::unix::fs::symlink(root.join("etc"), root.join("home/alice/.config")).unwrap();
    let outcome = apply_text(
        root,
        "#cloud-config\nwrite_files:\n  - path: /home/alice/.config/evil\n    content: x\n  - path: /home/alice/.config/sub/evil\n    content: x\n  - path: /home/alice/.config/evil2\n    append: true\n    content: x\n",
        &[],
    );
    for (i, name) in [".config/evil", ".config/sub/evil", ".config/evil2"]
        .iter()
        .enumerate()
    {
        match result(&outcome, &format!("write_files[{i}] /home/alice/{name}")) {
            StepResult::Failed(e) => assert!(e.contains("/home/alice/.config is a symlink"), "{e}"),
            other => panic!("{other:?}"),
        }
    }
    assert!(!root.join("etc/evil").exists());
    assert!(!root.join("etc/sub").exists());
    assert!(!root.join("etc/evil2").exists());

    // ~/.ssh itself as a symlink is refused as before.
    fs::remove_dir(root.join("home/alice/.ssh")).unwrap();
    std::os::unix::fs::symlink(root.join("root"), root.join("home/alice/.ssh")).unwrap();
    let outcome = apply_text(root, &alice_keys(), &[]);
    assert!(matches!(
        result(&outcome, "users[0] alice ssh keys"),
        StepResult::Failed(_)
    ));
    assert!(!root.join("root/authorized_keys").exists());
}

#[test]
fn appending_never_follows_a_symlink() {
    let dir = seed_alice();
    let root = dir.path();
    let shadow = read(root, "/etc/shadow");
    fs::set_permissions(root.join("etc/shadow"), fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink(root.join("etc/shadow"), root.join("home/alice/.bashrc")).unwrap();
    let outcome = apply_text(
        root,
        "#cloud-config\nwrite_files:\n  - path: /home/alice/.bashrc\n    owner: alice\n    permissions: '0644'\n    append: true\n    content: \"evil::0:0::::::\\n\"\n",
        &[],
    );
    match result(&outcome, "write_files[0] /home/alice/.bashrc") {
        StepResult::Failed(e) => assert!(e.contains("symlink"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(read(root, "/etc/shadow"), shadow);
    assert_eq!(mode(root, "/etc/shadow"), 0o600);
    assert_owner(root, "/etc/shadow", (0, 0));
}

#[test]
fn mode_and_owner_are_not_set_through_a_swapped_symlink() {
    // write_atomic renames over a symlink rather than writing through it.
    let dir = seed_alice();
    let root = dir.path();
    fs::set_permissions(root.join("etc/shadow"), fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink(root.join("etc/shadow"), root.join("home/alice/notes")).unwrap();
    let outcome = apply_text(
        root,
        "#cloud-config\nwrite_files:\n  - path: /home/alice/notes\n    owner: alice\n    permissions: '0666'\n    content: hi\n",
        &[],
    );
    assert!(!outcome.failed(), "{}", outcome.log_text());
    assert!(meta(root, "/home/alice/notes").is_file());
    assert_eq!(mode(root, "/etc/shadow"), 0o600);
    assert_owner(root, "/etc/shadow", (0, 0));
}

// ---- Container Linux habits: `core` in `docker`, `/opt`, daemon.json.

/// A root whose `docker` group has a gid no code could guess, with a
/// member already, next to `wheel` and `sudo`.
fn seed_docker_group(group: &str) -> tempfile::TempDir {
    let dir = seed_root();
    fs::write(dir.path().join("etc/group"), group).unwrap();
    dir
}

fn group_line<'a>(group: &'a str, name: &str) -> Option<&'a str> {
    group.lines().find(|l| l.split(':').next() == Some(name))
}

#[test]
fn core_joins_the_images_docker_group_once_by_name() {
    let dir = seed_docker_group("root:x:0:\nwheel:x:10:\nsudo:x:27:\ndocker:x:4711:alice\n");
    let root = dir.path();
    let text = format!("#cloud-config\nssh_authorized_keys:\n  - {KEY_CORE}\n");
    let first = apply_text(root, &text, &[]);
    assert!(!first.failed(), "{}", first.log_text());
    let group = read(root, "/etc/group");
    assert_eq!(
        group_line(&group, "docker"),
        Some("docker:x:4711:alice,core")
    );
    // Container Linux's other groups stay as they were.
    assert_eq!(group_line(&group, "wheel"), Some("wheel:x:10:core"));
    assert_eq!(group_line(&group, "sudo"), Some("sudo:x:27:core"));

    // Applying again (a new instance, which also names core as a member
    // of docker) changes nothing: membership is never duplicated.
    let again = format!("{text}groups:\n  - docker: [core]\n");
    let second =
        apply_report(&validate(again.as_bytes()), &ApplyOptions::new(root, "i-2")).unwrap();
    assert_eq!(
        notes(&second, "groups[0] docker"),
        ["group already existed"],
        "{}",
        second.log_text()
    );
    assert!(!second.failed(), "{}", second.log_text());
    assert_eq!(read(root, "/etc/group"), group);
    let docker = group_line(&group, "docker").unwrap();
    assert_eq!(docker.matches("core").count(), 1, "{docker}");
}

#[test]
fn without_a_docker_group_core_is_still_created() {
    let dir = seed_docker_group("root:x:0:\nwheel:x:10:\n");
    let root = dir.path();
    let text = format!("#cloud-config\nssh_authorized_keys:\n  - {KEY_CORE}\n");
    let outcome = apply_text(root, &text, &[]);
    assert!(!outcome.failed(), "{}", outcome.log_text());
    assert_eq!(*result(&outcome, "default user core"), StepResult::Done);
    assert!(read(root, "/etc/passwd").contains("\ncore:x:1000:1000::/home/core:/bin/sh\n"));
    assert_eq!(
        read(root, "/etc/group"),
        "root:x:0:\nwheel:x:10:core\ncore:x:1000:\n"
    );
}

#[test]
fn write_files_under_opt_validate_clean_and_apply() {
    let dir = seed_root();
    let root = dir.path();
    let text = "#cloud-config\nwrite_files:\n  - path: /opt/bin/hello\n    permissions: \"0755\"\n    content: |\n      #!/bin/sh\n      echo hello\n";
    let report = validate(text.as_bytes());
    assert!(report.findings.is_empty(), "{}", report.render_text("u"));
    let outcome = apply_text(root, text, &[]);
    assert_eq!(
        *result(&outcome, "write_files[0] /opt/bin/hello"),
        StepResult::Done
    );
    assert_eq!(read(root, "/opt/bin/hello"), "#!/bin/sh\necho hello\n");
    assert_eq!(mode(root, "/opt/bin/hello"), 0o755);
    assert_eq!(mode(root, "/opt/bin"), 0o755);
}

#[test]
fn docker_daemon_json_validates_clean_and_applies_with_its_folder() {
    let dir = seed_root();
    let root = dir.path();
    assert!(!root.join("etc/docker").exists());
    let text = r#"#cloud-config
write_files:
  - path: /etc/docker/daemon.json
    content: |
      {
        "insecure-registries": ["10.0.2.2:5000"],
        "registry-mirrors": ["http://10.0.2.2:5000"]
      }
"#;
    let report = validate(text.as_bytes());
    assert!(report.findings.is_empty(), "{}", report.render_text("u"));
    let outcome = apply_text(root, text, &[]);
    assert_eq!(
        *result(&outcome, "write_files[0] /etc/docker/daemon.json"),
        StepResult::Done
    );
    assert_eq!(mode(root, "/etc/docker"), 0o755);
    assert_eq!(mode(root, "/etc/docker/daemon.json"), 0o644);
    let json: serde_json::Value =
        serde_json::from_str(&read(root, "/etc/docker/daemon.json")).unwrap();
    assert_eq!(json["insecure-registries"][0], "10.0.2.2:5000");
}

#[test]
fn a_malformed_daemon_json_is_written_anyway_after_a_warning() {
    // The file is the user's: the warning tells them, apply still writes it
    // (dockerd then fails with the cause in its log and `slipctl status`).
    let dir = seed_root();
    let root = dir.path();
    let text = "#cloud-config\nwrite_files:\n  - path: /etc/docker/daemon.json\n    content: |\n      {\"debug\": true,}\n";
    let report = validate(text.as_bytes());
    assert!(!report.has_errors());
    assert_eq!(
        report.render_text("user-data"),
        "user-data:5:7: warning: \"/etc/docker/daemon.json\" is not a JSON object dockerd can \
         read: trailing comma at line 1 column 16 of the content (user-data line 5); dockerd \
         will not start with it\n"
    );
    let outcome = apply_report(&report, &ApplyOptions::new(root, "i-1")).unwrap();
    assert!(!outcome.failed(), "{}", outcome.log_text());
    assert_eq!(
        read(root, "/etc/docker/daemon.json"),
        "{\"debug\": true,}\n"
    );
}

#[test]
fn every_boot_puts_back_what_lives_in_run_and_nothing_else() {
    let root = seed_root();
    let text = "#cloud-config\nhostname: node1\nwrite_files:\n  - path: /etc/once\n    content: x\n\
                coreos:\n  etcd2:\n    name: node1\n  units:\n    - name: web.service\n      \
                content: |\n        [Service]\n        ExecStart=/bin/true\n      command: start\n    \
                - name: tmp.service\n      runtime: true\n      content: |\n        [Service]\n        \
                ExecStart=/bin/true\n    - name: etcd2.service\n      command: start\n";
    let report = validate(text.as_bytes());
    let config = report.config.clone().expect("parses");
    let out = cloud_config::apply::apply_every_boot(&config, &options(root.path()));
    assert!(!out.failed(), "{}", out.log_text());
    assert_eq!(
        read(
            root.path(),
            "/run/systemd/system/etcd2.service.d/20-cloudinit.conf"
        ),
        "[Service]\nEnvironment=\"ETCD_NAME=node1\"\n"
    );
    assert!(root.path().join("run/systemd/system/tmp.service").is_file());
    assert_eq!(
        read(root.path(), "/run/slipway/unit-commands"),
        "start web.service\nstart etcd2.service\n"
    );
    // Once-per-instance items are left alone.
    for once in ["etc/once", "etc/hostname", "etc/systemd/system/web.service"] {
        assert!(!root.path().join(once).exists(), "{once} was written");
    }
}

/// A swarm member as the README's example writes it: swarm.conf with the
/// default address from the static `.network` unit, the local etcd, fleet
/// metadata as labels; root-only (a join token may be in it); written once
/// per instance like update.conf, never by the every-boot pass.
#[test]
fn swarm_conf_from_user_data() {
    let root = seed_root();
    let text = "#cloud-config\ncoreos:\n  etcd2:\n    name: node1\n    \
                listen-client-urls: http://$private_ipv4:2379,http://127.0.0.1:2379\n  \
                fleet:\n    metadata: region=west,disk=ssd\n  swarm:\n    role: worker\n    \
                managers: [10.77.0.2, \"10.77.0.3:2400\"]\n    \
                join_token: SWMTKN-1-abc-def\n    labels:\n      region: east\n  \
                units:\n    - name: 10-lan.network\n      content: |\n        [Match]\n        \
                Name=eth1\n        [Network]\n        Address=10.77.0.1/24\n";
    let report = validate(text.as_bytes());
    let findings: Vec<&str> = report.findings.iter().map(|f| f.message.as_str()).collect();
    // The hint that fleet itself is not on the image, the address, the
    // label clash.
    assert_eq!(report.findings.len(), 3, "{findings:?}");
    assert!(
        findings[0].contains("fleet is not on this image"),
        "{findings:?}"
    );
    assert!(findings[2].contains("wins over \"west\""), "{findings:?}");
    let config = report.config.clone().expect("parses");

    let every_boot = cloud_config::apply::apply_every_boot(&config, &options(root.path()));
    assert!(!every_boot.failed(), "{}", every_boot.log_text());
    assert!(!root.path().join("etc/slipway/swarm.conf").exists());

    let outcome = apply_report(&report, &ApplyOptions::new(root.path(), "i-1")).unwrap();
    assert!(!outcome.failed(), "{}", outcome.log_text());
    assert_eq!(
        result(&outcome, "coreos.swarm /etc/slipway/swarm.conf"),
        &StepResult::Done
    );
    assert_eq!(
        read(root.path(), "/etc/slipway/swarm.conf"),
        "# Written by slipway cloud-config from coreos.swarm\nROLE=worker\n\
         ADVERTISE_ADDR=10.77.0.1\nMANAGERS=10.77.0.2:2377,10.77.0.3:2400\n\
         ETCD_ENDPOINTS=http://127.0.0.1:2379\nJOIN_TOKEN=SWMTKN-1-abc-def\n\
         LABELS=disk=ssd,region=east\n"
    );
    assert_eq!(mode(root.path(), "/etc/slipway/swarm.conf"), 0o600);
}

/// `!!binary` content is base64 decoded before the encoding applies, as
/// coreos-cloudinit's YAML reader does: the file holds the data, never
/// the base64 text nor nothing (saphyr's default parsing dropped the value
/// and an empty file was written).
#[test]
fn binary_content_is_written_decoded() {
    let gz = gzip_b64(b"zipped\n");
    let text = format!(
        "#cloud-config\nwrite_files:\n  - path: /etc/plain\n    content: !!binary aGVsbG8K\n  \
         - path: /etc/zipped\n    encoding: gzip\n    content: !!binary |\n      {}\n      {}\n",
        &gz[..10],
        &gz[10..]
    );
    let report = validate(text.as_bytes());
    assert!(!report.has_errors(), "{}", report.render_text("u"));
    let config = report.config.unwrap();
    let dir = seed_root();
    let outcome = apply(&config, &options(dir.path()));
    assert!(!outcome.failed(), "{outcome:?}");
    assert_eq!(read(dir.path(), "/etc/plain"), "hello\n");
    assert_eq!(read(dir.path(), "/etc/zipped"), "zipped\n");
    // Not base64: an error at the value, nothing applied.
    let bad = "#cloud-config\nwrite_files:\n  - path: /etc/x\n    content: !!binary 'no!'\n";
    let out = validate(bad.as_bytes()).render_text("u");
    assert!(
        out.contains("u:4:14: error:") && out.contains("!!binary: invalid base64"),
        "{out}"
    );
    // Where text is expected, !!binary text is read as its text.
    let host = "#cloud-config\nhostname: !!binary bm9kZS0x\n";
    let report = validate(host.as_bytes());
    assert!(!report.has_errors(), "{}", report.render_text("u"));
    assert_eq!(report.config.unwrap().hostname.as_deref(), Some("node-1"));
}

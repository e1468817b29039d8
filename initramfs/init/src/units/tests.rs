//! Fixture trees: whole units loaded from a root directory.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

use super::*;

struct Tree(tempfile::TempDir);

impl Tree {
    fn new() -> Tree {
        Tree(tempfile::tempdir().unwrap())
    }

    fn root(&self) -> &Path {
        self.0.path()
    }

    fn write(&self, p: &str, text: &str) -> &Tree {
        let p = self.root().join(p.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        self
    }

    fn link(&self, target: &str, p: &str) -> &Tree {
        let p = self.root().join(p.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        symlink(target, p).unwrap();
        self
    }

    fn load(&self, names: &[&str]) -> (UnitSet, Vec<Diagnostic>) {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        UnitSet::load(self.root(), &names, &ctx())
    }

    fn one(&self, name: &str) -> (Unit, Vec<Diagnostic>) {
        load_unit(self.root(), name, &ctx())
    }
}

fn ctx() -> Context {
    Context {
        hostname: "node1".into(),
        machine_id: "m".repeat(32),
        boot_id: "b".repeat(32),
    }
}

const ETC: &str = "/etc/systemd/system";
const USR: &str = "/usr/lib/systemd/system";
const RUN: &str = "/run/systemd/system";

fn argv(u: &Unit) -> Vec<String> {
    u.service.as_ref().unwrap().exec_start[0].argv.clone()
}

#[test]
fn drop_ins_of_an_alias_name_apply() {
    // Debian's etcd.service with cloud-config's coreos.etcd2 drop-in,
    // which Container Linux wrote under the etcd2.service name.
    let t = Tree::new();
    t.write(
        &format!("{USR}/etcd.service"),
        "[Service]\nEnvironment=ETCD_NAME=%H\nExecStart=/usr/bin/etcd\n[Install]\nAlias=etcd2.service\n",
    )
    .write(
        &format!("{RUN}/etcd2.service.d/20-cloudinit.conf"),
        "[Service]\nEnvironment=\"ETCD_NAME=node1\"\n",
    );
    let (u, d) = t.one("etcd.service");
    assert!(d.is_empty(), "{d:?}");
    let env = u.service.as_ref().unwrap().environment_map();
    assert_eq!(env.get("ETCD_NAME").map(String::as_str), Some("node1"));
    assert_eq!(
        u.sources.last().unwrap(),
        &PathBuf::from(format!("{RUN}/etcd2.service.d/20-cloudinit.conf"))
    );

    // Loaded by the alias link's name, the unit still gets the drop-ins
    // of the file it links to.
    t.link("etcd.service", &format!("{USR}/etcd2.service"))
        .write(
            &format!("{USR}/etcd.service.d/10-vendor.conf"),
            "[Service]\nRestart=always\n",
        );
    let (u, d) = t.one("etcd2.service");
    assert!(d.is_empty(), "{d:?}");
    assert!(
        u.sources.contains(&PathBuf::from(format!(
            "{USR}/etcd.service.d/10-vendor.conf"
        ))),
        "{:?}",
        u.sources
    );
    assert!(u.sources.contains(&PathBuf::from(format!(
        "{RUN}/etcd2.service.d/20-cloudinit.conf"
    ))));
}

#[test]
fn drop_in_resets_exec_start() {
    let t = Tree::new();
    t.write(
        &format!("{USR}/web.service"),
        "[Service]\nExecStart=/usr/bin/web --old\nEnvironment=A=1\n",
    )
    .write(
        &format!("{ETC}/web.service.d/override.conf"),
        "[Service]\nExecStart=\nExecStart=/usr/bin/web --new\nEnvironment=B=2\n",
    );
    let (u, d) = t.one("web.service");
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(u.load, LoadState::Loaded);
    assert_eq!(argv(&u), ["/usr/bin/web", "--new"]);
    let s = u.service.as_ref().unwrap();
    assert_eq!(s.exec_start.len(), 1);
    assert_eq!(s.environment_map().len(), 2);
    assert_eq!(
        u.sources,
        [
            PathBuf::from(format!("{USR}/web.service")),
            PathBuf::from(format!("{ETC}/web.service.d/override.conf"))
        ]
    );

    // Without the reset the drop-in adds a second ExecStart=: an error.
    t.write(
        &format!("{ETC}/web.service.d/override.conf"),
        "[Service]\nExecStart=/usr/bin/web --new\n",
    );
    let (u, d) = t.one("web.service");
    assert!(matches!(u.load, LoadState::Error(_)));
    assert_eq!(d.len(), 1);
    assert_eq!(
        d[0].to_string(),
        format!("{USR}/web.service: error: service has more than one ExecStart=, which is only allowed for Type=oneshot services; refusing")
    );
}

#[test]
fn masked_by_dev_null_link_or_empty_file() {
    let t = Tree::new();
    t.write(&format!("{USR}/a.service"), "[Service]\nExecStart=/bin/a\n")
        .link("/dev/null", &format!("{ETC}/a.service"))
        .write(&format!("{USR}/b.service"), "[Service]\nExecStart=/bin/b\n")
        .write(&format!("{RUN}/b.service"), "")
        .write(&format!("{ETC}/c.service"), "[Service]\nExecStart=/bin/c\n")
        .link("/dev/null", &format!("{USR}/c.service"));
    let (a, d) = t.one("a.service");
    assert!(a.is_masked());
    assert!(d.is_empty());
    assert!(a.service.is_none());
    assert_eq!(a.sources, [PathBuf::from(format!("{ETC}/a.service"))]);
    assert!(t.one("b.service").0.is_masked());
    // A mask in a later directory does not hide an earlier file.
    assert!(t.one("c.service").0.is_startable());

    let (set, _) = t.load(&["a.service", "c.service"]);
    let o = start_order(&set);
    assert_eq!(o.batches, [vec!["c.service".to_string()]]);
    assert_eq!(o.skipped[0].unit, "a.service");
    assert_eq!(o.skipped[0].reason, "masked");
}

#[test]
fn enabled_via_wants_links() {
    let t = Tree::new();
    t.write(
        &format!("{ETC}/app.service"),
        "[Service]\nExecStart=/bin/app\n[Install]\nWantedBy=multi-user.target\n",
    )
    .write(
        &format!("{USR}/db.service"),
        "[Service]\nExecStart=/bin/db\n",
    )
    .write(
        &format!("{USR}/off.service"),
        "[Service]\nExecStart=/bin/off\n",
    )
    .link(
        "../app.service",
        &format!("{ETC}/multi-user.target.wants/app.service"),
    )
    .link(
        &format!("{USR}/db.service"),
        &format!("{ETC}/multi-user.target.requires/db.service"),
    );
    assert_eq!(
        wanted_by_targets(t.root(), "app.service"),
        ["multi-user.target"]
    );
    assert_eq!(
        wanted_by_targets(t.root(), "db.service"),
        ["multi-user.target"]
    );
    assert!(wanted_by_targets(t.root(), "off.service").is_empty());
    assert_eq!(
        units_wanted_by(t.root(), "multi-user.target"),
        ["app.service", "db.service"]
    );

    // No multi-user.target file: it loads as an empty target that pulls
    // in its .wants/ and .requires/ entries.
    let (set, d) = t.load(&["multi-user.target"]);
    assert!(d.is_empty(), "{d:?}");
    let target = set.get("multi-user.target").unwrap();
    assert_eq!(target.wants, ["app.service"]);
    assert_eq!(target.requires, ["db.service"]);
    assert!(set.get("app.service").unwrap().is_startable());
    assert!(set.get("db.service").unwrap().is_startable());
    assert!(set.get("off.service").is_none());
    assert_eq!(set.len(), 3);
    assert_eq!(
        set.get("app.service").unwrap().install.wanted_by,
        ["multi-user.target"]
    );
}

#[test]
fn template_instance_with_specifiers() {
    let t = Tree::new();
    t.write(
        &format!("{USR}/getty@.service"),
        "[Unit]\nDescription=Getty on %I\nAfter=setup@%i.service\n[Service]\nExecStart=/sbin/agetty --noclear %i $TERM\nEnvironment=UNIT=%n NAME=%N PREFIX=%p HOST=%H M=%m B=%b RUN=%t/%p\n",
    )
    .write(
        &format!("{ETC}/getty@.service.d/10-all.conf"),
        "[Service]\nRestart=always\n",
    )
    .write(
        &format!("{ETC}/getty@ttyS0.service.d/20-serial.conf"),
        "[Service]\nEnvironment=BAUD=115200\n",
    );
    let (u, d) = t.one("getty@ttyS0.service");
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(u.name, "getty@ttyS0.service");
    assert_eq!(u.description.as_deref(), Some("Getty on ttyS0"));
    assert_eq!(u.after, ["setup@ttyS0.service"]);
    assert_eq!(argv(&u), ["/sbin/agetty", "--noclear", "ttyS0", "$TERM"]);
    let s = u.service.as_ref().unwrap();
    assert_eq!(s.restart, Restart::Always);
    let env = s.environment_map();
    assert_eq!(env["UNIT"], "getty@ttyS0.service");
    assert_eq!(env["NAME"], "getty@ttyS0");
    assert_eq!(env["PREFIX"], "getty");
    assert_eq!(env["HOST"], "node1");
    assert_eq!(env["M"], "m".repeat(32));
    assert_eq!(env["B"], "b".repeat(32));
    assert_eq!(env["RUN"], "/run/getty");
    assert_eq!(env["BAUD"], "115200");
    assert_eq!(u.sources.len(), 3);

    // The instance's drop-in is not applied to another instance.
    let (u2, _) = t.one("getty@tty1.service");
    assert!(!u2.service.unwrap().environment_map().contains_key("BAUD"));

    // A template alone cannot be loaded.
    let (u, d) = t.one("getty@.service");
    assert!(matches!(u.load, LoadState::Error(_)));
    assert_eq!(d[0].level, Level::Error);

    // An instance file beats the template.
    t.write(
        &format!("{USR}/getty@tty9.service"),
        "[Service]\nExecStart=/bin/special\n",
    );
    assert_eq!(argv(&t.one("getty@tty9.service").0), ["/bin/special"]);
}

#[test]
fn etc_beats_usr_lib_and_drop_in_names_mask() {
    let t = Tree::new();
    t.write(
        &format!("{USR}/a.service"),
        "[Service]\nExecStart=/bin/vendor\n",
    )
    .write(
        &format!("{ETC}/a.service"),
        "[Service]\nExecStart=/bin/admin\n",
    )
    .write(
        &format!("{USR}/a.service.d/50-limits.conf"),
        "[Service]\nRestartSec=1\n",
    )
    .write(
        &format!("{ETC}/a.service.d/50-limits.conf"),
        "[Service]\nRestartSec=7\n",
    )
    .write(
        &format!("{USR}/a.service.d/60-user.conf"),
        "[Service]\nUser=vendor\n",
    )
    .write(
        &format!("{RUN}/a.service.d/10-first.conf"),
        "[Service]\nUser=first\nRestartSec=3\n",
    )
    .link("/dev/null", &format!("{ETC}/a.service.d/60-user.conf"));
    let (u, d) = t.one("a.service");
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(argv(&u), ["/bin/admin"]);
    let s = u.service.as_ref().unwrap();
    // 10-first (run) then 50-limits (etc, hiding usr's); 60-user masked.
    assert_eq!(s.restart_sec, Duration::from_secs(7));
    assert_eq!(s.user.as_deref(), Some("first"));
    assert_eq!(
        u.sources,
        [
            PathBuf::from(format!("{ETC}/a.service")),
            PathBuf::from(format!("{RUN}/a.service.d/10-first.conf")),
            PathBuf::from(format!("{ETC}/a.service.d/50-limits.conf")),
        ]
    );
    // /etc's file linking to /usr/lib's (absolute) is followed under the root.
    t.write(&format!("{USR}/b.service"), "[Service]\nExecStart=/bin/b\n")
        .link(&format!("{USR}/b.service"), &format!("{ETC}/b.service"));
    let (b, _) = t.one("b.service");
    assert_eq!(argv(&b), ["/bin/b"]);
    assert_eq!(b.sources, [PathBuf::from(format!("{ETC}/b.service"))]);
}

#[test]
fn cycle_reported_while_others_start() {
    let t = Tree::new();
    t.write(
        &format!("{ETC}/a.service"),
        "[Unit]\nAfter=b.service\n[Service]\nExecStart=/bin/a\n",
    )
    .write(
        &format!("{ETC}/b.service"),
        "[Unit]\nAfter=a.service\n[Service]\nExecStart=/bin/b\n",
    )
    .write(&format!("{ETC}/c.service"), "[Service]\nExecStart=/bin/c\n")
    .write(
        &format!("{ETC}/goal.target"),
        "[Unit]\nWants=a.service b.service c.service\nAfter=c.service\n",
    );
    let (set, d) = t.load(&["goal.target"]);
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(set.len(), 4);
    let o = start_order(&set);
    assert_eq!(
        o.batches,
        [
            vec!["c.service".to_string()],
            vec!["goal.target".to_string()]
        ]
    );
    assert_eq!(o.cycles.len(), 1);
    assert_eq!(o.cycles[0].units, ["a.service", "b.service"]);
    assert_eq!(
        o.cycles[0].to_string(),
        "ordering cycle: a.service → b.service → a.service"
    );
}

#[test]
fn quoting_escapes_and_environment() {
    let t = Tree::new();
    t.write(
        &format!("{ETC}/q.service"),
        r#"[Service]
ExecStart=/bin/sh -c 'echo "$GREETING, world" > /tmp/out' "two words" a\x20b \
    last\\one
Environment="GREETING=hello there" PLAIN=1
Environment=QUOTED="a b" 'SINGLE=c d'
"#,
    );
    let (u, d) = t.one("q.service");
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(
        argv(&u),
        [
            "/bin/sh",
            "-c",
            "echo \"$GREETING, world\" > /tmp/out",
            "two words",
            "a b",
            "last\\one"
        ]
    );
    let env = u.service.as_ref().unwrap().environment_map();
    assert_eq!(env["GREETING"], "hello there");
    assert_eq!(env["PLAIN"], "1");
    assert_eq!(env["QUOTED"], "a b");
    assert_eq!(env["SINGLE"], "c d");
    let words = u.service.as_ref().unwrap().exec_start[0].expanded_argv(&env);
    assert_eq!(words[2], "echo \"$GREETING, world\" > /tmp/out");
}

#[test]
fn time_spans_from_files() {
    let t = Tree::new();
    t.write(
        &format!("{ETC}/t.service"),
        "[Unit]\nStartLimitIntervalSec=2h\nStartLimitBurst=10\n[Service]\nExecStart=/bin/t\nRestartSec=1min 30s\nTimeoutStopSec=500ms\nTimeoutStartSec=infinity\n",
    );
    let (u, d) = t.one("t.service");
    assert!(d.is_empty(), "{d:?}");
    let s = u.service.as_ref().unwrap();
    assert_eq!(s.restart_sec, Duration::from_secs(90));
    assert_eq!(s.timeout_stop, Some(Duration::from_millis(500)));
    assert_eq!(s.timeout_start, None);
    assert_eq!(u.start_limit_interval, Duration::from_secs(7200));
    assert_eq!(u.start_limit_burst, 10);
}

#[test]
fn unknown_directive_warning_text() {
    let t = Tree::new();
    t.write(
        &format!("{ETC}/u.service"),
        "[Unit]\nDescription=u\n\n[Service]\nExecStart=/bin/u\nMadeUp=1\n",
    )
    .write(
        &format!("{ETC}/u.service.d/x.conf"),
        "# c\n[Service]\nAlsoMadeUp=2\n",
    );
    let (u, d) = t.one("u.service");
    assert!(u.is_startable());
    let text: Vec<String> = d.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        text,
        [
            "/etc/systemd/system/u.service:6: warning: unknown directive MadeUp= in [Service], ignoring",
            "/etc/systemd/system/u.service.d/x.conf:3: warning: unknown directive AlsoMadeUp= in [Service], ignoring",
        ]
    );
    assert_eq!(d[0].unit, "u.service");
    assert_eq!(d[0].line, Some(6));
}

#[test]
fn syntax_error_line_keeps_the_unit() {
    let t = Tree::new();
    t.write(
        &format!("{ETC}/s.service"),
        "[Service]\nExecStart=/bin/s\nExecStartPost=/bin/post 'unterminated\n[Broken\nUser=nobody\n",
    );
    let (u, d) = t.one("s.service");
    assert!(u.is_startable());
    let s = u.service.as_ref().unwrap();
    assert!(s.exec_start_post.is_empty());
    // Lines after a broken section header are ignored with it.
    assert_eq!(s.user, None);
    let text: Vec<String> = d.iter().map(|d| d.to_string()).collect();
    assert_eq!(text.len(), 2, "{text:?}");
    assert!(
        text[0].starts_with("/etc/systemd/system/s.service:3: warning: ExecStartPost="),
        "{}",
        text[0]
    );
    assert_eq!(
        text[1],
        "/etc/systemd/system/s.service:4: warning: invalid section header \"[Broken\", ignoring the section"
    );
}

#[test]
fn missing_units_and_requirements() {
    let t = Tree::new();
    t.write(
        &format!("{ETC}/a.service"),
        "[Unit]\nRequires=gone.service\nWants=optional.service\n[Service]\nExecStart=/bin/a\n",
    )
    .write(&format!("{ETC}/t.timer"), "[Timer]\nOnCalendar=daily\n");
    let (set, d) = t.load(&["a.service", "nothere.service", "t.timer"]);
    let text: Vec<String> = d.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        text,
        [
            "nothere.service: error: unit not found",
            "/etc/systemd/system/t.timer: warning: .timer units are not supported, not starting it",
            "gone.service: warning: unit not found (pulled in by a.service)",
            "optional.service: warning: unit not found (pulled in by a.service)",
        ]
    );
    assert_eq!(set.get("gone.service").unwrap().load, LoadState::NotFound);
    assert_eq!(set.get("t.timer").unwrap().load, LoadState::Unsupported);
    let o = start_order(&set);
    assert!(o.batches.is_empty());
    let skipped: Vec<(&str, &str)> = o
        .skipped
        .iter()
        .map(|s| (s.unit.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(
        skipped,
        [
            ("a.service", "requires gone.service, which is not started"),
            ("gone.service", "not found"),
            ("nothere.service", "not found"),
            ("optional.service", "not found"),
            ("t.timer", "unit type not supported"),
        ]
    );
}

#[test]
fn exec_path_lookup_and_conditions() {
    let t = Tree::new();
    t.write("/usr/bin/myprog", "#!/bin/sh\n")
        .write("/etc/present", "x")
        .write(
            &format!("{ETC}/p.service"),
            "[Unit]\nConditionPathExists=/etc/present\nConditionPathExists=!/etc/absent\n[Service]\nExecStart=myprog --x\nWorkingDirectory=/srv\n",
        )
        .write(
            &format!("{ETC}/n.service"),
            "[Unit]\nConditionPathExists=!/etc/present\n[Service]\nExecStart=-nosuchprog\n",
        );
    let (p, d) = t.one("p.service");
    assert!(d.is_empty(), "{d:?}");
    let s = p.service.as_ref().unwrap();
    assert_eq!(s.exec_start[0].path, "/usr/bin/myprog");
    assert_eq!(s.exec_start[0].argv, ["myprog", "--x"]);
    assert_eq!(
        s.working_directory,
        Some(WorkingDirectory {
            path: Some("/srv".into()),
            missing_ok: false
        })
    );
    assert!(p.conditions_met(t.root()));
    let (n, d) = t.one("n.service");
    assert!(!n.conditions_met(t.root()));
    // The unresolvable command is dropped: a warning, then the unit has no
    // ExecStart= at all, an error.
    assert_eq!(d.len(), 2, "{d:?}");
    assert!(
        d[0].message.contains("not found in /usr/local/sbin"),
        "{}",
        d[0]
    );
    assert_eq!(d[1].level, Level::Error);
}

#[test]
fn restart_table() {
    use ExitOutcome::*;
    let sigterm = Signal(libc::SIGTERM);
    let sigsegv = Signal(libc::SIGSEGV);
    let cases = [
        (Restart::No, [false, false, false, false, false, false]),
        (Restart::Always, [true, true, true, true, true, true]),
        (Restart::OnSuccess, [true, false, true, false, false, false]),
        (Restart::OnFailure, [false, true, false, true, true, true]),
        (Restart::OnAbnormal, [false, false, false, true, true, true]),
        (Restart::OnAbort, [false, false, false, true, false, false]),
        (
            Restart::OnWatchdog,
            [false, false, false, false, false, true],
        ),
    ];
    for (r, expect) in cases {
        let got: Vec<bool> = [Success, ExitCode(1), sigterm, sigsegv, Timeout, Watchdog]
            .iter()
            .map(|o| r.restarts_after(*o))
            .collect();
        assert_eq!(got, expect, "{r:?}");
    }
}

#[test]
fn diagnostic_display_without_line() {
    let d = Diagnostic {
        unit: "a.service".into(),
        file: PathBuf::from("/etc/systemd/system/a.service"),
        line: None,
        level: Level::Error,
        message: "boom".into(),
    };
    assert_eq!(d.to_string(), "/etc/systemd/system/a.service: error: boom");
    let d = Diagnostic {
        line: Some(4),
        level: Level::Warning,
        ..d
    };
    assert_eq!(
        d.to_string(),
        "/etc/systemd/system/a.service:4: warning: boom"
    );
}

#[test]
fn condition_kinds_follow_links_under_root() {
    use std::os::unix::fs::PermissionsExt;
    let t = Tree::new();
    t.write("/opt/real/file", "x")
        .write("/opt/empty", "")
        .write("/opt/exe", "#!/bin/sh\n")
        .link("/opt/real", "/opt/alias")
        .link("/dev/null", "/opt/null");
    std::fs::set_permissions(
        t.root().join("opt/exe"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let c = |kind, path: &str, negate| Condition {
        kind,
        path: path.to_string(),
        negate,
        trigger: false,
    };
    let r = t.root();
    assert!(c(ConditionKind::PathExists, "/opt/alias/file", false).holds(r));
    assert!(c(ConditionKind::PathExists, "/opt/null", false).holds(r));
    assert!(c(ConditionKind::PathExists, "/opt/nope", true).holds(r));
    assert!(!c(ConditionKind::PathExists, "/opt/nope", false).holds(r));
    assert!(c(ConditionKind::PathIsDirectory, "/opt/alias", false).holds(r));
    assert!(!c(ConditionKind::PathIsDirectory, "/opt/empty", false).holds(r));
    assert!(c(ConditionKind::PathIsSymbolicLink, "/opt/alias", false).holds(r));
    assert!(!c(ConditionKind::PathIsSymbolicLink, "/opt/real", false).holds(r));
    assert!(c(ConditionKind::FileNotEmpty, "/opt/alias/file", false).holds(r));
    assert!(!c(ConditionKind::FileNotEmpty, "/opt/empty", false).holds(r));
    assert!(c(ConditionKind::DirectoryNotEmpty, "/opt/alias", false).holds(r));
    assert!(c(ConditionKind::FileIsExecutable, "/opt/exe", false).holds(r));
    assert!(!c(ConditionKind::FileIsExecutable, "/opt/empty", false).holds(r));

    // Triggering conditions: one of them is enough.
    let mut u = Unit::new("x.service", LoadState::Loaded);
    u.conditions = vec![
        Condition {
            trigger: true,
            ..c(ConditionKind::PathExists, "/opt/nope", false)
        },
        Condition {
            trigger: true,
            ..c(ConditionKind::PathExists, "/opt/empty", false)
        },
    ];
    assert!(u.conditions_met(r));
    u.conditions
        .push(c(ConditionKind::PathExists, "/opt/nope", false));
    assert!(!u.conditions_met(r));
}

/// Debian bookworm's own unit files (docker.io 20.10.24, containerd
/// 1.6.20), as the image ships them.
pub(crate) const DEBIAN_DOCKER_SERVICE: &str = include_str!("testdata/debian/docker.service");
pub(crate) const DEBIAN_DOCKER_SOCKET: &str = include_str!("testdata/debian/docker.socket");
pub(crate) const DEBIAN_CONTAINERD_SERVICE: &str =
    include_str!("testdata/debian/containerd.service");

#[test]
fn debians_docker_units_load_as_the_image_lays_them_out() {
    let t = Tree::new();
    t.write("/lib/systemd/system/docker.service", DEBIAN_DOCKER_SERVICE)
        .write("/lib/systemd/system/docker.socket", DEBIAN_DOCKER_SOCKET)
        .write(
            "/lib/systemd/system/containerd.service",
            DEBIAN_CONTAINERD_SERVICE,
        )
        .write(
            &format!("{USR}/sockets.target"),
            "[Unit]\nDescription=Sockets\n",
        )
        .write(
            &format!("{USR}/multi-user.target"),
            "[Unit]\nDescription=Multi-User\n",
        )
        .write(
            &format!("{USR}/network-online.target"),
            "[Unit]\nDescription=Net\n",
        )
        .write(
            &format!("{USR}/network.target"),
            "[Unit]\nDescription=Net\n",
        )
        .link(
            "/lib/systemd/system/docker.socket",
            &format!("{USR}/sockets.target.wants/docker.socket"),
        )
        .link(
            &format!("{USR}/sockets.target"),
            &format!("{USR}/multi-user.target.wants/sockets.target"),
        );
    let (set, d) = t.load(&["multi-user.target"]);
    assert!(d.is_empty(), "{d:?}");
    // The boot starts the socket, not the services.
    let names: Vec<&str> = set.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(
        names,
        ["docker.socket", "multi-user.target", "sockets.target"]
    );
    // Started by traffic or by hand: what docker.service pulls in loads
    // cleanly (firewalld.service is only ordered after: not loaded).
    let (set, d) = t.load(&["docker.service"]);
    assert!(d.is_empty(), "{d:?}");
    let names: Vec<&str> = set.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "containerd.service",
            "docker.service",
            "docker.socket",
            "network-online.target"
        ]
    );
    let docker = set.get("docker.service").unwrap();
    let s = docker.service.as_ref().unwrap();
    assert_eq!(s.kind, ServiceType::Notify);
    assert_eq!(s.kill_mode, KillMode::Process);
    assert_eq!(s.restart, Restart::OnFailure);
    assert_eq!(s.timeout_start, None);
    assert!(s.limits.contains(&ResourceLimit {
        resource: Resource::Nofile,
        soft: Max::Value(1_048_576),
        hard: Max::Value(1_048_576)
    }));
    assert_eq!(
        (docker.start_limit_burst, docker.start_limit_interval),
        (3, Duration::from_secs(60))
    );
    let containerd = set
        .get("containerd.service")
        .unwrap()
        .service
        .as_ref()
        .unwrap();
    assert_eq!(containerd.oom_score_adjust, Some(-999));
    assert!(containerd.exec_start_pre[0].ignore_failure);
    let socket = set.get("docker.socket").unwrap().socket.as_ref().unwrap();
    assert_eq!(
        socket.listen[0].address,
        ListenAddress::Path("/run/docker.sock".into())
    );
}

//! Stage 2: PID 1 on the real (read-only) root.
//!
//! [`prepare`] mounts what is missing, makes `/etc` writable and sets the
//! machine ID ([`crate::state`]), makes the `tmpfiles.d` folders
//! ([`crate::tmpfiles`]), runs cloud-config's local stage, turns ctrl-alt-del into a signal, and
//! prints the ready line; then [`crate::supervise::Supervisor`] runs
//! the rescue shell and waits for a power request, and
//! [`crate::power::shutdown`] stops the machine cleanly.

use crate::cmdline::Cmdline;
use crate::console::{rescue_tty, say};
use std::path::PathBuf;
use std::time::Duration;

use crate::control::Control;
use crate::error::{chain, errno_text};
use crate::mounts::{mount_missing, stage2_mounts};
use crate::os_release::image_version;
use crate::service::{self, Manager};
use crate::state;
use crate::sys::Sys;
use crate::tmpfiles;
use crate::units::Context;

pub const HOSTNAME: &str = "slipway";

/// Brings the system up to the point of supervising; returns the terminal
/// for the rescue shell. Nothing here is fatal: a machine that boots with a
/// missing `/tmp` is better than a reboot loop, and the console says what
/// went wrong.
pub fn prepare(sys: &mut dyn Sys) -> String {
    for e in mount_missing(sys, &stage2_mounts()) {
        say(sys, &format!("slipway: {}", chain(&e)));
    }
    state::setup(sys);
    state::setup_opt(sys);
    state::run_links(sys);
    // After the accounts are merged (state::setup) and with /var mounted,
    // before user-data may start a service that needs its folder.
    tmpfiles::apply(sys);
    run_cloud_config(sys);

    // By default the kernel reboots at once on ctrl-alt-del, without
    // syncing or stopping anything; disabled, it sends SIGINT to PID 1,
    // which then shuts down cleanly.
    if let Err(errno) = sys.set_ctrl_alt_del(false) {
        say(
            sys,
            &format!(
                "slipway: disabling ctrl-alt-del reboot: {}",
                errno_text(errno)
            ),
        );
    }

    set_hostname(sys);

    let line = ready_line(sys);
    say(sys, &line);

    rescue_tty(sys)
}

/// Starts the service manager on the boot target and opens its control
/// socket. Neither failing stops the boot: the rescue shell still runs.
pub fn start_services(
    sys: &mut dyn Sys,
    stage2_start: Duration,
) -> (Option<Manager>, Option<Control>) {
    let text = |sys: &mut dyn Sys, p: &str| {
        sys.read_file(p)
            .map(|b| String::from_utf8_lossy(&b).trim().to_string())
            .unwrap_or_default()
    };
    let ctx = Context {
        hostname: text(sys, "/proc/sys/kernel/hostname"),
        machine_id: text(sys, "/etc/machine-id"),
        boot_id: text(sys, "/proc/sys/kernel/random/boot_id").replace('-', ""),
    };
    let cmdline = Cmdline::parse(&text(sys, "/proc/cmdline"));
    let mut cfg = service::Config::default();
    if let Some(secs) = cmdline
        .get(HEALTH_GRACE_ARG)
        .and_then(|v| v.parse::<u64>().ok())
    {
        cfg.health_grace = Duration::from_secs(secs);
    }
    if let Some(secs) = cmdline
        .get(SETTLE_TIMEOUT_ARG)
        .and_then(|v| v.parse::<u64>().ok())
    {
        cfg.settle_timeout = Duration::from_secs(secs);
    }
    if sys.exists(UPDATE_ENGINE) {
        cfg.health_hook = Some(PathBuf::from(UPDATE_ENGINE));
    }
    let commands = text(sys, service::UNIT_COMMANDS);
    let mut manager = Manager::new(cfg, ctx);
    manager.set_stage2_start(stage2_start);
    manager.boot(&commands);
    let control = match Control::bind(std::path::Path::new(slipway_control::SOCKET_PATH)) {
        Ok(c) => Some(c),
        Err(e) => {
            say(
                sys,
                &format!("slipway: control socket: {e}; slipctl will not work"),
            );
            None
        }
    };
    (Some(manager), control)
}

/// The update engine, which blesses healthy boots (see
/// `service::Config::health_hook`).
pub const UPDATE_ENGINE: &str = "/usr/bin/update-engine";

/// `slipway.settle_timeout=SECONDS`: a boot still starting this long after
/// stage 2 began is reported unhealthy to the update engine.
pub const SETTLE_TIMEOUT_ARG: &str = "slipway.settle_timeout";

/// `slipway.health_grace=SECONDS`: how long the boot's services must stay
/// up before the boot is healthy.
pub const HEALTH_GRACE_ARG: &str = "slipway.health_grace";

/// The cloud-config tool on the root; `boot local` fetches user-data from
/// fw_cfg or a seed disk, checks it and applies what must precede the
/// services (per-instance items once); `runcmd`, scripts and the network
/// sources are left to `slipway-cloud-config.service` after
/// `network-online.target`. See `cloud-config/src/boot/mod.rs`.
pub const CLOUD_CONFIG: &str = "/usr/bin/slipway-cloud-config";
/// Above the local stage's own limit (240 s), which stops its `bootcmd`
/// children itself; the boot must not wait forever on a tool that hangs.
pub const CLOUD_CONFIG_LIMIT: Duration = Duration::from_secs(300);

/// Runs the cloud-config tool, its output on the console. A failure is
/// reported and the boot goes on: a machine with broken user-data must
/// still come up, so its owner can log in and see why.
fn run_cloud_config(sys: &mut dyn Sys) {
    if !sys.exists(CLOUD_CONFIG) {
        return;
    }
    match sys.run_program(CLOUD_CONFIG, &["boot", "local"], CLOUD_CONFIG_LIMIT) {
        Ok(Some(0)) => {}
        Ok(Some(status)) => say(
            sys,
            &format!(
                "slipway: cloud-config failed (exit status {status}); details in \
                 /var/log/cloud-config.log"
            ),
        ),
        Ok(None) => say(
            sys,
            &format!(
                "slipway: cloud-config did not finish within {} s and was stopped",
                CLOUD_CONFIG_LIMIT.as_secs()
            ),
        ),
        Err(errno) => say(
            sys,
            &format!("slipway: starting {CLOUD_CONFIG}: {}", errno_text(errno)),
        ),
    }
}

/// `slipway: ready version=<V> slot=<a|b> boot_ms=<N>`.
pub fn ready_line(sys: &mut dyn Sys) -> String {
    let version = sys
        .read_file("/etc/os-release")
        .ok()
        .and_then(|b| image_version(&String::from_utf8_lossy(&b)))
        .unwrap_or_else(|| "unknown".to_string());
    let slot = sys
        .read_file("/proc/cmdline")
        .ok()
        .and_then(|b| Cmdline::parse(&String::from_utf8_lossy(&b)).slot().ok())
        .map_or_else(|| "unknown".to_string(), |s| s.to_string());
    let boot_ms = sys.boot_time().as_millis();
    format!("slipway: ready version={version} slot={slot} boot_ms={boot_ms}")
}

/// Names the machine from `/etc/hostname` (the image's, or one an admin or
/// cloud-config wrote into the overlay), else `slipway`, unless the
/// kernel's `hostname=` already named it.
fn set_hostname(sys: &mut dyn Sys) {
    let current = sys
        .read_file("/proc/sys/kernel/hostname")
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    if !(current.is_empty() || current == "(none)") {
        return;
    }
    let configured = sys
        .read_file("/etc/hostname")
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let name = if valid_hostname(&configured) {
        configured
    } else {
        HOSTNAME.to_string()
    };
    if let Err(errno) = sys.set_hostname(&name) {
        say(
            sys,
            &format!("slipway: setting hostname {name}: {}", errno_text(errno)),
        );
    }
}

/// RFC 1123 labels, at most 64 bytes (the kernel's limit): the rule
/// `cloud_config::validate::valid_hostname` checks user-data against.
fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::recording::RecordingSys;
    use std::time::Duration;

    const HANDED_OVER: &str = "\
22 1 254:3 / / ro - squashfs /dev/vda3 ro
23 22 0:5 / /dev rw,nosuid - devtmpfs devtmpfs rw
24 22 0:21 / /proc rw,nosuid,nodev,noexec - proc proc rw
25 22 0:20 / /sys rw,nosuid,nodev,noexec - sysfs sysfs rw
26 22 0:22 / /run rw,nosuid,nodev - tmpfs tmpfs rw
27 22 254:6 / /var rw - ext4 /dev/vda6 rw
";

    /// What `state::setup` leaves (tested in state.rs), so that these tests
    /// see only stage 2's own calls.
    const STATE_DONE: &str = "\
28 22 0:30 / /etc rw - overlay overlay rw
29 22 254:6 /home /home rw - ext4 /dev/vda6 rw
30 22 254:6 /roothome /root rw - ext4 /dev/vda6 rw
31 22 254:6 /opt /opt rw - ext4 /dev/vda6 rw
";

    /// The real root after stage 1 handed over.
    fn root() -> RecordingSys {
        let mut sys = RecordingSys::new();
        sys.add_file("/proc/self/mountinfo", format!("{HANDED_OVER}{STATE_DONE}"))
            .add_file(
                "/proc/cmdline",
                "console=tty0 console=ttyS0 slipway.slot=b slipway.root=PARTUUID=x\n",
            )
            .add_file(
                "/proc/consoles",
                "tty0 -WU (E p) 4:7\nttyS0 -W- (E p a) 4:64\n",
            )
            .add_file("/proc/sys/kernel/hostname", "(none)\n")
            .add_file(
                "/etc/os-release",
                "NAME=Slipway\nVERSION_ID=1\nIMAGE_VERSION=\"1.2.3\"\n",
            )
            .add_file("/dev/console", "")
            .add_file("/dev/tty0", "")
            .add_file("/dev/ttyS0", "")
            .add_dir("/tmp")
            .add_dir("/sys/fs/cgroup")
            .add_dir("/run")
            .add_file("/etc/machine-id", "4a1e0c9d2b7f4e3a8c6d5b4a3f2e1d0c\n");
        sys.set_boot_time(Duration::from_millis(2345));
        sys
    }

    #[test]
    fn mounts_the_rest_then_says_ready_on_every_console() {
        let mut sys = root();
        let tty = prepare(&mut sys);
        assert_eq!(tty, "/dev/ttyS0");
        let ready = "slipway: ready version=1.2.3 slot=b boot_ms=2345";
        assert_eq!(
            sys.calls,
            vec![
                "mkdir /dev/pts 0755",
                "mount devpts /dev/pts devpts nosuid,noexec,gid=5,mode=620,ptmxmode=666",
                "mkdir /dev/shm 0755",
                "mount tmpfs /dev/shm tmpfs nosuid,nodev,mode=1777",
                "mount tmpfs /tmp tmpfs nosuid,nodev,mode=1777",
                "mount cgroup2 /sys/fs/cgroup cgroup2 nosuid,nodev,noexec",
                "mkdir /run/lock 1777",
                "symlink /var/run -> ../run",
                "symlink /var/lock -> ../run/lock",
                "reboot RB_DISABLE_CAD",
                "sethostname slipway",
                &format!("write /dev/tty0: {ready}"),
                &format!("write /dev/ttyS0: {ready}"),
            ]
        );
    }

    #[test]
    fn without_stage1_mounts_everything() {
        let mut sys = root();
        sys.add_file("/proc/self/mountinfo", "");
        sys.add_file("/proc/sys/kernel/hostname", "box\n");
        prepare(&mut sys);
        let mounts: Vec<&String> = sys
            .calls
            .iter()
            .filter(|c| c.starts_with("mount "))
            .collect();
        // The eight API filesystems, then /etc, /home, /root and /opt.
        assert_eq!(mounts.len(), 12);
        assert_eq!(mounts[0], "mount proc /proc proc nosuid,nodev,noexec");
        assert_eq!(mounts[2], "mount devtmpfs /dev devtmpfs nosuid,mode=0755");
        assert!(mounts[8].starts_with("mount overlay /etc overlay lowerdir=/etc,"));
        assert_eq!(mounts[10], "mount /var/roothome /root none bind");
        assert_eq!(mounts[11], "mount /var/opt /opt none bind");
        assert!(!sys.calls.iter().any(|c| c.starts_with("sethostname")));
    }

    #[test]
    fn ready_line_falls_back_to_version_id_and_unknowns() {
        let mut sys = RecordingSys::new();
        sys.add_file("/etc/os-release", "VERSION_ID='7'\n");
        sys.set_boot_time(Duration::from_micros(1_999_999));
        assert_eq!(
            ready_line(&mut sys),
            "slipway: ready version=7 slot=unknown boot_ms=1999"
        );
        let mut sys = RecordingSys::new();
        sys.add_file("/proc/cmdline", "slipway.slot=a");
        assert_eq!(
            ready_line(&mut sys),
            "slipway: ready version=unknown slot=a boot_ms=0"
        );
    }

    #[test]
    fn mount_failures_are_reported_not_fatal() {
        let mut sys = root();
        sys.fail(
            "mount tmpfs /tmp tmpfs nosuid,nodev,mode=1777",
            nix::errno::Errno::ENOENT,
        );
        sys.fail("reboot RB_DISABLE_CAD", nix::errno::Errno::EPERM);
        prepare(&mut sys);
        let lines = sys.written_to("/dev/ttyS0");
        assert_eq!(
            lines,
            vec![
                "slipway: mounting tmpfs on /tmp (tmpfs): No such file or directory",
                "slipway: disabling ctrl-alt-del reboot: Operation not permitted",
                "slipway: ready version=1.2.3 slot=b boot_ms=2345",
            ]
        );
    }

    #[test]
    fn runs_cloud_config_and_reports_its_failures_without_stopping() {
        for (status, line) in [
            (Some(0), None),
            (
                Some(3),
                Some(
                    "slipway: cloud-config failed (exit status 3); details in \
                     /var/log/cloud-config.log",
                ),
            ),
            (
                None,
                Some("slipway: cloud-config did not finish within 300 s and was stopped"),
            ),
        ] {
            let mut sys = root();
            sys.add_file(CLOUD_CONFIG, "");
            sys.script_exits([status]);
            prepare(&mut sys);
            assert!(sys.calls.contains(
                &"run /usr/bin/slipway-cloud-config boot local (limit 300s)".to_string()
            ));
            let console = sys.written_to("/dev/ttyS0");
            assert_eq!(
                console.len(),
                1 + usize::from(line.is_some()),
                "{console:?}"
            );
            if let Some(line) = line {
                assert_eq!(console[0], line);
            }
            assert!(console.last().unwrap().starts_with("slipway: ready "));
        }
    }

    #[test]
    fn tmpfiles_apply_after_the_var_links_and_before_cloud_config() {
        let mut sys = root();
        sys.add_file(CLOUD_CONFIG, "")
            .add_file(
                "/etc/passwd",
                "root:x:0:0::/root:/bin/sh\netcd:x:232:232::/:/x\n",
            )
            .add_file("/etc/group", "root:x:0:\netcd:x:232:\n")
            .add_dir("/var/lib/slipway")
            .add_file(
                "/usr/lib/tmpfiles.d/etcd-server.conf",
                "d /var/lib/etcd 0700 etcd etcd -\n",
            );
        prepare(&mut sys);
        let calls = &sys.calls;
        let at = |call: &str| calls.iter().position(|c| c == call).unwrap();
        let made = at("mkdir /var/lib/etcd 0700");
        assert!(at("symlink /var/lock -> ../run/lock") < made);
        assert_eq!(
            calls[made + 1],
            "set_dir_mode_owner /var/lib/etcd 0700 232:232"
        );
        assert!(made + 1 < at("run /usr/bin/slipway-cloud-config boot local (limit 300s)"));
    }

    #[test]
    fn hostname_comes_from_etc_hostname_when_valid() {
        for (file, want) in [
            ("web-1\n", "sethostname web-1"),
            ("db.example.com", "sethostname db.example.com"),
            ("bad_name\n", "sethostname slipway"),
            ("", "sethostname slipway"),
        ] {
            let mut sys = root();
            sys.add_file("/etc/hostname", file);
            prepare(&mut sys);
            assert!(sys.calls.contains(&want.to_string()), "{file:?}");
        }
    }
}

//! The machine's own state on `/var`, set up by stage 2: a writable `/etc`,
//! `/home`, `/root` and `/opt`, and the machine ID.
//!
//! - `/etc` is an overlay: the image's `/etc` below (read-only, replaced by
//!   every update), an upper directory on `/var` above. Edits land in the
//!   upper directory, so they survive reboots and slot switches, and the
//!   image stays pristine; deleting the upper directory is a factory reset
//!   of `/etc`. A file edited here shadows the image's newer version after
//!   an update (as on any overlay-`/etc` system).
//! - `/home` and `/root` are bind mounts of `/var/home` and `/var/roothome`.
//! - `/opt` is a bind mount of `/var/opt` ([`setup_opt`]): Container Linux
//!   users install their own tools to `/opt/bin` (on the login shells'
//!   `PATH`), so it must be writable and outlive reboots and updates like
//!   `/home`. `/opt/bin` is created with it.
//! - `/etc/machine-id` is generated once, from the kernel's random source,
//!   and lives in the overlay. If `/etc` cannot be made writable, a
//!   transient ID is bind-mounted over it for this boot instead, and the
//!   console says so.
//!
//! Nothing here is fatal: each failure is reported and the boot goes on.

use nix::mount::MsFlags;

use crate::accounts::ImageAccounts;
use crate::console::say;
use crate::error::{chain, errno_text, Context, Error};
use crate::mounts::parse_mountinfo;
use crate::sys::Sys;

pub const ETC_UPPER: &str = "/var/lib/slipway/etc/upper";
pub const ETC_WORK: &str = "/var/lib/slipway/etc/work";
pub const MACHINE_ID: &str = "/etc/machine-id";
const TRANSIENT_MACHINE_ID: &str = "/run/machine-id";

/// `(source on /var, mount point, mode of the source)`.
const BINDS: [(&str, &str, u32); 2] = [
    ("/var/home", "/home", 0o755),
    ("/var/roothome", "/root", 0o700),
];

/// `/opt`: `(source on /var, mount point, mode of the source)`, and the
/// directory made under the source so that `/opt/bin` always exists.
const OPT: (&str, &str, u32) = ("/var/opt", "/opt", 0o755);
const OPT_BIN: &str = "/var/opt/bin";

/// Sets up everything above but `/opt`; returns the machine ID, if there
/// is one.
pub fn setup(sys: &mut dyn Sys) -> Option<String> {
    let mounted = mount_points(sys);
    let etc_writable = if mounted.iter().any(|m| m == "/etc") {
        true
    } else {
        // Read before the overlay covers them (see `accounts`).
        let image_accounts = ImageAccounts::read(sys);
        match overlay_etc(sys) {
            Ok(()) => {
                match image_accounts.merge_into_etc(sys) {
                    Ok(added) if !added.is_empty() => say(
                        sys,
                        &format!("slipway: accounts of the image added: {}", added.join(", ")),
                    ),
                    Ok(_) => {}
                    Err(e) => say(sys, &format!("slipway: {e}")),
                }
                true
            }
            Err(e) => {
                say(
                    sys,
                    &format!("slipway: /etc stays read-only: {}", chain(&e)),
                );
                false
            }
        }
    };
    for (source, target, mode) in BINDS {
        if mounted.iter().any(|m| m == target) {
            continue;
        }
        if let Err(e) = bind(sys, source, target, mode) {
            say(sys, &format!("slipway: {target}: {}", chain(&e)));
        }
    }
    machine_id(sys, etc_writable)
}

/// `/var/run` and `/var/lock` as links into `/run`, as Debian's base-files
/// and systemd-tmpfiles make them: programs still use the old paths
/// (`docker` dials `/var/run/docker.sock`, dockerd keeps its state in
/// `/var/run/docker`), and a real folder there would hold a second,
/// persistent copy of runtime state. A folder found in their place (left
/// by a release without the links) is moved aside, not deleted.
const RUN_LINKS: [(&str, &str); 2] = [("/var/run", "../run"), ("/var/lock", "../run/lock")];

pub fn run_links(sys: &mut dyn Sys) {
    if let Err(e) = create_dirs(sys, "/run/lock", 0o1777) {
        say(sys, &format!("slipway: /run/lock: {}", chain(&e)));
    }
    for (path, target) in RUN_LINKS {
        if sys.read_link(path).is_ok() {
            continue;
        }
        if sys.exists(path) {
            let aside = format!("{path}.old");
            if let Err(e) = sys.rename(path, &aside) {
                say(
                    sys,
                    &format!(
                        "slipway: {path} is not a link to {target} and cannot be moved aside: {}",
                        errno_text(e)
                    ),
                );
                continue;
            }
            say(
                sys,
                &format!("slipway: {path} was a folder: moved to {aside}"),
            );
        }
        if let Err(e) = sys.symlink(target, path) {
            say(
                sys,
                &format!("slipway: linking {path} to {target}: {}", errno_text(e)),
            );
        }
    }
}

/// Binds `/var/opt` on `/opt` (created on first boot, with `bin/`), unless
/// something is mounted there already. With `/var` a tmpfs (stage 1's
/// fallback) this works the same and lasts one boot, as `/home` does.
/// Failures are reported, not fatal: the image's `/opt` (empty,
/// read-only) stays.
pub fn setup_opt(sys: &mut dyn Sys) {
    let (source, target, mode) = OPT;
    if mount_points(sys).iter().any(|m| m == target) {
        return;
    }
    // OPT_BIN's parent is the source: both get `mode`.
    let bound = create_dirs(sys, OPT_BIN, mode).and_then(|()| bind(sys, source, target, mode));
    if let Err(e) = bound {
        say(sys, &format!("slipway: {target}: {}", chain(&e)));
    }
}

fn mount_points(sys: &mut dyn Sys) -> Vec<String> {
    sys.read_file("/proc/self/mountinfo")
        .map(|b| {
            parse_mountinfo(&String::from_utf8_lossy(&b))
                .into_iter()
                .map(|e| e.mount_point)
                .collect()
        })
        .unwrap_or_default()
}

/// Creates `path` and its missing parents; the last one gets `mode`.
pub fn create_dirs(sys: &mut dyn Sys, path: &str, mode: u32) -> Result<(), Error> {
    let mut prefix = String::new();
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    for (i, component) in components.iter().enumerate() {
        prefix.push('/');
        prefix.push_str(component);
        if sys.exists(&prefix) {
            continue;
        }
        let m = if i + 1 == components.len() {
            mode
        } else {
            0o755
        };
        match sys.mkdir(&prefix, m) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(errno) => return Err(Error::sys(format!("creating {prefix}"), errno)),
        }
    }
    Ok(())
}

fn overlay_etc(sys: &mut dyn Sys) -> Result<(), Error> {
    create_dirs(sys, ETC_UPPER, 0o755)?;
    create_dirs(sys, ETC_WORK, 0o700)?;
    // lowerdir=/etc is resolved before the overlay covers /etc, so the
    // image's /etc stays reachable underneath.
    let options = format!("lowerdir=/etc,upperdir={ETC_UPPER},workdir={ETC_WORK}");
    sys.mount(
        Some("overlay"),
        "/etc",
        Some("overlay"),
        MsFlags::empty(),
        Some(&options),
    )
    .context(|| format!("mounting an overlay on /etc (upper {ETC_UPPER})"))
}

fn bind(sys: &mut dyn Sys, source: &str, target: &str, mode: u32) -> Result<(), Error> {
    create_dirs(sys, source, mode)?;
    sys.mount(Some(source), target, None, MsFlags::MS_BIND, None)
        .context(|| format!("bind-mounting {source} on {target}"))
}

/// Whether `text` (a file's contents) is a machine ID: 32 lowercase hex
/// digits, not all zero, and a newline or nothing after them.
pub fn valid_machine_id(text: &str) -> bool {
    let id = text.strip_suffix('\n').unwrap_or(text);
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && id.bytes().any(|b| b != b'0')
}

/// 16 random bytes as a version 4, variant 1 UUID without dashes, which
/// is what systemd generates (machine-id(5)).
pub fn format_machine_id(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn machine_id(sys: &mut dyn Sys, etc_writable: bool) -> Option<String> {
    let current = sys
        .read_file(MACHINE_ID)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    if valid_machine_id(&current) {
        return Some(current.trim_end().to_string());
    }
    let mut bytes = [0u8; 16];
    if let Err(errno) = sys.random(&mut bytes) {
        say(
            sys,
            &format!(
                "slipway: machine-id: reading random bytes: {}",
                errno_text(errno)
            ),
        );
        return None;
    }
    let id = format_machine_id(bytes);
    let contents = format!("{id}\n");
    if etc_writable {
        match sys.write_file(MACHINE_ID, contents.as_bytes(), 0o444) {
            Ok(()) => {
                say(sys, &format!("slipway: machine-id {id} (new)"));
                return Some(id);
            }
            Err(errno) => say(
                sys,
                &format!(
                    "slipway: machine-id: writing {MACHINE_ID}: {}",
                    errno_text(errno)
                ),
            ),
        }
    }
    // A transient ID for this boot, as systemd does on a read-only /etc.
    let transient = sys
        .write_file(TRANSIENT_MACHINE_ID, contents.as_bytes(), 0o444)
        .context(|| format!("writing {TRANSIENT_MACHINE_ID}"))
        .and_then(|()| {
            sys.mount(
                Some(TRANSIENT_MACHINE_ID),
                MACHINE_ID,
                None,
                MsFlags::MS_BIND,
                None,
            )
            .context(|| format!("bind-mounting {TRANSIENT_MACHINE_ID} on {MACHINE_ID}"))
        });
    match transient {
        Ok(()) => say(
            sys,
            &format!("slipway: machine-id {id} (transient: it changes at every boot)"),
        ),
        Err(e) => say(sys, &format!("slipway: machine-id: {}", chain(&e))),
    }
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::recording::RecordingSys;
    use nix::errno::Errno;

    fn root() -> RecordingSys {
        let mut sys = RecordingSys::new();
        sys.add_file("/dev/console", "")
            .add_file(
                "/proc/self/mountinfo",
                "22 1 254:3 / / ro - squashfs /dev/dm-0 ro\n\
                 31 22 254:6 / /var rw - ext4 /dev/vda6 rw\n",
            )
            .add_dir("/var")
            .add_dir("/etc")
            .add_dir("/home")
            .add_dir("/root")
            .add_file(MACHINE_ID, "");
        sys
    }

    const FIRST_BOOT: [&str; 13] = [
        "mkdir /var/lib 0755",
        "mkdir /var/lib/slipway 0755",
        "mkdir /var/lib/slipway/etc 0755",
        "mkdir /var/lib/slipway/etc/upper 0755",
        "mkdir /var/lib/slipway/etc/work 0700",
        "mount overlay /etc overlay lowerdir=/etc,upperdir=/var/lib/slipway/etc/upper,\
         workdir=/var/lib/slipway/etc/work",
        "mkdir /var/home 0755",
        "mount /var/home /home none bind",
        "mkdir /var/roothome 0700",
        "mount /var/roothome /root none bind",
        "getrandom 16",
        "write_file /etc/machine-id 0444: 0112233445564778899aabbccddeef00",
        "write /dev/console: slipway: machine-id 0112233445564778899aabbccddeef00 (new)",
    ];

    #[test]
    fn first_boot_makes_etc_writable_binds_home_and_root_and_writes_a_machine_id() {
        let mut sys = root();
        let id = setup(&mut sys).unwrap();
        assert_eq!(id, "0112233445564778899aabbccddeef00");
        assert!(valid_machine_id(&id));
        assert_eq!(sys.calls, FIRST_BOOT);
    }

    #[test]
    fn later_boots_keep_the_machine_id_and_create_nothing() {
        let mut sys = root();
        for dir in [ETC_UPPER, ETC_WORK, "/var/home", "/var/roothome"] {
            sys.add_dir(dir);
        }
        sys.add_file(MACHINE_ID, "4a1e0c9d2b7f4e3a8c6d5b4a3f2e1d0c\n");
        assert_eq!(
            setup(&mut sys).as_deref(),
            Some("4a1e0c9d2b7f4e3a8c6d5b4a3f2e1d0c")
        );
        assert_eq!(
            sys.calls,
            vec![
                FIRST_BOOT[5],
                "mount /var/home /home none bind",
                "mount /var/roothome /root none bind",
            ]
        );
    }

    #[test]
    fn without_an_overlay_the_machine_id_is_transient_and_said_so() {
        let mut sys = root();
        sys.fail(FIRST_BOOT[5], Errno::ENODEV);
        let id = setup(&mut sys).unwrap();
        let console = sys.written_to("/dev/console");
        assert_eq!(
            console,
            vec![
                "slipway: /etc stays read-only: mounting an overlay on /etc (upper \
                 /var/lib/slipway/etc/upper): No such device"
                    .to_string(),
                format!("slipway: machine-id {id} (transient: it changes at every boot)"),
            ]
        );
        assert!(sys
            .calls
            .contains(&"mount /run/machine-id /etc/machine-id none bind".to_string()));
        assert!(!sys.calls.iter().any(|c| c.starts_with("write_file /etc")));
    }

    #[test]
    fn already_mounted_etc_home_and_root_are_left_alone() {
        let mut sys = root();
        sys.add_file(
            "/proc/self/mountinfo",
            "1 0 0:1 / /etc rw - overlay overlay rw\n2 0 0:2 / /home rw - ext4 x rw\n\
             3 0 0:3 / /root rw - ext4 x rw\n",
        );
        sys.add_file(MACHINE_ID, "4a1e0c9d2b7f4e3a8c6d5b4a3f2e1d0c");
        setup(&mut sys);
        assert_eq!(sys.calls, Vec::<String>::new());
    }

    #[test]
    fn var_run_and_var_lock_become_links_and_a_folder_is_moved_aside() {
        let mut sys = root();
        sys.add_dir("/run")
            .add_file("/var/run/docker/stale.pid", "1");
        run_links(&mut sys);
        assert_eq!(
            sys.calls,
            vec![
                "mkdir /run/lock 1777",
                "rename /var/run /var/run.old",
                "write /dev/console: slipway: /var/run was a folder: moved to /var/run.old",
                "symlink /var/run -> ../run",
                "symlink /var/lock -> ../run/lock",
            ]
        );
        assert!(sys.exists("/var/run.old/docker/stale.pid"));
        // The next boot finds the links and does nothing.
        sys.calls.clear();
        run_links(&mut sys);
        assert!(sys.calls.is_empty(), "{:?}", sys.calls);
    }

    const OPT_FIRST_BOOT: [&str; 3] = [
        "mkdir /var/opt 0755",
        "mkdir /var/opt/bin 0755",
        "mount /var/opt /opt none bind",
    ];

    #[test]
    fn opt_is_bound_from_var_opt_with_a_bin_directory_made_on_first_boot() {
        let mut sys = root();
        sys.add_dir("/opt");
        setup_opt(&mut sys);
        assert_eq!(sys.calls, OPT_FIRST_BOOT);
        assert!(sys.exists("/var/opt/bin"));
        assert!(sys.written_to("/dev/console").is_empty());
    }

    #[test]
    fn opt_on_a_tmpfs_var_is_set_up_the_same_way() {
        let mut sys = root();
        sys.add_file(
            "/proc/self/mountinfo",
            "22 1 254:3 / / ro - squashfs /dev/dm-0 ro\n\
             31 22 0:40 / /var rw,nosuid,nodev - tmpfs tmpfs rw,mode=755\n",
        );
        setup_opt(&mut sys);
        assert_eq!(sys.calls, OPT_FIRST_BOOT);
    }

    #[test]
    fn later_boots_only_bind_opt_and_a_deleted_bin_comes_back() {
        let mut sys = root();
        sys.add_dir("/var/opt/bin");
        setup_opt(&mut sys);
        assert_eq!(sys.calls, ["mount /var/opt /opt none bind"]);

        let mut sys = root();
        sys.add_dir("/var/opt");
        setup_opt(&mut sys);
        assert_eq!(
            sys.calls,
            ["mkdir /var/opt/bin 0755", "mount /var/opt /opt none bind"]
        );
    }

    #[test]
    fn an_already_mounted_opt_is_left_alone() {
        let mut sys = root();
        sys.add_file(
            "/proc/self/mountinfo",
            "31 22 254:6 / /var rw - ext4 /dev/vda6 rw\n\
             40 22 254:6 /opt /opt rw - ext4 /dev/vda6 rw\n",
        );
        setup_opt(&mut sys);
        assert_eq!(sys.calls, Vec::<String>::new());
    }

    #[test]
    fn opt_failures_are_reported_not_fatal() {
        let mut sys = root();
        sys.fail("mkdir /var/opt 0755", Errno::EROFS);
        setup_opt(&mut sys);
        assert_eq!(
            sys.written_to("/dev/console"),
            vec!["slipway: /opt: creating /var/opt: Read-only file system"]
        );
        assert!(!sys.calls.iter().any(|c| c.starts_with("mount ")));

        let mut sys = root();
        sys.fail(OPT_FIRST_BOOT[2], Errno::ENOENT);
        setup_opt(&mut sys);
        assert_eq!(
            sys.written_to("/dev/console"),
            vec!["slipway: /opt: bind-mounting /var/opt on /opt: No such file or directory"]
        );
    }

    #[test]
    fn setup_leaves_opt_to_setup_opt() {
        let mut sys = root();
        setup(&mut sys);
        assert!(!sys.calls.iter().any(|c| c.contains("/opt")));
    }

    #[test]
    fn machine_ids_are_validated_and_formatted_like_systemd() {
        assert!(valid_machine_id("4a1e0c9d2b7f4e3a8c6d5b4a3f2e1d0c\n"));
        assert!(!valid_machine_id(""));
        assert!(!valid_machine_id("uninitialized\n"));
        assert!(!valid_machine_id(&"0".repeat(32)));
        assert!(!valid_machine_id("4A1E0C9D2B7F4E3A8C6D5B4A3F2E1D0C"));
        let id = format_machine_id([0xff; 16]);
        assert_eq!(id, "ffffffffffff4fffbfffffffffffffff");
        let id = format_machine_id([0; 16]);
        assert_eq!(&id[12..13], "4");
        assert_eq!(&id[16..17], "8");
    }

    #[test]
    fn a_failed_random_source_gives_no_id_and_a_message() {
        let mut sys = root();
        sys.fail("getrandom 16", Errno::ENOSYS);
        assert_eq!(setup(&mut sys), None);
        assert_eq!(
            sys.written_to("/dev/console"),
            vec!["slipway: machine-id: reading random bytes: Function not implemented"]
        );
    }
}

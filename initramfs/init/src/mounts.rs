//! The kernel API filesystems both stages mount, and `/proc/self/mountinfo`.

use nix::errno::Errno;
use nix::mount::MsFlags;

use crate::error::{Context, Error};
use crate::sys::Sys;

/// One filesystem that does not come from a disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiMount {
    pub source: &'static str,
    pub target: &'static str,
    pub fstype: &'static str,
    pub flags: MsFlags,
    pub data: Option<&'static str>,
}

fn api(
    source: &'static str,
    target: &'static str,
    fstype: &'static str,
    flags: MsFlags,
    data: Option<&'static str>,
) -> ApiMount {
    ApiMount {
        source,
        target,
        fstype,
        flags,
        data,
    }
}

/// `/proc`, `/sys`, `/dev`, `/run`: what stage 1 needs, and what it hands
/// over to the real root by moving them.
pub fn stage1_mounts() -> Vec<ApiMount> {
    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    vec![
        api("proc", "/proc", "proc", nosuid_nodev_noexec, None),
        api("sysfs", "/sys", "sysfs", nosuid_nodev_noexec, None),
        // No MS_NODEV on /dev, obviously; MS_NOEXEC is left off too, as some
        // programs mmap executable memory from device nodes.
        api(
            "devtmpfs",
            "/dev",
            "devtmpfs",
            MsFlags::MS_NOSUID,
            Some("mode=0755"),
        ),
        api(
            "tmpfs",
            "/run",
            "tmpfs",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=0755"),
        ),
    ]
}

/// Everything stage 2 expects, in mount order (parents first).
pub fn stage2_mounts() -> Vec<ApiMount> {
    let nosuid_nodev = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    let nosuid_nodev_noexec = nosuid_nodev | MsFlags::MS_NOEXEC;
    let mut mounts = stage1_mounts();
    mounts.extend([
        api(
            "devpts",
            "/dev/pts",
            "devpts",
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            // gid 5 is `tty` in Debian's base-passwd, which our root uses.
            Some("gid=5,mode=620,ptmxmode=666"),
        ),
        api(
            "tmpfs",
            "/dev/shm",
            "tmpfs",
            nosuid_nodev,
            Some("mode=1777"),
        ),
        api("tmpfs", "/tmp", "tmpfs", nosuid_nodev, Some("mode=1777")),
        api(
            "cgroup2",
            "/sys/fs/cgroup",
            "cgroup2",
            nosuid_nodev_noexec,
            None,
        ),
    ]);
    mounts
}

/// How a mount is named in error messages:
/// `mounting /dev/vda2 on /sysroot (squashfs, read-only)`.
pub fn mount_action(source: &str, target: &str, fstype: &str, flags: MsFlags) -> String {
    if flags.contains(MsFlags::MS_RDONLY) {
        format!("mounting {source} on {target} ({fstype}, read-only)")
    } else {
        format!("mounting {source} on {target} ({fstype})")
    }
}

/// Mounts a filesystem; the error names source, target and type.
pub fn mount_fs(
    sys: &mut dyn Sys,
    source: &str,
    target: &str,
    fstype: &str,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), Error> {
    sys.mount(Some(source), target, Some(fstype), flags, data)
        .context(|| mount_action(source, target, fstype, flags))
}

pub fn mount_api(sys: &mut dyn Sys, m: &ApiMount) -> Result<(), Error> {
    mount_fs(sys, m.source, m.target, m.fstype, m.flags, m.data)
}

/// `MS_MOVE` of an existing mount.
pub fn move_mount(sys: &mut dyn Sys, from: &str, to: &str) -> Result<(), Error> {
    sys.mount(Some(from), to, None, MsFlags::MS_MOVE, None)
        .context(|| format!("moving {from} to {to}"))
}

/// Creates a mount point if it is missing. Errors are left for the mount to
/// report (on a read-only root the directory must already be in the image).
pub fn ensure_dir(sys: &mut dyn Sys, path: &str) {
    if !sys.exists(path) {
        let _ = sys.mkdir(path, 0o755);
    }
}

/// Stage 2: mounts what is not mounted yet (stage 1 moved `/proc`, `/sys`,
/// `/dev`, `/run` over already; booting without our initramfs they are
/// missing). Keeps going after a failure and returns every failure.
pub fn mount_missing(sys: &mut dyn Sys, mounts: &[ApiMount]) -> Vec<Error> {
    let mut errors = Vec::new();
    for m in mounts {
        // Re-read each time: `/proc` itself may have just been mounted.
        let mounted = sys
            .read_file("/proc/self/mountinfo")
            .map(|bytes| parse_mountinfo(&String::from_utf8_lossy(&bytes)))
            .unwrap_or_default();
        if mounted.iter().any(|e| e.mount_point == m.target) {
            continue;
        }
        ensure_dir(sys, m.target);
        match mount_api(sys, m) {
            Ok(()) => {}
            // Mounted after all, and mountinfo could not tell us.
            Err(Error::Sys {
                errno: Errno::EBUSY,
                ..
            }) => {}
            Err(e) => errors.push(e),
        }
    }
    errors
}

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_point: String,
    pub fstype: String,
    pub source: String,
    pub read_only: bool,
}

/// Parses `/proc/self/mountinfo` (see proc(5)); malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    let mut entries = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let (Some(mount_point), Some(options)) = (fields.get(4), fields.get(5)) else {
            continue;
        };
        let Some(dash) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let (Some(fstype), Some(source)) = (fields.get(dash + 1), fields.get(dash + 2)) else {
            continue;
        };
        entries.push(MountEntry {
            mount_point: unescape(mount_point),
            fstype: unescape(fstype),
            source: unescape(source),
            read_only: options.split(',').any(|o| o == "ro"),
        });
    }
    entries
}

/// Undoes the kernel's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'\\' {
            if let Some(digits) = bytes.get(i + 1..i + 4) {
                if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                    let value = digits
                        .iter()
                        .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                    if let Ok(byte) = u8::try_from(value) {
                        out.push(byte);
                        i += 4;
                        continue;
                    }
                }
            }
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Filesystems that hold no data of their own; the kernel tears them down
/// with everything else, and unmounting `/dev` would cut us off from the
/// console.
const API_FILESYSTEMS: &[&str] = &[
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "cgroup",
    "cgroup2",
    "securityfs",
    "debugfs",
    "tracefs",
    "configfs",
    "fusectl",
    "pstore",
    "efivarfs",
    "bpf",
    "mqueue",
    "hugetlbfs",
    "binfmt_misc",
    "autofs",
];

/// The mount points to unmount at shutdown, deepest (latest) first: every
/// filesystem but `/` and the kernel API ones.
pub fn shutdown_unmounts(entries: &[MountEntry]) -> Vec<String> {
    entries
        .iter()
        .rev()
        .filter(|e| e.mount_point != "/")
        .filter(|e| !API_FILESYSTEMS.contains(&e.fstype.as_str()))
        .map(|e| e.mount_point.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::recording::RecordingSys;

    const MOUNTINFO: &str = "\
22 1 254:2 / / ro,relatime - squashfs /dev/vda2 ro,errors=continue
23 22 0:5 / /dev rw,nosuid - devtmpfs devtmpfs rw,size=4096k,mode=755
24 22 0:21 / /proc rw,nosuid,nodev,noexec - proc proc rw
25 22 0:20 / /sys rw,nosuid,nodev,noexec - sysfs sysfs rw
26 22 0:22 / /run rw,nosuid,nodev - tmpfs tmpfs rw,mode=755
27 23 0:23 / /dev/pts rw,nosuid,noexec - devpts devpts rw,gid=5,mode=620,ptmxmode=666
28 23 0:24 / /dev/shm rw,nosuid,nodev - tmpfs tmpfs rw
29 22 0:25 / /tmp rw,nosuid,nodev - tmpfs tmpfs rw
30 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec - cgroup2 cgroup2 rw
31 22 254:6 / /var rw,relatime shared:1 - ext4 /dev/vda6 rw
32 31 0:27 / /var/my\\040dir rw - tmpfs tmpfs rw
";

    #[test]
    fn parses_mountinfo_with_optional_fields_and_escapes() {
        let entries = parse_mountinfo(MOUNTINFO);
        assert_eq!(entries.len(), 11);
        assert_eq!(
            entries[0],
            MountEntry {
                mount_point: "/".into(),
                fstype: "squashfs".into(),
                source: "/dev/vda2".into(),
                read_only: true,
            }
        );
        assert_eq!(entries[9].fstype, "ext4");
        assert_eq!(entries[10].mount_point, "/var/my dir");
        assert!(parse_mountinfo("garbage\n1 2 3\n").is_empty());
    }

    #[test]
    fn shutdown_unmounts_writable_filesystems_deepest_first() {
        let entries = parse_mountinfo(MOUNTINFO);
        assert_eq!(
            shutdown_unmounts(&entries),
            vec!["/var/my dir", "/var", "/tmp", "/dev/shm", "/run"]
        );
    }

    #[test]
    fn mount_missing_skips_what_is_mounted_and_keeps_going() {
        let mut sys = RecordingSys::new();
        // Stage 1 handed over /proc, /sys, /dev, /run.
        let handed_over: String = MOUNTINFO
            .lines()
            .take(5)
            .map(|l| format!("{l}\n"))
            .collect();
        sys.add_file("/proc/self/mountinfo", handed_over)
            .add_dir("/dev")
            .add_dir("/tmp")
            .add_dir("/sys/fs/cgroup");
        sys.fail(
            "mount tmpfs /tmp tmpfs nosuid,nodev,mode=1777",
            Errno::ENOENT,
        );
        sys.fail(
            "mount cgroup2 /sys/fs/cgroup cgroup2 nosuid,nodev,noexec",
            Errno::EBUSY,
        );
        let errors = mount_missing(&mut sys, &stage2_mounts());
        assert_eq!(
            sys.calls,
            vec![
                "mkdir /dev/pts 0755",
                "mount devpts /dev/pts devpts nosuid,noexec,gid=5,mode=620,ptmxmode=666",
                "mkdir /dev/shm 0755",
                "mount tmpfs /dev/shm tmpfs nosuid,nodev,mode=1777",
                "mount tmpfs /tmp tmpfs nosuid,nodev,mode=1777",
                "mount cgroup2 /sys/fs/cgroup cgroup2 nosuid,nodev,noexec",
            ]
        );
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            errors,
            vec!["mounting tmpfs on /tmp (tmpfs): No such file or directory"]
        );
    }
}

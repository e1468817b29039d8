//! Stage 1: from the initramfs to the real root.
//!
//! Mount the kernel API filesystems, read the command line, load the listed
//! modules, wait for the slot's root and verity hash partitions, set up the
//! dm-verity device over them and mount it read-only, mount `/var` (grown
//! to fill the disk, see `var.rs`), hand the API mounts over and
//! `switch_root` into `/sbin/init`. Any failure prints one
//! `slipway: stage1 failed: …` line and reboots: boot counting in
//! systemd-boot only falls back to the other slot if a failed boot ends in a
//! reboot, so stage 1 must never hang or panic.

use std::time::Duration;

use nix::mount::MsFlags;

use crate::cmdline::{BootArgs, Cmdline, Verity, VerityArgs};
use crate::console::say;
use crate::error::{chain, Context, Error};
use crate::modules::{load_listed, MODULES_LOAD};
use crate::mounts::{ensure_dir, mount_action, mount_api, mount_fs, move_mount, stage1_mounts};
use crate::partition::{wait_for_partitions, wait_for_root, WaitPolicy, Wanted};
use crate::sys::{Reboot, Sys};
use crate::var;
use crate::verity;

/// Its presence in `/` means we are running from the initramfs.
pub const INITRD_RELEASE: &str = "/etc/initrd-release";
pub const SYSROOT: &str = "/sysroot";
pub const ROOT_FSTYPE: &str = "squashfs";
/// The init on the real root: this same binary.
pub const NEXT_INIT: &str = "/sbin/init";
/// Where stage 1 mounts `/var` (it moves into place with the root).
pub const VAR_TARGET: &str = "/sysroot/var";
/// Long enough to read the failure line on a screen, short enough that three
/// failed tries of a bad update roll back within a minute or so.
pub const FAILURE_DELAY: Duration = Duration::from_secs(5);

/// Printed, on every console, when `slipway.verity=off` boots the root
/// unverified.
pub const VERITY_OFF_WARNING: &str =
    "slipway: WARNING: dm-verity disabled by slipway.verity=off: the root is NOT verified";
/// How many times: one line is easily lost among the kernel's messages.
const VERITY_OFF_REPEAT: usize = 3;

/// The API mounts handed over to the real root, in the order they move.
const HANDED_OVER: [&str; 4] = ["/dev", "/proc", "/sys", "/run"];

/// Runs stage 1. On success the process image is replaced and this does not
/// return (with the real [`crate::sys::LinuxSys`]); on failure it reports,
/// waits and reboots, and returns only if even `reboot(2)` failed.
pub fn run(sys: &mut dyn Sys) {
    if let Err(e) = boot(sys, &WaitPolicy::default()) {
        fail(sys, &chain(&e));
    }
}

/// The failure path: one line, a pause to read it, reboot.
pub fn fail(sys: &mut dyn Sys, reason: &str) {
    say(sys, &format!("slipway: stage1 failed: {reason}"));
    sys.sleep(FAILURE_DELAY);
    sys.sync();
    let _ = sys.reboot(Reboot::Restart);
}

/// The boot steps; `Ok` only in tests, where `execv` returns.
pub fn boot(sys: &mut dyn Sys, wait: &WaitPolicy) -> Result<(), Error> {
    for m in stage1_mounts() {
        // The initramfs ships these directories; creating a missing one
        // costs nothing and makes a hand-made initramfs work too.
        ensure_dir(sys, m.target);
        mount_api(sys, &m)?;
    }

    let cmdline = sys
        .read_file("/proc/cmdline")
        .context(|| "reading /proc/cmdline".to_string())?;
    let args = BootArgs::from_cmdline(&Cmdline::parse(&String::from_utf8_lossy(&cmdline)))?;

    load_listed(sys, MODULES_LOAD);

    let Mounted { device, partition } = match &args.verity {
        Verity::On(verity) => mount_verified(sys, &args, verity, wait)?,
        Verity::Off => mount_unverified(sys, &args, wait)?,
    };
    let next_init = format!("{SYSROOT}{NEXT_INIT}");
    if !sys.exists(&next_init) {
        return Err(Error::InitMissing {
            path: NEXT_INIT.to_string(),
            device,
        });
    }

    // Never fatal: see var.rs.
    var::mount(sys, &partition, VAR_TARGET);

    // Moving (not re-mounting) keeps the same devtmpfs, proc, sysfs and
    // /run instances: device nodes created so far and anything stage 1 left
    // in /run carry over, and nothing stays mounted on the initramfs.
    for path in HANDED_OVER {
        move_mount(sys, path, &format!("{SYSROOT}{path}"))?;
    }

    switch_root(sys, SYSROOT)?;

    sys.execv(NEXT_INIT, &[NEXT_INIT])
        .context(|| format!("executing {NEXT_INIT}"))
}

/// The mounted root.
struct Mounted {
    /// What is mounted, as errors name it: `/dev/dm-0 (verity root)`.
    device: String,
    /// The slot's root partition, e.g. `/dev/vda2`: its disk holds `var`.
    partition: String,
}

/// Waits for the root and its hash partition, sets up the verity device
/// and mounts it on `/sysroot`.
fn mount_verified(
    sys: &mut dyn Sys,
    args: &BootArgs,
    verity: &VerityArgs,
    wait: &WaitPolicy,
) -> Result<Mounted, Error> {
    let wanted = [
        Wanted {
            role: "root partition",
            spec: &args.root,
        },
        Wanted {
            role: "verity hash partition",
            spec: &verity.hash_partition,
        },
    ];
    let mut devices = wait_for_partitions(sys, &wanted, wait)?.into_iter();
    let (Some(data), Some(hash)) = (devices.next(), devices.next()) else {
        // wait_for_partitions returns one device per wanted partition.
        return Err(Error::PartitionTimeout {
            missing: wanted.map(|w| w.to_string()).join(" and "),
            waited: wait.timeout,
            why: String::new(),
        });
    };
    say(
        sys,
        &format!("slipway: slot {} root {data} ({})", args.slot, args.root),
    );
    let dm = verity::activate(sys, verity, &data, &hash)?;
    say(
        sys,
        &format!(
            "slipway: verity root hash {}\u{2026} on {dm}",
            verity.root_hash.short()
        ),
    );
    // Every read is checked against the tree; a tampered image fails here
    // (the superblock read), with EIO, and the message must say verity.
    let label = format!("{dm} (verity root)");
    if let Err(errno) = sys.mount(
        Some(&dm),
        SYSROOT,
        Some(ROOT_FSTYPE),
        MsFlags::MS_RDONLY,
        None,
    ) {
        verity::deactivate(sys);
        return Err(Error::sys(
            mount_action(&label, SYSROOT, ROOT_FSTYPE, MsFlags::MS_RDONLY),
            errno,
        ));
    }
    Ok(Mounted {
        device: label,
        partition: data,
    })
}

/// `slipway.verity=off`: the partition itself, after a warning nobody
/// can miss.
fn mount_unverified(
    sys: &mut dyn Sys,
    args: &BootArgs,
    wait: &WaitPolicy,
) -> Result<Mounted, Error> {
    let device = wait_for_root(sys, &args.root, wait)?;
    say(
        sys,
        &format!("slipway: slot {} root {device} ({})", args.slot, args.root),
    );
    for _ in 0..VERITY_OFF_REPEAT {
        say(sys, VERITY_OFF_WARNING);
    }
    // Read-only all the same: the next update writes the other slot,
    // never this one.
    mount_fs(sys, &device, SYSROOT, ROOT_FSTYPE, MsFlags::MS_RDONLY, None)?;
    Ok(Mounted {
        device: device.clone(),
        partition: device,
    })
}

/// Makes `new_root` the root of the mount namespace and of this process.
///
/// The initramfs is the kernel's rootfs, which `pivot_root(2)` refuses to
/// move, so instead the new root's mount is moved on top of `/` (from
/// inside it, hence the chdir: afterwards `/sysroot` no longer names it)
/// and then `chroot(".")` makes our own root follow; the final `chdir("/")`
/// leaves no handle on the old tree.
///
/// The initramfs contents are not deleted first (busybox `switch_root`
/// does): they are a few MB (this binary and the listed modules), and a
/// recursive delete in PID 1 that must stop at every mount point
/// (`/sysroot`, the moved `/run`) is more risk than those MB are worth.
pub fn switch_root(sys: &mut dyn Sys, new_root: &str) -> Result<(), Error> {
    sys.chdir(new_root)
        .context(|| format!("changing directory to {new_root}"))?;
    sys.mount(Some("."), "/", None, MsFlags::MS_MOVE, None)
        .context(|| format!("moving {new_root} to /"))?;
    sys.chroot(".")
        .context(|| format!("changing root to {new_root}"))?;
    sys.chdir("/")
        .context(|| "changing directory to /".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::tests::{
        add_block_devices, disk_image, ROOT_A, ROOT_B, VERITY_A, VERITY_B,
    };
    use crate::partition::SYS_CLASS_BLOCK;
    use crate::sys::recording::RecordingSys;
    use gpt::disk::LogicalBlockSize;
    use nix::errno::Errno;

    const ROOTHASH: &str = "4392a8f0e2c1b7d6a5f4e3d2c1b0a9f8e7d6c5b4a3928170f6e5d4c3b2a19080";
    const SALT: &str = "0011223344556677889900aabbccddeeff00112233445566778899aabbccddee";

    /// The command line the image builder writes for slot `a` or `b`.
    fn cmdline(slot: char) -> String {
        let (root, verity) = if slot == 'a' {
            (ROOT_A, VERITY_A)
        } else {
            (ROOT_B, VERITY_B)
        };
        format!(
            "console=ttyS0 slipway.slot={slot} slipway.root=PARTUUID={root} \
             slipway.roothash={ROOTHASH} slipway.verity_hash=PARTUUID={verity} \
             slipway.verity_salt={SALT} slipway.verity_blocks=256"
        )
    }

    /// The verity table for slot `a` (vda2, vda4) or `b` (vda3, vda5).
    fn table(slot: char) -> String {
        let (data, hash) = if slot == 'a' { (2, 4) } else { (3, 5) };
        format!("0 2048 verity 1 254:{data} 254:{hash} 4096 4096 256 1 sha256 {ROOTHASH} {SALT}")
    }

    /// The initramfs as the image builder makes it, booted with `cmdline`.
    fn initramfs(cmdline: &str) -> RecordingSys {
        let mut sys = initramfs_without_init(cmdline);
        sys.add_file("/sysroot/sbin/init", "");
        sys
    }

    /// The same, with a root image that lacks `/sbin/init`.
    fn initramfs_without_init(cmdline: &str) -> RecordingSys {
        let mut sys = RecordingSys::new();
        for dir in ["/proc", "/sys", "/dev", "/run", "/sysroot"] {
            sys.add_dir(dir);
        }
        sys.add_file("/dev/console", "")
            .add_file(INITRD_RELEASE, "NAME=Slipway\n")
            .add_file(
                MODULES_LOAD,
                "/lib/modules/virtio.ko\n/lib/modules/virtio_ring.ko\n\
                 /lib/modules/virtio_pci.ko\n/lib/modules/virtio_blk.ko\n\
                 /lib/modules/squashfs.ko\n/lib/modules/dm-mod.ko\n\
                 /lib/modules/dm-bufio.ko\n/lib/modules/dm-verity.ko\n",
            )
            .add_file("/proc/cmdline", format!("{cmdline}\n"));
        add_block_devices(&mut sys, disk_image(LogicalBlockSize::Lb512));
        sys
    }

    const MODULE_LOADS: [&str; 8] = [
        "finit_module /lib/modules/virtio.ko",
        "finit_module /lib/modules/virtio_ring.ko",
        "finit_module /lib/modules/virtio_pci.ko",
        "finit_module /lib/modules/virtio_blk.ko",
        "finit_module /lib/modules/squashfs.ko",
        "finit_module /lib/modules/dm-mod.ko",
        "finit_module /lib/modules/dm-bufio.ko",
        "finit_module /lib/modules/dm-verity.ko",
    ];

    const API_MOUNTS: [&str; 4] = [
        "mount proc /proc proc nosuid,nodev,noexec",
        "mount sysfs /sys sysfs nosuid,nodev,noexec",
        "mount devtmpfs /dev devtmpfs nosuid,mode=0755",
        "mount tmpfs /run tmpfs nosuid,nodev,mode=0755",
    ];

    const SWITCH: [&str; 9] = [
        "mount --move /dev /sysroot/dev",
        "mount --move /proc /sysroot/proc",
        "mount --move /sys /sysroot/sys",
        "mount --move /run /sysroot/run",
        "chdir /sysroot",
        "mount --move . /",
        "chroot .",
        "chdir /",
        "execv /sbin/init [\"/sbin/init\"]",
    ];

    /// `/var` from the test disk, which has no room to grow.
    const VAR: [&str; 2] = [
        "mount /dev/vda6 /sysroot/var ext4",
        "write /dev/console: slipway: /var: /dev/vda6 mounted (ext4, 2 MiB)",
    ];

    fn expected(middle: &[String]) -> Vec<String> {
        API_MOUNTS
            .iter()
            .chain(&MODULE_LOADS)
            .map(ToString::to_string)
            .chain(middle.iter().cloned())
            .chain(VAR.iter().chain(&SWITCH).map(ToString::to_string))
            .collect()
    }

    /// The last calls of a failed stage 1: the reason, the pause, reboot.
    fn assert_failed(sys: &RecordingSys, reason: &str) {
        assert_failed_after_exec(sys, reason);
        assert!(!sys.calls.iter().any(|c| c.starts_with("execv")));
    }

    fn assert_failed_after_exec(sys: &RecordingSys, reason: &str) {
        let calls = &sys.calls;
        assert_eq!(
            calls[calls.len() - 4..],
            [
                format!("write /dev/console: slipway: stage1 failed: {reason}"),
                "sleep 5s".to_string(),
                "sync".to_string(),
                "reboot RB_AUTOBOOT".to_string(),
            ]
        );
    }

    #[test]
    fn boots_the_slot_through_dm_verity() {
        let mut sys = initramfs(&cmdline('b').replace(ROOT_B, &ROOT_B.to_uppercase()));
        run(&mut sys);
        assert_eq!(
            sys.calls,
            expected(&[
                format!("write /dev/console: slipway: slot b root /dev/vda3 (PARTUUID={ROOT_B})"),
                "dm_version".into(),
                "dm_create root ro".into(),
                format!("dm_load root ro: {}", table('b')),
                "dm_resume root".into(),
                "write /dev/console: slipway: verity root hash 4392a8f0e2c1\u{2026} on /dev/dm-0"
                    .into(),
                "mount /dev/dm-0 /sysroot squashfs ro".into(),
            ])
        );
    }

    #[test]
    fn verity_off_mounts_the_partition_after_a_loud_warning() {
        let mut sys = initramfs(&format!(
            "console=ttyS0 slipway.slot=b slipway.root=PARTUUID={ROOT_B} slipway.verity=off"
        ));
        run(&mut sys);
        let warning = format!("write /dev/console: {VERITY_OFF_WARNING}");
        assert_eq!(
            sys.calls,
            expected(&[
                format!("write /dev/console: slipway: slot b root /dev/vda3 (PARTUUID={ROOT_B})"),
                warning.clone(),
                warning.clone(),
                warning,
                "mount /dev/vda3 /sysroot squashfs ro".into(),
            ])
        );
        assert_eq!(
            VERITY_OFF_WARNING,
            "slipway: WARNING: dm-verity disabled by slipway.verity=off: the root is NOT verified"
        );
    }

    #[test]
    fn verity_off_warning_goes_to_every_console() {
        let mut sys = initramfs(&format!("{} slipway.verity=off", cmdline('a')));
        sys.add_file("/proc/consoles", "tty0 -WU\nttyS0 -W-\n")
            .add_file("/dev/tty0", "")
            .add_file("/dev/ttyS0", "");
        run(&mut sys);
        for tty in ["/dev/tty0", "/dev/ttyS0"] {
            let lines = sys.written_to(tty);
            assert_eq!(
                lines.iter().filter(|l| *l == VERITY_OFF_WARNING).count(),
                3,
                "{tty}: {lines:?}"
            );
        }
        assert!(!sys.calls.iter().any(|c| c.starts_with("dm_")));
        assert!(sys
            .calls
            .contains(&"mount /dev/vda2 /sysroot squashfs ro".to_string()));
    }

    #[test]
    fn bad_or_missing_verity_keys_fail_before_anything_else() {
        let full = cmdline('a');
        let without = |key: &str| {
            full.split_whitespace()
                .filter(|w| !w.starts_with(&format!("{key}=")))
                .collect::<Vec<_>>()
                .join(" ")
        };
        for (cmdline, reason) in [
            (
                without("slipway.roothash"),
                "missing slipway.roothash= on the kernel command line \
                 (or slipway.verity=off to boot unverified)"
                    .to_string(),
            ),
            (
                without("slipway.verity_hash"),
                "missing slipway.verity_hash= on the kernel command line \
                 (or slipway.verity=off to boot unverified)"
                    .to_string(),
            ),
            (
                without("slipway.verity_salt"),
                "missing slipway.verity_salt= on the kernel command line \
                 (or slipway.verity=off to boot unverified)"
                    .to_string(),
            ),
            (
                without("slipway.verity_blocks"),
                "missing slipway.verity_blocks= on the kernel command line \
                 (or slipway.verity=off to boot unverified)"
                    .to_string(),
            ),
            (
                format!("{full} slipway.roothash=abc"),
                "slipway.roothash=abc: expected 64 hex characters (sha256)".to_string(),
            ),
            (
                format!("{full} slipway.verity_salt=xyz"),
                "slipway.verity_salt=xyz: expected 64 hex characters (salt)".to_string(),
            ),
            (
                format!("{full} slipway.verity_blocks=x"),
                "slipway.verity_blocks=x: not a number".to_string(),
            ),
            (
                format!("{full} slipway.verity_hash=/dev/vda4"),
                "slipway.verity_hash=/dev/vda4: expected PARTUUID=<uuid>".to_string(),
            ),
            (
                format!("{full} slipway.verity=0"),
                "slipway.verity=0: expected off (or on)".to_string(),
            ),
        ] {
            let mut sys = initramfs(&cmdline);
            run(&mut sys);
            assert_failed(&sys, &reason);
            assert_eq!(sys.calls.len(), API_MOUNTS.len() + 4, "{:?}", sys.calls);
        }
    }

    #[test]
    fn waits_for_a_hash_partition_that_appears_late() {
        let mut sys = initramfs(&cmdline('a'));
        let late = Duration::from_secs(7);
        let entry = format!("{SYS_CLASS_BLOCK}/vda4");
        sys.remove(&entry);
        sys.add_link_at(late, &entry, "../../devices/virtio1/block/vda/vda4");
        sys.add_file_at(late, &format!("{entry}/partition"), "4\n");
        sys.add_file_at(late, &format!("{entry}/dev"), "254:4\n");
        run(&mut sys);
        assert_eq!(sys.clock(), late);
        let calls = sys.calls_without_polling();
        let waiting = calls.iter().position(|c| c.contains("waiting")).unwrap();
        assert_eq!(
            calls[waiting..waiting + 4],
            [
                format!(
                    "write /dev/console: slipway: waiting for verity hash partition \
                     PARTUUID={VERITY_A}"
                ),
                format!("write /dev/console: slipway: slot a root /dev/vda2 (PARTUUID={ROOT_A})"),
                "dm_version".to_string(),
                "dm_create root ro".to_string(),
            ]
        );
        assert_eq!(calls.last().unwrap(), "execv /sbin/init [\"/sbin/init\"]");
    }

    #[test]
    fn both_partitions_missing_share_one_timeout() {
        let mut sys = initramfs(
            &cmdline('a')
                .replace(ROOT_A, "11111111-2222-4333-8444-555555555555")
                .replace(VERITY_A, "66666666-7777-4888-9999-aaaaaaaaaaaa"),
        );
        run(&mut sys);
        assert_eq!(sys.clock(), Duration::from_secs(65));
        let calls = sys.calls_without_polling();
        assert_eq!(
            calls[calls.len() - 5],
            "write /dev/console: slipway: waiting for root partition \
             PARTUUID=11111111-2222-4333-8444-555555555555 and verity hash partition \
             PARTUUID=66666666-7777-4888-9999-aaaaaaaaaaaa"
        );
        assert_failed(
            &sys,
            "root partition PARTUUID=11111111-2222-4333-8444-555555555555 and verity hash \
             partition PARTUUID=66666666-7777-4888-9999-aaaaaaaaaaaa did not appear within 60 s",
        );
        assert!(!sys.calls.iter().any(|c| c.starts_with("dm_")));
    }

    #[test]
    fn hash_partition_that_never_appears_times_out() {
        let mut sys =
            initramfs(&cmdline('b').replace(VERITY_B, "66666666-7777-4888-9999-aaaaaaaaaaaa"));
        run(&mut sys);
        assert_eq!(sys.clock(), Duration::from_secs(65));
        assert_failed(
            &sys,
            "verity hash partition PARTUUID=66666666-7777-4888-9999-aaaaaaaaaaaa \
             did not appear within 60 s",
        );
    }

    #[test]
    fn tampered_root_fails_the_mount_naming_verity_and_removes_the_device() {
        let mut sys = initramfs(&cmdline('a'));
        sys.fail("mount /dev/dm-0 /sysroot squashfs ro", Errno::EIO);
        run(&mut sys);
        let calls = &sys.calls;
        assert_eq!(
            calls[calls.len() - 6..calls.len() - 4],
            ["mount /dev/dm-0 /sysroot squashfs ro", "dm_remove root",]
        );
        assert_failed(
            &sys,
            "mounting /dev/dm-0 (verity root) on /sysroot (squashfs, read-only): \
             I/O error",
        );
    }

    #[test]
    fn device_mapper_failures_reboot_with_the_reason() {
        let mut sys = initramfs(&cmdline('a'));
        sys.fail("finit_module /lib/modules/dm-mod.ko", Errno::ENOENT)
            .fail("dm_version", Errno::ENOENT);
        run(&mut sys);
        assert_failed(
            &sys,
            "device-mapper not available (/dev/mapper/control missing): is dm_mod loaded?",
        );
        assert!(!sys.calls.iter().any(|c| c.starts_with("dm_create")));

        let mut sys = initramfs(&cmdline('a'));
        sys.fail(&format!("dm_load root ro: {}", table('a')), Errno::EINVAL);
        run(&mut sys);
        assert_failed(
            &sys,
            &format!(
                "device-mapper rejected the verity table (Invalid argument): \
                 is dm_verity loaded? table: {}",
                table('a')
            ),
        );
        assert!(sys.calls.contains(&"dm_remove root".to_string()));
        assert!(!sys.calls.iter().any(|c| c.starts_with("mount /dev/")));
    }

    #[test]
    fn missing_root_parameter_fails_and_reboots_after_the_delay() {
        let mut sys = initramfs("console=ttyS0 slipway.slot=a");
        run(&mut sys);
        assert_failed(&sys, "missing slipway.root= on the kernel command line");
        assert!(!sys.calls.iter().any(|c| c.starts_with("finit_module")));
    }

    #[test]
    fn failure_line_goes_to_every_console() {
        let mut sys = initramfs("slipway.slot=c");
        sys.add_file("/proc/consoles", "tty0 -WU\nttyS0 -W-\n")
            .add_file("/dev/tty0", "")
            .add_file("/dev/ttyS0", "");
        run(&mut sys);
        let line = "slipway: stage1 failed: slipway.slot=c: expected a or b";
        assert_eq!(sys.written_to("/dev/ttyS0"), vec![line]);
        assert_eq!(sys.written_to("/dev/tty0"), vec![line]);
        assert!(sys.written_to("/dev/console").is_empty());
    }

    #[test]
    fn partition_that_never_appears_times_out_and_reboots() {
        let mut sys =
            initramfs(&cmdline('a').replace(ROOT_A, "11111111-2222-4333-8444-555555555555"));
        run(&mut sys);
        assert_eq!(sys.clock(), Duration::from_secs(65));
        let calls = sys.calls_without_polling();
        assert_eq!(
            calls[calls.len() - 5..],
            [
                "write /dev/console: slipway: waiting for root partition \
                 PARTUUID=11111111-2222-4333-8444-555555555555",
                "write /dev/console: slipway: stage1 failed: root partition \
                 PARTUUID=11111111-2222-4333-8444-555555555555 did not appear within 60 s",
                "sleep 5s",
                "sync",
                "reboot RB_AUTOBOOT",
            ]
        );
    }

    #[test]
    fn a_disk_smaller_than_its_image_is_named_as_the_likely_cause() {
        // The image (8 MiB) on a 4 MiB disk: Linux ignores the table, so no
        // partitions appear.
        let mut sys = initramfs(&cmdline('a'));
        for n in 1..=6 {
            sys.remove(&format!("{SYS_CLASS_BLOCK}/vda{n}"));
        }
        sys.add_file(&format!("{SYS_CLASS_BLOCK}/vda/size"), "8192\n");
        run(&mut sys);
        let console = sys.written_to("/dev/console");
        assert_eq!(
            console.last().unwrap(),
            &format!(
                "slipway: stage1 failed: root partition PARTUUID={ROOT_A} and verity hash \
                 partition PARTUUID={VERITY_A} did not appear within 60 s; /dev/vda is 4 MiB but \
                 its partition table describes 8 MiB: the image was written to a disk too small \
                 for it (or cut short), so Linux ignores the table"
            )
        );
    }

    #[test]
    fn module_failure_is_reported_and_boot_continues() {
        let mut sys = initramfs(&cmdline('a'));
        sys.fail("finit_module /lib/modules/virtio_pci.ko", Errno::ENOENT)
            .fail("finit_module /lib/modules/virtio.ko", Errno::EEXIST);
        run(&mut sys);
        assert_eq!(
            sys.written_to("/dev/console")[0],
            "slipway: module /lib/modules/virtio_pci.ko: No such file or directory"
        );
        assert_eq!(
            sys.calls.last().unwrap(),
            "execv /sbin/init [\"/sbin/init\"]"
        );
        assert!(sys
            .calls
            .contains(&"mount /dev/dm-0 /sysroot squashfs ro".to_string()));
    }

    #[test]
    fn unverified_root_mount_failure_names_device_and_type() {
        let mut sys = initramfs(&format!("{} slipway.verity=off", cmdline('a')));
        sys.fail("mount /dev/vda2 /sysroot squashfs ro", Errno::ENODEV);
        run(&mut sys);
        assert_failed(
            &sys,
            "mounting /dev/vda2 on /sysroot (squashfs, read-only): No such device",
        );
    }

    #[test]
    fn root_without_init_is_refused_before_switching() {
        let mut sys = initramfs_without_init(&cmdline('a'));
        run(&mut sys);
        assert_failed(
            &sys,
            "/sbin/init not found on the root partition /dev/dm-0 (verity root)",
        );
        assert!(!sys.calls.iter().any(|c| c.starts_with("mount --move")));

        let mut sys = initramfs_without_init(&format!("{} slipway.verity=off", cmdline('a')));
        run(&mut sys);
        assert_failed(&sys, "/sbin/init not found on the root partition /dev/vda2");
    }

    #[test]
    fn exec_failure_reboots() {
        let mut sys = initramfs(&cmdline('a'));
        sys.fail("execv /sbin/init [\"/sbin/init\"]", Errno::ENOEXEC);
        run(&mut sys);
        assert_failed_after_exec(&sys, "executing /sbin/init: Exec format error");
    }

    #[test]
    fn sysfs_unreadable_is_a_clear_failure() {
        let mut sys = RecordingSys::new();
        sys.add_file("/dev/console", "")
            .add_file("/proc/cmdline", cmdline('a'));
        for dir in ["/proc", "/sys", "/dev", "/run"] {
            sys.add_dir(dir);
        }
        run(&mut sys);
        assert!(sys.written_to("/dev/console").contains(&format!(
            "slipway: stage1 failed: reading {SYS_CLASS_BLOCK}: No such file or directory"
        )));
    }
}

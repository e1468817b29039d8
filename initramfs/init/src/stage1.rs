//! Stage 1: from the initramfs to the real root.
//!
//! Mount the kernel API filesystems, read the command line, load the listed
//! modules, wait for the slot's root partition, mount it read-only, hand the
//! API mounts over and `switch_root` into `/sbin/init`. Any failure prints one
//! `slipway: stage1 failed: …` line and reboots: boot counting in
//! systemd-boot only falls back to the other slot if a failed boot ends in a
//! reboot, so stage 1 must never hang or panic.

use std::time::Duration;

use nix::mount::MsFlags;

use crate::cmdline::{BootArgs, Cmdline};
use crate::console::say;
use crate::error::{chain, Context, Error};
use crate::modules::{load_listed, MODULES_LOAD};
use crate::mounts::{ensure_dir, mount_api, mount_fs, move_mount, stage1_mounts};
use crate::partition::{wait_for_root, WaitPolicy};
use crate::sys::{Reboot, Sys};

/// Its presence in `/` means we are running from the initramfs.
pub const INITRD_RELEASE: &str = "/etc/initrd-release";
pub const SYSROOT: &str = "/sysroot";
pub const ROOT_FSTYPE: &str = "squashfs";
/// The init on the real root: this same binary.
pub const NEXT_INIT: &str = "/sbin/init";
/// Long enough to read the failure line on a screen, short enough that three
/// failed tries of a bad update roll back within a minute or so.
pub const FAILURE_DELAY: Duration = Duration::from_secs(5);

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

    let device = wait_for_root(sys, &args.root, wait)?;
    say(
        sys,
        &format!("slipway: slot {} root {device} ({})", args.slot, args.root),
    );
    // Read-only: the slot is verified content and the next update writes
    // the other slot, never this one.
    mount_fs(sys, &device, SYSROOT, ROOT_FSTYPE, MsFlags::MS_RDONLY, None)?;
    let next_init = format!("{SYSROOT}{NEXT_INIT}");
    if !sys.exists(&next_init) {
        return Err(Error::InitMissing {
            path: NEXT_INIT.to_string(),
            device,
        });
    }

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
    use crate::partition::tests::{add_block_devices, disk_image, ROOT_A, ROOT_B};
    use crate::partition::SYS_CLASS_BLOCK;
    use crate::recording::RecordingSys;
    use gpt::disk::LogicalBlockSize;
    use nix::errno::Errno;

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
                 /lib/modules/squashfs.ko\n",
            )
            .add_file("/proc/cmdline", format!("{cmdline}\n"));
        add_block_devices(&mut sys, disk_image(LogicalBlockSize::Lb512));
        sys
    }

    #[test]
    fn boots_the_slot_from_its_partuuid() {
        let mut sys = initramfs(&format!(
            "console=ttyS0 slipway.slot=b slipway.root=PARTUUID={}",
            ROOT_B.to_uppercase()
        ));
        run(&mut sys);
        assert_eq!(
            sys.calls,
            vec![
                "mount proc /proc proc nosuid,nodev,noexec",
                "mount sysfs /sys sysfs nosuid,nodev,noexec",
                "mount devtmpfs /dev devtmpfs nosuid,mode=0755",
                "mount tmpfs /run tmpfs nosuid,nodev,mode=0755",
                "finit_module /lib/modules/virtio.ko",
                "finit_module /lib/modules/virtio_ring.ko",
                "finit_module /lib/modules/virtio_pci.ko",
                "finit_module /lib/modules/virtio_blk.ko",
                "finit_module /lib/modules/squashfs.ko",
                &format!("write /dev/console: slipway: slot b root /dev/vda3 (PARTUUID={ROOT_B})"),
                "mount /dev/vda3 /sysroot squashfs ro",
                "mount --move /dev /sysroot/dev",
                "mount --move /proc /sysroot/proc",
                "mount --move /sys /sysroot/sys",
                "mount --move /run /sysroot/run",
                "chdir /sysroot",
                "mount --move . /",
                "chroot .",
                "chdir /",
                "execv /sbin/init [\"/sbin/init\"]",
            ]
        );
    }

    #[test]
    fn missing_root_parameter_fails_and_reboots_after_the_delay() {
        let mut sys = initramfs("console=ttyS0 slipway.slot=a");
        run(&mut sys);
        let calls = sys.calls;
        let tail = &calls[calls.len() - 4..];
        assert_eq!(
            tail,
            [
                "write /dev/console: slipway: stage1 failed: \
                 missing slipway.root= on the kernel command line",
                "sleep 5s",
                "sync",
                "reboot RB_AUTOBOOT",
            ]
        );
        assert!(!calls.iter().any(|c| c.starts_with("execv")));
        assert!(!calls.iter().any(|c| c.starts_with("finit_module")));
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
            initramfs("slipway.slot=a slipway.root=PARTUUID=11111111-2222-4333-8444-555555555555");
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
    fn module_failure_is_reported_and_boot_continues() {
        let mut sys = initramfs(&format!("slipway.slot=a slipway.root=PARTUUID={ROOT_A}"));
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
            .contains(&"mount /dev/vda2 /sysroot squashfs ro".to_string()));
    }

    #[test]
    fn root_mount_failure_names_device_and_type() {
        let mut sys = initramfs(&format!("slipway.slot=a slipway.root=PARTUUID={ROOT_A}"));
        sys.fail("mount /dev/vda2 /sysroot squashfs ro", Errno::ENODEV);
        run(&mut sys);
        assert!(sys.written_to("/dev/console").contains(
            &"slipway: stage1 failed: mounting /dev/vda2 on /sysroot (squashfs, read-only): \
              No such device"
                .to_string()
        ));
        assert_eq!(sys.calls.last().unwrap(), "reboot RB_AUTOBOOT");
    }

    #[test]
    fn root_without_init_is_refused_before_switching() {
        let mut sys =
            initramfs_without_init(&format!("slipway.slot=a slipway.root=PARTUUID={ROOT_A}"));
        run(&mut sys);
        assert!(sys.written_to("/dev/console").contains(
            &"slipway: stage1 failed: /sbin/init not found on the root partition /dev/vda2"
                .to_string()
        ));
        assert!(!sys.calls.iter().any(|c| c.starts_with("mount --move")));
    }

    #[test]
    fn exec_failure_reboots() {
        let mut sys = initramfs(&format!("slipway.slot=a slipway.root=PARTUUID={ROOT_A}"));
        sys.fail("execv /sbin/init [\"/sbin/init\"]", Errno::ENOEXEC);
        run(&mut sys);
        assert!(sys.written_to("/dev/console").contains(
            &"slipway: stage1 failed: executing /sbin/init: Exec format error".to_string()
        ));
        assert_eq!(sys.calls.last().unwrap(), "reboot RB_AUTOBOOT");
    }

    #[test]
    fn sysfs_unreadable_is_a_clear_failure() {
        let mut sys = RecordingSys::new();
        sys.add_file("/dev/console", "").add_file(
            "/proc/cmdline",
            format!("slipway.slot=a slipway.root=PARTUUID={ROOT_A}"),
        );
        for dir in ["/proc", "/sys", "/dev", "/run"] {
            sys.add_dir(dir);
        }
        run(&mut sys);
        assert!(sys.written_to("/dev/console").contains(&format!(
            "slipway: stage1 failed: reading {SYS_CLASS_BLOCK}: No such file or directory"
        )));
    }
}

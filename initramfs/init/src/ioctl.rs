//! The only `unsafe` in the init: the terminal, input, device-mapper,
//! partition-table and ext4 ioctls, `getrandom(2)` and a pre-exec hook,
//! each wrapped in a safe function.
#![allow(unsafe_code)]

use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::errno::Errno;
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow};

// EVIOCGNAME(len): the device name of an evdev node (linux/input.h).
nix::ioctl_read_buf!(eviocgname, b'E', 0x06, u8);
// TIOCSCTTY: make the terminal on the fd our controlling terminal.
nix::ioctl_write_int_bad!(tiocsctty, libc::TIOCSCTTY);
// TIOCOUTQ: bytes still waiting in a terminal's output queue.
nix::ioctl_read_bad!(tiocoutq, libc::TIOCOUTQ, libc::c_int);

/// `struct dm_ioctl` as the device-mapper ioctl numbers see it: they encode
/// its size, 312 (`_IOWR(0xfd, nr, struct dm_ioctl)`). The buffers
/// themselves are built by [`crate::dm::request`] and may be longer: the
/// kernel reads and writes `data_size` bytes.
#[repr(C)]
pub struct DmIoctl([u8; crate::dm::HEADER_SIZE]);

/// The device-mapper ioctl type (`DM_IOCTL` in linux/dm-ioctl.h).
const DM_IOCTL: u8 = 0xfd;
// DM_VERSION (0): writes the kernel's interface version into the header.
nix::ioctl_readwrite!(dm_version, DM_IOCTL, 0, DmIoctl);
// DM_DEV_CREATE (3): a new mapped device `name`, with no table, suspended.
nix::ioctl_readwrite!(dm_dev_create, DM_IOCTL, 3, DmIoctl);
// DM_DEV_REMOVE (4): removes device `name` and its tables.
nix::ioctl_readwrite!(dm_dev_remove, DM_IOCTL, 4, DmIoctl);
// DM_DEV_SUSPEND (6): suspends device `name`, or, without DM_SUSPEND_FLAG,
// swaps in its inactive table and resumes it.
nix::ioctl_readwrite!(dm_dev_suspend, DM_IOCTL, 6, DmIoctl);
// DM_TABLE_LOAD (9): loads the targets after the header into the inactive
// table slot of device `name`.
nix::ioctl_readwrite!(dm_table_load, DM_IOCTL, 9, DmIoctl);

/// `struct blkpg_partition` (linux/blkpg.h): a partition in bytes.
#[repr(C)]
struct BlkpgPartition {
    start: libc::c_longlong,
    length: libc::c_longlong,
    pno: libc::c_int,
    devname: [libc::c_char; 64],
    volname: [libc::c_char; 64],
}

/// `struct blkpg_ioctl_arg`: what BLKPG takes.
#[repr(C)]
struct BlkpgIoctlArg {
    op: libc::c_int,
    flags: libc::c_int,
    datalen: libc::c_int,
    data: *mut libc::c_void,
}

/// BLKPG_RESIZE_PARTITION (linux/blkpg.h).
const BLKPG_RESIZE_PARTITION: libc::c_int = 3;
// BLKPG: _IO(0x12, 105), though it takes a pointer to `blkpg_ioctl_arg`.
nix::ioctl_write_ptr_bad!(blkpg, nix::request_code_none!(0x12, 105), BlkpgIoctlArg);
// EXT4_IOC_RESIZE_FS: _IOW('f', 16, __u64), the new size in fs blocks.
nix::ioctl_write_ptr!(ext4_ioc_resize_fs, b'f', 16, u64);

/// Tells the kernel that partition `number` of the disk open as `disk`
/// now spans `length` bytes from `start`. Unlike re-reading the whole
/// table (BLKRRPART), this works while other partitions of the disk are in
/// use; the kernel refuses a change of start or an overlap.
pub fn resize_partition(
    disk: &impl AsFd,
    number: u32,
    start: u64,
    length: u64,
) -> Result<(), Errno> {
    let mut partition = BlkpgPartition {
        start: i64::try_from(start).map_err(|_| Errno::EINVAL)?,
        length: i64::try_from(length).map_err(|_| Errno::EINVAL)?,
        pno: i32::try_from(number).map_err(|_| Errno::EINVAL)?,
        devname: [0; 64],
        volname: [0; 64],
    };
    let arg = BlkpgIoctlArg {
        op: BLKPG_RESIZE_PARTITION,
        flags: 0,
        datalen: std::mem::size_of::<BlkpgPartition>() as libc::c_int,
        data: std::ptr::addr_of_mut!(partition).cast(),
    };
    // SAFETY: the fd is open for the duration of the call (borrowed); `arg`
    // and the `partition` it points to live until the call returns, and
    // `datalen` is the size of what `data` points to.
    unsafe { blkpg(disk.as_fd().as_raw_fd(), &arg) }?;
    Ok(())
}

/// Grows the ext4 filesystem that `dir` (any directory on it, usually its
/// mount point) belongs to, to `blocks` filesystem blocks, online.
pub fn resize_ext4(dir: &impl AsFd, blocks: u64) -> Result<(), Errno> {
    // SAFETY: the fd is open for the duration of the call; the kernel reads
    // one u64 through the pointer, which points to one.
    unsafe { ext4_ioc_resize_fs(dir.as_fd().as_raw_fd(), &blocks) }?;
    Ok(())
}

/// Fills `buf` with `getrandom(2)`, which blocks until the kernel's
/// generator has been seeded (early in boot it may wait briefly; a machine
/// identity must not come from an unseeded generator).
pub fn fill_random(buf: &mut [u8]) -> Result<(), Errno> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..).filter(|r| !r.is_empty()) {
        // SAFETY: the pointer and length describe `rest`, and the kernel
        // writes at most that many bytes into it.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        match usize::try_from(n) {
            Ok(n) => filled += n,
            Err(_) if Errno::last() == Errno::EINTR => {}
            Err(_) => return Err(Errno::last()),
        }
    }
    Ok(())
}

/// The device-mapper commands the init uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmCommand {
    Version,
    DevCreate,
    DevRemove,
    DevSuspend,
    TableLoad,
}

/// Issues one device-mapper ioctl on an open `/dev/mapper/control` with a
/// buffer from [`crate::dm::request`]; the kernel's answer replaces it.
pub fn dm_ioctl(control: &impl AsFd, command: DmCommand, buffer: &mut [u8]) -> Result<(), Errno> {
    // The kernel reads `data_size` bytes from the buffer and writes as many
    // back: refuse a buffer that does not own all of them.
    if buffer.len() < crate::dm::HEADER_SIZE || crate::dm::data_size(buffer) != Some(buffer.len()) {
        return Err(Errno::EINVAL);
    }
    let fd = control.as_fd().as_raw_fd();
    let data = buffer.as_mut_ptr().cast::<DmIoctl>();
    // SAFETY: the fd is open for the duration of the call (borrowed);
    // `data` points to `buffer`, which is at least the 312 bytes the
    // request number encodes and exactly the `data_size` bytes the kernel
    // reads and writes (checked above). No Rust reference to a `DmIoctl`
    // is made, so the pointer's alignment does not matter (the kernel
    // copies with copy_from_user).
    unsafe {
        match command {
            DmCommand::Version => dm_version(fd, data),
            DmCommand::DevCreate => dm_dev_create(fd, data),
            DmCommand::DevRemove => dm_dev_remove(fd, data),
            DmCommand::DevSuspend => dm_dev_suspend(fd, data),
            DmCommand::TableLoad => dm_table_load(fd, data),
        }
    }?;
    Ok(())
}

/// The name an input device reports, e.g. `Power Button`.
pub fn input_device_name(device: &impl AsFd) -> Result<String, Errno> {
    let mut buf = [0u8; 256];
    // SAFETY: the fd is open for the duration of the call (borrowed), and
    // the request encodes `buf.len()`, so the kernel writes within `buf`.
    unsafe { eviocgname(device.as_fd().as_raw_fd(), &mut buf) }?;
    let name = buf.split(|b| *b == 0).next().unwrap_or_default();
    Ok(String::from_utf8_lossy(name).into_owned())
}

/// How many bytes written to a terminal have not been sent yet.
pub fn terminal_output_pending(terminal: &impl AsFd) -> Result<usize, Errno> {
    let mut pending: libc::c_int = 0;
    // SAFETY: the fd is open for the duration of the call, and TIOCOUTQ
    // writes exactly one int through the pointer, which points to one.
    unsafe { tiocoutq(terminal.as_fd().as_raw_fd(), &mut pending) }?;
    Ok(usize::try_from(pending).unwrap_or(0))
}

/// Prepares the spawned program's process: unblocks every signal, and
/// makes it the leader of a new session whose controlling terminal is its
/// stdin, so that ctrl-c and job control work in the rescue shell.
pub fn spawn_in_new_session_on_stdin_tty(command: &mut Command) {
    // SAFETY: the closure runs in the child between fork and exec, where
    // only async-signal-safe calls are allowed. It makes three system calls
    // (sigprocmask, setsid, ioctl) and builds an io::Error from an errno,
    // none of which allocates or takes a lock.
    unsafe {
        command.pre_exec(|| {
            // PID 1 blocks the signals it reads from its signalfd; a mask
            // survives fork and exec, and a shell with SIGINT blocked
            // ignores ctrl-c.
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
                .map_err(std::io::Error::from)?;
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            // Fails on a terminal that cannot be a controlling tty (e.g.
            // /dev/console): the shell then runs without job control, which
            // is better than no shell.
            let _ = tiocsctty(libc::STDIN_FILENO, 0);
            Ok(())
        });
    }
}

/// Prepares a service's process: unblocks every signal, makes it the
/// leader of a new session (so its process group can be signalled as one
/// where there are no cgroups), and moves it into its cgroup by writing
/// `0` (itself) to the group's `cgroup.procs`, before it can fork.
pub fn spawn_as_service(command: &mut Command, cgroup_procs: Option<std::os::fd::RawFd>) {
    // SAFETY: the closure runs in the child between fork and exec, where
    // only async-signal-safe calls are allowed: sigprocmask, setsid and
    // write(2) on a descriptor opened by the parent; nothing allocates.
    unsafe {
        command.pre_exec(move || {
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
                .map_err(std::io::Error::from)?;
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            if let Some(fd) = cgroup_procs {
                if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dm_ioctl_numbers_are_the_headers() {
        assert_eq!(std::mem::size_of::<DmIoctl>(), 312);
        // _IOWR(0xfd, nr, struct dm_ioctl), as libdevmapper computes them.
        let code = |nr| nix::request_code_readwrite!(DM_IOCTL, nr, std::mem::size_of::<DmIoctl>());
        assert_eq!(code(0) as u32, 0xc138_fd00, "DM_VERSION");
        assert_eq!(code(3) as u32, 0xc138_fd03, "DM_DEV_CREATE");
        assert_eq!(code(4) as u32, 0xc138_fd04, "DM_DEV_REMOVE");
        assert_eq!(code(6) as u32, 0xc138_fd06, "DM_DEV_SUSPEND");
        assert_eq!(code(9) as u32, 0xc138_fd09, "DM_TABLE_LOAD");
    }

    #[test]
    fn dm_ioctl_refuses_buffers_it_does_not_own_entirely() {
        let file = tempfile::tempfile().unwrap();
        let mut short = vec![0u8; 100];
        assert_eq!(
            dm_ioctl(&file, DmCommand::Version, &mut short),
            Err(Errno::EINVAL)
        );
        // data_size larger than the buffer.
        let mut buf = crate::dm::request("", 0, &[]).unwrap();
        buf[12..16].copy_from_slice(&4096u32.to_ne_bytes());
        assert_eq!(
            dm_ioctl(&file, DmCommand::Version, &mut buf),
            Err(Errno::EINVAL)
        );
        // A well-formed request on a file that is not the control node.
        let mut buf = crate::dm::request("", 0, &[]).unwrap();
        assert_eq!(
            dm_ioctl(&file, DmCommand::Version, &mut buf),
            Err(Errno::ENOTTY)
        );
    }

    #[test]
    fn dm_version_on_the_host_when_allowed() {
        // Only root can open the control node; elsewhere there is nothing
        // to check.
        let Ok(control) = crate::dm::Control::open() else {
            return;
        };
        let version = control.version().unwrap();
        assert_eq!(version[0], 4);
    }

    #[test]
    fn eviocgname_on_a_non_input_fd_is_an_error() {
        let file = tempfile::tempfile().unwrap();
        assert!(input_device_name(&file).is_err());
    }

    #[test]
    fn output_queue_of_a_non_terminal_is_an_error() {
        let file = tempfile::tempfile().unwrap();
        assert_eq!(terminal_output_pending(&file), Err(Errno::ENOTTY));
    }

    #[test]
    fn child_starts_with_no_signal_blocked() {
        use nix::sys::signal::Signal;
        let mut blocked = SigSet::empty();
        blocked.add(Signal::SIGUSR1);
        // Test threads are separate; this only affects the current one,
        // whose mask the forked child inherits.
        blocked.thread_block().unwrap();
        // Not through a shell: dash clears its mask at startup.
        let mut cmd = Command::new("grep");
        cmd.args(["SigBlk", "/proc/self/status"]);
        spawn_in_new_session_on_stdin_tty(&mut cmd);
        let out = cmd.output();
        blocked.thread_unblock().unwrap();
        let out = String::from_utf8_lossy(&out.unwrap().stdout).into_owned();
        assert_eq!(out.trim(), "SigBlk:\t0000000000000000");
    }

    #[test]
    fn child_runs_in_its_own_session() {
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "cut -d' ' -f6 /proc/self/stat"]);
        spawn_in_new_session_on_stdin_tty(&mut cmd);
        cmd.stdout(std::process::Stdio::piped());
        let child = cmd.spawn().unwrap();
        let pid = child.id();
        let out = child.wait_with_output().unwrap();
        // Field 6 of /proc/<pid>/stat is the session id: the shell's pid,
        // since setsid made it the session leader.
        let sid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        assert_eq!(sid, pid);
    }
}

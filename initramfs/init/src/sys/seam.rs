//! The [`Sys`] trait: every system call the boot steps make.

use std::time::Duration;

use nix::mount::MsFlags;
use nix::sys::signal::Signal;

use super::regular::Unreadable;
use super::types::{DmTarget, ReadSeek, Reaped, Reboot, SysResult};

/// The system calls the init makes. Paths are `&str`: every path the init
/// touches is ours or the kernel's, and strings keep the recorded calls
/// readable.
pub trait Sys {
    fn mount(
        &mut self,
        source: Option<&str>,
        target: &str,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> SysResult<()>;
    fn umount(&mut self, target: &str) -> SysResult<()>;
    fn mkdir(&mut self, path: &str, mode: u32) -> SysResult<()>;
    /// Sets the owner and then the mode (all 12 bits) of the folder
    /// `path`, through a descriptor opened with `O_DIRECTORY|O_NOFOLLOW`:
    /// a symbolic link or anything but a folder in its place fails with
    /// `ENOTDIR` (what Linux answers for both) and is left alone, so a
    /// link planted on `/var` cannot make PID 1 hand another file to an
    /// account.
    fn set_dir_mode_owner(&mut self, path: &str, mode: u32, uid: u32, gid: u32) -> SysResult<()>;
    /// Loads a kernel module from a file, with no parameters.
    fn finit_module(&mut self, path: &str) -> SysResult<()>;
    fn chdir(&mut self, path: &str) -> SysResult<()>;
    fn chroot(&mut self, path: &str) -> SysResult<()>;
    /// Replaces the process image. The real implementation only returns on
    /// failure; the recording one returns `Ok` so tests can look at what
    /// happened before.
    fn execv(&mut self, path: &str, argv: &[&str]) -> SysResult<()>;
    /// Like `execv`, the real implementation only returns on failure.
    fn reboot(&mut self, how: Reboot) -> SysResult<()>;
    /// `reboot(RB_ENABLE_CAD / RB_DISABLE_CAD)`.
    fn set_ctrl_alt_del(&mut self, enabled: bool) -> SysResult<()>;
    fn sleep(&mut self, duration: Duration);
    /// A monotonic clock, for timeouts.
    fn now(&mut self) -> Duration;
    /// Time since boot, including time suspended (`CLOCK_BOOTTIME`).
    fn boot_time(&mut self) -> Duration;
    /// The whole file, links followed. Regular files only, so PID 1 never
    /// blocks on one: a FIFO, socket or device node is refused with
    /// `EBADFD` (never opened blocking), a folder with `EISDIR`. No size
    /// limit: this is for the kernel's files (`/proc`, `/sys`), whose
    /// size `stat` does not give; see [`super::regular`].
    fn read_file(&mut self, path: &str) -> SysResult<Vec<u8>>;
    /// A configuration file PID 1 parses (the account files, `tmpfiles.d`):
    /// as [`Sys::read_file`], and at most [`super::regular::MAX_FILE`]
    /// bytes. The error says why, for a message naming the file.
    fn read_config(&mut self, path: &str) -> Result<Vec<u8>, Unreadable>;
    /// Entry names, sorted, without `.` and `..`.
    fn read_dir(&mut self, path: &str) -> SysResult<Vec<String>>;
    fn read_link(&mut self, path: &str) -> SysResult<String>;
    /// Creates `path` as a symbolic link to `target`.
    fn symlink(&mut self, target: &str, path: &str) -> SysResult<()>;
    /// rename(2) within one filesystem.
    fn rename(&mut self, from: &str, to: &str) -> SysResult<()>;
    /// Whether the path exists, without following a final symlink (a
    /// dangling `/sbin/init` link still "exists"; exec will explain).
    fn exists(&mut self, path: &str) -> bool;
    fn open_block(&mut self, path: &str) -> SysResult<Box<dyn ReadSeek>>;
    /// Writes text to a terminal (or `/dev/console`).
    fn write_tty(&mut self, path: &str, text: &str) -> SysResult<()>;
    /// Waits, at most `limit`, until what was written to a terminal has
    /// left it.
    fn drain_tty(&mut self, path: &str, limit: Duration) -> SysResult<()>;
    fn set_hostname(&mut self, name: &str) -> SysResult<()>;
    /// Writes `data` at byte `offset` of a block device and returns once it
    /// is on stable storage (the device's write cache flushed too), so a
    /// sequence of these calls reaches the disk in order.
    fn write_block(&mut self, path: &str, offset: u64, data: &[u8]) -> SysResult<()>;
    /// `BLKPG_RESIZE_PARTITION` on the disk `path`: partition `number` now
    /// spans `length` bytes from `start`.
    fn resize_partition(
        &mut self,
        path: &str,
        number: u32,
        start: u64,
        length: u64,
    ) -> SysResult<()>;
    /// `EXT4_IOC_RESIZE_FS` on the filesystem mounted at `mount_point`.
    fn resize_ext4(&mut self, mount_point: &str, blocks: u64) -> SysResult<()>;
    /// Fills `buf` from the kernel's random source (`getrandom(2)`, which
    /// waits until the kernel's generator is seeded).
    fn random(&mut self, buf: &mut [u8]) -> SysResult<()>;
    /// Replaces `path` with `data` atomically and durably: a temporary file
    /// beside it, fsync, rename over, fsync of the directory.
    fn write_file(&mut self, path: &str, data: &[u8], mode: u32) -> SysResult<()>;
    /// Runs a program with stdin from `/dev/null` and its output on
    /// `/dev/console`, and waits for it at most `timeout`. `Some(status)`
    /// is its exit status (128 + signal if killed); `None` means it ran out
    /// of time and was killed.
    fn run_program(
        &mut self,
        path: &str,
        args: &[&str],
        timeout: Duration,
    ) -> SysResult<Option<i32>>;
    fn kill(&mut self, pid: i32, signal: Signal) -> SysResult<()>;
    /// `waitpid(-1, WNOHANG)`, once.
    fn reap(&mut self) -> Reaped;
    fn sync(&mut self);

    // Device-mapper, one ioctl on /dev/mapper/control each (see `dm.rs`).
    // Opening the control node fails with ENOENT without dm_mod.

    /// `DM_VERSION`: the kernel's device-mapper interface version.
    fn dm_version(&mut self) -> SysResult<[u32; 3]>;
    /// `DM_DEV_CREATE`: a device with no table; its `(major, minor)`.
    fn dm_create(&mut self, name: &str, read_only: bool) -> SysResult<(u32, u32)>;
    /// `DM_TABLE_LOAD` into the device's inactive table slot.
    fn dm_load_table(&mut self, name: &str, read_only: bool, targets: &[DmTarget])
        -> SysResult<()>;
    /// `DM_DEV_SUSPEND` without `DM_SUSPEND_FLAG`: the loaded table goes live.
    fn dm_resume(&mut self, name: &str) -> SysResult<()>;
    /// `DM_DEV_REMOVE`.
    fn dm_remove(&mut self, name: &str) -> SysResult<()>;
}

//! [`LinuxSys`]: the [`Sys`] seam on the real kernel, a thin layer over
//! `nix` and `std`. Device-mapper and the raw ioctls live below it in
//! [`crate::dm`] and [`crate::ioctl`], which know nothing of the seam.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::reboot::RebootMode;
use nix::sys::signal::Signal;
use nix::sys::stat::Mode;
use nix::sys::time::TimeSpec;
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::time::ClockId;
use nix::unistd::Pid;

use super::regular::{read_regular_file, Unreadable, MAX_FILE};
use super::seam::Sys;
use super::types::{
    io_errno, DmTarget, ExitOutcome, ReadSeek, Reaped, Reboot, SysResult, DEV_CONSOLE,
};
use crate::dm::Control;

/// The real system.
#[derive(Debug, Default)]
pub struct LinuxSys;

impl LinuxSys {
    pub fn new() -> Self {
        LinuxSys
    }
}

fn cstring(s: &str) -> SysResult<CString> {
    CString::new(s).map_err(|_| Errno::EINVAL)
}

fn timespec_duration(ts: TimeSpec) -> Duration {
    let secs = u64::try_from(ts.tv_sec()).unwrap_or(0);
    let nanos = u32::try_from(ts.tv_nsec()).unwrap_or(0);
    Duration::new(secs, nanos)
}

impl Sys for LinuxSys {
    fn mount(
        &mut self,
        source: Option<&str>,
        target: &str,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> SysResult<()> {
        nix::mount::mount(source, target, fstype, flags, data)
    }

    fn umount(&mut self, target: &str) -> SysResult<()> {
        nix::mount::umount2(target, MntFlags::empty())
    }

    fn mkdir(&mut self, path: &str, mode: u32) -> SysResult<()> {
        nix::unistd::mkdir(path, Mode::from_bits_truncate(mode))
    }

    fn set_dir_mode_owner(&mut self, path: &str, mode: u32, uid: u32, gid: u32) -> SysResult<()> {
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| io_errno(&e))?;
        // Owner first: chown(2) clears the set-user/group-ID bits, so the
        // mode set after it is the one that stays.
        std::os::unix::fs::fchown(&dir, Some(uid), Some(gid)).map_err(|e| io_errno(&e))?;
        dir.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))
            .map_err(|e| io_errno(&e))
    }

    fn finit_module(&mut self, path: &str) -> SysResult<()> {
        let file = File::open(path).map_err(|e| io_errno(&e))?;
        nix::kmod::finit_module(&file, c"", nix::kmod::ModuleInitFlags::empty())
    }

    fn chdir(&mut self, path: &str) -> SysResult<()> {
        nix::unistd::chdir(path)
    }

    fn chroot(&mut self, path: &str) -> SysResult<()> {
        nix::unistd::chroot(path)
    }

    fn execv(&mut self, path: &str, argv: &[&str]) -> SysResult<()> {
        let path = cstring(path)?;
        let argv = argv
            .iter()
            .map(|a| cstring(a))
            .collect::<SysResult<Vec<_>>>()?;
        match nix::unistd::execv(&path, &argv) {
            Err(errno) => Err(errno),
            Ok(never) => match never {},
        }
    }

    fn reboot(&mut self, how: Reboot) -> SysResult<()> {
        let mode = match how {
            Reboot::Restart => RebootMode::RB_AUTOBOOT,
            Reboot::PowerOff => RebootMode::RB_POWER_OFF,
        };
        match nix::sys::reboot::reboot(mode) {
            Err(errno) => Err(errno),
            Ok(never) => match never {},
        }
    }

    fn set_ctrl_alt_del(&mut self, enabled: bool) -> SysResult<()> {
        nix::sys::reboot::set_cad_enabled(enabled)
    }

    fn sleep(&mut self, duration: Duration) {
        std::thread::sleep(duration);
    }

    fn now(&mut self) -> Duration {
        nix::time::clock_gettime(ClockId::CLOCK_MONOTONIC)
            .map(timespec_duration)
            .unwrap_or_default()
    }

    fn boot_time(&mut self) -> Duration {
        nix::time::clock_gettime(ClockId::CLOCK_BOOTTIME)
            .map(timespec_duration)
            .unwrap_or_default()
    }

    fn read_file(&mut self, path: &str) -> SysResult<Vec<u8>> {
        read_regular_file(Path::new(path), None).map_err(Unreadable::errno)
    }

    fn read_config(&mut self, path: &str) -> Result<Vec<u8>, Unreadable> {
        read_regular_file(Path::new(path), Some(MAX_FILE))
    }

    fn read_dir(&mut self, path: &str) -> SysResult<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path).map_err(|e| io_errno(&e))? {
            let entry = entry.map_err(|e| io_errno(&e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn read_link(&mut self, path: &str) -> SysResult<String> {
        std::fs::read_link(path)
            .map(|p| p.to_string_lossy().into_owned())
            .map_err(|e| io_errno(&e))
    }

    fn exists(&mut self, path: &str) -> bool {
        std::fs::symlink_metadata(path).is_ok()
    }

    fn symlink(&mut self, target: &str, path: &str) -> SysResult<()> {
        std::os::unix::fs::symlink(target, path).map_err(|e| io_errno(&e))
    }

    fn rename(&mut self, from: &str, to: &str) -> SysResult<()> {
        std::fs::rename(from, to).map_err(|e| io_errno(&e))
    }

    fn open_block(&mut self, path: &str) -> SysResult<Box<dyn ReadSeek>> {
        let file = File::open(path).map_err(|e| io_errno(&e))?;
        Ok(Box::new(file))
    }

    fn write_tty(&mut self, path: &str, text: &str) -> SysResult<()> {
        // O_NOCTTY: PID 1 must not acquire a controlling terminal by
        // writing a message (a hangup on it would then signal init).
        // O_NONBLOCK: a serial line stuck by flow control must not hang PID 1;
        // losing a message is better.
        let mut tty = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| io_errno(&e))?;
        tty.write_all(text.as_bytes()).map_err(|e| io_errno(&e))
    }

    fn drain_tty(&mut self, path: &str, limit: Duration) -> SysResult<()> {
        // Not tcdrain(3): it has no timeout, and a serial line held by flow
        // control would hang PID 1 on its way to power off.
        let tty = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| io_errno(&e))?;
        let deadline = self.now().saturating_add(limit);
        while crate::ioctl::terminal_output_pending(&tty)? > 0 {
            if self.now() >= deadline {
                return Err(Errno::ETIMEDOUT);
            }
            self.sleep(Duration::from_millis(5));
        }
        // The queue is empty once the last bytes are in the UART's FIFO (16
        // bytes: under 2 ms at 115200 baud, 17 ms at 9600).
        self.sleep(Duration::from_millis(20));
        Ok(())
    }

    fn set_hostname(&mut self, name: &str) -> SysResult<()> {
        nix::unistd::sethostname(name)
    }

    fn write_block(&mut self, path: &str, offset: u64, data: &[u8]) -> SysResult<()> {
        let device = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| io_errno(&e))?;
        device
            .write_all_at(data, offset)
            .map_err(|e| io_errno(&e))?;
        // On a block device fdatasync also sends the disk a cache flush.
        device.sync_data().map_err(|e| io_errno(&e))
    }

    fn resize_partition(
        &mut self,
        path: &str,
        number: u32,
        start: u64,
        length: u64,
    ) -> SysResult<()> {
        let disk = File::open(path).map_err(|e| io_errno(&e))?;
        crate::ioctl::resize_partition(&disk, number, start, length)
    }

    fn resize_ext4(&mut self, mount_point: &str, blocks: u64) -> SysResult<()> {
        let dir = File::open(mount_point).map_err(|e| io_errno(&e))?;
        crate::ioctl::resize_ext4(&dir, blocks)
    }

    fn random(&mut self, buf: &mut [u8]) -> SysResult<()> {
        crate::ioctl::fill_random(buf)
    }

    fn write_file(&mut self, path: &str, data: &[u8], mode: u32) -> SysResult<()> {
        use slipway_boot_contract::atomic::{write_atomic_mode, Durability};
        write_atomic_mode(std::path::Path::new(path), data, mode, Durability::Durable)
            .map_err(|e| io_errno(&e))
    }

    fn run_program(
        &mut self,
        path: &str,
        args: &[&str],
        timeout: Duration,
    ) -> SysResult<Option<i32>> {
        let console = || {
            OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
                .open(DEV_CONSOLE)
        };
        let (out, err) = (
            console().map_err(|e| io_errno(&e))?,
            console().map_err(|e| io_errno(&e))?,
        );
        // Its own process group: on time-out everything it started is
        // stopped with it.
        let mut child = std::process::Command::new(path)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| io_errno(&e))?;
        let deadline = self.now().saturating_add(timeout);
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    let code = status
                        .code()
                        .or_else(|| status.signal().map(|s| 128 + s))
                        .unwrap_or(1);
                    return Ok(Some(code));
                }
                Ok(None) if self.now() >= deadline => {
                    if let Ok(pid) = i32::try_from(child.id()) {
                        let _ = nix::sys::signal::killpg(Pid::from_raw(pid), Signal::SIGKILL);
                    }
                    let _ = child.wait();
                    return Ok(None);
                }
                Ok(None) => self.sleep(Duration::from_millis(50)),
                Err(e) => return Err(io_errno(&e)),
            }
        }
    }

    fn kill(&mut self, pid: i32, signal: Signal) -> SysResult<()> {
        nix::sys::signal::kill(Pid::from_raw(pid), signal)
    }

    fn reap(&mut self) -> Reaped {
        loop {
            return match nix::sys::wait::waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => Reaped::NoneReady,
                Ok(WaitStatus::Exited(pid, 0)) => Reaped::Child(pid.as_raw(), ExitOutcome::Success),
                Ok(WaitStatus::Exited(pid, code)) => {
                    Reaped::Child(pid.as_raw(), ExitOutcome::ExitCode(code))
                }
                Ok(WaitStatus::Signaled(pid, signal, _)) => {
                    Reaped::Child(pid.as_raw(), ExitOutcome::Signal(signal as i32))
                }
                // Stopped or continued: not an exit (we do not ask for
                // those with WUNTRACED/WCONTINUED, so this is defensive).
                Ok(_) => Reaped::NoneReady,
                Err(Errno::EINTR) => continue,
                // ECHILD, or anything unexpected: looping on it would spin.
                Err(_) => Reaped::NoChildren,
            };
        }
    }

    fn sync(&mut self) {
        nix::unistd::sync();
    }

    // The control node is opened per call: stage 1 makes four or five of
    // them once per boot, and no fd stays open into stage 2.

    fn dm_version(&mut self) -> SysResult<[u32; 3]> {
        Control::open()?.version()
    }

    fn dm_create(&mut self, name: &str, read_only: bool) -> SysResult<(u32, u32)> {
        Control::open()?.create(name, read_only)
    }

    fn dm_load_table(
        &mut self,
        name: &str,
        read_only: bool,
        targets: &[DmTarget],
    ) -> SysResult<()> {
        Control::open()?.load_table(name, read_only, targets)
    }

    fn dm_resume(&mut self, name: &str) -> SysResult<()> {
        Control::open()?.resume(name)
    }

    fn dm_remove(&mut self, name: &str) -> SysResult<()> {
        Control::open()?.remove(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_sys_reads_files_and_dirs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b"), "2").unwrap();
        std::fs::write(dir.path().join("a"), "1").unwrap();
        let root = dir.path().to_str().unwrap();
        let mut sys = LinuxSys::new();
        assert_eq!(sys.read_dir(root).unwrap(), vec!["a", "b"]);
        assert_eq!(sys.read_file(&format!("{root}/a")).unwrap(), b"1");
        assert_eq!(
            sys.read_file(&format!("{root}/missing")),
            Err(Errno::ENOENT)
        );
        assert!(sys.exists(&format!("{root}/b")));
        assert!(!sys.exists(&format!("{root}/c")));
        let earlier = sys.now();
        assert!(sys.now() >= earlier);
        assert!(sys.boot_time() > Duration::ZERO);
    }

    #[test]
    fn linux_sys_reads_regular_files_only_and_config_files_up_to_the_limit() {
        use crate::sys::regular::test_support::{fifo, quickly};
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap().to_string();
        fifo(&dir.path().join("pipe"));
        let at = usize::try_from(MAX_FILE).unwrap();
        std::fs::write(dir.path().join("big"), vec![b'a'; at + 1]).unwrap();
        std::fs::write(dir.path().join("edge"), vec![b'a'; at]).unwrap();
        let (file, config) = quickly(move || {
            let mut sys = LinuxSys::new();
            let pipe = format!("{root}/pipe");
            (sys.read_file(&pipe), sys.read_config(&pipe))
        });
        assert_eq!(file, Err(Errno::EBADFD));
        assert_eq!(config, Err(Unreadable::NotRegular("a FIFO")));
        let mut sys = LinuxSys::new();
        let root = dir.path().to_str().unwrap();
        assert_eq!(
            sys.read_config(&format!("{root}/big")),
            Err(Unreadable::TooLarge)
        );
        assert_eq!(sys.read_config(&format!("{root}/edge")).unwrap().len(), at);
        // read_file has no limit: the kernel's files are read whole.
        assert_eq!(sys.read_file(&format!("{root}/big")).unwrap().len(), at + 1);
        assert_eq!(sys.read_file(root), Err(Errno::EISDIR));
    }

    #[test]
    fn linux_sys_sets_a_folders_mode_and_owner_but_not_through_a_link() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap();
        let folder = format!("{root}/data");
        std::fs::create_dir(&folder).unwrap();
        // Our own IDs: allowed without root, and still a real chown.
        let (uid, gid) = (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        );
        let mut sys = LinuxSys::new();
        sys.set_dir_mode_owner(&folder, 0o1750, uid, gid).unwrap();
        let md = std::fs::metadata(&folder).unwrap();
        assert_eq!(md.permissions().mode() & 0o7777, 0o1750);
        assert_eq!((md.uid(), md.gid()), (uid, gid));

        std::os::unix::fs::symlink(&folder, format!("{root}/link")).unwrap();
        assert_eq!(
            sys.set_dir_mode_owner(&format!("{root}/link"), 0o777, uid, gid),
            Err(Errno::ENOTDIR)
        );
        std::fs::write(format!("{root}/file"), "x").unwrap();
        assert_eq!(
            sys.set_dir_mode_owner(&format!("{root}/file"), 0o777, uid, gid),
            Err(Errno::ENOTDIR)
        );
        // Neither changed the folder the link points at.
        let md = std::fs::metadata(&folder).unwrap();
        assert_eq!(md.permissions().mode() & 0o7777, 0o1750);
    }
}

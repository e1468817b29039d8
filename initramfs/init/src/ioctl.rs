//! The only `unsafe` in the init: the terminal, input, device-mapper,
//! partition-table and ext4 ioctls, `getrandom(2)` and a pre-exec hook,
//! each wrapped in a safe function.
#![allow(unsafe_code)]

use std::os::fd::{AsFd, AsRawFd, RawFd};
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

/// `sizeof(struct dm_ioctl)`. Defined here, below [`crate::dm`] which
/// builds the buffers, because the safety of [`dm_ioctl`] rests on it.
pub const DM_HEADER_SIZE: usize = 312;
/// Byte offset of `data_size` in `struct dm_ioctl`.
pub const DM_DATA_SIZE_OFFSET: usize = 12;

/// `struct dm_ioctl` as the device-mapper ioctl numbers see it: they encode
/// its size, 312 (`_IOWR(0xfd, nr, struct dm_ioctl)`). The buffers
/// themselves are built by [`crate::dm::request`] and may be longer: the
/// kernel reads and writes `data_size` bytes.
#[repr(C)]
pub struct DmIoctl([u8; DM_HEADER_SIZE]);

/// `data_size` of a device-mapper buffer: how many bytes the kernel will
/// read and write.
pub fn dm_data_size(buf: &[u8]) -> Option<usize> {
    let bytes = buf.get(DM_DATA_SIZE_OFFSET..DM_DATA_SIZE_OFFSET + 4)?;
    let size = u32::from_ne_bytes(bytes.try_into().ok()?);
    usize::try_from(size).ok()
}

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
    if buffer.len() < DM_HEADER_SIZE || dm_data_size(buffer) != Some(buffer.len()) {
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

/// What a service's process sets up between fork and exec, beyond what
/// `std::process::Command` does itself.
#[derive(Debug, Default)]
pub struct ServiceSetup {
    /// The unit's `cgroup.procs`, opened by the parent.
    pub cgroup_procs: Option<RawFd>,
    /// `OOMScoreAdjust=`, as the text written to `/proc/self/oom_score_adj`.
    pub oom_score_adj: Option<Vec<u8>>,
    /// `(resource, soft, hard)`; `RLIM_INFINITY` for no limit.
    pub rlimits: Vec<(crate::units::Resource, u64, u64)>,
    /// `(uid, gid)` to switch to, after the limits and the OOM score are
    /// set (a user could not raise them itself).
    pub ids: Option<(u32, u32)>,
}

/// Prepares a service's process: unblocks every signal, makes it the
/// leader of a new session (so its process group can be signalled as one
/// where there are no cgroups), moves it into its cgroup by writing `0`
/// (itself) to the group's `cgroup.procs` before it can fork, sets its
/// OOM score and resource limits, then its user and group.
pub fn spawn_as_service(command: &mut Command, setup: ServiceSetup) {
    let ServiceSetup {
        cgroup_procs,
        oom_score_adj,
        rlimits,
        ids,
    } = setup;
    // SAFETY: the closure runs in the child between fork and exec, where
    // only async-signal-safe calls are allowed: sigprocmask, setsid,
    // open/write/close, setrlimit, setgroups/setgid/setuid, on data
    // prepared by the parent; nothing allocates.
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
            if let Some(text) = &oom_score_adj {
                let fd = libc::open(
                    c"/proc/self/oom_score_adj".as_ptr(),
                    libc::O_WRONLY | libc::O_CLOEXEC,
                );
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let n = libc::write(fd, text.as_ptr().cast(), text.len());
                libc::close(fd);
                if usize::try_from(n).ok() != Some(text.len()) {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (resource, soft, hard) in &rlimits {
                let limit = libc::rlimit {
                    rlim_cur: *soft as libc::rlim_t,
                    rlim_max: *hard as libc::rlim_t,
                };
                // The constants' type differs between glibc and musl.
                let resource = match resource {
                    crate::units::Resource::Nofile => libc::RLIMIT_NOFILE,
                    crate::units::Resource::Nproc => libc::RLIMIT_NPROC,
                    crate::units::Resource::Core => libc::RLIMIT_CORE,
                };
                if libc::setrlimit(resource, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if let Some((uid, gid)) = ids {
                // As std does for `Command::uid` as root: no supplementary
                // groups.
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// A program run with listening sockets as fds 3, 4, … (socket
/// activation, `sd_listen_fds(3)`).
///
/// `LISTEN_PID` must be the service's own pid, which only exists after
/// `fork`, and go-systemd's activation (dockerd's `-H fd://`) ignores the
/// fds unless `LISTEN_PID == getpid()`. Setting an environment variable
/// in the child would allocate (not allowed between fork and exec of a
/// multi-threaded-capable process), so the parent prepares the complete
/// `argv` and `envp` arrays with room for the digits in a
/// `LISTEN_PID=` entry; the child writes its pid there and calls
/// `execve(2)` itself. Moving the fds to 3… with `dup2` may replace the
/// pipe std uses to report exec errors, so from then on an error goes to
/// a pipe of our own ([`ListenExec::wait_exec`]) and the child exits.
#[derive(Debug)]
pub struct ListenExec {
    image: ExecImage,
    /// Read end of the error pipe (the parent's).
    err_read: std::os::fd::OwnedFd,
    /// Write end, closed in the parent once the child is forked.
    err_write: Option<std::os::fd::OwnedFd>,
}

/// The prepared `execve` arguments; see [`ListenExec`].
#[derive(Debug)]
struct ExecImage {
    path: std::ffi::CString,
    /// Owners of the strings the pointer arrays point into.
    _strings: Vec<std::ffi::CString>,
    _listen_pid: Vec<u8>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    /// Where the pid's digits go: just after `LISTEN_PID=`.
    pid_digits: *mut u8,
    fds: Vec<RawFd>,
    /// Scratch space for the fds' temporary copies.
    moved: Vec<RawFd>,
    err_write: RawFd,
}

// SAFETY: the raw pointers point into heap buffers the image owns
// (`_strings`, `_listen_pid`), which are never touched otherwise; the
// image is only used by the one child process after fork (`pre_exec`
// requires Send + Sync of what the closure captures).
unsafe impl Send for ExecImage {}
// SAFETY: as above; nothing is shared with another thread.
unsafe impl Sync for ExecImage {}

/// Room for the digits of any pid (at most 2^22 on Linux; 20 for u64).
const PID_DIGITS: usize = 20;

impl ListenExec {
    /// Prepares the exec of `path` with `argv` and `env` (which should
    /// hold `LISTEN_FDS` and `LISTEN_FDNAMES`; `LISTEN_PID` is added), the
    /// `fds` becoming 3, 4, …
    pub fn new(
        path: &str,
        argv: &[String],
        env: &[(String, String)],
        fds: Vec<RawFd>,
    ) -> Result<ListenExec, String> {
        use std::ffi::CString;
        let cstring = |s: String| {
            CString::new(s).map_err(|_| format!("{path}: a NUL byte in an argument or variable"))
        };
        let mut strings = Vec::new();
        for a in argv {
            strings.push(cstring(a.clone())?);
        }
        let argc = strings.len();
        for (k, v) in env.iter().filter(|(k, _)| k != "LISTEN_PID") {
            strings.push(cstring(format!("{k}={v}"))?);
        }
        let mut listen_pid = b"LISTEN_PID=".to_vec();
        listen_pid.resize(listen_pid.len() + PID_DIGITS + 1, 0);
        let pid_digits = listen_pid.as_mut_ptr().wrapping_add(b"LISTEN_PID=".len());
        let ptrs = |s: &[CString]| -> Vec<*const libc::c_char> {
            s.iter()
                .map(|c| c.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect()
        };
        let argv_ptrs = ptrs(strings.get(..argc).unwrap_or_default());
        let mut envp = ptrs(strings.get(argc..).unwrap_or_default());
        envp.insert(0, listen_pid.as_ptr().cast());
        let (err_read, err_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| format!("creating a pipe: {e}"))?;
        let moved = vec![-1; fds.len()];
        Ok(ListenExec {
            image: ExecImage {
                path: cstring(path.to_string())?,
                _strings: strings,
                _listen_pid: listen_pid,
                argv: argv_ptrs,
                envp,
                pid_digits,
                fds,
                moved,
                err_write: err_write.as_raw_fd(),
            },
            err_read,
            err_write: Some(err_write),
        })
    }

    /// Adds the exec to `command` (after [`spawn_as_service`]'s hook).
    /// The image moves into the hook; `self` keeps the error pipe.
    pub fn install(&mut self, command: &mut Command) {
        let mut image = std::mem::replace(
            &mut self.image,
            ExecImage {
                path: std::ffi::CString::default(),
                _strings: Vec::new(),
                _listen_pid: Vec::new(),
                argv: Vec::new(),
                envp: Vec::new(),
                pid_digits: std::ptr::null_mut(),
                fds: Vec::new(),
                moved: Vec::new(),
                err_write: -1,
            },
        );
        // SAFETY: runs in the child between fork and exec: fcntl, dup2,
        // getpid, write, execve and _exit are async-signal-safe, and the
        // closure only writes into memory the image owns (its copy in
        // the child), through pointers made by the parent.
        unsafe {
            command.pre_exec(move || image.exec());
        }
    }

    /// In the parent, after `Command::spawn` returned: `Err` with the
    /// child's errno if its `execve` (or fd setup) failed.
    pub fn wait_exec(&mut self) -> Result<(), Errno> {
        self.err_write = None;
        let mut buf = [0u8; 4];
        loop {
            match nix::unistd::read(&self.err_read, &mut buf) {
                Ok(4) => return Err(Errno::from_raw(i32::from_ne_bytes(buf))),
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl ExecImage {
    /// The child's side of [`ListenExec`]; returns only on an error that
    /// std can still report (nothing replaced yet).
    ///
    /// # Safety
    /// Only in a forked child, before exec.
    unsafe fn exec(&mut self) -> std::io::Result<()> {
        let n = self.fds.len();
        let first_free = libc::c_int::try_from(3 + n).unwrap_or(libc::c_int::MAX);
        // Copies above 2 + n first, so no target replaces a source.
        for (fd, slot) in self.fds.iter().zip(self.moved.iter_mut()) {
            let copy = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, first_free);
            if copy < 0 {
                return Err(std::io::Error::last_os_error());
            }
            *slot = copy;
        }
        let err = libc::fcntl(self.err_write, libc::F_DUPFD_CLOEXEC, first_free);
        if err < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fail = |err: libc::c_int| -> ! {
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            let bytes = errno.to_ne_bytes();
            libc::write(err, bytes.as_ptr().cast(), bytes.len());
            libc::_exit(127)
        };
        for (target, copy) in (3..).zip(&self.moved) {
            if libc::dup2(*copy, target) < 0 {
                fail(err);
            }
        }
        // The pid's digits, without allocating.
        let mut digits = [0u8; PID_DIGITS];
        let mut pid = u64::try_from(libc::getpid()).unwrap_or(0);
        let mut len = 0;
        loop {
            if let Some(d) = digits.get_mut(len) {
                *d = b'0' + (pid % 10) as u8;
            }
            len += 1;
            pid /= 10;
            if pid == 0 || len == PID_DIGITS {
                break;
            }
        }
        for i in 0..len {
            let d = digits.get(len - 1 - i).copied().unwrap_or(b'0');
            *self.pid_digits.add(i) = d;
        }
        *self.pid_digits.add(len) = 0;
        libc::execve(self.path.as_ptr(), self.argv.as_ptr(), self.envp.as_ptr());
        fail(err)
    }
}

/// Turns on `SO_PASSCRED`: each datagram then carries the sender's
/// credentials, which name the unit a notification is from.
pub fn pass_credentials(socket: &impl AsFd) -> Result<(), Errno> {
    let one: libc::c_int = 1;
    // SAFETY: the fd is open for the duration of the call; the kernel
    // reads one int through the pointer, whose size is passed.
    let r = unsafe {
        libc::setsockopt(
            socket.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PASSCRED,
            std::ptr::addr_of!(one).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    Errno::result(r).map(drop)
}

/// Receives one datagram without blocking: its length (bytes beyond
/// `buf` are dropped) and the sender's pid from `SCM_CREDENTIALS`. File
/// descriptors sent along (`FDSTORE=1`) are closed: there is no fd store.
pub fn recv_with_pid(socket: &impl AsFd, buf: &mut [u8]) -> Result<(usize, Option<i32>), Errno> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // u64s for the alignment of `cmsghdr`; room for the credentials and
    // a few fds.
    let mut control = [0u64; 32];
    // SAFETY: an all-zero msghdr is valid (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` points to `iov` (which points to `buf`) and to
    // `control`, all alive for the call, with their true lengths.
    let n = unsafe {
        libc::recvmsg(
            socket.as_fd().as_raw_fd(),
            &mut msg,
            libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
        )
    };
    let n = usize::try_from(n).map_err(|_| Errno::last())?;
    let mut pid = None;
    // SAFETY: the CMSG_* macros walk the control buffer the kernel just
    // filled, within `msg_controllen`; data is read unaligned.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let data = libc::CMSG_DATA(cmsg);
            let len = ((*cmsg).cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize);
            match ((*cmsg).cmsg_level, (*cmsg).cmsg_type) {
                (libc::SOL_SOCKET, libc::SCM_CREDENTIALS)
                    if len >= std::mem::size_of::<libc::ucred>() =>
                {
                    let cred = std::ptr::read_unaligned(data.cast::<libc::ucred>());
                    pid = Some(cred.pid);
                }
                (libc::SOL_SOCKET, libc::SCM_RIGHTS) => {
                    for i in 0..len / std::mem::size_of::<libc::c_int>() {
                        let fd = std::ptr::read_unaligned(data.cast::<libc::c_int>().add(i));
                        libc::close(fd);
                    }
                }
                _ => {}
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n.min(buf.len()), pid))
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

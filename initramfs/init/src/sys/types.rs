//! The plain types the [`super::Sys`] seam speaks in, and the errno
//! helpers every layer uses.
//!
//! A leaf: it imports nothing from the crate, so the device-mapper and
//! ioctl code below the Linux implementation, the unit parser and the error
//! type can all use these without an import circle through the seam.

use std::fmt;
use std::io::{Read, Seek};

use nix::errno::Errno;
use nix::mount::MsFlags;

pub type SysResult<T> = Result<T, Errno>;

/// The console device every stage falls back to.
pub const DEV_CONSOLE: &str = "/dev/console";

/// A block device (or, in tests, an in-memory disk image).
pub trait ReadSeek: Read + Seek {}
impl<T: Read + Seek> ReadSeek for T {}

/// What `reboot(2)` should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reboot {
    Restart,
    PowerOff,
}

/// How a process ended: what reaping reports and what `Restart=` is
/// judged on ([`crate::units::Restart::restarts_after`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitOutcome {
    /// Exit status 0.
    Success,
    /// A non-zero exit status.
    ExitCode(i32),
    /// Killed by a signal (the number).
    Signal(i32),
    /// A start or stop timeout.
    Timeout,
    Watchdog,
}

/// One step of reaping children.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaped {
    /// A child (or an adopted orphan) exited, and how.
    Child(i32, ExitOutcome),
    /// Children remain, none has exited.
    NoneReady,
    /// No children at all.
    NoChildren,
}

/// One line of a device-mapper table, in 512-byte sectors:
/// `0 16384 verity 1 254:2 254:4 …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmTarget {
    pub start: u64,
    pub length: u64,
    pub target_type: String,
    pub params: String,
}

impl fmt::Display for DmTarget {
    /// The `dmsetup table` form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            self.start, self.length, self.target_type, self.params
        )
    }
}

/// The C library's text for an errno ("No such device"), without nix's
/// `ENODEV: ` prefix or std's `(os error 19)` suffix.
pub fn errno_text(errno: Errno) -> &'static str {
    errno.desc()
}

/// Converts an I/O error into the errno the kernel returned, so that every
/// failure is reported the same way whatever API produced it.
pub fn io_errno(e: &std::io::Error) -> Errno {
    match e.raw_os_error() {
        Some(code) => Errno::from_raw(code),
        None => match e.kind() {
            std::io::ErrorKind::NotFound => Errno::ENOENT,
            std::io::ErrorKind::PermissionDenied => Errno::EACCES,
            std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => Errno::EINVAL,
            std::io::ErrorKind::UnexpectedEof => Errno::EIO,
            _ => Errno::EIO,
        },
    }
}

/// Renders a mount call the way the recording test double logs it and the
/// way a person reads it: `mount tmpfs /run tmpfs nosuid,nodev,mode=0755`,
/// `mount --move /dev /sysroot/dev`, `mount --remount / ro`.
pub fn describe_mount(
    source: Option<&str>,
    target: &str,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> String {
    let mut opts: Vec<&str> = Vec::new();
    for (flag, name) in [
        (MsFlags::MS_RDONLY, "ro"),
        (MsFlags::MS_NOSUID, "nosuid"),
        (MsFlags::MS_NODEV, "nodev"),
        (MsFlags::MS_NOEXEC, "noexec"),
        (MsFlags::MS_BIND, "bind"),
        (MsFlags::MS_REC, "rec"),
    ] {
        if flags.contains(flag) {
            opts.push(name);
        }
    }
    if let Some(data) = data {
        opts.push(data);
    }
    let opts = opts.join(",");
    let source = source.unwrap_or("none");
    if flags.contains(MsFlags::MS_MOVE) {
        return format!("mount --move {source} {target}");
    }
    let mut line = if flags.contains(MsFlags::MS_REMOUNT) {
        format!("mount --remount {target}")
    } else {
        format!("mount {source} {target} {}", fstype.unwrap_or("none"))
    };
    if !opts.is_empty() {
        line.push(' ');
        line.push_str(&opts);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_are_described_readably() {
        assert_eq!(
            describe_mount(
                Some("devtmpfs"),
                "/dev",
                Some("devtmpfs"),
                MsFlags::empty(),
                None
            ),
            "mount devtmpfs /dev devtmpfs"
        );
        assert_eq!(
            describe_mount(
                Some("tmpfs"),
                "/run",
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some("mode=0755")
            ),
            "mount tmpfs /run tmpfs nosuid,nodev,mode=0755"
        );
        assert_eq!(
            describe_mount(Some("/dev"), "/sysroot/dev", None, MsFlags::MS_MOVE, None),
            "mount --move /dev /sysroot/dev"
        );
        assert_eq!(
            describe_mount(
                None,
                "/",
                None,
                MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                None
            ),
            "mount --remount / ro"
        );
    }
}

//! The init's error type.
//!
//! Every message names the path or device it is about, because on a failed
//! boot the console line is all the operator gets.

use std::time::Duration;

use nix::errno::Errno;

use crate::cmdline::CmdlineError;
pub use crate::sys::types::{errno_text, io_errno};
use crate::verity_error::VerityError;

/// Why a boot step failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call failed; `action` says what we were doing, e.g.
    /// `mounting /dev/vda2 on /sysroot (squashfs, read-only)`.
    #[error("{action}: {}", errno_text(*.errno))]
    Sys { action: String, errno: Errno },

    #[error(transparent)]
    Cmdline(#[from] CmdlineError),

    /// `missing` names each partition with its role: `root partition
    /// PARTUUID=…`; `why` is empty or `; ` and a likely cause.
    #[error("{missing} did not appear within {} s{why}", .waited.as_secs())]
    PartitionTimeout {
        missing: String,
        waited: Duration,
        why: String,
    },

    #[error(transparent)]
    Verity(#[from] VerityError),

    #[error("{path} not found on the root partition {device}")]
    InitMissing { path: String, device: String },
}

impl Error {
    pub fn sys(action: impl Into<String>, errno: Errno) -> Self {
        Error::Sys {
            action: action.into(),
            errno,
        }
    }
}

/// Attaches "what we were doing" to a failed system call.
pub trait Context<T> {
    fn context<F: FnOnce() -> String>(self, action: F) -> Result<T, Error>;
}

impl<T> Context<T> for Result<T, Errno> {
    fn context<F: FnOnce() -> String>(self, action: F) -> Result<T, Error> {
        self.map_err(|errno| Error::sys(action(), errno))
    }
}

/// The error and all its causes, joined with `: `.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        // `#[error(transparent)]` and similar wrappers repeat their cause.
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sys_error_names_the_action_and_the_errno_text() {
        let e = Error::sys(
            "mounting /dev/vda2 on /sysroot (squashfs, read-only)",
            Errno::ENODEV,
        );
        assert_eq!(
            chain(&e),
            "mounting /dev/vda2 on /sysroot (squashfs, read-only): No such device"
        );
    }

    #[test]
    fn timeout_message_is_in_seconds() {
        let e = Error::PartitionTimeout {
            missing: "root partition PARTUUID=0fc63daf-8483-4772-8e79-3d69d8477de4".into(),
            waited: Duration::from_secs(60),
            why: String::new(),
        };
        assert_eq!(
            e.to_string(),
            "root partition PARTUUID=0fc63daf-8483-4772-8e79-3d69d8477de4 did not appear within 60 s"
        );
    }

    #[test]
    fn io_errors_map_to_their_errno() {
        let e = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(io_errno(&e), Errno::ENOENT);
        let e = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "short");
        assert_eq!(io_errno(&e), Errno::EIO);
    }
}

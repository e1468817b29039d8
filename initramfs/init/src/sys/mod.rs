//! The seam between the boot logic and the kernel.
//!
//! Stage 1, stage 2 and shutdown are written against [`Sys`], so their exact
//! sequence of mounts, module loads and reboots is asserted by unit tests with
//! the recording double (`recording::RecordingSys`, built for tests only),
//! without root and without a VM. [`LinuxSys`] is the real thing.
//!
//! The folder is layered so that nothing imports in a circle: [`types`] is
//! a leaf (plain types and errno helpers), [`regular`] the reader of
//! regular files over it, [`seam`] the trait over both, [`linux`] and
//! `recording` its two implementations. This file only re-exports; code
//! inside the crate that sits below the seam (`dm`, `ioctl`, `error`,
//! `units`) imports `sys::types` and `sys::regular` directly.

pub mod linux;
#[cfg(test)]
pub mod recording;
pub mod regular;
pub mod seam;
pub mod types;

pub use linux::LinuxSys;
pub use regular::{Unreadable, MAX_FILE};
pub use seam::Sys;
pub use types::{
    describe_mount, DmTarget, ExitOutcome, ReadSeek, Reaped, Reboot, SysResult, DEV_CONSOLE,
};

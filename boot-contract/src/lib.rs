//! The contract between Slipway's parts: what the image builder, the init,
//! the cloud-config validator and the update engine must read and write
//! alike. One definition each, so a value one part accepts is never one
//! another refuses (issue 12: the maintenance window's grammar had drifted
//! between the validator and the engine, and a window the validator passed
//! stopped the engine's update checks).
//!
//! Small on purpose: std, plus `uuid`, `thiserror` and `libc`, which every
//! part links already. PID 1 links it, hence the lints below (a PID 1 panic is a
//! kernel panic).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod atomic;
pub mod cmdline;
pub mod duration;
pub mod os_release;
pub mod slot;
pub mod window;

pub use slot::Slot;

//! Slipway's update engine: the payload and release-feed formats, their
//! signatures, and on the machine the passive slot, the boot entries on the
//! ESP, the cgroup the writer runs in, and the daemon. See README.md for the
//! formats and the crash-safe order; ARCHITECTURE.md (workspace root) for
//! where this sits.

pub mod config;
pub mod fetch;
pub mod version;
pub mod window;

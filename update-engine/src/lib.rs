//! Slipway's update engine: the payload and release-feed formats, their
//! signatures, and on the machine the passive slot, the boot entries on the
//! ESP, the cgroup the writer runs in, and the daemon. See README.md for the
//! formats and the crash-safe order; ARCHITECTURE.md (workspace root) for
//! where this sits.

pub mod apply;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod delta;
pub mod esp;
pub mod feed;
pub mod fetch;
pub mod hashing;
pub mod keys;
pub mod limits;
pub mod lock;
pub mod machine;
pub mod manifest;
pub mod payload;
pub mod progress;
pub mod state;
pub mod swarm_hook;
pub mod system;
pub mod version;
pub mod waves;
/// The maintenance window, one definition with cloud-config's validator.
pub use slipway_boot_contract::window;

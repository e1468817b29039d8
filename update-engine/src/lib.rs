//! Slipway's update engine: the payload and release-feed formats, their
//! signatures, and on the machine the passive slot, the boot entries on the
//! ESP, the cgroup the writer runs in, and the daemon. See README.md for the
//! formats and the crash-safe order; ARCHITECTURE.md (workspace root) for
//! where this sits.
//!
//! The formats build without the `machine` feature (the builder's view); the
//! rest is the machine's. Layers, each using only those below it:
//! formats (`keys`, `manifest`, `payload`, `feed`, `waves`, `version`,
//! `delta::index`) → the apply and the machine (`apply`, `delta`, `esp`,
//! `machine`, `system`, `lock`, `state`) → the use-cases (`engine`) → the
//! command line (`cli`) and the daemon (`daemon`).

pub mod delta;
pub mod feed;
pub mod files;
pub mod hashing;
pub mod human;
pub mod keys;
pub mod manifest;
pub mod payload;
pub mod version;
pub mod waves;

/// Declares the modules of the `machine` feature.
macro_rules! machine_modules {
    ($($m:ident),* $(,)?) => {
        $(
            #[cfg(feature = "machine")]
            pub mod $m;
        )*
    };
}

machine_modules!(
    apply, cli, config, daemon, engine, esp, fetch, limits, lock, machine, progress, state,
    swarm_hook, system, trust,
);

/// The maintenance window, one definition with cloud-config's validator.
pub use slipway_boot_contract::window;

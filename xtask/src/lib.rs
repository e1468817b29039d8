//! The Slipway builder behind `cargo xtask`: fetches inputs, builds the
//! guest init, wires the format writers of `slipway-image` and
//! `slipway-initramfs` into a disk, runs QEMU, and drives the tests and
//! benchmarks. Image-format logic lives in the library crates, not here.

pub mod bench;
pub mod bench_cluster;
pub mod bench_containers;
pub mod bench_delta;
pub mod bench_swarm;
pub mod bench_update;
pub mod board;
pub mod build;
pub mod elf_closure;
pub mod fleet;
pub mod fuzz;
pub mod guest;
pub mod host_setup;
pub mod imds;
pub mod inputs;
pub mod oci;
pub mod package_setup;
pub mod paths;
pub mod progress;
pub mod qemu;
pub mod registry;
pub mod release;
pub mod sbom;
pub mod seed;
pub mod serve;
pub mod static_root;
mod test_lanes;
pub mod testing;
pub mod util;
pub mod vm;

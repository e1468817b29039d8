//! The contract between Slipway's parts: what the image builder, the init,
//! the cloud-config validator and the update engine must read and write
//! alike. One definition each, so a value one part accepts is never one
//! another refuses (issue 12: the maintenance window's grammar had drifted
//! between the validator and the engine, and a window the validator passed
//! stopped the engine's update checks).
//!
//! std only: PID 1 links it.

pub mod duration;
pub mod window;

//! Slipway's swarm agent: Docker swarm mode from cloud-config.
//!
//! - [`conf`]: `/etc/slipway/swarm.conf`, written by cloud-config from
//!   `coreos.swarm`;
//! - [`docker`]: the engine through its CLI, and what is decided from its
//!   answers (quorum);
//! - [`etcd`]: the keys under `slipway/swarm/` that carry join tokens,
//!   manager addresses and workers' requests;
//! - [`membership`]: init or join, idempotent at every boot;
//! - [`drain`]: before an update's reboot and after the healthy boot;
//! - [`agent`]: the long-running service tying them together.

pub mod agent;
pub mod conf;
pub mod docker;
pub mod drain;
pub mod etcd;
pub mod membership;

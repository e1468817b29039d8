//! slipway-networkd: loopback, ethernet links, DHCPv4 and static
//! systemd-networkd style `.network` files, for the Slipway image.
//!
//! The daemon is supervised by PID 1 and must never panic: the lints below
//! are the ones of the init, and errors are logged and retried.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod config;
pub mod daemon;
pub mod dhcp;
pub mod links;
pub mod netlink;
pub mod online;
pub mod resolv;
pub mod state;
pub mod udp;

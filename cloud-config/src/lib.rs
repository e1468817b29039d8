//! cloud-config user-data: what every user writes to configure a fresh
//! machine (see `../shared/CLOUD-CONFIG-REFERENCE.md` for the facts).
//!
//! - [`userdata`] tells the forms apart (cloud-config, script, Ignition,
//!   gzip) and [`substitute`] fills in `$public_ipv4` and friends;
//! - [`schema`] is the typed configuration, [`parse`] builds it from YAML
//!   keeping every node's position, [`validate`] reports findings with line
//!   and column ([`findings`] renders them), [`etcd`] knows etcd 3.4's
//!   flags for `coreos.etcd2`, [`swarm`] the rules of `coreos.swarm`;
//! - [`datasource`] fetches user-data and metadata (NoCloud, ConfigDrive,
//!   `cloud-config-url=`, QEMU fw_cfg, EC2-style metadata service);
//! - [`apply`] writes a configuration into a root directory, [`boot`] is
//!   what the machine runs at every boot (fetch, check, apply once per
//!   instance), and [`cli`] is the `validate` command both the build tool
//!   and the machine offer.

pub mod apply;
pub mod boot;
pub mod cli;
pub mod datasource;
pub mod etcd;
pub mod findings;
pub mod fleet_flannel;
pub mod parse;
pub mod report;
pub mod schema;
mod similar;
pub mod substitute;
pub mod swarm;
pub mod userdata;
pub mod validate;
mod yaml;

pub use findings::{Finding, Level};
pub use report::Report;
pub use substitute::Substitutions;
pub use userdata::UserDataKind;
pub use validate::{validate, validate_with};

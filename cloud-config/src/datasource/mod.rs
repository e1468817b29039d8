//! Where user-data comes from: the datasources, and the order they are
//! tried in.
//!
//! # Sources
//!
//! - [`FwCfg`]: QEMU's firmware configuration device, entry
//!   `opt/org.slipway/user-data` (and optionally `opt/org.slipway/meta-data`)
//!   as exposed by the `qemu_fw_cfg` kernel module under
//!   `/sys/firmware/qemu_fw_cfg/by_name/…/raw`.
//! - [`NoCloud`]: a vfat or iso9660 filesystem labelled `cidata` holding
//!   `user-data`, `meta-data` (YAML) and optionally `network-config`.
//! - [`ConfigDrive`]: a filesystem labelled `config-2` holding
//!   `openstack/latest/user_data` and `openstack/latest/meta_data.json`.
//! - [`CmdlineUrl`]: `cloud-config-url=<url>` on the kernel command line
//!   (one plain HTTP GET), or cloud-init's `ds=nocloud;s=<url>/` (a
//!   [`NoCloudNet`] seed: `<url>user-data` and `<url>meta-data`).
//! - [`Ec2`]: an EC2-style instance metadata service at
//!   `http://169.254.169.254` (IMDSv2 tokens first, IMDSv1 fallback).
//!
//! Finding the seed filesystems is the boot's local stage's job
//! (`crate::boot`, `seeds.rs`): it reads the first
//! [`LABEL_PROBE_BYTES`] of each block device, asks [`filesystem_label`]
//! and [`is_nocloud_label`] / [`is_configdrive_label`], mounts the match
//! read-only and hands the mount point to [`NoCloud::from_dir`] or
//! [`ConfigDrive::from_dir`].
//!
//! # Precedence
//!
//! [`fetch_first`] tries the sources in this order and takes the first one
//! that is present:
//!
//! 1. fw_cfg, 2. NoCloud, 3. ConfigDrive, 4. kernel command line URL,
//! 5. EC2 metadata service.
//!
//! Why:
//!
//! - **Local before network.** A seed disk or fw_cfg entry needs no network,
//!   answers at once and cannot time out; and it is always a deliberate
//!   choice of whoever started the machine, while a metadata service is
//!   ambient (it is there because of where the machine runs). A deliberate
//!   choice beats ambient cloud metadata.
//! - **fw_cfg first** among the local ones: it is handed straight to the VM
//!   on the QEMU command line, the most specific place there is.
//! - **NoCloud before ConfigDrive**: NoCloud is the format our own tooling
//!   writes; a machine with both is unusual and NoCloud is the one the user
//!   most likely made by hand.
//! - **Kernel command line before the metadata service**: the user typed it
//!   for this boot, so it overrides what the platform offers.
//!
//! The order is enforced by [`fetch_first`] itself (a stable sort on
//! [`Datasource::precedence`]), so callers cannot get it wrong by listing
//! sources in another order; sources of equal rank keep the caller's order.
//!
//! # Absent versus broken
//!
//! [`Datasource::fetch`] returns `Ok(None)` when the source is not there
//! (no fw_cfg entry, no metadata service answering) and `Err` when it is
//! there but unusable (a seed whose `meta-data` is not YAML, a URL from the
//! command line answering 404). **A broken source stops the search**: the
//! error is returned and later sources are not tried. Silently falling
//! through to the next source would configure the machine from something
//! the user did not intend (say, the cloud's metadata instead of their
//! seed disk with a typo in it), which is worse than configuring nothing
//! and saying why.
//!
//! # Network behaviour
//!
//! Plain HTTP only (the image has no TLS stack; metadata services and seed
//! servers on a local network are plain HTTP). Every request has a time
//! limit ([`Poll::timeout`]); a source that cannot be reached yet is retried
//! every [`Poll::interval`] until [`Poll::deadline`]. Bodies are capped at
//! [`MAX_BODY`]. No proxy from the environment is used. Errors name the URL.
//!
//! - A URL the user gave (command line) that stays unreachable is an error
//!   once the deadline passes: the user asked for it.
//! - The metadata service is ambient: connection refused, no route, or a
//!   connect timeout mean "no metadata service here" (`Ok(None)`), at once
//!   and without retries, so machines outside a cloud do not wait for it.

mod http;
mod label;
mod local;
mod meta;

use std::path::PathBuf;
use std::time::Duration;

#[doc(hidden)] // public for the fuzz targets
pub use http::{ec2_key_indexes, ec2_value};
pub use http::{CmdlineUrl, Ec2, NoCloudNet, EC2_DEFAULT_URL};
pub use label::{
    filesystem_label, is_configdrive_label, is_nocloud_label, FsKind, LABEL_PROBE_BYTES,
};
pub use local::{ConfigDrive, FwCfg, NoCloud, FW_CFG_META_DATA, FW_CFG_USER_DATA};
#[doc(hidden)] // public for the fuzz targets
pub use meta::{parse_configdrive, parse_nocloud};

/// The largest user-data, metadata file or HTTP body accepted (16 MiB).
pub const MAX_BODY: u64 = 16 * 1024 * 1024;

/// What a datasource knows about the instance, beyond the user-data.
/// Serialised into the hand-off between cloud-config's two boot stages.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Metadata {
    pub instance_id: Option<String>,
    pub local_hostname: Option<String>,
    /// SSH public keys, in the order the source lists them.
    pub public_keys: Vec<String>,
    pub public_ipv4: Option<String>,
    pub private_ipv4: Option<String>,
    pub public_ipv6: Option<String>,
    pub private_ipv6: Option<String>,
}

/// What a present datasource provided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fetched {
    /// Which source, for messages: `NoCloud (/run/slipway/seed/vdb)`,
    /// `cloud-config-url (http://10.0.2.2:8000/user-data)`, …
    pub source: String,
    /// The user-data as stored (possibly gzip-compressed; not decoded
    /// here). `None`: the source has metadata but no user-data.
    pub user_data: Option<Vec<u8>>,
    pub metadata: Metadata,
    /// NoCloud `network-config` or ConfigDrive `network_data.json`, carried
    /// as bytes and not interpreted here.
    pub network_config: Option<Vec<u8>>,
}

/// A source present but unusable. The message names the file or URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatasourceError {
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    #[error("{url}: {message}")]
    Http { url: String, message: String },
}

/// Time limits for network sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Poll {
    /// The limit for one HTTP request (connecting, sending, reading the
    /// whole body).
    pub timeout: Duration,
    /// The pause between two attempts on a source that could not be reached.
    pub interval: Duration,
    /// How long to keep retrying one source, from its first attempt.
    pub deadline: Duration,
}

impl Default for Poll {
    /// 5 s per request, a retry every second, for at most 30 s per source
    /// (well inside the network stage's 420 s).
    fn default() -> Self {
        Poll {
            timeout: Duration::from_secs(5),
            interval: Duration::from_secs(1),
            deadline: Duration::from_secs(30),
        }
    }
}

impl Poll {
    /// One attempt, no retries, with the given per-request limit.
    pub fn once(timeout: Duration) -> Self {
        Poll {
            timeout,
            interval: Duration::ZERO,
            deadline: Duration::ZERO,
        }
    }
}

/// Ranks used by [`fetch_first`] (lower is tried first).
pub mod precedence {
    pub const FW_CFG: u8 = 10;
    pub const NOCLOUD: u8 = 20;
    pub const CONFIG_DRIVE: u8 = 30;
    pub const CMDLINE: u8 = 40;
    pub const EC2: u8 = 50;
    /// Sources that do not say otherwise: after the built-in ones.
    pub const OTHER: u8 = 100;
}

/// A place user-data may come from.
pub trait Datasource {
    /// A short name for messages (`NoCloud`, `EC2`, …).
    fn name(&self) -> &'static str;

    /// Looks once (network sources: with [`Poll::default`]).
    /// `Ok(None)`: not present here; `Err`: present but broken.
    fn fetch(&self) -> Result<Option<Fetched>, DatasourceError>;

    /// Like [`Datasource::fetch`], with the given time limits. Local sources
    /// ignore them (the default); network sources retry within them.
    fn fetch_with(&self, policy: &Poll) -> Result<Option<Fetched>, DatasourceError> {
        let _ = policy;
        self.fetch()
    }

    /// Where the source stands in the precedence (see the module doc).
    fn precedence(&self) -> u8 {
        precedence::OTHER
    }
}

/// Tries the sources in precedence order (see the module doc) and returns
/// the first present one. A broken source (an `Err`) stops the search and
/// is returned: the sources after it are not tried.
pub fn fetch_first(
    sources: &[&dyn Datasource],
    policy: &Poll,
) -> Result<Option<Fetched>, DatasourceError> {
    let mut ordered: Vec<&dyn Datasource> = sources.to_vec();
    ordered.sort_by_key(|s| s.precedence());
    for source in ordered {
        if let Some(fetched) = source.fetch_with(policy)? {
            return Ok(Some(fetched));
        }
    }
    Ok(None)
}

/// Reads a whole file of at most [`MAX_BODY`] bytes; `Ok(None)` if it does
/// not exist.
pub(crate) fn read_file(path: &std::path::Path) -> Result<Option<Vec<u8>>, DatasourceError> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(file_error(path, format!("cannot open: {e}"))),
    };
    let mut bytes = Vec::new();
    file.take(MAX_BODY + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| file_error(path, format!("cannot read: {e}")))?;
    if bytes.len() as u64 > MAX_BODY {
        return Err(file_error(
            path,
            format!("larger than {} MiB", MAX_BODY / (1024 * 1024)),
        ));
    }
    Ok(Some(bytes))
}

pub(crate) fn file_error(path: &std::path::Path, message: impl Into<String>) -> DatasourceError {
    DatasourceError::File {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

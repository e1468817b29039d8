//! Sources read from the local filesystem: seed filesystems the init
//! mounted, and QEMU fw_cfg entries in sysfs.

use std::path::PathBuf;

use super::meta::{parse_configdrive, parse_nocloud};
use super::{file_error, precedence, read_file, Datasource, DatasourceError, Fetched, Metadata};

/// A NoCloud seed (`cidata` filesystem) mounted at `root`: `user-data`,
/// `meta-data` (YAML, see [`Metadata`]) and optionally `network-config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoCloud {
    pub root: PathBuf,
}

impl NoCloud {
    pub fn from_dir(root: PathBuf) -> Self {
        NoCloud { root }
    }
}

impl Datasource for NoCloud {
    fn name(&self) -> &'static str {
        "NoCloud"
    }

    fn precedence(&self) -> u8 {
        precedence::NOCLOUD
    }

    /// Absent if `root` does not exist. A seed with neither `user-data` nor
    /// `meta-data` is an error (a seed was made, but wrongly: perhaps
    /// `user_data` instead of `user-data`). Either file alone is accepted.
    fn fetch(&self) -> Result<Option<Fetched>, DatasourceError> {
        if !self.root.is_dir() {
            return Ok(None);
        }
        let user_data_path = self.root.join("user-data");
        let meta_path = self.root.join("meta-data");
        let user_data = read_file(&user_data_path)?;
        let meta_bytes = read_file(&meta_path)?;
        if user_data.is_none() && meta_bytes.is_none() {
            return Err(file_error(
                &self.root,
                "NoCloud seed without user-data or meta-data (want files named \
                 exactly `user-data` and `meta-data` in its root)",
            ));
        }
        let metadata = match &meta_bytes {
            Some(bytes) => parse_nocloud(bytes).map_err(|m| file_error(&meta_path, m))?,
            None => Metadata::default(),
        };
        Ok(Some(Fetched {
            source: format!("NoCloud ({})", self.root.display()),
            user_data,
            metadata,
            network_config: read_file(&self.root.join("network-config"))?,
        }))
    }
}

/// An OpenStack config drive (`config-2` filesystem) mounted at `root`:
/// `openstack/latest/user_data`, `openstack/latest/meta_data.json`
/// (`uuid`, `hostname`, `public_keys`) and optionally
/// `openstack/latest/network_data.json` (carried as the network config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigDrive {
    pub root: PathBuf,
}

impl ConfigDrive {
    pub fn from_dir(root: PathBuf) -> Self {
        ConfigDrive { root }
    }
}

impl Datasource for ConfigDrive {
    fn name(&self) -> &'static str {
        "ConfigDrive"
    }

    fn precedence(&self) -> u8 {
        precedence::CONFIG_DRIVE
    }

    /// Absent if `root` does not exist; an error if it has no
    /// `openstack/latest/meta_data.json` (OpenStack always writes one) or
    /// that file is not the expected JSON. `user_data` is optional.
    fn fetch(&self) -> Result<Option<Fetched>, DatasourceError> {
        if !self.root.is_dir() {
            return Ok(None);
        }
        let latest = self.root.join("openstack").join("latest");
        let meta_path = latest.join("meta_data.json");
        let Some(meta_bytes) = read_file(&meta_path)? else {
            return Err(file_error(
                &meta_path,
                "missing: a config drive must have openstack/latest/meta_data.json",
            ));
        };
        let metadata = parse_configdrive(&meta_bytes).map_err(|m| file_error(&meta_path, m))?;
        Ok(Some(Fetched {
            source: format!("ConfigDrive ({})", self.root.display()),
            user_data: read_file(&latest.join("user_data"))?,
            metadata,
            network_config: read_file(&latest.join("network_data.json"))?,
        }))
    }
}

/// The fw_cfg entry holding user-data (`-fw_cfg name=opt/org.slipway/user-data,file=…`).
pub const FW_CFG_USER_DATA: &str = "opt/org.slipway/user-data";
/// The fw_cfg entry holding NoCloud-style `meta-data` YAML (optional).
pub const FW_CFG_META_DATA: &str = "opt/org.slipway/meta-data";

/// QEMU fw_cfg entries [`FW_CFG_USER_DATA`] and [`FW_CFG_META_DATA`], read
/// from `<sysfs_root>/sys/firmware/qemu_fw_cfg/by_name/<entry>/raw`
/// (`sysfs_root` is `/` on a live system). The init loads the
/// `qemu_fw_cfg` module; without it (or outside QEMU) the directory is
/// missing and the source is absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwCfg {
    pub sysfs_root: PathBuf,
}

impl FwCfg {
    pub fn new(sysfs_root: PathBuf) -> Self {
        FwCfg { sysfs_root }
    }

    fn entry(&self, name: &str) -> PathBuf {
        self.sysfs_root
            .join("sys/firmware/qemu_fw_cfg/by_name")
            .join(name)
            .join("raw")
    }
}

impl Datasource for FwCfg {
    fn name(&self) -> &'static str {
        "fw_cfg"
    }

    fn precedence(&self) -> u8 {
        precedence::FW_CFG
    }

    /// Present if either entry exists. Without a meta-data entry there is
    /// no instance ID.
    fn fetch(&self) -> Result<Option<Fetched>, DatasourceError> {
        let user_data = read_file(&self.entry(FW_CFG_USER_DATA))?;
        let meta_path = self.entry(FW_CFG_META_DATA);
        let meta_bytes = read_file(&meta_path)?;
        if user_data.is_none() && meta_bytes.is_none() {
            return Ok(None);
        }
        let metadata = match &meta_bytes {
            Some(bytes) => parse_nocloud(bytes).map_err(|m| file_error(&meta_path, m))?,
            None => Metadata::default(),
        };
        Ok(Some(Fetched {
            source: format!("fw_cfg ({FW_CFG_USER_DATA})"),
            user_data,
            metadata,
            network_config: None,
        }))
    }
}

//! The running machine: which slot booted, what it runs, where the passive
//! slot's partitions and the ESP are. Everything is read from the kernel
//! command line the boot entry gave (`slipway.slot=`, `slipway.root=`),
//! `/etc/os-release`, the GPT of the disk the root came from, and sysfs.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use slipway_boot_contract::cmdline::{self, Cmdline, RootSpec};
use slipway_boot_contract::os_release;
use slipway_image::gpt_table;
use slipway_image::layout::{Role, Slot};
use uuid::Uuid;

use crate::apply::{Running, SlotTarget};

/// The booted slot and its root partition UUID, read from the command line
/// as the init read it (the same parser: quotes, the last value wins).
pub fn booted(cmdline: &str) -> Result<(Slot, Uuid)> {
    let line = Cmdline::parse(cmdline);
    if line.get(cmdline::SLOT_KEY).is_none() || line.get(cmdline::ROOT_KEY).is_none() {
        bail!(
            "the kernel command line has no {}= and {}=: this system was not booted from a \
             Slipway slot",
            cmdline::SLOT_KEY,
            cmdline::ROOT_KEY
        );
    }
    let slot = line
        .slot()
        .map_err(|e| anyhow!("kernel command line: {e}"))?;
    let RootSpec::PartUuid(root) = line
        .root()
        .map_err(|e| anyhow!("kernel command line: {e}"))?;
    Ok((slot, root))
}

/// One partition of the boot disk.
#[derive(Debug, Clone)]
pub struct Partition {
    pub label: String,
    pub number: u32,
    pub uuid: Uuid,
    pub type_guid: Uuid,
    pub size: u64,
    pub dev: PathBuf,
}

/// The boot disk and what runs from it.
#[derive(Debug, Clone)]
pub struct Machine {
    pub running: Running,
    pub root_partuuid: Uuid,
    pub disk: PathBuf,
    /// `major:minor` of the whole disk, for `io.max`.
    pub disk_devno: String,
    pub partitions: Vec<Partition>,
    /// When the running image was built (`SLIPWAY_BUILD_TIME` in
    /// os-release, seconds since 1970): a clock before it is wrong.
    pub built_at: Option<u64>,
}

impl Machine {
    /// Reads `/proc/cmdline`, `/etc/os-release`, sysfs and the GPT.
    pub fn discover() -> Result<Machine> {
        let cmdline = std::fs::read_to_string("/proc/cmdline").context("reading /proc/cmdline")?;
        let os = std::fs::read_to_string("/etc/os-release").context("reading /etc/os-release")?;
        Machine::discover_in(
            &cmdline,
            &os,
            Path::new("/sys/class/block"),
            Path::new("/dev"),
        )
    }

    pub fn discover_in(cmdline: &str, os_release: &str, sys: &Path, dev: &Path) -> Result<Machine> {
        let (slot, root_partuuid) = booted(cmdline)?;
        let version = os_release::image_version(os_release)
            .ok_or_else(|| anyhow!("/etc/os-release has no IMAGE_VERSION or VERSION_ID"))?;
        let board = os_release::value(os_release, "SLIPWAY_BOARD")
            .ok_or_else(|| anyhow!("/etc/os-release has no SLIPWAY_BOARD"))?;
        // Whole disks are the sysfs block entries without a `partition` file.
        let mut disks: Vec<String> = std::fs::read_dir(sys)
            .with_context(|| format!("listing {}", sys.display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !sys.join(n).join("partition").exists())
            .filter(|n| !n.starts_with("loop") && !n.starts_with("dm-") && !n.starts_with("ram"))
            .collect();
        disks.sort();
        let mut denied = Vec::new();
        for name in disks {
            let path = dev.join(&name);
            // Opened first on its own: "permission denied" (not root) must
            // not read as "no such disk".
            if let Err(e) = std::fs::File::open(&path) {
                if e.kind() == std::io::ErrorKind::PermissionDenied {
                    denied.push(path.display().to_string());
                }
                continue;
            }
            let Ok((_, parts)) = gpt_table::read(&path) else {
                continue;
            };
            if !parts.iter().any(|p| p.uuid == root_partuuid) {
                continue;
            }
            let disk_devno = std::fs::read_to_string(sys.join(&name).join("dev"))
                .with_context(|| format!("reading {}/{name}/dev", sys.display()))?
                .trim()
                .to_string();
            let partitions = parts
                .into_iter()
                .map(|p| {
                    let devname = partition_dev(sys, &name, p.number)
                        .ok_or_else(|| anyhow!("{name}: no device for partition {}", p.number))?;
                    Ok(Partition {
                        label: p.label,
                        number: p.number,
                        uuid: p.uuid,
                        type_guid: p.type_guid,
                        size: p.size,
                        dev: dev.join(devname),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            return Ok(Machine {
                running: Running {
                    slot,
                    version,
                    board,
                },
                root_partuuid,
                disk: path,
                disk_devno,
                partitions,
                built_at: os_release::value(os_release, "SLIPWAY_BUILD_TIME")
                    .and_then(|t| t.parse().ok()),
            });
        }
        if !denied.is_empty() {
            bail!(
                "reading the disks needs root ({}: permission denied); run it as root, \
                 with sudo",
                denied.join(", ")
            );
        }
        bail!("no disk holds the root partition PARTUUID={root_partuuid} named on the kernel command line")
    }

    pub fn partition(&self, label: &str) -> Result<&Partition> {
        self.partitions
            .iter()
            .find(|p| p.label == label)
            .ok_or_else(|| anyhow!("{}: no partition labelled {label}", self.disk.display()))
    }

    /// The passive slot's partitions. Refuses a partition that something
    /// holds open through device-mapper (the active root's verity device):
    /// a second guard, after the slot comparison, that we never write the
    /// running system.
    pub fn target(&self, slot: Slot, sys: &Path) -> Result<SlotTarget> {
        if slot == self.running.slot {
            bail!(
                "refusing to write slot {}: it is the slot this system booted from (the active slot)",
                slot.letter()
            );
        }
        let root = self.partition(&Role::Root(slot).label())?;
        let verity = self.partition(&Role::Verity(slot).label())?;
        if root.type_guid != Role::Root(slot).type_guid()
            || verity.type_guid != Role::Verity(slot).type_guid()
        {
            bail!(
                "{}: partitions {} and {} do not have the root and root-verity type GUIDs",
                self.disk.display(),
                root.label,
                verity.label
            );
        }
        for p in [root, verity] {
            if p.uuid == self.root_partuuid {
                bail!(
                    "refusing to write {}: it is the booted root",
                    p.dev.display()
                );
            }
            let name = p.dev.file_name().map(|n| n.to_string_lossy().into_owned());
            if let Some(name) = name {
                let holders = sys.join(&name).join("holders");
                let busy = std::fs::read_dir(&holders)
                    .map(|d| d.count() > 0)
                    .unwrap_or(false);
                if busy {
                    bail!(
                        "refusing to write {}: it is in use (see {})",
                        p.dev.display(),
                        holders.display()
                    );
                }
            }
        }
        Ok(SlotTarget {
            slot,
            root: root.dev.clone(),
            root_capacity: root.size,
            root_partuuid: root.uuid,
            verity: verity.dev.clone(),
            verity_capacity: verity.size,
            verity_partuuid: verity.uuid,
        })
    }

    /// The running slot's files, read (never written) to find the pieces
    /// of a new release this machine already has.
    pub fn active_slot(&self, esp: &crate::esp::Esp) -> Result<crate::delta::local::ActiveSlot> {
        let slot = self.running.slot;
        Ok(crate::delta::local::ActiveSlot {
            name: format!("slot {}", slot.letter()),
            root: self.partition(&Role::Root(slot).label())?.dev.clone(),
            verity: self.partition(&Role::Verity(slot).label())?.dev.clone(),
            kernel: esp.path(&slipway_image::bls::kernel_path(slot)),
            initrd: esp.path(&slipway_image::bls::initrd_path(slot)),
        })
    }

    pub fn esp(&self) -> Result<&Partition> {
        self.partitions
            .iter()
            .find(|p| p.type_guid == Role::Esp.type_guid())
            .ok_or_else(|| anyhow!("{}: no EFI system partition", self.disk.display()))
    }
}

/// The device name of partition `number` of `disk` (`vda` 2 → `vda2`,
/// `nvme0n1` 2 → `nvme0n1p2`), found in sysfs rather than guessed.
fn partition_dev(sys: &Path, disk: &str, number: u32) -> Option<String> {
    let dir = std::fs::read_dir(sys.join(disk)).ok()?;
    dir.filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|child| {
            child.starts_with(disk)
                && std::fs::read_to_string(sys.join(disk).join(child).join("partition"))
                    .is_ok_and(|n| n.trim() == number.to_string())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booted_slot_from_the_command_line() {
        let u = "0a0b0c0d-0000-4000-8000-000000000001";
        let (s, r) = booted(&format!("quiet slipway.slot=b slipway.root=PARTUUID={u}")).unwrap();
        assert_eq!(s, Slot::B);
        assert_eq!(r.to_string(), u);
        assert!(booted("quiet").is_err());
        let e = booted(&format!("slipway.slot=c slipway.root=PARTUUID={u}")).unwrap_err();
        assert!(
            e.to_string().contains("slipway.slot=c: expected a or b"),
            "{e}"
        );
        // Read as the init reads it: quotes, and the last value wins.
        let (s, _) = booted(&format!(
            "slipway.slot=a \"slipway.root=PARTUUID={u}\" slipway.slot=b"
        ))
        .unwrap();
        assert_eq!(s, Slot::B);
    }
}

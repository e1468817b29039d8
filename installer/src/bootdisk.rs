//! The disk the running system booted from: the one whose GPT holds the
//! root partition named on the kernel command line
//! (`slipway.root=PARTUUID=…`, written by the builder, read by the init).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use uuid::Uuid;

/// A whole disk, by path and `major:minor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootDisk {
    pub path: PathBuf,
    pub devno: String,
    pub root_partuuid: Uuid,
}

/// `slipway.root=PARTUUID=<uuid>` from a kernel command line.
pub fn root_partuuid(cmdline: &str) -> Option<Uuid> {
    cmdline
        .split_whitespace()
        .find_map(|arg| arg.strip_prefix("slipway.root=PARTUUID="))
        .and_then(|u| Uuid::parse_str(u).ok())
}

/// The boot disk of this machine; an error if it was not booted from a
/// Slipway slot or no disk holds its root.
pub fn find_running() -> Result<BootDisk> {
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    match find(&cmdline, Path::new("/sys/class/block"), Path::new("/dev"))? {
        Some(disk) => Ok(disk),
        None => bail!(
            "this system was not booted from a Slipway disk (no slipway.root=PARTUUID= on \
             the kernel command line): give the image with --image FILE or --image-url URL"
        ),
    }
}

/// Like [`find_running`] over the given command line, sysfs class folder and
/// `/dev`: `Ok(None)` when the command line names no Slipway root.
pub fn find(cmdline: &str, sys: &Path, dev: &Path) -> Result<Option<BootDisk>> {
    let Some(root) = root_partuuid(cmdline) else {
        return Ok(None);
    };
    for name in whole_disks(sys) {
        let path = dev.join(&name);
        let mut head = vec![0u8; 34 * 512];
        let read = std::fs::File::open(&path)
            .and_then(|f| std::os::unix::fs::FileExt::read_exact_at(&f, &mut head, 0));
        if read.is_err() {
            continue;
        }
        let Ok((_, parts)) = crate::gpt_read::parse_table(&head) else {
            continue;
        };
        if parts.iter().any(|p| p.uuid == root) {
            let devno = std::fs::read_to_string(sys.join(&name).join("dev"))
                .unwrap_or_default()
                .trim()
                .to_string();
            return Ok(Some(BootDisk {
                path,
                devno,
                root_partuuid: root,
            }));
        }
    }
    bail!("no disk holds the root partition PARTUUID={root} named on the kernel command line")
}

/// Whole disks: sysfs block entries without a `partition` file, less loop,
/// device-mapper and RAM disks.
fn whole_disks(sys: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(sys)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !sys.join(n).join("partition").exists())
                .filter(|n| {
                    !n.starts_with("loop") && !n.starts_with("dm-") && !n.starts_with("ram")
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_partuuid_comes_from_the_command_line() {
        let u = "2f65fdc7-9456-44f4-8b21-21a6b412d773";
        let line = format!("quiet slipway.slot=a slipway.root=PARTUUID={u} gpt");
        assert_eq!(root_partuuid(&line), Some(Uuid::parse_str(u).unwrap()));
        assert_eq!(root_partuuid("quiet root=/dev/sda1"), None);
    }
}

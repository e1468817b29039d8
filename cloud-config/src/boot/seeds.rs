//! The seed filesystems (labels `cidata`, `config-2`): found by reading
//! the head of every block device, mounted read-only under
//! `/run/slipway/seed/<device>` for the local stage, unmounted after.

use std::path::PathBuf;

use crate::datasource;

use super::log::Log;

pub(super) const SEED_MOUNTS: &str = "/run/slipway/seed";
/// How much of a device to read to find its label (ISO 9660's volume
/// descriptor is at 32 KiB).
const PROBE_BYTES: usize = 40 * 1024;

#[derive(Debug, Clone, Copy)]
pub(super) enum SeedKind {
    NoCloud,
    ConfigDrive,
}

/// Finds block devices labelled `cidata` or `config-2` and mounts each
/// read-only; returns where.
pub(super) fn mount_seeds(log: &mut Log) -> Vec<(SeedKind, PathBuf)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/sys/class/block") else {
        return found;
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let device = format!("/dev/{name}");
        let Some(head) = read_head(&device) else {
            continue;
        };
        let Some((fs, label)) = datasource::filesystem_label(&head) else {
            continue;
        };
        let kind = if datasource::is_nocloud_label(&label) {
            SeedKind::NoCloud
        } else if datasource::is_configdrive_label(&label) {
            SeedKind::ConfigDrive
        } else {
            continue;
        };
        let dir = PathBuf::from(SEED_MOUNTS).join(&name);
        let fstype = match fs {
            datasource::FsKind::Vfat => "vfat",
            datasource::FsKind::Iso9660 => "iso9660",
        };
        let mounted = std::fs::create_dir_all(&dir)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                nix::mount::mount(
                    Some(device.as_str()),
                    dir.as_path(),
                    Some(fstype),
                    nix::mount::MsFlags::MS_RDONLY
                        | nix::mount::MsFlags::MS_NOSUID
                        | nix::mount::MsFlags::MS_NODEV
                        | nix::mount::MsFlags::MS_NOEXEC,
                    None::<&str>,
                )
                .map_err(|e| e.desc().to_string())
            });
        match mounted {
            Ok(()) => {
                log.note(&format!("seed {label} ({fstype}) on {device}"));
                found.push((kind, dir));
            }
            Err(e) => log.say(&format!("mounting the {label} seed {device}: {e}")),
        }
    }
    found
}

fn read_head(device: &str) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut f = std::fs::File::open(device).ok()?;
    let mut head = vec![0u8; PROBE_BYTES];
    let mut filled = 0;
    while filled < head.len() {
        match f.read(head.get_mut(filled..)?) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(_) => return None,
        }
    }
    head.truncate(filled);
    Some(head)
}

//! Opening the target, and every reason not to write to it. Each refusal is
//! one line naming the target and the reason, and comes before any write.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{Context, Result};

use crate::bootdisk;
use crate::human;
use crate::source::parse_table;
use crate::table::{BACKUP_BYTES, PRIMARY_BYTES};

/// A reason not to install; nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refusing to install on {target}: {reason}; nothing was written")]
pub struct Refusal {
    pub target: String,
    pub reason: String,
}

/// The opened target.
#[derive(Debug)]
pub struct Target {
    pub file: File,
    pub len: u64,
    pub is_block: bool,
}

/// Where the checks look (the live system's files, or a test's).
#[derive(Debug, Clone)]
pub struct Env {
    pub cmdline: String,
    pub mountinfo: String,
    pub swaps: String,
    /// `/sys/dev/block` (entries `major:minor`).
    pub sys_dev_block: std::path::PathBuf,
    /// `/sys/class/block` and `/dev`, to find the boot disk.
    pub sys_class_block: std::path::PathBuf,
    pub dev: std::path::PathBuf,
}

impl Env {
    pub fn live() -> Env {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        Env {
            cmdline: read("/proc/cmdline"),
            mountinfo: read("/proc/self/mountinfo"),
            swaps: read("/proc/swaps"),
            sys_dev_block: "/sys/dev/block".into(),
            sys_class_block: "/sys/class/block".into(),
            dev: "/dev".into(),
        }
    }
}

/// Opens `path` for the install after every check ([`open_target_in`] on
/// the live system).
pub fn open_target(path: &Path, min_bytes: u64, force: bool) -> Result<Target> {
    open_target_in(path, min_bytes, force, &Env::live())
}

pub fn open_target_in(path: &Path, min_bytes: u64, force: bool, env: &Env) -> Result<Target> {
    let name = path.display().to_string();
    let refuse = |reason: String| -> anyhow::Error {
        Refusal {
            target: name.clone(),
            reason,
        }
        .into()
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A new image file, as long as the image.
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(path)
                .with_context(|| format!("{name}: creating"))?;
            file.set_len(min_bytes)
                .with_context(|| format!("{name}: sizing"))?;
            return Ok(Target {
                file,
                len: min_bytes,
                is_block: false,
            });
        }
        Err(e) => return Err(e).with_context(|| format!("{name}: reading its metadata")),
    };
    let is_block = meta.file_type().is_block_device();
    if !is_block && !meta.is_file() {
        return Err(refuse(
            "it is neither a block device nor an image file".into(),
        ));
    }
    if is_block {
        let devno = format!(
            "{}:{}",
            nix::sys::stat::major(meta.rdev()),
            nix::sys::stat::minor(meta.rdev())
        );
        if let Some(reason) = block_device_in_use(&devno, env)? {
            return Err(refuse(reason));
        }
    }
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    if is_block {
        // The kernel refuses an exclusive open of a disk that is mounted or
        // claimed (device-mapper, RAID, swap): the last word on "in use",
        // and it keeps anyone else from claiming it while we write.
        options.custom_flags(nix::libc::O_EXCL);
    }
    let file = match options.open(path) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY) => {
            return Err(refuse(
                "it is in use (the kernel refused exclusive access: mounted, swap, or held by another device)".into(),
            ))
        }
        Err(e) => return Err(e).with_context(|| format!("{name}: opening for writing")),
    };
    let mut len = {
        use std::io::Seek;
        (&file)
            .seek(std::io::SeekFrom::End(0))
            .with_context(|| format!("{name}: finding its size"))?
    };
    if !is_block && len == 0 {
        file.set_len(min_bytes)
            .with_context(|| format!("{name}: sizing"))?;
        len = min_bytes;
    }
    if len < min_bytes {
        return Err(refuse(format!(
            "it is {} ({len} bytes), smaller than the image's {} ({min_bytes} bytes)",
            human(len),
            human(min_bytes)
        )));
    }
    if !force {
        if let Some(what) = describe_contents(&file, len)? {
            return Err(refuse(format!(
                "it holds {what}; add --force to overwrite it"
            )));
        }
    }
    Ok(Target {
        file,
        len,
        is_block,
    })
}

/// Why the block device `devno` (a whole disk) must not be written:
/// a partition given instead of a disk, the boot disk, a mounted or swap
/// partition, a holder (device-mapper, RAID, LVM) of it or its partitions.
pub fn block_device_in_use(devno: &str, env: &Env) -> Result<Option<String>> {
    let sys = env.sys_dev_block.join(devno);
    if sys.join("partition").exists() {
        return Ok(Some(
            "it is a partition; give the whole disk (the table and image cover all of it)".into(),
        ));
    }
    if let Some(boot) = bootdisk::find(&env.cmdline, &env.sys_class_block, &env.dev)? {
        if boot.devno == devno {
            return Ok(Some(format!(
                "it is the disk this system booted from (it holds the running root, PARTUUID={})",
                boot.root_partuuid
            )));
        }
    }
    // The disk itself and each partition: (name, major:minor, sysfs dir).
    let mut members = vec![(String::from("the disk"), devno.to_string(), sys.clone())];
    if let Ok(entries) = std::fs::read_dir(&sys) {
        for entry in entries.flatten() {
            let dir = entry.path();
            if dir.join("partition").exists() {
                let part_devno = std::fs::read_to_string(dir.join("dev"))
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                let part_name = entry.file_name().to_string_lossy().into_owned();
                members.push((part_name, part_devno, dir));
            }
        }
    }
    for (who, member_devno, dir) in &members {
        if let Some(mountpoint) = mountpoint_of(&env.mountinfo, member_devno) {
            return Ok(Some(format!("{who} is mounted on {mountpoint}")));
        }
        let holders: Vec<String> = std::fs::read_dir(dir.join("holders"))
            .map(|e| {
                e.flatten()
                    .map(|h| h.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        if !holders.is_empty() {
            return Ok(Some(format!(
                "{who} is held by {} (device-mapper, RAID or LVM)",
                holders.join(", ")
            )));
        }
    }
    for swap in swap_devices(&env.swaps) {
        let Ok(meta) = std::fs::metadata(&swap) else {
            continue;
        };
        let swap_devno = format!(
            "{}:{}",
            nix::sys::stat::major(meta.rdev()),
            nix::sys::stat::minor(meta.rdev())
        );
        if let Some((who, _, _)) = members.iter().find(|(_, d, _)| *d == swap_devno) {
            return Ok(Some(format!("{who} is in use as swap ({swap})")));
        }
    }
    Ok(None)
}

/// The mount point of the first mount of `devno` in `/proc/self/mountinfo`
/// text (field 3 is `major:minor`, field 5 the mount point).
pub fn mountpoint_of(mountinfo: &str, devno: &str) -> Option<String> {
    mountinfo.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(2) == Some(&devno)).then(|| fields.get(4).unwrap_or(&"?").to_string())
    })
}

/// The device paths `/proc/swaps` lists (files are left out).
pub fn swap_devices(swaps: &str) -> Vec<String> {
    swaps
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let path = f.next()?;
            (f.next() == Some("partition")).then(|| path.to_string())
        })
        .collect()
}

/// What the target holds, if anything a user could want to keep: a GPT
/// (primary or backup) with its partitions, or an MBR partition table.
pub fn describe_contents(file: &File, len: u64) -> Result<Option<String>> {
    let mut head = vec![0u8; PRIMARY_BYTES as usize];
    file.read_exact_at(&mut head, 0)
        .context("reading the first sectors")?;
    let table = parse_table(&head).ok().or_else(|| {
        // A torn primary: the backup header in the last sector points at
        // its entries just before it.
        let mut tail = vec![0u8; BACKUP_BYTES as usize];
        file.read_exact_at(&mut tail, len.checked_sub(BACKUP_BYTES)?)
            .ok()?;
        backup_table(&tail)
    });
    if let Some((_, parts)) = table {
        if parts.is_empty() {
            return Ok(Some("an empty GPT".into()));
        }
        let list: Vec<String> = parts
            .iter()
            .map(|p| {
                let label = if p.label.is_empty() {
                    "unnamed"
                } else {
                    &p.label
                };
                format!("{} {label} {}", p.number, human(p.end() - p.offset()))
            })
            .collect();
        return Ok(Some(format!(
            "a GPT with {} partition{}: {}",
            parts.len(),
            if parts.len() == 1 { "" } else { "s" },
            list.join(", ")
        )));
    }
    if head[510] == 0x55 && head[511] == 0xAA {
        let used: Vec<u8> = (0..4)
            .map(|i| head[446 + 16 * i + 4])
            .filter(|&t| t != 0)
            .collect();
        if !used.is_empty() {
            return Ok(Some(format!(
                "an MBR partition table with {} partition{} (types {})",
                used.len(),
                if used.len() == 1 { "" } else { "s" },
                used.iter()
                    .map(|t| format!("0x{t:02x}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok(None)
}

/// Parses a backup GPT from the last 33 sectors (entries, then the header)
/// by laying them out as a primary would be.
fn backup_table(tail: &[u8]) -> Option<(uuid::Uuid, Vec<crate::source::SourcePartition>)> {
    let header = tail.get(32 * 512..33 * 512)?;
    if header.get(..8)? != b"EFI PART" {
        return None;
    }
    // A primary-shaped copy: header at LBA 1, entries from LBA 2 (the
    // header is checked as it is; only where its entries are read from is
    // changed after parsing).
    let mut head = vec![0u8; PRIMARY_BYTES as usize];
    head[512..1024].copy_from_slice(header);
    head[1024..1024 + 32 * 512].copy_from_slice(tail.get(..32 * 512)?);
    let mut cursor = std::io::Cursor::new(&head[..]);
    let lb = gpt::disk::LogicalBlockSize::Lb512;
    let mut parsed = gpt::header::read_header_from_arbitrary_device(&mut cursor, lb).ok()?;
    parsed.part_start = 2;
    let entries = gpt::partition::file_read_partitions(&mut cursor, &parsed, lb).ok()?;
    let parts = entries
        .into_iter()
        .filter(|(_, p)| p.is_used())
        .map(|(number, p)| crate::source::SourcePartition::from_entry(number, &p))
        .collect();
    Some((parsed.disk_guid, parts))
}

nix::ioctl_none!(blkrrpart, 0x12, 95);

/// Asks the kernel to read the new partition table (`BLKRRPART`), so the
/// partitions appear without a reboot; a failure is only reported.
#[allow(unsafe_code)]
pub fn reread_partitions(file: &File, name: &str) {
    use std::os::fd::AsRawFd;
    // SAFETY: BLKRRPART takes no argument; the fd is an open block device
    // that lives for the whole call.
    if let Err(e) = unsafe { blkrrpart(file.as_raw_fd()) } {
        eprintln!(
            "slipway-install: {name}: the kernel did not re-read the partition table ({e}); \
             it will at the next boot"
        );
    }
}

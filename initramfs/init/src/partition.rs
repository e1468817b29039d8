//! Finding the root partition by its GPT unique partition GUID (PARTUUID).
//!
//! There is no udev in the initramfs and sysfs does not expose the PARTUUID,
//! so: list the partitions sysfs knows (`/sys/class/block/*/partition`), read
//! the GPT of each parent disk once per round, and match the entry number.
//! The scan goes through [`Sys`]; the GPT reading takes any `Read + Seek`.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read, Seek};
use std::time::Duration;

use uuid::Uuid;

use crate::cmdline::RootSpec;
use crate::console::say;
use crate::error::{Context, Error};
use crate::sys::Sys;

pub const SYS_CLASS_BLOCK: &str = "/sys/class/block";

/// A partition as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockPartition {
    /// e.g. `vda2`; the device node is `/dev/vda2`.
    pub name: String,
    /// The whole disk, e.g. `vda`.
    pub disk: String,
    /// The partition number, which for GPT is the entry index + 1.
    pub number: u32,
}

/// Lists the partitions in `/sys/class/block`. Each entry there is a symlink
/// into `/sys/devices/…/block/<disk>/<partition>`, so the disk is the name of
/// the link target's parent directory.
pub fn scan_partitions(sys: &mut dyn Sys) -> Result<Vec<BlockPartition>, Error> {
    let names = sys
        .read_dir(SYS_CLASS_BLOCK)
        .context(|| format!("reading {SYS_CLASS_BLOCK}"))?;
    let mut found = Vec::new();
    for name in names {
        let entry = format!("{SYS_CLASS_BLOCK}/{name}");
        let Ok(number) = sys.read_file(&format!("{entry}/partition")) else {
            continue; // a whole disk
        };
        let Ok(number) = String::from_utf8_lossy(&number).trim().parse::<u32>() else {
            continue;
        };
        let Ok(target) = sys.read_link(&entry) else {
            continue;
        };
        let mut components = target.rsplit('/').filter(|c| !c.is_empty());
        let (Some(_own), Some(disk)) = (components.next(), components.next()) else {
            continue;
        };
        found.push(BlockPartition {
            name,
            disk: disk.to_string(),
            number,
        });
    }
    Ok(found)
}

/// Reads the GPT on `device` and returns the number of the partition whose
/// unique GUID is `wanted`, or `None` if no entry has it. Errors mean "no
/// readable GPT here" (no GPT at all, a CD drive without medium, …).
pub fn gpt_partition_number<R: Read + Seek>(
    device: R,
    block_size: u64,
    wanted: &Uuid,
) -> io::Result<Option<u32>> {
    Ok(
        gpt_partition_numbers(device, block_size, std::slice::from_ref(wanted))?
            .into_iter()
            .next()
            .flatten(),
    )
}

/// Like [`gpt_partition_number`] for several GUIDs at once, reading the
/// table once; the result is in the order of `wanted`.
pub fn gpt_partition_numbers<R: Read + Seek>(
    mut device: R,
    block_size: u64,
    wanted: &[Uuid],
) -> io::Result<Vec<Option<u32>>> {
    // The same reader the growth of /var uses (gpt_grow.rs): it refuses
    // what it does not understand (entry sizes other than 128, absurd
    // sector numbers) with an error, never a panic.
    let found = crate::gpt_grow::partition_guids(&mut device, block_size)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(wanted
        .iter()
        .map(|uuid| {
            found
                .iter()
                .find(|(_, guid)| guid == uuid)
                .map(|(number, _)| *number)
        })
        .collect())
}

/// A block device's size in 512-byte sectors, as sysfs gives it (sysfs
/// counts 512-byte units whatever the disk's sector size).
pub fn sectors_in_sysfs(sys: &mut dyn Sys, name: &str) -> Option<u64> {
    sys.read_file(&format!("{SYS_CLASS_BLOCK}/{name}/size"))
        .ok()
        .and_then(|b| String::from_utf8_lossy(&b).trim().parse().ok())
}

/// The disk's logical sector size from sysfs (512 if sysfs does not say).
pub fn logical_block_size(sys: &mut dyn Sys, disk: &str) -> u64 {
    sys.read_file(&format!(
        "{SYS_CLASS_BLOCK}/{disk}/queue/logical_block_size"
    ))
    .ok()
    .and_then(|b| String::from_utf8_lossy(&b).trim().parse().ok())
    .unwrap_or(512)
}

/// The partition numbers on `disk` of each wanted GUID; all `None` if the
/// disk has no readable GPT.
fn lookup_on_disk(sys: &mut dyn Sys, disk: &str, wanted: &[Uuid]) -> Vec<Option<u32>> {
    let block_size = logical_block_size(sys, disk);
    sys.open_block(&format!("/dev/{disk}"))
        .ok()
        .and_then(|device| gpt_partition_numbers(device, block_size, wanted).ok())
        .unwrap_or_else(|| vec![None; wanted.len()])
}

/// One round: the device node of the partition with unique GUID `wanted`, if
/// it is there now.
pub fn find_partition(sys: &mut dyn Sys, wanted: &Uuid) -> Result<Option<String>, Error> {
    Ok(find_partitions(sys, std::slice::from_ref(wanted))?
        .into_iter()
        .next()
        .flatten())
}

/// One round for several GUIDs: the device node of each that is there now,
/// in the order of `wanted`. Each disk's GPT is read at most once.
pub fn find_partitions(sys: &mut dyn Sys, wanted: &[Uuid]) -> Result<Vec<Option<String>>, Error> {
    let partitions = scan_partitions(sys)?;
    let mut per_disk: BTreeMap<String, Vec<Option<u32>>> = BTreeMap::new();
    let mut found: Vec<Option<String>> = vec![None; wanted.len()];
    for p in &partitions {
        if !per_disk.contains_key(&p.disk) {
            let numbers = lookup_on_disk(sys, &p.disk, wanted);
            per_disk.insert(p.disk.clone(), numbers);
        }
        let Some(numbers) = per_disk.get(&p.disk) else {
            continue;
        };
        for (slot, number) in found.iter_mut().zip(numbers) {
            // The first match wins, as it did with one GUID.
            if slot.is_none() && *number == Some(p.number) {
                *slot = Some(format!("/dev/{}", p.name));
            }
        }
    }
    Ok(found)
}

/// How long and how often to look for the root partition.
#[derive(Debug, Clone, Copy)]
pub struct WaitPolicy {
    pub interval: Duration,
    /// When to tell the operator we are waiting (a silent console for a
    /// minute looks like a hang).
    pub announce_after: Duration,
    pub timeout: Duration,
}

impl Default for WaitPolicy {
    fn default() -> Self {
        WaitPolicy {
            interval: Duration::from_millis(50),
            announce_after: Duration::from_secs(5),
            timeout: Duration::from_secs(60),
        }
    }
}

/// A partition stage 1 waits for: what it is for (`root partition`,
/// `verity hash partition`, used in messages) and how to find it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted<'a> {
    pub role: &'static str,
    pub spec: &'a RootSpec,
}

impl fmt::Display for Wanted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.role, self.spec)
    }
}

/// `a`, `a and b`, `a, b and c`.
fn list(items: &[String]) -> String {
    match items.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// Why partitions may be missing that a GPT lists: Linux ignores a table
/// that describes a disk bigger than the one it is on (an image written to
/// a disk too small for it, or cut short). Returns `; <disk> is …` for each
/// such disk, or nothing.
pub fn truncated_disks(sys: &mut dyn Sys) -> String {
    let Ok(names) = sys.read_dir(SYS_CLASS_BLOCK) else {
        return String::new();
    };
    let mut found = String::new();
    for name in names {
        if sys.exists(&format!("{SYS_CLASS_BLOCK}/{name}/partition")) {
            continue;
        }
        let Some(size) = sectors_in_sysfs(sys, &name).map(|sectors| sectors * 512) else {
            continue;
        };
        let block = logical_block_size(sys, &name);
        let Ok(mut device) = sys.open_block(&format!("/dev/{name}")) else {
            continue;
        };
        if let Some(declared) = crate::gpt_grow::declared_size(device.as_mut(), block) {
            if declared > size {
                found.push_str(&format!(
                    "; /dev/{name} is {} but its partition table describes {}: the image was \
                     written to a disk too small for it (or cut short), so Linux ignores the \
                     table",
                    human(size),
                    human(declared)
                ));
            }
        }
    }
    found
}

/// Polls until the root partition appears; returns its device node.
pub fn wait_for_root(
    sys: &mut dyn Sys,
    root: &RootSpec,
    policy: &WaitPolicy,
) -> Result<String, Error> {
    let wanted = Wanted {
        role: "root partition",
        spec: root,
    };
    let mut devices = wait_for_partitions(sys, &[wanted], policy)?;
    // Never empty: one device per wanted partition.
    devices.pop().ok_or_else(|| Error::PartitionTimeout {
        missing: wanted.to_string(),
        waited: policy.timeout,
        why: String::new(),
    })
}

/// Polls until every wanted partition has appeared, within one timeout
/// for all; returns their device nodes in the order of `wanted`.
pub fn wait_for_partitions(
    sys: &mut dyn Sys,
    wanted: &[Wanted<'_>],
    policy: &WaitPolicy,
) -> Result<Vec<String>, Error> {
    let uuids: Vec<Uuid> = wanted
        .iter()
        .map(|w| {
            let RootSpec::PartUuid(uuid) = w.spec;
            *uuid
        })
        .collect();
    let start = sys.now();
    let mut announced = false;
    loop {
        let found = find_partitions(sys, &uuids)?;
        if found.iter().all(Option::is_some) {
            return Ok(found.into_iter().flatten().collect());
        }
        let missing: Vec<String> = wanted
            .iter()
            .zip(&found)
            .filter(|(_, device)| device.is_none())
            .map(|(w, _)| w.to_string())
            .collect();
        let waited = sys.now().saturating_sub(start);
        if waited >= policy.timeout {
            return Err(Error::PartitionTimeout {
                missing: list(&missing),
                waited: policy.timeout,
                why: truncated_disks(sys),
            });
        }
        if waited >= policy.announce_after && !announced {
            announced = true;
            say(sys, &format!("slipway: waiting for {}", list(&missing)));
        }
        sys.sleep(policy.interval);
    }
}

/// `128 MiB`, `3.9 GiB`: sizes as an operator reads them.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let name = UNITS.get(unit).copied().unwrap_or("B");
    if unit == 0 || value.fract() == 0.0 {
        format!("{value:.0} {name}")
    } else {
        format!("{value:.1} {name}")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sys::recording::RecordingSys;
    use gpt::disk::LogicalBlockSize;
    use gpt::partition::Partition;
    use gpt::partition_types;
    use std::io::{Cursor, SeekFrom};

    pub const ROOT_A: &str = "6a4f36e5-5b1e-4d8a-9c3f-2b7e1d0c9a81";
    pub const ROOT_B: &str = "0e1c2b3a-4d5e-4f60-8a7b-9c8d7e6f5a40";
    pub const VERITY_A: &str = "5b2d8c1e-7f3a-4e69-b0d4-1a2b3c4d5e6f";
    pub const VERITY_B: &str = "9e8d7c6b-5a49-4382-a716-f5e4d3c2b1a0";
    /// The major number of the fake virtio disk `vda`.
    pub const VDA_MAJOR: u32 = 254;

    /// The size of `var` in [`disk_image`].
    pub const VAR_SIZE: u64 = 2 * 1024 * 1024;

    /// An 8 MiB disk image with an ESP, two root partitions whose PARTUUIDs
    /// are `ROOT_A` and `ROOT_B` (entries 2 and 3) and their verity hash
    /// partitions `VERITY_A` and `VERITY_B` (entries 4 and 5), 1 MiB each,
    /// then `var` (entry 6, `VAR_SIZE`), which can grow by nothing.
    pub fn disk_image(block_size: LogicalBlockSize) -> Vec<u8> {
        let size = 8 * 1024 * 1024;
        let file = tempfile::tempfile().unwrap();
        file.set_len(size).unwrap();
        let mut disk = gpt::GptConfig::new()
            .writable(true)
            .logical_block_size(block_size)
            .change_partition_count(true)
            .create_from_device(file, None)
            .unwrap();
        let lb = block_size.as_u64();
        let sectors = |bytes: u64| bytes / lb;
        let first = sectors(64 * 1024);
        let mut parts = BTreeMap::new();
        let uuid = |s: &str| Uuid::parse_str(s).unwrap();
        for (number, (name, guid, kind)) in [
            ("esp", Uuid::new_v4(), partition_types::EFI),
            ("root-a", uuid(ROOT_A), partition_types::LINUX_ROOT_X64),
            ("root-b", uuid(ROOT_B), partition_types::LINUX_ROOT_X64),
            ("root-a-verity", uuid(VERITY_A), partition_types::LINUX_FS),
            ("root-b-verity", uuid(VERITY_B), partition_types::LINUX_FS),
        ]
        .into_iter()
        .enumerate()
        {
            let start = first + sectors(1024 * 1024) * number as u64;
            parts.insert(
                number as u32 + 1,
                Partition {
                    part_type_guid: kind,
                    part_guid: guid,
                    first_lba: start,
                    last_lba: start + sectors(1024 * 1024) - 1,
                    flags: 0,
                    name: name.to_string(),
                },
            );
        }
        parts.insert(
            6,
            Partition {
                part_type_guid: partition_types::Type {
                    guid: crate::gpt_grow::VAR_TYPE,
                    os: partition_types::OperatingSystem::Custom("var".into()),
                },
                part_guid: Uuid::new_v4(),
                first_lba: first + sectors(5 * 1024 * 1024),
                last_lba: first + sectors(5 * 1024 * 1024 + VAR_SIZE) - 1,
                flags: 0,
                name: "var".to_string(),
            },
        );
        disk.update_partitions(parts).unwrap();
        let mut file = disk.write().unwrap();
        file.seek(SeekFrom::Start(0)).unwrap();
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).unwrap();
        bytes
    }

    /// sysfs and /dev for a virtio disk `vda` with five partitions of 1 MiB
    /// (`dev` is 254:N, `size` 2048 sectors), plus a CD drive `sr0` and a
    /// non-GPT disk `vdb` with one partition.
    pub fn add_block_devices(sys: &mut RecordingSys, image: Vec<u8>) {
        let devices = "../../devices/pci0000:00/0000:00:04.0/virtio1/block";
        sys.add_link(&format!("{SYS_CLASS_BLOCK}/vda"), &format!("{devices}/vda"));
        for n in 1..=6 {
            let part = format!("{SYS_CLASS_BLOCK}/vda{n}");
            let sectors = if n == 6 { VAR_SIZE / 512 } else { 2048 };
            sys.add_link(&part, &format!("{devices}/vda/vda{n}"))
                .add_file(&format!("{part}/partition"), format!("{n}\n"))
                .add_file(&format!("{part}/dev"), format!("{VDA_MAJOR}:{n}\n"))
                .add_file(&format!("{part}/size"), format!("{sectors}\n"));
        }
        sys.add_file(
            &format!("{SYS_CLASS_BLOCK}/vda/size"),
            format!("{}\n", image.len() / 512),
        );
        sys.add_file("/dev/vda", image);
        sys.add_file("/dev/vda6", ext4_superblock(VAR_SIZE / 4096));
        sys.add_link(
            &format!("{SYS_CLASS_BLOCK}/vdb"),
            "../../devices/virtio2/block/vdb",
        )
        .add_link(
            &format!("{SYS_CLASS_BLOCK}/vdb1"),
            "../../devices/virtio2/block/vdb/vdb1",
        )
        .add_file(&format!("{SYS_CLASS_BLOCK}/vdb1/partition"), "1\n")
        .add_file("/dev/vdb", vec![0u8; 64 * 1024]);
        sys.add_link(
            &format!("{SYS_CLASS_BLOCK}/sr0"),
            "../../devices/ata1/block/sr0",
        );
    }

    /// The first 2 KiB of an ext4 filesystem of `blocks` 4 KiB blocks, as
    /// far as the init reads it.
    pub fn ext4_superblock(blocks: u64) -> Vec<u8> {
        let mut fs = vec![0u8; 2048];
        let sb = &mut fs[1024..];
        sb[4..8].copy_from_slice(&(blocks as u32).to_le_bytes());
        sb[24..28].copy_from_slice(&2u32.to_le_bytes());
        sb[0x20..0x24].copy_from_slice(&32768u32.to_le_bytes());
        sb[0x28..0x2c].copy_from_slice(&8192u32.to_le_bytes());
        sb[56..58].copy_from_slice(&0xef53u16.to_le_bytes());
        sb[0x60..0x64].copy_from_slice(&0x80u32.to_le_bytes());
        sb[0x150..0x154].copy_from_slice(&((blocks >> 32) as u32).to_le_bytes());
        fs
    }

    #[test]
    fn reads_partition_number_from_an_in_memory_gpt() {
        let image = disk_image(LogicalBlockSize::Lb512);
        let a = Uuid::parse_str(ROOT_A).unwrap();
        let b = Uuid::parse_str(ROOT_B).unwrap();
        assert_eq!(
            gpt_partition_number(Cursor::new(&image), 512, &a).unwrap(),
            Some(2)
        );
        assert_eq!(
            gpt_partition_number(Cursor::new(&image), 512, &b).unwrap(),
            Some(3)
        );
        assert_eq!(
            gpt_partition_number(Cursor::new(&image), 512, &Uuid::new_v4()).unwrap(),
            None
        );
    }

    #[test]
    fn reads_4k_gpt() {
        let image = disk_image(LogicalBlockSize::Lb4096);
        let a = Uuid::parse_str(ROOT_A).unwrap();
        assert_eq!(
            gpt_partition_number(Cursor::new(&image), 4096, &a).unwrap(),
            Some(2)
        );
        // Read with the wrong block size, the table is not found.
        assert!(gpt_partition_number(Cursor::new(&image), 512, &a).is_err());
    }

    #[test]
    fn falls_back_to_the_backup_gpt() {
        let mut image = disk_image(LogicalBlockSize::Lb512);
        // Destroy the primary header.
        image[512..1024].fill(0);
        let b = Uuid::parse_str(ROOT_B).unwrap();
        assert_eq!(
            gpt_partition_number(Cursor::new(&image), 512, &b).unwrap(),
            Some(3)
        );
    }

    #[test]
    fn no_gpt_or_odd_entry_size_is_an_error_not_a_panic() {
        let a = Uuid::parse_str(ROOT_A).unwrap();
        assert!(gpt_partition_number(Cursor::new(vec![0u8; 8192]), 512, &a).is_err());
        assert!(gpt_partition_number(Cursor::new(vec![0u8; 100]), 512, &a).is_err());
        assert!(gpt_partition_number(Cursor::new(vec![0u8; 8192]), 1000, &a).is_err());

        // Valid headers announcing 256-byte entries, primary and backup
        // alike (with only the primary odd, the backup is used, as Linux
        // does).
        let mut image = disk_image(LogicalBlockSize::Lb512);
        let backup = image.len() - 512;
        for at in [512, backup] {
            let header = &mut image[at..at + 92];
            header[84..88].copy_from_slice(&256u32.to_le_bytes());
            header[16..20].fill(0);
            let crc = crc32(header);
            header[16..20].copy_from_slice(&crc.to_le_bytes());
        }
        let err = gpt_partition_number(Cursor::new(&image), 512, &a).unwrap_err();
        assert!(err.to_string().contains("entry size 256"), "{err}");
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn scans_sysfs_partitions_and_their_disks() {
        let mut sys = RecordingSys::new();
        add_block_devices(&mut sys, Vec::new());
        let found = scan_partitions(&mut sys).unwrap();
        let names: Vec<(&str, &str, u32)> = found
            .iter()
            .map(|p| (p.name.as_str(), p.disk.as_str(), p.number))
            .collect();
        assert_eq!(
            names,
            vec![
                ("vda1", "vda", 1),
                ("vda2", "vda", 2),
                ("vda3", "vda", 3),
                ("vda4", "vda", 4),
                ("vda5", "vda", 5),
                ("vda6", "vda", 6),
                ("vdb1", "vdb", 1)
            ]
        );
    }

    #[test]
    fn finds_the_partition_device_by_partuuid() {
        let mut sys = RecordingSys::new();
        add_block_devices(&mut sys, disk_image(LogicalBlockSize::Lb512));
        let b = Uuid::parse_str(ROOT_B).unwrap();
        assert_eq!(
            find_partition(&mut sys, &b).unwrap().as_deref(),
            Some("/dev/vda3")
        );
        assert_eq!(find_partition(&mut sys, &Uuid::new_v4()).unwrap(), None);
        assert!(sys.calls.is_empty(), "lookup must not change anything");
    }

    #[test]
    fn finds_several_partitions_in_one_pass() {
        let mut sys = RecordingSys::new();
        add_block_devices(&mut sys, disk_image(LogicalBlockSize::Lb512));
        let uuid = |s: &str| Uuid::parse_str(s).unwrap();
        let found =
            find_partitions(&mut sys, &[uuid(VERITY_B), Uuid::new_v4(), uuid(ROOT_B)]).unwrap();
        assert_eq!(
            found,
            vec![
                Some("/dev/vda5".to_string()),
                None,
                Some("/dev/vda3".to_string())
            ]
        );
    }

    #[test]
    fn waits_for_all_partitions_within_one_timeout() {
        let mut sys = RecordingSys::new();
        sys.add_file("/dev/console", "");
        add_block_devices(&mut sys, disk_image(LogicalBlockSize::Lb512));
        let root = RootSpec::parse(&format!("PARTUUID={ROOT_A}")).unwrap();
        let hash = RootSpec::parse("PARTUUID=11111111-2222-4333-8444-555555555555").unwrap();
        let wanted = [
            Wanted {
                role: "root partition",
                spec: &root,
            },
            Wanted {
                role: "verity hash partition",
                spec: &hash,
            },
        ];
        let err = wait_for_partitions(&mut sys, &wanted, &WaitPolicy::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "verity hash partition PARTUUID=11111111-2222-4333-8444-555555555555 \
             did not appear within 60 s"
        );
        assert_eq!(sys.clock(), Duration::from_secs(60));
        assert_eq!(
            sys.written_to("/dev/console"),
            vec![
                "slipway: waiting for verity hash partition \
                  PARTUUID=11111111-2222-4333-8444-555555555555"
            ]
        );
        assert_eq!(list(&["a".into(), "b".into(), "c".into()]), "a, b and c");
    }

    #[test]
    fn honours_the_disk_logical_block_size() {
        let mut sys = RecordingSys::new();
        add_block_devices(&mut sys, disk_image(LogicalBlockSize::Lb4096));
        let a = Uuid::parse_str(ROOT_A).unwrap();
        assert_eq!(find_partition(&mut sys, &a).unwrap(), None);
        sys.add_file(
            &format!("{SYS_CLASS_BLOCK}/vda/queue/logical_block_size"),
            "4096\n",
        );
        assert_eq!(
            find_partition(&mut sys, &a).unwrap().as_deref(),
            Some("/dev/vda2")
        );
    }

    #[test]
    fn waits_for_a_partition_that_appears_late() {
        let mut sys = RecordingSys::new();
        sys.add_file("/dev/console", "").add_dir(SYS_CLASS_BLOCK);
        let late = Duration::from_secs(7);
        let devices = "../../devices/virtio1/block";
        sys.add_file_at(late, "/dev/vda", disk_image(LogicalBlockSize::Lb512));
        sys.add_link_at(
            late,
            &format!("{SYS_CLASS_BLOCK}/vda2"),
            &format!("{devices}/vda/vda2"),
        );
        sys.add_file_at(late, &format!("{SYS_CLASS_BLOCK}/vda2/partition"), "2\n");
        let root = RootSpec::parse(&format!("PARTUUID={ROOT_A}")).unwrap();
        let device = wait_for_root(&mut sys, &root, &WaitPolicy::default()).unwrap();
        assert_eq!(device, "/dev/vda2");
        assert_eq!(sys.clock(), late);
        assert_eq!(
            sys.calls_without_polling(),
            vec![format!(
                "write /dev/console: slipway: waiting for root partition PARTUUID={ROOT_A}"
            )]
        );
    }

    #[test]
    fn times_out_after_a_minute_announcing_once() {
        let mut sys = RecordingSys::new();
        sys.add_file("/dev/console", "");
        add_block_devices(&mut sys, disk_image(LogicalBlockSize::Lb512));
        let root = RootSpec::parse("PARTUUID=11111111-2222-4333-8444-555555555555").unwrap();
        let err = wait_for_root(&mut sys, &root, &WaitPolicy::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "root partition PARTUUID=11111111-2222-4333-8444-555555555555 did not appear within 60 s"
        );
        assert_eq!(sys.clock(), Duration::from_secs(60));
        assert_eq!(sys.written_to("/dev/console").len(), 1);
        // Polled every 50 ms.
        assert_eq!(
            sys.calls.iter().filter(|c| *c == "sleep 50ms").count(),
            1200
        );
    }
}

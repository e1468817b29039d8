//! `/var`: the `var` partition's ext4, grown to fill the disk, mounted by
//! stage 1 on the new root before `switch_root`.
//!
//! The steps, each safe to cut power after (see `gpt_grow.rs` for the
//! table itself):
//!
//! 1. Find `var` in the GPT of the disk that holds the root partition, by
//!    its partition type.
//! 2. Check it holds ext4. Anything else is left alone: it might be
//!    somebody's data, and formatting is not ours to decide.
//! 3. Write the grown partition table, each write flushed before the next.
//! 4. Tell the kernel the partition's new size (`BLKPG_RESIZE_PARTITION`;
//!    the disk is busy, so re-reading the whole table is not possible).
//! 5. Mount the filesystem; the kernel replays its journal if needed.
//! 6. Grow the filesystem online to the partition (`EXT4_IOC_RESIZE_FS`).
//!    ext4 journals each step of an online resize, so a cut leaves a
//!    consistent, partly grown filesystem that the next boot grows on.
//!
//! The filesystem only grows after its partition has, so it never extends
//! past it. Any failure is reported and the boot goes on: growth failures
//! leave `/var` at its size; a `var` that cannot be mounted gets a tmpfs in
//! its place so the machine still comes up (and says, loudly, that nothing
//! written to `/var` will survive this boot). A reboot would not help: both
//! slots share `/var`.

use std::io::{Read, Seek};

use nix::mount::MsFlags;

use crate::console::say;
use crate::error::errno_text;
use crate::gpt_grow::{self, Growth};
use crate::mounts::mount_fs;
use crate::partition::{human, logical_block_size, scan_partitions, sectors_in_sysfs};
use crate::sys::Sys;

pub const FSTYPE: &str = "ext4";

/// Where `/var` ends up: mounted from the partition, or a tmpfs stand-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarMount {
    Ext4 { device: String },
    Tmpfs,
}

/// The fields of an ext4 superblock we need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ext4Super {
    pub block_size: u64,
    pub blocks: u64,
    pub blocks_per_group: u64,
    pub inodes_per_group: u64,
}

impl Ext4Super {
    /// The most blocks this filesystem can grow to: the inode count is a
    /// 32-bit number, so the group count is bounded by 2^32 / inodes per
    /// group (about 64 TiB with our 4 KiB blocks and 16 KiB per inode).
    /// The kernel refuses a whole resize that passes it, so we stop there.
    pub fn max_blocks(&self) -> u64 {
        match u64::from(u32::MAX).checked_div(self.inodes_per_group) {
            Some(groups) => groups.saturating_mul(self.blocks_per_group),
            None => u64::MAX,
        }
    }
}

const EXT4_MAGIC: u16 = 0xef53;
const INCOMPAT_64BIT: u32 = 0x80;

/// Parses the superblock (the 1024 bytes at byte 1024 of the partition);
/// `None` if it is not ext2/3/4.
pub fn parse_superblock(sb: &[u8]) -> Option<Ext4Super> {
    let u32_at = |at: usize| -> Option<u32> {
        let mut v = [0u8; 4];
        v.copy_from_slice(sb.get(at..at + 4)?);
        Some(u32::from_le_bytes(v))
    };
    let magic = u16::from_le_bytes([*sb.get(56)?, *sb.get(57)?]);
    if magic != EXT4_MAGIC {
        return None;
    }
    let log = u32_at(24)?;
    if log > 6 {
        return None; // blocks above 64 KiB do not exist
    }
    let mut blocks = u64::from(u32_at(4)?);
    if u32_at(0x60)? & INCOMPAT_64BIT != 0 {
        blocks |= u64::from(u32_at(0x150)?) << 32;
    }
    Some(Ext4Super {
        block_size: 1024 << log,
        blocks,
        blocks_per_group: u64::from(u32_at(0x20)?),
        inodes_per_group: u64::from(u32_at(0x28)?),
    })
}

fn read_superblock(sys: &mut dyn Sys, device: &str) -> Result<Option<Ext4Super>, String> {
    let mut dev = sys
        .open_block(device)
        .map_err(|e| format!("opening it: {}", errno_text(e)))?;
    let mut sb = vec![0u8; 1024];
    dev.seek(std::io::SeekFrom::Start(1024))
        .and_then(|_| dev.read_exact(&mut sb))
        .map_err(|e| format!("reading its superblock: {e}"))?;
    Ok(parse_superblock(&sb))
}

/// Mounts `/var` on `target` (`/sysroot/var`); `root` is the root
/// partition's device node, which says which disk to look on.
pub fn mount(sys: &mut dyn Sys, root: &str, target: &str) -> VarMount {
    match mount_partition(sys, root, target) {
        Ok(device) => VarMount::Ext4 { device },
        Err(reason) => {
            say(sys, &format!("slipway: /var: {reason}"));
            say(
                sys,
                "slipway: WARNING: /var is a tmpfs for this boot: nothing written to /var or \
                 /etc will survive a reboot",
            );
            let tmpfs = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
            if let Err(e) = mount_fs(sys, "tmpfs", target, "tmpfs", tmpfs, Some("mode=0755")) {
                say(sys, &format!("slipway: /var: {}", crate::error::chain(&e)));
            }
            VarMount::Tmpfs
        }
    }
}

/// Steps 1 to 6; `Err` is the reason `/var` cannot be mounted at all.
fn mount_partition(sys: &mut dyn Sys, root: &str, target: &str) -> Result<String, String> {
    let root_name = root.trim_start_matches("/dev/");
    let partitions = scan_partitions(sys).map_err(|e| crate::error::chain(&e))?;
    let disk_name = partitions
        .iter()
        .find(|p| p.name == root_name)
        .map(|p| p.disk.clone())
        .ok_or_else(|| format!("cannot tell which disk holds the root partition {root}"))?;
    let disk = format!("/dev/{disk_name}");
    let block = logical_block_size(sys, &disk_name);
    let disk_bytes = sectors_in_sysfs(sys, &disk_name)
        .ok_or_else(|| format!("cannot read the size of {disk}"))?
        * 512;

    // 1. Where var is, and how it could grow.
    let growth = sys
        .open_block(&disk)
        .map_err(|e| format!("opening {disk}: {}", errno_text(e)))
        .and_then(|mut dev| {
            gpt_grow::plan(dev.as_mut(), block, disk_bytes).map_err(|e| format!("{disk}: {e}"))
        })?;
    let device = partitions
        .iter()
        .find(|p| p.disk == disk_name && p.number == growth.var_number)
        .map(|p| format!("/dev/{}", p.name))
        .ok_or_else(|| {
            format!(
                "the kernel shows no partition {} on {disk}, where the GPT has var",
                growth.var_number
            )
        })?;

    // 2. Only ever touch an ext4 partition.
    match read_superblock(sys, &device) {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Err(format!(
                "{device} (partition {} of {disk}) holds no ext4 filesystem; left untouched",
                growth.var_number
            ))
        }
        Err(e) => return Err(format!("{device}: {e}")),
    }

    // 3 and 4. The partition.
    let partition_bytes = grow_partition(sys, &disk, &device, &growth);

    // 5. Mount.
    mount_fs(sys, &device, target, FSTYPE, MsFlags::empty(), None)
        .map_err(|e| crate::error::chain(&e))?;

    // 6. The filesystem.
    grow_filesystem(sys, &device, target, partition_bytes);
    Ok(device)
}

/// Writes the planned table and updates the kernel's view; returns the
/// partition size the kernel now has, which bounds the filesystem.
fn grow_partition(sys: &mut dyn Sys, disk: &str, device: &str, growth: &Growth) -> u64 {
    let name = device.trim_start_matches("/dev/");
    let kernel_bytes = sectors_in_sysfs(sys, name).map_or(growth.var_old_size, |s| s * 512);
    if let Some(reason) = &growth.cannot_grow {
        say(
            sys,
            &format!("slipway: /var: not growing {device}: {reason}"),
        );
        return kernel_bytes;
    }
    if growth.repairs_primary {
        say(
            sys,
            &format!("slipway: /var: the primary GPT of {disk} is damaged; rebuilding it from the backup"),
        );
    }
    for write in &growth.writes {
        let result = sys.write_block(disk, write.offset, &write.data);
        if let (Err(errno), gpt_grow::MBR_WRITE) = (result, write.what) {
            // Both tables are already grown; the MBR's size is cosmetic.
            say(
                sys,
                &format!(
                    "slipway: /var: writing the protective MBR of {disk}: {}",
                    errno_text(errno)
                ),
            );
            continue;
        }
        if let Err(errno) = result {
            say(
                sys,
                &format!(
                    "slipway: /var: writing the {} of {disk}: {}; {device} keeps its size",
                    write.what,
                    errno_text(errno)
                ),
            );
            return kernel_bytes;
        }
    }
    if growth.var_new_size != growth.var_old_size {
        say(
            sys,
            &format!(
                "slipway: /var: partition {device} grown from {} to {}",
                human(growth.var_old_size),
                human(growth.var_new_size)
            ),
        );
    }
    if kernel_bytes == growth.var_new_size {
        return kernel_bytes;
    }
    match sys.resize_partition(
        disk,
        growth.var_number,
        growth.var_offset,
        growth.var_new_size,
    ) {
        Ok(()) => growth.var_new_size,
        Err(errno) => {
            say(
                sys,
                &format!(
                    "slipway: /var: telling the kernel {device} grew: {}; the filesystem \
                     grows at the next boot",
                    errno_text(errno)
                ),
            );
            kernel_bytes
        }
    }
}

/// Grows the mounted ext4 to fill `partition_bytes`.
fn grow_filesystem(sys: &mut dyn Sys, device: &str, mount_point: &str, partition_bytes: u64) {
    // Read after mounting: the kernel has replayed the journal, and the
    // block device's cache holds the superblock the filesystem uses.
    let sb = match read_superblock(sys, device) {
        Ok(Some(sb)) => sb,
        Ok(None) => return,
        Err(e) => {
            say(sys, &format!("slipway: /var: {device}: {e}"));
            return;
        }
    };
    let fs_bytes = sb.blocks * sb.block_size;
    let fits = partition_bytes / sb.block_size;
    let want = fits.min(sb.max_blocks());
    if want < fits {
        say(
            sys,
            &format!(
                "slipway: /var: {FSTYPE} on {device} can hold at most {} of the {} partition \
                 (its inode count would pass 2^32); growing it that far",
                human(want.saturating_mul(sb.block_size)),
                human(partition_bytes)
            ),
        );
    }
    if want <= sb.blocks {
        say(
            sys,
            &format!(
                "slipway: /var: {device} mounted ({FSTYPE}, {})",
                human(fs_bytes)
            ),
        );
        return;
    }
    match sys.resize_ext4(mount_point, want) {
        Ok(()) => say(
            sys,
            &format!(
                "slipway: /var: {FSTYPE} on {device} grown from {} to {}",
                human(fs_bytes),
                human(want * sb.block_size)
            ),
        ),
        Err(errno) => say(
            sys,
            &format!(
                "slipway: /var: growing {FSTYPE} on {device}: {}; it stays at {}",
                errno_text(errno),
                human(fs_bytes)
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::tests::{add_block_devices, disk_image, ext4_superblock, VAR_SIZE};
    use crate::sys::recording::RecordingSys;
    use gpt::disk::LogicalBlockSize;
    use nix::errno::Errno;

    const MIB: u64 = 1024 * 1024;

    /// The test disk, copied onto a disk of `size` bytes.
    fn on_disk_of(size: u64) -> RecordingSys {
        let mut image = disk_image(LogicalBlockSize::Lb512);
        image.resize(size as usize, 0);
        let mut sys = RecordingSys::new();
        sys.add_file("/dev/console", "");
        add_block_devices(&mut sys, image);
        sys
    }

    fn console(sys: &RecordingSys) -> Vec<String> {
        sys.written_to("/dev/console")
    }

    #[test]
    fn grows_table_then_kernel_view_then_filesystem_in_that_order() {
        let mut sys = on_disk_of(64 * MIB);
        assert_eq!(
            mount(&mut sys, "/dev/vda3", "/sysroot/var"),
            VarMount::Ext4 {
                device: "/dev/vda6".into()
            }
        );
        // var starts at 5 MiB + 64 KiB; the last 1 MiB boundary that leaves
        // room for the backup table is 58 MiB after it.
        let new_size = 58 * MIB;
        let start = 5 * MIB + 64 * 1024;
        let last = 64 * MIB / 512 - 1;
        assert_eq!(
            sys.calls,
            vec![
                format!(
                    "write_block /dev/vda at {}: {} bytes",
                    (last - 32) * 512,
                    33 * 512
                ),
                // The header and the first two entry sectors (var is entry
                // 6, at byte 640 of the array): one physical 4 KiB sector.
                "write_block /dev/vda at 512: 1536 bytes".to_string(),
                format!(
                    "write /dev/console: slipway: /var: partition /dev/vda6 grown from 2 MiB \
                     to 58 MiB"
                ),
                format!("resize_partition /dev/vda 6 start={start} length={new_size}"),
                "mount /dev/vda6 /sysroot/var ext4".to_string(),
                format!("resize_ext4 /sysroot/var {}", new_size / 4096),
                "write /dev/console: slipway: /var: ext4 on /dev/vda6 grown from 2 MiB to 58 MiB"
                    .to_string(),
            ]
        );
        // The disk now holds the grown table: a second plan has nothing to
        // write.
        let mut disk = sys.open_block("/dev/vda").unwrap();
        let again = gpt_grow::plan(disk.as_mut(), 512, 64 * MIB).unwrap();
        assert_eq!(again.writes, vec![]);
        assert_eq!(again.var_new_size, new_size);
    }

    #[test]
    fn a_partition_that_is_not_ext4_is_left_alone_and_var_is_a_tmpfs() {
        let mut sys = on_disk_of(64 * MIB);
        sys.add_file("/dev/vda6", vec![0u8; 4096]);
        assert_eq!(
            mount(&mut sys, "/dev/vda3", "/sysroot/var"),
            VarMount::Tmpfs
        );
        assert!(!sys.calls.iter().any(|c| c.starts_with("write_block")));
        assert_eq!(
            console(&sys),
            vec![
                "slipway: /var: /dev/vda6 (partition 6 of /dev/vda) holds no ext4 filesystem; \
                 left untouched",
                "slipway: WARNING: /var is a tmpfs for this boot: nothing written to /var or \
                 /etc will survive a reboot",
            ]
        );
        assert!(sys
            .calls
            .contains(&"mount tmpfs /sysroot/var tmpfs nosuid,nodev,mode=0755".to_string()));
    }

    #[test]
    fn a_failed_table_write_keeps_the_size_and_still_mounts() {
        let mut sys = on_disk_of(64 * MIB);
        let last = 64 * MIB / 512 - 1;
        sys.fail(
            &format!(
                "write_block /dev/vda at {}: {} bytes",
                (last - 32) * 512,
                33 * 512
            ),
            Errno::EIO,
        );
        assert_eq!(
            mount(&mut sys, "/dev/vda3", "/sysroot/var"),
            VarMount::Ext4 {
                device: "/dev/vda6".into()
            }
        );
        assert!(!sys.calls.iter().any(|c| c.starts_with("resize_")));
        assert_eq!(
            console(&sys),
            vec![
                "slipway: /var: writing the backup GPT of /dev/vda: I/O error; \
                 /dev/vda6 keeps its size",
                "slipway: /var: /dev/vda6 mounted (ext4, 2 MiB)",
            ]
        );
    }

    #[test]
    fn a_failed_protective_mbr_write_does_not_stop_the_growth() {
        let mut sys = on_disk_of(64 * MIB);
        // The test image has a protective MBR sized for 8 MiB.
        let mut image = sys.read_file("/dev/vda").unwrap();
        image[446 + 4] = 0xee;
        image[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
        image[446 + 12..446 + 16].copy_from_slice(&(8 * MIB as u32 / 512 - 1).to_le_bytes());
        image[510..512].copy_from_slice(&[0x55, 0xaa]);
        sys.add_file("/dev/vda", image);
        sys.fail("write_block /dev/vda at 0: 512 bytes", Errno::EIO);
        mount(&mut sys, "/dev/vda3", "/sysroot/var");
        assert!(sys
            .calls
            .iter()
            .any(|c| c.starts_with("resize_partition /dev/vda 6")));
        assert!(console(&sys).contains(
            &"slipway: /var: writing the protective MBR of /dev/vda: I/O error".to_string()
        ));
    }

    #[test]
    fn growth_stops_where_the_inode_count_would_overflow() {
        let mut sys = on_disk_of(64 * MIB);
        // A filesystem whose inode count allows a single group of 1024
        // blocks (4 MiB): the limit is reached long before the partition.
        let mut fs = ext4_superblock(VAR_SIZE / 4096);
        fs[1024 + 0x20..1024 + 0x24].copy_from_slice(&1024u32.to_le_bytes());
        fs[1024 + 0x28..1024 + 0x2c].copy_from_slice(&(1u32 << 31).to_le_bytes());
        sys.add_file("/dev/vda6", fs);
        mount(&mut sys, "/dev/vda3", "/sysroot/var");
        assert!(sys
            .calls
            .contains(&"resize_ext4 /sysroot/var 1024".to_string()));
        assert!(console(&sys).contains(
            &"slipway: /var: ext4 on /dev/vda6 can hold at most 4 MiB of the 58 MiB partition \
              (its inode count would pass 2^32); growing it that far"
                .to_string()
        ));
    }

    #[test]
    fn a_failed_mount_falls_back_to_tmpfs_and_says_why() {
        let mut sys = on_disk_of(8 * MIB);
        sys.fail("mount /dev/vda6 /sysroot/var ext4", Errno::EUCLEAN);
        assert_eq!(
            mount(&mut sys, "/dev/vda3", "/sysroot/var"),
            VarMount::Tmpfs
        );
        assert_eq!(
            console(&sys)[0],
            "slipway: /var: mounting /dev/vda6 on /sysroot/var (ext4): Structure needs cleaning"
        );
    }

    #[test]
    fn a_filesystem_that_already_fills_its_partition_is_not_resized() {
        let mut sys = on_disk_of(8 * MIB);
        sys.add_file("/dev/vda6", ext4_superblock(VAR_SIZE / 4096));
        mount(&mut sys, "/dev/vda3", "/sysroot/var");
        assert_eq!(
            sys.calls,
            vec![
                "mount /dev/vda6 /sysroot/var ext4",
                "write /dev/console: slipway: /var: /dev/vda6 mounted (ext4, 2 MiB)",
            ]
        );
    }

    #[test]
    fn a_disk_smaller_than_the_table_is_reported_and_var_still_mounts() {
        // The kernel would not show partitions of such a disk without
        // `gpt`; if it does, var is mounted as it is and never grown.
        let mut sys = on_disk_of(8 * MIB);
        sys.add_file("/sys/class/block/vda/size", format!("{}\n", 7 * MIB / 512));
        mount(&mut sys, "/dev/vda3", "/sysroot/var");
        assert_eq!(
            console(&sys)[0],
            format!(
                "slipway: /var: not growing /dev/vda6: the disk is {} bytes but its partition \
                 table describes {}: the disk is smaller than the image written to it",
                7 * MIB,
                8 * MIB
            )
        );
        assert!(!sys.calls.iter().any(|c| c.starts_with("write_block")));
    }

    #[test]
    fn superblocks_and_sizes_read_as_expected() {
        assert_eq!(
            parse_superblock(&ext4_superblock(5 << 32 | 7)[1024..]),
            Some(Ext4Super {
                block_size: 4096,
                blocks: 5 << 32 | 7,
                blocks_per_group: 32768,
                inodes_per_group: 8192,
            })
        );
        // 4 KiB blocks, 16 KiB per inode: 2^32 inodes at 64 TiB.
        let sb = parse_superblock(&ext4_superblock(1)[1024..]).unwrap();
        // (2^32 - 1) / 8192 = 524287 whole groups of 128 MiB.
        assert_eq!(sb.max_blocks() * 4096, (64 << 40) - 128 * MIB);
        assert_eq!(parse_superblock(&[0u8; 1024]), None);
        assert_eq!(human(128 * MIB), "128 MiB");
        assert_eq!(human(4 * 1024 * MIB - 34 * 512), "4.0 GiB");
        assert_eq!(human(3993 * MIB), "3.9 GiB");
        assert_eq!(human(512), "512 B");
    }
}

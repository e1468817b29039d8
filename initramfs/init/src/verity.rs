//! The verified root: a dm-verity device over the slot's root partition,
//! checked against its hash partition and the root hash from the command
//! line, set up with device-mapper ioctls through [`Sys`].
//!
//! The table follows Documentation/admin-guide/device-mapper/verity.rst:
//! `<version> <dev> <hash_dev> <data_block_size> <hash_block_size>
//! <num_data_blocks> <hash_start_block> <algorithm> <digest> <salt>`.

use nix::errno::Errno;

use crate::cmdline::{VerityArgs, VERITY_BLOCK_SIZE};
use crate::console::say;
use crate::dm::DmTarget;
use crate::error::{errno_text, Context, Error};
use crate::partition::SYS_CLASS_BLOCK;
use crate::sys::Sys;
use crate::verity_error::SECTOR_SIZE;
pub use crate::verity_error::{VerityError, DM_NAME};

/// The one-target table: the whole data area of `data_dev` (`major:minor`
/// or a path), checked against the tree on `hash_dev`.
///
/// Format 1 (salt first, digests padded to a power of two), 4096-byte
/// data and hash blocks, sha256. The tree starts at hash block 1: block 0
/// of the hash partition holds the superblock `veritysetup format` writes
/// (the kernel ignores it; the image builder lays the partition out that
/// way).
pub fn verity_target(args: &VerityArgs, data_dev: &str, hash_dev: &str) -> DmTarget {
    let block = VERITY_BLOCK_SIZE;
    DmTarget {
        start: 0,
        // The command line parser refused counts whose bytes overflow.
        length: args.data_blocks.saturating_mul(block / SECTOR_SIZE),
        target_type: "verity".to_string(),
        params: format!(
            "1 {data_dev} {hash_dev} {block} {block} {} 1 sha256 {} {}",
            args.data_blocks, args.root_hash, args.salt
        ),
    }
}

/// `/dev/vda3` → `vda3`, the entry in `/sys/class/block`.
fn sysfs_name(device: &str) -> &str {
    device.strip_prefix("/dev/").unwrap_or(device)
}

/// The `major:minor` of a partition node, from sysfs (`/dev/vda3` →
/// `254:3`): the form the kernel parses without a path lookup.
pub fn device_number(sys: &mut dyn Sys, device: &str) -> Result<String, Error> {
    let path = format!("{SYS_CLASS_BLOCK}/{}/dev", sysfs_name(device));
    let bytes = sys.read_file(&path).context(|| format!("reading {path}"))?;
    let text = String::from_utf8_lossy(&bytes).trim().to_string();
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match text.split_once(':') {
        Some((major, minor)) if numeric(major) && numeric(minor) => Ok(text),
        _ => Err(VerityError::BadDevNumber { path, text }.into()),
    }
}

/// Refuses a block count beyond the data partition, which the kernel
/// would only report as `EINVAL` when the table goes live. A size sysfs
/// does not give is not checked.
fn check_data_size(sys: &mut dyn Sys, args: &VerityArgs, device: &str) -> Result<(), Error> {
    let path = format!("{SYS_CLASS_BLOCK}/{}/size", sysfs_name(device));
    let Some(sectors) = sys
        .read_file(&path)
        .ok()
        .and_then(|b| String::from_utf8_lossy(&b).trim().parse::<u64>().ok())
    else {
        return Ok(());
    };
    let needed = args
        .data_blocks
        .saturating_mul(VERITY_BLOCK_SIZE / SECTOR_SIZE);
    if needed > sectors {
        return Err(VerityError::DataTooSmall {
            blocks: args.data_blocks,
            device: device.to_string(),
            sectors,
        }
        .into());
    }
    Ok(())
}

/// What a failed `DM_TABLE_LOAD` most likely means. The kernel log has
/// the target's own reason; the console line must be enough to act on.
fn load_error(errno: Errno, table: String) -> VerityError {
    match errno {
        // Also an unknown target type: without dm_verity, "verity" is one.
        Errno::EINVAL => VerityError::Rejected { errno, table },
        Errno::EBUSY => VerityError::Busy { table },
        Errno::ENXIO | Errno::ENODEV | Errno::ENOENT => VerityError::NoDevice { errno, table },
        _ => VerityError::Load { errno, table },
    }
}

/// Sets up the verified root over `data` (the root partition) and `hash`
/// (its verity hash partition) and returns its node, `/dev/dm-<minor>`.
/// Nothing is left behind on failure.
pub fn activate(
    sys: &mut dyn Sys,
    args: &VerityArgs,
    data: &str,
    hash: &str,
) -> Result<String, Error> {
    let version = sys.dm_version().map_err(|errno| match errno {
        // No control node, or no driver behind it.
        Errno::ENOENT | Errno::ENODEV | Errno::ENXIO => VerityError::Unavailable,
        errno => VerityError::Version(errno),
    })?;
    if version.first() != Some(&4) {
        return Err(VerityError::UnsupportedVersion(version).into());
    }
    check_data_size(sys, args, data)?;
    let target = verity_target(args, &device_number(sys, data)?, &device_number(sys, hash)?);

    // Read-only throughout: dm-verity refuses a table loaded read-write.
    let (_major, minor) = sys.dm_create(DM_NAME, true).map_err(|errno| match errno {
        Errno::EBUSY => VerityError::Exists,
        errno => VerityError::Create(errno),
    })?;
    let live = sys
        .dm_load_table(DM_NAME, true, std::slice::from_ref(&target))
        .map_err(|errno| load_error(errno, target.to_string()))
        .and_then(|()| sys.dm_resume(DM_NAME).map_err(VerityError::Resume));
    if let Err(e) = live {
        deactivate(sys);
        return Err(e.into());
    }
    Ok(format!("/dev/dm-{minor}"))
}

/// Removes the verity device after a failure. Its own failure is only
/// noted: the first error is the one that explains the boot.
pub fn deactivate(sys: &mut dyn Sys) {
    if let Err(errno) = sys.dm_remove(DM_NAME) {
        say(
            sys,
            &format!(
                "slipway: removing device-mapper device {DM_NAME}: {}",
                errno_text(errno)
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdline::{HexDigest, RootSpec, ROOTHASH_KEY, VERITY_SALT_KEY};
    use crate::sys::recording::RecordingSys;

    pub const ROOTHASH: &str = "4392a8f0e2c1b7d6a5f4e3d2c1b0a9f8e7d6c5b4a3928170f6e5d4c3b2a19080";
    pub const SALT: &str = "0011223344556677889900aabbccddeeff00112233445566778899aabbccddee";

    fn args(blocks: u64) -> VerityArgs {
        VerityArgs {
            root_hash: HexDigest::parse(ROOTHASH_KEY, ROOTHASH, "sha256").unwrap(),
            hash_partition: RootSpec::parse_for(
                "slipway.verity_hash",
                "PARTUUID=5b2d8c1e-7f3a-4e69-b0d4-1a2b3c4d5e6f",
            )
            .unwrap(),
            salt: HexDigest::parse(VERITY_SALT_KEY, SALT, "salt").unwrap(),
            data_blocks: blocks,
        }
    }

    fn block_devices() -> RecordingSys {
        let mut sys = RecordingSys::new();
        sys.add_file("/sys/class/block/vda2/dev", "254:2\n")
            .add_file("/sys/class/block/vda2/size", "2048\n")
            .add_file("/sys/class/block/vda4/dev", "254:4\n");
        sys
    }

    fn table(blocks: u64) -> String {
        format!(
            "0 {} verity 1 254:2 254:4 4096 4096 {blocks} 1 sha256 {ROOTHASH} {SALT}",
            blocks * 8
        )
    }

    #[test]
    fn the_table_is_the_documented_one() {
        assert_eq!(
            verity_target(&args(256), "254:2", "/dev/vda4").to_string(),
            format!("0 2048 verity 1 254:2 /dev/vda4 4096 4096 256 1 sha256 {ROOTHASH} {SALT}")
        );
    }

    #[test]
    fn activates_read_only_and_returns_the_dm_node() {
        let mut sys = block_devices();
        let device = activate(&mut sys, &args(256), "/dev/vda2", "/dev/vda4").unwrap();
        assert_eq!(device, "/dev/dm-0");
        assert_eq!(
            sys.calls,
            vec![
                "dm_version".to_string(),
                "dm_create root ro".to_string(),
                format!("dm_load root ro: {}", table(256)),
                "dm_resume root".to_string(),
            ]
        );
    }

    #[test]
    fn missing_control_node_asks_about_dm_mod() {
        let mut sys = block_devices();
        sys.fail("dm_version", Errno::ENOENT);
        let err = activate(&mut sys, &args(256), "/dev/vda2", "/dev/vda4").unwrap_err();
        assert_eq!(
            err.to_string(),
            "device-mapper not available (/dev/mapper/control missing): is dm_mod loaded?"
        );
        assert_eq!(sys.calls, vec!["dm_version"]);

        let mut sys = block_devices();
        sys.fail("dm_version", Errno::EACCES);
        let err = activate(&mut sys, &args(256), "/dev/vda2", "/dev/vda4").unwrap_err();
        assert_eq!(
            err.to_string(),
            "device-mapper version check on /dev/mapper/control: Permission denied"
        );

        let mut sys = block_devices();
        sys.set_dm_version([5, 0, 0]);
        let err = activate(&mut sys, &args(256), "/dev/vda2", "/dev/vda4").unwrap_err();
        assert_eq!(
            err.to_string(),
            "device-mapper ioctl interface 5.0.0 is not supported (need 4.x)"
        );
        assert_eq!(sys.calls, vec!["dm_version"]);
    }

    #[test]
    fn table_load_errors_are_explained_and_the_device_removed() {
        for (errno, message) in [
            (
                Errno::EINVAL,
                format!(
                    "device-mapper rejected the verity table (Invalid argument): \
                     is dm_verity loaded? table: {}",
                    table(256)
                ),
            ),
            (
                Errno::EBUSY,
                format!(
                    "device-mapper could not open the devices of the verity table \
                     (Device or resource busy): already mounted or mapped? table: {}",
                    table(256)
                ),
            ),
            (
                Errno::ENXIO,
                format!(
                    "device-mapper could not find the devices of the verity table \
                     (No such device or address): table: {}",
                    table(256)
                ),
            ),
            (
                Errno::ENOMEM,
                format!(
                    "loading the verity table into device-mapper device root: \
                     Out of memory: table: {}",
                    table(256)
                ),
            ),
        ] {
            let mut sys = block_devices();
            sys.fail(&format!("dm_load root ro: {}", table(256)), errno);
            let err = activate(&mut sys, &args(256), "/dev/vda2", "/dev/vda4").unwrap_err();
            assert_eq!(err.to_string(), message);
            assert_eq!(sys.calls.last().unwrap(), "dm_remove root");
            assert!(!sys.calls.contains(&"dm_resume root".to_string()));
        }
    }

    #[test]
    fn create_and_resume_errors() {
        let mut sys = block_devices();
        sys.fail("dm_create root ro", Errno::EBUSY);
        let err = activate(&mut sys, &args(256), "/dev/vda2", "/dev/vda4").unwrap_err();
        assert_eq!(err.to_string(), "device-mapper device root already exists");
        // Not ours: left alone.
        assert!(!sys.calls.contains(&"dm_remove root".to_string()));

        let mut sys = block_devices();
        sys.fail("dm_create root ro", Errno::ENOMEM);
        let err = activate(&mut sys, &args(256), "/dev/vda2", "/dev/vda4").unwrap_err();
        assert_eq!(
            err.to_string(),
            "creating device-mapper device root (verity root): Out of memory"
        );

        let mut sys = block_devices();
        sys.add_file("/dev/console", "");
        sys.fail("dm_resume root", Errno::EINVAL);
        // A failed remove is noted and does not hide the first error.
        sys.fail("dm_remove root", Errno::EBUSY);
        let err = activate(&mut sys, &args(256), "/dev/vda2", "/dev/vda4").unwrap_err();
        assert_eq!(
            err.to_string(),
            "activating device-mapper device root (verity root): Invalid argument"
        );
        assert_eq!(
            sys.calls[sys.calls.len() - 2..],
            [
                "dm_remove root",
                "write /dev/console: slipway: removing device-mapper device root: \
                 Device or resource busy"
            ]
        );
    }

    #[test]
    fn block_count_beyond_the_partition_is_refused_before_device_mapper() {
        let mut sys = block_devices();
        let err = activate(&mut sys, &args(257), "/dev/vda2", "/dev/vda4").unwrap_err();
        assert_eq!(
            err.to_string(),
            "slipway.verity_blocks=257 covers 1052672 bytes, but the root partition \
             /dev/vda2 has only 1048576 bytes"
        );
        assert_eq!(sys.calls, vec!["dm_version"]);
    }

    #[test]
    fn device_numbers_come_from_sysfs() {
        let mut sys = block_devices();
        sys.add_file("/sys/class/block/vdb1/dev", "garbage\n");
        assert_eq!(device_number(&mut sys, "/dev/vda4").unwrap(), "254:4");
        assert_eq!(
            device_number(&mut sys, "/dev/vdb1")
                .unwrap_err()
                .to_string(),
            "unexpected device number \"garbage\" in /sys/class/block/vdb1/dev"
        );
        assert_eq!(
            device_number(&mut sys, "/dev/vdc1")
                .unwrap_err()
                .to_string(),
            "reading /sys/class/block/vdc1/dev: No such file or directory"
        );
    }
}

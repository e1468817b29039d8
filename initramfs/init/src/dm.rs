//! Device-mapper through its ioctl interface (`linux/dm-ioctl.h`), without
//! libdevmapper or dmsetup.
//!
//! Every request is one buffer: a `struct dm_ioctl` header (312 bytes) and,
//! for `DM_TABLE_LOAD`, the targets after it, each a `struct
//! dm_target_spec` (40 bytes) followed by its NUL-terminated parameter
//! string, padded so the next spec is 8-byte aligned. The kernel learns the
//! buffer's length from `data_size` and writes its answer into the same
//! buffer. The buffers are built and read here in safe code, field by field
//! at the header's offsets; [`crate::ioctl::dm_ioctl`] only hands them over.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;

use nix::errno::Errno;

pub use crate::ioctl::dm_data_size as data_size;
use crate::ioctl::{dm_ioctl, DmCommand, DM_DATA_SIZE_OFFSET, DM_HEADER_SIZE};
use crate::sys::types::io_errno;
pub use crate::sys::types::DmTarget;

/// The control node; devtmpfs creates it when `dm_mod` is loaded.
pub const CONTROL: &str = "/dev/mapper/control";

/// `sizeof(struct dm_ioctl)`.
pub const HEADER_SIZE: usize = DM_HEADER_SIZE;
/// `sizeof(struct dm_target_spec)`.
pub const TARGET_SPEC_SIZE: usize = 40;
/// `DM_NAME_LEN`, including the NUL.
pub const NAME_LEN: usize = 128;
/// `DM_MAX_TYPE_NAME`, including the NUL.
pub const MAX_TYPE_NAME: usize = 16;
/// The interface version we speak. The kernel accepts any request whose
/// major number is its own (4) and whose minor is not newer; 4.0.0 asks for
/// nothing beyond the original v4 commands.
pub const VERSION: [u32; 3] = [4, 0, 0];

/// `DM_READONLY_FLAG`: on `DM_TABLE_LOAD`, open the table's devices
/// read-only (dm-verity refuses a writable table) and make the device
/// read-only when the table goes live.
pub const READONLY_FLAG: u32 = 1 << 0;
/// `DM_SUSPEND_FLAG`: on `DM_DEV_SUSPEND`, suspend; without it, resume.
pub const SUSPEND_FLAG: u32 = 1 << 1;

/// Byte offsets in `struct dm_ioctl`.
mod header {
    pub const VERSION: usize = 0;
    pub const DATA_SIZE: usize = super::DM_DATA_SIZE_OFFSET;
    pub const DATA_START: usize = 16;
    pub const TARGET_COUNT: usize = 20;
    pub const FLAGS: usize = 28;
    pub const DEV: usize = 40;
    pub const NAME: usize = 48;
}

/// Byte offsets in `struct dm_target_spec`.
mod spec {
    pub const SECTOR_START: usize = 0;
    pub const LENGTH: usize = 8;
    pub const NEXT: usize = 20;
    pub const TARGET_TYPE: usize = 24;
}

fn put(buf: &mut [u8], offset: usize, bytes: &[u8]) -> Result<(), Errno> {
    buf.get_mut(offset..offset + bytes.len())
        .ok_or(Errno::EINVAL)?
        .copy_from_slice(bytes);
    Ok(())
}

fn get<const N: usize>(buf: &[u8], offset: usize) -> Option<[u8; N]> {
    buf.get(offset..offset + N)?.try_into().ok()
}

/// A string field: at most `max - 1` bytes (room for the kernel's NUL), no
/// NUL inside.
fn check_str(s: &str, max: usize) -> Result<(), Errno> {
    if s.len() >= max || s.contains('\0') {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// Rounds up to the 8-byte alignment of `struct dm_target_spec`.
fn align8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

/// The request buffer for device `name` (empty for `DM_VERSION`) with
/// `flags` and, for `DM_TABLE_LOAD`, `targets`. `EINVAL` for what the
/// kernel would refuse anyway: a name too long or with a `/` or NUL, a
/// target type too long, a NUL in the parameters.
pub fn request(name: &str, flags: u32, targets: &[DmTarget]) -> Result<Vec<u8>, Errno> {
    check_str(name, NAME_LEN)?;
    if name.contains('/') {
        return Err(Errno::EINVAL);
    }
    let mut specs = Vec::new();
    for target in targets {
        check_str(&target.target_type, MAX_TYPE_NAME)?;
        if target.params.contains('\0') {
            return Err(Errno::EINVAL);
        }
        // The spec, the parameters and their NUL, padded; the zero padding
        // also provides the NUL.
        let size = align8(TARGET_SPEC_SIZE + target.params.len() + 1);
        let mut one = vec![0u8; size];
        put(&mut one, spec::SECTOR_START, &target.start.to_ne_bytes())?;
        put(&mut one, spec::LENGTH, &target.length.to_ne_bytes())?;
        // From the start of this spec to the start of the next one.
        let next = u32::try_from(size).map_err(|_| Errno::EINVAL)?;
        put(&mut one, spec::NEXT, &next.to_ne_bytes())?;
        put(&mut one, spec::TARGET_TYPE, target.target_type.as_bytes())?;
        put(&mut one, TARGET_SPEC_SIZE, target.params.as_bytes())?;
        specs.extend_from_slice(&one);
    }

    let mut buf = vec![0u8; HEADER_SIZE];
    buf.extend_from_slice(&specs);
    let data_size = u32::try_from(buf.len()).map_err(|_| Errno::EINVAL)?;
    let target_count = u32::try_from(targets.len()).map_err(|_| Errno::EINVAL)?;
    for (i, part) in VERSION.iter().enumerate() {
        put(&mut buf, header::VERSION + 4 * i, &part.to_ne_bytes())?;
    }
    put(&mut buf, header::DATA_SIZE, &data_size.to_ne_bytes())?;
    // The targets start right after the header (312 is a multiple of 8).
    let data_start = u32::try_from(HEADER_SIZE).map_err(|_| Errno::EINVAL)?;
    put(&mut buf, header::DATA_START, &data_start.to_ne_bytes())?;
    put(&mut buf, header::TARGET_COUNT, &target_count.to_ne_bytes())?;
    put(&mut buf, header::FLAGS, &flags.to_ne_bytes())?;
    put(&mut buf, header::NAME, name.as_bytes())?;
    Ok(buf)
}

/// The interface version in a reply (the kernel's own, for `DM_VERSION`).
pub fn reply_version(buf: &[u8]) -> Option<[u32; 3]> {
    let part = |i: usize| get(buf, header::VERSION + 4 * i).map(u32::from_ne_bytes);
    Some([part(0)?, part(1)?, part(2)?])
}

/// The `(major, minor)` of the device a reply is about.
pub fn reply_dev(buf: &[u8]) -> Option<(u32, u32)> {
    get(buf, header::DEV).map(|b| decode_dev(u64::from_ne_bytes(b)))
}

/// Splits the kernel's `huge_encode_dev` form (`linux/kdev_t.h`): minor
/// bits 0-7 and 20-31, major bits 8-19.
pub fn decode_dev(dev: u64) -> (u32, u32) {
    let major = (dev >> 8) & 0xfff;
    let minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
    // Both are masked to fewer than 32 bits.
    (
        u32::try_from(major).unwrap_or(0),
        u32::try_from(minor).unwrap_or(0),
    )
}

/// An open `/dev/mapper/control`. Each method is one ioctl.
#[derive(Debug)]
pub struct Control {
    file: File,
}

impl Control {
    /// `ENOENT` when device-mapper is not there.
    pub fn open() -> Result<Self, Errno> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(CONTROL)
            .map_err(|e| io_errno(&e))?;
        Ok(Control { file })
    }

    fn call(
        &self,
        command: DmCommand,
        name: &str,
        flags: u32,
        targets: &[DmTarget],
    ) -> Result<Vec<u8>, Errno> {
        let mut buf = request(name, flags, targets)?;
        dm_ioctl(&self.file, command, &mut buf)?;
        Ok(buf)
    }

    /// `DM_VERSION`: the kernel's interface version.
    pub fn version(&self) -> Result<[u32; 3], Errno> {
        let reply = self.call(DmCommand::Version, "", 0, &[])?;
        reply_version(&reply).ok_or(Errno::EPROTO)
    }

    /// `DM_DEV_CREATE`: a device with no table, suspended; returns its
    /// `(major, minor)` (the node is `/dev/dm-<minor>`).
    pub fn create(&self, name: &str, read_only: bool) -> Result<(u32, u32), Errno> {
        let reply = self.call(DmCommand::DevCreate, name, ro_flag(read_only), &[])?;
        reply_dev(&reply).ok_or(Errno::EPROTO)
    }

    /// `DM_TABLE_LOAD`: the table goes into the inactive slot.
    pub fn load_table(
        &self,
        name: &str,
        read_only: bool,
        targets: &[DmTarget],
    ) -> Result<(), Errno> {
        self.call(DmCommand::TableLoad, name, ro_flag(read_only), targets)
            .map(drop)
    }

    /// `DM_DEV_SUSPEND` without `DM_SUSPEND_FLAG`: the inactive table
    /// becomes the live one and I/O starts.
    pub fn resume(&self, name: &str) -> Result<(), Errno> {
        self.call(DmCommand::DevSuspend, name, 0, &[]).map(drop)
    }

    /// `DM_DEV_REMOVE`: the device and its tables go away (`EBUSY` while
    /// it is open or mounted).
    pub fn remove(&self, name: &str) -> Result<(), Errno> {
        self.call(DmCommand::DevRemove, name, 0, &[]).map(drop)
    }
}

fn ro_flag(read_only: bool) -> u32 {
    if read_only {
        READONLY_FLAG
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(buf: &[u8], offset: usize) -> u32 {
        u32::from_ne_bytes(buf[offset..offset + 4].try_into().unwrap())
    }

    fn u64_at(buf: &[u8], offset: usize) -> u64 {
        u64::from_ne_bytes(buf[offset..offset + 8].try_into().unwrap())
    }

    /// The offsets of linux/dm-ioctl.h on a 64-bit kernel, spelled out
    /// rather than taken from the constants above.
    #[test]
    fn header_layout_matches_dm_ioctl_h() {
        let buf = request("root", READONLY_FLAG, &[]).unwrap();
        assert_eq!(buf.len(), 312);
        // __u32 version[3]
        assert_eq!(
            [u32_at(&buf, 0), u32_at(&buf, 4), u32_at(&buf, 8)],
            [4, 0, 0]
        );
        assert_eq!(u32_at(&buf, 12), 312, "data_size");
        assert_eq!(u32_at(&buf, 16), 312, "data_start");
        assert_eq!(u32_at(&buf, 20), 0, "target_count");
        assert_eq!(u32_at(&buf, 24), 0, "open_count");
        assert_eq!(u32_at(&buf, 28), 1, "flags");
        assert_eq!(u32_at(&buf, 32), 0, "event_nr");
        assert_eq!(u64_at(&buf, 40), 0, "dev");
        // char name[128] at 48, uuid[129] at 176, data[7] at 305.
        assert_eq!(&buf[48..53], b"root\0");
        assert!(buf[53..312].iter().all(|b| *b == 0));
        assert_eq!(data_size(&buf), Some(312));
    }

    #[test]
    fn table_load_has_one_aligned_target_spec_with_its_params() {
        let params = "1 254:2 254:4 4096 4096 256 1 sha256 aa bb";
        let target = DmTarget {
            start: 0,
            length: 2048,
            target_type: "verity".into(),
            params: params.into(),
        };
        let buf = request("root", READONLY_FLAG, std::slice::from_ref(&target)).unwrap();
        // 312 + 40 + 42 params + NUL = 395, padded to 400.
        assert_eq!(params.len(), 42);
        assert_eq!(buf.len(), 400);
        assert_eq!(u32_at(&buf, 12), 400, "data_size is the whole buffer");
        assert_eq!(u32_at(&buf, 16), 312, "data_start");
        assert_eq!(u32_at(&buf, 20), 1, "target_count");
        let spec = &buf[312..];
        assert_eq!(u64_at(spec, 0), 0, "sector_start");
        assert_eq!(u64_at(spec, 8), 2048, "length");
        assert_eq!(u32_at(spec, 16), 0, "status");
        assert_eq!(u32_at(spec, 20), 88, "next: 40 + 43 rounded up to 8");
        assert_eq!(&spec[24..31], b"verity\0");
        assert!(spec[31..40].iter().all(|b| *b == 0));
        assert_eq!(&spec[40..82], params.as_bytes());
        assert!(spec[82..].iter().all(|b| *b == 0), "NUL and padding");
        assert_eq!(target.to_string(), format!("0 2048 verity {params}"));
    }

    #[test]
    fn a_second_target_starts_where_next_points() {
        let t = |start, params: &str| DmTarget {
            start,
            length: 8,
            target_type: "linear".into(),
            params: params.into(),
        };
        let buf = request("x", 0, &[t(0, "254:1 0"), t(8, "254:1 100")]).unwrap();
        assert_eq!(u32_at(&buf, 20), 2);
        let next = u32_at(&buf, 312 + 20) as usize;
        assert_eq!(next % 8, 0);
        let second = &buf[312 + next..];
        assert_eq!(u64_at(second, 0), 8);
        assert_eq!(&second[40..50], b"254:1 100\0");
        assert_eq!(buf.len() % 8, 0);
        assert_eq!(u32_at(&buf, 12) as usize, buf.len());
    }

    #[test]
    fn refuses_what_the_kernel_would() {
        assert_eq!(request(&"n".repeat(128), 0, &[]), Err(Errno::EINVAL));
        assert!(request(&"n".repeat(127), 0, &[]).is_ok());
        assert_eq!(request("a/b", 0, &[]), Err(Errno::EINVAL));
        assert_eq!(request("a\0b", 0, &[]), Err(Errno::EINVAL));
        let target = |kind: &str, params: &str| DmTarget {
            start: 0,
            length: 1,
            target_type: kind.into(),
            params: params.into(),
        };
        assert_eq!(
            request("r", 0, &[target("sixteen-chars-xx", "")]),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            request("r", 0, &[target("verity", "a\0")]),
            Err(Errno::EINVAL)
        );
    }

    #[test]
    fn reads_version_and_device_number_from_a_reply() {
        let mut buf = request("root", 0, &[]).unwrap();
        buf[0..4].copy_from_slice(&4u32.to_ne_bytes());
        buf[4..8].copy_from_slice(&48u32.to_ne_bytes());
        // huge_encode_dev(MKDEV(253, 0x12345)): minor low byte, major,
        // minor high bits from bit 20.
        let dev: u64 = 0x45 | (253 << 8) | (0x123 << 20);
        buf[40..48].copy_from_slice(&dev.to_ne_bytes());
        assert_eq!(reply_version(&buf), Some([4, 48, 0]));
        assert_eq!(reply_dev(&buf), Some((253, 0x12345)));
        assert_eq!(decode_dev(253 << 8), (253, 0));
        assert_eq!(decode_dev((252 << 8) | 7), (252, 7));
        assert_eq!(reply_dev(&buf[..40]), None);
    }
}

//! Why the verity root could not be set up.
//!
//! Apart from [`crate::verity`] so that the init's [`crate::error::Error`]
//! can wrap it while `verity` itself returns `Error`: neither imports the
//! other in a circle.

use nix::errno::Errno;

use crate::cmdline::{VERITY_BLOCKS_KEY, VERITY_BLOCK_SIZE};
use crate::dm::CONTROL;
use crate::sys::types::errno_text;

/// The device-mapper name of the verified root (`/dev/mapper/root` to
/// tools that create links; we mount `/dev/dm-<minor>`).
pub const DM_NAME: &str = "root";
pub const SECTOR_SIZE: u64 = 512;

/// Why the verity device could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerityError {
    #[error("device-mapper not available ({CONTROL} missing): is dm_mod loaded?")]
    Unavailable,
    #[error("device-mapper version check on {CONTROL}: {}", errno_text(*.0))]
    Version(Errno),
    #[error("device-mapper ioctl interface {}.{}.{} is not supported (need 4.x)", .0[0], .0[1], .0[2])]
    UnsupportedVersion([u32; 3]),
    #[error("unexpected device number {text:?} in {path}")]
    BadDevNumber { path: String, text: String },
    #[error(
        "{VERITY_BLOCKS_KEY}={blocks} covers {} bytes, but the root partition {device} has \
         only {} bytes",
        .blocks.saturating_mul(VERITY_BLOCK_SIZE),
        .sectors.saturating_mul(SECTOR_SIZE)
    )]
    DataTooSmall {
        blocks: u64,
        device: String,
        sectors: u64,
    },
    #[error("device-mapper device {DM_NAME} already exists")]
    Exists,
    #[error("creating device-mapper device {DM_NAME} (verity root): {}", errno_text(*.0))]
    Create(Errno),
    #[error(
        "device-mapper rejected the verity table ({}): is dm_verity loaded? table: {table}",
        errno_text(*.errno)
    )]
    Rejected { errno: Errno, table: String },
    #[error(
        "device-mapper could not open the devices of the verity table ({}): \
         already mounted or mapped? table: {table}",
        errno_text(Errno::EBUSY)
    )]
    Busy { table: String },
    #[error(
        "device-mapper could not find the devices of the verity table ({}): table: {table}",
        errno_text(*.errno)
    )]
    NoDevice { errno: Errno, table: String },
    #[error(
        "loading the verity table into device-mapper device {DM_NAME}: {}: table: {table}",
        errno_text(*.errno)
    )]
    Load { errno: Errno, table: String },
    #[error("activating device-mapper device {DM_NAME} (verity root): {}", errno_text(*.0))]
    Resume(Errno),
}

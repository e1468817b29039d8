//! On-disk formats of a Slipway image: the partition layout, GPT, the FAT
//! ESP, the squashfs root, the empty `/var` ext4, boot entries and the Debian
//! packages the inputs come from. Nothing here opens `/dev/*` or needs root:
//! every writer works on ordinary files (`var_fs` by running `mke2fs` on
//! one).

pub mod bls;
#[cfg(feature = "build")]
pub mod deb;
#[cfg(feature = "build")]
pub mod esp;
#[cfg(feature = "build")]
mod fat_fixup;
pub mod gpt_table;
pub mod layout;
#[cfg(feature = "build")]
pub mod rootfs;
#[cfg(feature = "build")]
pub mod tree;
#[cfg(feature = "build")]
pub mod var_fs;
pub mod verity;

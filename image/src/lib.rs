//! On-disk formats of a Slipway image: the partition layout, GPT, the FAT
//! ESP, the squashfs root, the empty `/var` ext4, boot entries and the Debian
//! packages the inputs come from. Nothing here opens `/dev/*` or needs root:
//! every writer works on ordinary files (`var_fs` by running `mke2fs` on
//! one).

pub mod bls;
pub mod deb;
pub mod esp;
mod fat_fixup;
pub mod gpt_table;
pub mod layout;
pub mod rootfs;
pub mod tree;
pub mod var_fs;
pub mod verity;

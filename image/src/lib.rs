//! On-disk formats of a Slipway image: the partition layout, GPT, the FAT
//! ESP, the squashfs root, boot entries and the Debian packages the inputs
//! come from. Nothing here opens `/dev/*` or needs root: every writer works
//! on ordinary files.

pub mod tree;

//! Builds the initramfs: a newc cpio archive of a [`Tree`], compressed
//! with zstd (Debian's kernels have `CONFIG_RD_ZSTD=y`), and the kernel
//! modules stage 1 loads, resolved with their dependencies at build time.
//!
//! # Layout contract with the init
//!
//! The init (`slipway-init`, stage 1) relies on this layout, written by
//! [`add_modules`]:
//!
//! - `/lib/modules/<name>.ko`: each module, uncompressed (the whole archive
//!   is compressed already), mode 0644, `<name>` normalised with `_`.
//! - `/etc/slipway/modules.load`: the absolute paths of those files, one per
//!   line, in load order: every module after all of its dependencies. The
//!   init loads them top to bottom (`finit_module`), so it needs neither
//!   `modules.dep` nor `modprobe`. The file exists, possibly empty, whenever
//!   [`add_modules`] was called.
//!
//! The same tree and mtime always give the same bytes: entries are written
//! in path order with fixed owners, times and inode numbers, and zstd runs
//! single-threaded at a fixed level.

pub mod cpio;
pub mod modules;

use std::io;

use slipway_image::tree::Tree;

pub use modules::{KernelModules, Module, ModulesError, RootModules};

/// Where [`add_modules`] puts the module files, relative to the root.
pub const MODULES_DIR: &str = "lib/modules";
/// The load list the init reads, relative to the root.
pub const MODULES_LOAD: &str = "etc/slipway/modules.load";

/// zstd level of the archive. Measured on a 4.0 MB archive (busybox and 18
/// modules of Debian's 6.1 cloud kernel): level 3 gives 1.59 MB in 20 ms,
/// 9 gives 1.46 MB in 66 ms, 15 is no smaller than 12 and takes 0.46 s,
/// 19 gives 1.33 MB in 1.3 s. Past 9, time grows far faster than size
/// shrinks.
pub const ZSTD_LEVEL: i32 = 9;

/// The compressed initramfs of `tree`, every entry stamped with `mtime`.
pub fn build_initramfs(tree: &Tree, mtime: u32) -> io::Result<Vec<u8>> {
    let mut encoder = zstd::Encoder::new(Vec::new(), ZSTD_LEVEL)?;
    // The kernel's decompressor needs no checksum, but a corrupt initramfs
    // is then reported as such instead of failing later in odd ways.
    encoder.include_checksum(true)?;
    crate::cpio::write_newc(tree, mtime, &mut encoder)?;
    encoder.finish()
}

/// Adds `modules` (in load order, as [`KernelModules::closure`] returns
/// them) to `tree` under [`MODULES_DIR`], and [`MODULES_LOAD`] listing them.
pub fn add_modules(tree: &mut Tree, modules: &[Module]) {
    let mut load = String::new();
    for module in modules {
        let path = format!("{MODULES_DIR}/{}.ko", module.name);
        load.push('/');
        load.push_str(&path);
        load.push('\n');
        tree.file(&path, 0o644, module.data.clone());
    }
    tree.file(MODULES_LOAD, 0o644, load);
}

#[cfg(test)]
mod tests;

//! Guest binaries: built static for `x86_64-unknown-linux-musl` by a nested
//! `cargo build`, so the image always carries the init of this tree.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::paths;

pub const TARGET: &str = "x86_64-unknown-linux-musl";

/// Builds the init and returns the path of the static binary.
pub fn build_init() -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--release",
            "--package",
            "slipway-init",
            "--target",
            TARGET,
        ])
        .current_dir(paths::project_root())
        .status()
        .context("running cargo to build the guest init")?;
    if !status.success() {
        bail!(
            "building slipway-init for {TARGET} failed (if the target is missing: \
             `rustup target add {TARGET}`)"
        );
    }
    let bin = paths::target_dir()
        .join(TARGET)
        .join("release")
        .join("slipway-init");
    if !bin.is_file() {
        bail!("cargo built slipway-init but {} is missing", bin.display());
    }
    Ok(bin)
}

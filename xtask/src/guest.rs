//! Guest binaries: built static for `x86_64-unknown-linux-musl` by one
//! nested `cargo build`, so the image always carries the programs of this
//! tree.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::paths;

pub const TARGET: &str = "x86_64-unknown-linux-musl";

/// The guest programs: the init (PID 1, both stages) and the cloud-config
/// tool stage 2 runs at boot (also `validate` for users on the machine).
#[derive(Debug, Clone)]
pub struct GuestBinaries {
    pub init: PathBuf,
    pub cloud_config: PathBuf,
}

/// `(package, binary)` of every guest program.
const PROGRAMS: [(&str, &str); 2] = [
    ("slipway-init", "slipway-init"),
    ("slipway-cloud-config", "slipway-cloud-config"),
];

/// Builds the guest programs and returns the paths of the static binaries.
pub fn build() -> Result<GuestBinaries> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "--release", "--target", TARGET]);
    for (package, _) in PROGRAMS {
        cmd.args(["--package", package]);
    }
    let status = cmd
        .current_dir(paths::project_root())
        .status()
        .context("running cargo to build the guest programs")?;
    if !status.success() {
        bail!(
            "building the guest programs for {TARGET} failed (if the target is missing: \
             `rustup target add {TARGET}`)"
        );
    }
    let dir = paths::target_dir().join(TARGET).join("release");
    let [init, cloud_config] = PROGRAMS.map(|(_, bin)| dir.join(bin));
    for bin in [&init, &cloud_config] {
        if !bin.is_file() {
            bail!(
                "cargo built the guest programs but {} is missing",
                bin.display()
            );
        }
    }
    Ok(GuestBinaries { init, cloud_config })
}

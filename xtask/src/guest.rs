//! Guest binaries: built static for `x86_64-unknown-linux-musl` by one
//! nested `cargo build`, so the image always carries the programs of this
//! tree.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::{paths, progress};

pub const TARGET: &str = "x86_64-unknown-linux-musl";

/// The guest programs: the init (PID 1, both stages), the cloud-config
/// tool stage 2 runs at boot (also `validate` for users on the machine),
/// and the programs that only go into the root, at their paths there.
#[derive(Debug, Clone)]
pub struct GuestBinaries {
    pub init: PathBuf,
    pub cloud_config: PathBuf,
    /// `(path in the root, binary)`: `usr/bin/slipctl`, the network daemon,
    /// the update engine, the swarm agent, the installer.
    pub root_programs: Vec<(&'static str, PathBuf)>,
}

/// `(package, binary)` of every guest program.
const PROGRAMS: [(&str, &str); 7] = [
    ("slipway-init", "slipway-init"),
    ("slipway-cloud-config", "slipway-cloud-config"),
    ("slipway-control", "slipctl"),
    ("slipway-network", "slipway-networkd"),
    ("slipway-update-engine", "update-engine"),
    ("slipway-swarm", "slipway-swarm"),
    ("slipway-install", "slipway-install"),
];

/// The cargo packages of the guest programs (what the SBOM lists the
/// crates of).
pub fn packages() -> Vec<&'static str> {
    PROGRAMS.iter().map(|(package, _)| *package).collect()
}

/// Where the root-only programs go (`PROGRAMS[2..]`, in order).
const ROOT_PATHS: [&str; 5] = [
    "usr/bin/slipctl",
    "usr/lib/slipway/slipway-networkd",
    "usr/bin/update-engine",
    "usr/bin/slipway-swarm",
    "usr/bin/slipway-install",
];

/// Builds the guest programs and returns the paths of the static binaries.
pub fn build() -> Result<GuestBinaries> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "--release", "--target", TARGET]);
    for (package, _) in PROGRAMS {
        cmd.args(["--package", package]);
    }
    // Cargo's JSON messages on stdout say each crate as it is compiled
    // (a first build compiles about 150 for three minutes); its own
    // status lines stay off (`--quiet`), its diagnostics go to stderr.
    cmd.arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped());
    let mut child = cmd
        .current_dir(paths::project_root())
        .spawn()
        .context("running cargo to build the guest programs")?;
    let mut counter = progress::Counter::new("guest", "crates compiled", false);
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line.context("reading cargo's messages")?;
            if let Some(name) = progress::cargo_artifact(&line) {
                counter.step(&name);
            }
        }
    }
    let status = child
        .wait()
        .context("waiting for cargo building the guest programs")?;
    counter.finish();
    if !status.success() {
        bail!(
            "building the guest programs for {TARGET} failed (if the target is missing: \
             `rustup target add {TARGET}`)"
        );
    }
    let dir = paths::target_dir().join(TARGET).join("release");
    let [init, cloud_config, slipctl, networkd, update_engine, swarm, installer] =
        PROGRAMS.map(|(_, bin)| dir.join(bin));
    for bin in [
        &init,
        &cloud_config,
        &slipctl,
        &networkd,
        &update_engine,
        &swarm,
        &installer,
    ] {
        if !bin.is_file() {
            bail!(
                "cargo built the guest programs but {} is missing",
                bin.display()
            );
        }
    }
    let [ctl_path, netd_path, engine_path, swarm_path, install_path] = ROOT_PATHS;
    Ok(GuestBinaries {
        init,
        cloud_config,
        root_programs: vec![
            (ctl_path, slipctl),
            (netd_path, networkd),
            (engine_path, update_engine),
            (swarm_path, swarm),
            (install_path, installer),
        ],
    })
}

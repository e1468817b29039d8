//! `slipway-cloud-config`: the cloud-config tool on the image.
//!
//! `validate` is the check `cargo xtask validate-config` runs on the build
//! machine; `boot` is what stage 2 of the init runs at every boot.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "slipway-cloud-config",
    about = "Check and apply cloud-config user-data",
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Check user-data files: one finding per line as
    /// FILE:LINE:COL: level: message; exit status 1 if any error (or, with
    /// --strict, any warning), 2 if a file cannot be read
    Validate {
        /// User-data files (cloud-config, `#!` scripts; gzip-compressed or not)
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Print the findings as JSON (one array, an object per file)
        #[arg(long)]
        json: bool,
        /// Fail on warnings too
        #[arg(long)]
        strict: bool,
    },
    /// What the init runs at every boot: fetch user-data (seed disks,
    /// fw_cfg, cloud-config-url=, EC2), check it, apply it once per
    /// instance, run bootcmd and re-apply what lives in /run (unit
    /// commands, etcd2/fleet/flannel drop-ins) every boot; log to
    /// /var/log/cloud-config.log
    Boot,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Validate {
            files,
            json,
            strict,
        } => {
            let args = cloud_config::cli::ValidateArgs {
                files,
                json,
                strict,
            };
            let code = cloud_config::cli::run_validate(
                &args,
                &mut std::io::stdout(),
                &mut std::io::stderr(),
            );
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
        Cmd::Boot => ExitCode::from(u8::try_from(cloud_config::boot::run()).unwrap_or(1)),
    }
}

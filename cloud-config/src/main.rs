//! `slipway-cloud-config`: the cloud-config tool on the image.
//!
//! `validate` is the check `cargo xtask validate-config` runs on the build
//! machine; `boot local` is what stage 2 of the init runs at every boot before
//! the services, `boot network` what `slipway-cloud-config.service` runs
//! once the network is online.

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
    /// A boot stage. `local` (the init runs it before any service):
    /// fetch user-data from fw_cfg or a seed disk, check it, run bootcmd,
    /// apply users, keys, files, units and hostname once per instance and
    /// what lives in /run every boot. `network`
    /// (slipway-cloud-config.service, after network-online.target): runcmd
    /// and scripts of that user-data, or, without a local source, user-data
    /// from cloud-config-url=, ds=nocloud;s= or the EC2 metadata service,
    /// applied whole. Logs to /var/log/cloud-config.log
    Boot {
        #[arg(value_enum)]
        stage: BootStage,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum BootStage {
    Local,
    Network,
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
        Cmd::Boot { stage } => {
            let stage = match stage {
                BootStage::Local => cloud_config::boot::Stage::Local,
                BootStage::Network => cloud_config::boot::Stage::Network,
            };
            ExitCode::from(u8::try_from(cloud_config::boot::run(stage)).unwrap_or(1))
        }
    }
}

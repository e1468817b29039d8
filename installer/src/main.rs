//! `slipway-install`: writes Slipway to a disk. The work is in the library
//! (`slipway_install`), which `cargo xtask install` shares.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use slipway_install::{human, install, Options, Progress, SourceSpec};

/// Install Slipway on a disk: by default a copy of the system running now
/// (its ESP and both slots; `/var` starts empty), or an image file or URL
/// checked against its SHA256SUMS. The partition table is written last, so
/// an interrupted install leaves a disk that does not boot.
#[derive(Debug, Parser)]
#[command(name = "slipway-install", version, help_expected = true)]
struct Cli {
    /// The disk to install on (a whole disk such as /dev/nvme0n1 or
    /// /dev/sdb), or an image file
    target: PathBuf,
    /// cloud-config user-data the installed system applies at its first
    /// boot (checked first; an error is refused with its line)
    #[arg(short = 'i', long = "user-data", value_name = "FILE")]
    user_data: Option<PathBuf>,
    /// Install this disk.raw instead of the running system
    #[arg(long, value_name = "FILE", conflicts_with = "image_url")]
    image: Option<PathBuf>,
    /// Install the disk.raw at this http:// URL (SHA256SUMS beside it)
    #[arg(long, value_name = "URL")]
    image_url: Option<String>,
    /// Overwrite a disk that has partitions
    #[arg(long)]
    force: bool,
    /// Do not check the image against SHA256SUMS
    #[arg(long)]
    no_checksum: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let source = match (cli.image, cli.image_url) {
        (Some(path), _) => SourceSpec::File(path),
        (None, Some(url)) => SourceSpec::Url(url),
        (None, None) => SourceSpec::BootDisk,
    };
    let opts = Options {
        source,
        target: cli.target,
        user_data: cli.user_data,
        force: cli.force,
        no_checksum: cli.no_checksum,
    };
    let mut progress = Progress::auto("slipway-install");
    match install(&opts, &mut progress) {
        Ok(report) => {
            println!(
                "slipway-install: installed on {}: {} written ({} image on a {} disk), {} zeroed, in {:.1} s{}",
                opts.target.display(),
                human(report.written_bytes),
                human(report.image_bytes),
                human(report.target_bytes),
                human(report.zeroed_bytes),
                report.elapsed.as_secs_f64(),
                if opts.user_data.is_some() {
                    "; the user-data is applied at its first boot"
                } else {
                    ""
                }
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("slipway-install: {e:#}");
            ExitCode::FAILURE
        }
    }
}

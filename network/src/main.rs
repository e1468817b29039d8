//! `slipway-networkd`: see `--help`. Thin: arguments, then the daemon loop,
//! restarted after an error (or a panic in a dependency) instead of exiting.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;
use std::time::Duration;

use slipway_network::daemon::{Daemon, Options};

const HELP: &str = "\
slipway-networkd: the Slipway network daemon.

Brings the loopback link up, then configures every ethernet link:
static addresses, gateways and DNS from systemd-networkd style .network
files ([Match] Name=/MACAddress=; [Network] Address=, Gateway=, DNS=, DHCP=,
Domains=) in /etc/systemd/network, /run/systemd/network and
/usr/lib/systemd/network; links no file matches get DHCPv4. Leases are
renewed, rebound and expired as RFC 2131 says; links that appear later are
picked up within 5 seconds. Runs in the foreground and logs one line per
event to stdout.

Writes only /etc/resolv.conf and /run/slipway/network/<link>.json.

Usage: slipway-networkd [--root DIR]

Options:
  --root DIR   prefix for the .network directories and the files written
               (default /; for tests)
  -h, --help   show this help
  -V, --version  show the version
";

fn main() {
    let mut root = PathBuf::from("/");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                print!("{HELP}");
                return;
            }
            "-V" | "--version" => {
                println!("slipway-networkd {}", env!("CARGO_PKG_VERSION"));
                return;
            }
            "--root" => match args.next() {
                Some(dir) => root = PathBuf::from(dir),
                None => usage_error("--root needs a directory"),
            },
            other => match other.strip_prefix("--root=") {
                Some(dir) => root = PathBuf::from(dir),
                None => usage_error(&format!("unknown argument {other:?}")),
            },
        }
    }
    println!("slipway-networkd {} starting", env!("CARGO_PKG_VERSION"));
    let opts = Options::new(root);
    loop {
        let result = std::panic::catch_unwind(|| {
            let mut daemon = Daemon::new(opts.clone())?;
            daemon.run()
        });
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => println!("error: {e}; restarting in 5 s"),
            Err(_) => println!("error: internal panic; restarting in 5 s"),
        }
        std::thread::sleep(Duration::from_secs(5));
    }
}

fn usage_error(message: &str) -> ! {
    eprintln!("slipway-networkd: {message}\nTry 'slipway-networkd --help'.");
    std::process::exit(2);
}

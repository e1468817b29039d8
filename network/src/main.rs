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
use slipway_network::online;

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
       slipway-networkd wait-online [--timeout SECONDS] [--root DIR]

wait-online: waits until one link other than loopback has an address (a
DHCP lease or the static address of its .network file), as the daemon's
state files show it; prints the links and exits 0, or exits 1 after the
time limit (default 30 seconds). slipway-networkd-wait-online.service runs
it before network-online.target.

Options:
  --root DIR   prefix for the .network directories and the files written
               or read (default /; for tests)
  --timeout SECONDS
               wait-online: how long to wait (default 30)
  -h, --help   show this help
  -V, --version  show the version
";

/// How long `wait-online` waits unless told otherwise: a DHCP lease under
/// emulation with several machines on two cores comes within a few
/// seconds; a machine with no network at all should not hold the units
/// ordered after network-online.target much longer than this.
const DEFAULT_ONLINE_TIMEOUT: u64 = 30;

fn main() {
    let mut root = PathBuf::from("/");
    let mut wait_online = false;
    let mut timeout = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        match flag.as_str() {
            "-h" | "--help" => {
                print!("{HELP}");
                return;
            }
            "-V" | "--version" => {
                println!("slipway-networkd {}", env!("CARGO_PKG_VERSION"));
                return;
            }
            "wait-online" if !wait_online => wait_online = true,
            "--root" => match inline.or_else(|| args.next()) {
                Some(dir) => root = PathBuf::from(dir),
                None => usage_error("--root needs a directory"),
            },
            "--timeout" if wait_online => match inline.or_else(|| args.next()) {
                Some(v) => match v.parse::<u64>() {
                    Ok(secs) => timeout = Some(secs),
                    Err(_) => usage_error(&format!("--timeout {v:?}: not a number of seconds")),
                },
                None => usage_error("--timeout needs a number of seconds"),
            },
            _ => usage_error(&format!("unknown argument {arg:?}")),
        }
    }
    if wait_online {
        let secs = timeout.unwrap_or(DEFAULT_ONLINE_TIMEOUT);
        std::process::exit(run_wait_online(&root, Duration::from_secs(secs)));
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

/// `wait-online`; returns the exit status.
fn run_wait_online(root: &std::path::Path, timeout: Duration) -> i32 {
    let dir = root.join("run/slipway/network");
    match online::wait_online(&dir, timeout, Duration::from_millis(250)) {
        Some(links) => {
            let list: Vec<String> = links
                .iter()
                .map(|l| format!("{} ({})", l.ifname, l.addresses.join(", ")))
                .collect();
            println!("network online: {}", list.join(", "));
            0
        }
        None => {
            println!(
                "no link has an address after {} s (see {}); going on without the network",
                timeout.as_secs(),
                dir.display()
            );
            1
        }
    }
}

fn usage_error(message: &str) -> ! {
    eprintln!("slipway-networkd: {message}\nTry 'slipway-networkd --help'.");
    std::process::exit(2);
}

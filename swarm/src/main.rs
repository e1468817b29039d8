//! `slipway-swarm`: see the crate documentation and the README's swarm
//! section.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};
use slipway_swarm::conf::{self, SwarmConf};
use slipway_swarm::{agent, docker, drain};

/// Exit status of `drain` when rebooting now would lose the managers'
/// quorum (EX_TEMPFAIL): try again later.
const MUST_WAIT: u8 = 75;

#[derive(Parser)]
#[command(
    name = "slipway-swarm",
    about = "Docker swarm membership from cloud-config (coreos.swarm), and draining around updates"
)]
struct Cli {
    /// The configuration cloud-config writes from coreos.swarm.
    #[arg(long, default_value = conf::PATH)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Become a member (init or join), set labels, and keep watch (the
    /// slipway-swarm.service).
    Agent,
    /// Move this node's tasks elsewhere before a reboot. Exit 0: drained
    /// (or nothing to drain, or the time ran out); 75: rebooting now would
    /// lose the managers' quorum, try later; 1: an error.
    Drain {
        /// Seconds to wait for the tasks to run elsewhere.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    /// After the healthy boot: make the node active again if `drain`
    /// drained it (a node drained by hand stays drained).
    Activate,
    /// The engine's view of this node and the swarm.
    Status,
}

/// Lines on stderr (the service log) and, for events a person watching
/// the console wants, on the console too.
fn say(text: &str) {
    eprintln!("slipway-swarm: {text}");
    if let Ok(mut c) = std::fs::OpenOptions::new().write(true).open("/dev/console") {
        let _ = writeln!(c, "slipway: swarm: {text}");
    }
}

fn load(path: &std::path::Path) -> Result<Option<SwarmConf>> {
    conf::load(path)
}

fn status() -> Result<()> {
    let info = docker::swarm_info()?;
    println!("state: {}", info.local_node_state);
    if !info.error.is_empty() {
        println!("error: {}", info.error);
    }
    if info.is_member() {
        println!(
            "node: {} ({}), address {}",
            info.node_id,
            if info.control_available {
                "manager"
            } else {
                "worker"
            },
            info.node_addr
        );
    }
    if info.control_available {
        for n in docker::nodes()? {
            println!(
                "  {} {} {} {}",
                n.hostname,
                n.status,
                n.availability,
                if n.manager_status.is_empty() {
                    "worker"
                } else {
                    &n.manager_status
                }
            );
        }
    }
    if std::path::Path::new(drain::RECORD).exists() {
        println!("drained for an update (until the healthy boot)");
    }
    Ok(())
}

fn run(cli: Cli) -> Result<u8> {
    let Some(conf) = load(&cli.config)? else {
        if matches!(cli.command, Command::Status) {
            println!("swarm: not configured ({} absent)", cli.config.display());
            return Ok(0);
        }
        eprintln!(
            "slipway-swarm: not configured ({} absent; cloud-config writes it from coreos.swarm): nothing to do",
            cli.config.display()
        );
        return Ok(0);
    };
    match cli.command {
        Command::Agent => agent::run(&conf, &say).map(|()| 0),
        Command::Drain { timeout } => {
            match drain::drain(&conf, Duration::from_secs(timeout), &say)? {
                drain::Drained::NotMember => {
                    eprintln!("slipway-swarm: not a swarm member: nothing to drain");
                    Ok(0)
                }
                drain::Drained::Done { .. } => Ok(0),
                drain::Drained::TimedOut(why) => {
                    say(&format!("drain incomplete, rebooting anyway: {why}"));
                    Ok(0)
                }
                drain::Drained::MustWait(why) => {
                    say(&format!("not rebooting yet: {why}"));
                    Ok(MUST_WAIT)
                }
            }
        }
        Command::Activate => drain::activate(&conf, &say).map(|_| 0),
        Command::Status => status().map(|()| 0),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The update engine runs drain and activate with the console as the
    // only place a person looks: their failures go there too.
    let for_the_console = matches!(cli.command, Command::Drain { .. } | Command::Activate);
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) if for_the_console => {
            say(&format!("{e:#}"));
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("slipway-swarm: {e:#}");
            ExitCode::FAILURE
        }
    }
}

//! Argument parsing and the commands of `slipctl`.

mod logs;
mod render;

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use slipway_control::{
    call, log_dir, log_path, socket_path, unit_name, ActiveState, ProtoError, Request, Response,
};

const AFTER_HELP: &str = "Without a command, `slipctl` runs `status`.\n\
     Unit names without a type suffix get `.service` (`sshd` means `sshd.service`).\n\
     \n\
     The service manager (PID 1) answers on the unix socket /run/slipway/control.sock\n\
     ($SLIPWAY_CONTROL_SOCKET overrides it). `logs` reads the log files directly:\n\
     /var/log/services/<unit>.log and, after rotation, <unit>.log.1\n\
     ($SLIPWAY_LOG_DIR overrides the directory).\n\
     \n\
     Exit status: 0 on success; 1 on errors; `status UNIT` exits 3 if the unit is not active.";

/// Control the Slipway service manager: units, boot health, logs, power.
#[derive(Debug, Parser)]
#[command(name = "slipctl", version, after_help = AFTER_HELP)]
struct Cli {
    /// Seconds to wait for the service manager's answer
    /// [default: 10 for `status`, 120 for the others]
    #[arg(long, global = true, value_name = "SECONDS")]
    timeout: Option<u64>,

    /// What to do (default: `status`)
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the units and the boot's health; or show one unit and the end of its log
    Status {
        /// The unit to show (without one: all units, like `systemctl list-units`)
        unit: Option<String>,
        /// Print the service manager's status as JSON
        #[arg(long)]
        json: bool,
    },
    /// Start units
    Start {
        /// Unit names (`sshd` means `sshd.service`)
        #[arg(required = true, value_name = "UNIT")]
        units: Vec<String>,
    },
    /// Stop units
    Stop {
        /// Unit names (`sshd` means `sshd.service`)
        #[arg(required = true, value_name = "UNIT")]
        units: Vec<String>,
    },
    /// Restart units (start them if they are not running)
    Restart {
        /// Unit names (`sshd` means `sshd.service`)
        #[arg(required = true, value_name = "UNIT")]
        units: Vec<String>,
    },
    /// Enable units for the next boots
    Enable {
        /// Start them now too
        #[arg(long)]
        now: bool,
        /// Unit names (`sshd` means `sshd.service`)
        #[arg(required = true, value_name = "UNIT")]
        units: Vec<String>,
    },
    /// Disable units for the next boots
    Disable {
        /// Stop them now too
        #[arg(long)]
        now: bool,
        /// Unit names (`sshd` means `sshd.service`)
        #[arg(required = true, value_name = "UNIT")]
        units: Vec<String>,
    },
    /// Stop all units and reboot the machine
    Reboot,
    /// Stop all units and power the machine off
    Poweroff,
    /// Show a unit's log (the current file and the one before rotation)
    Logs {
        /// The unit whose log to show
        unit: String,
        /// How many of the last lines to show
        #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = 50)]
        lines: usize,
        /// Keep printing lines as they are written, across rotations (Ctrl-C stops)
        #[arg(short = 'f', long)]
        follow: bool,
    },
}

/// What ends a command early.
enum Failure {
    /// Already reported; exit with this status.
    Exit(u8),
    /// Writing our output failed (a closed pipe: `slipctl logs x | head`).
    Output(io::Error),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Output(e)
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = io::stdout();
    let color = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut out = stdout.lock();
    let result = run(cli, &mut out, color).and_then(|code| {
        out.flush()?;
        Ok(code)
    });
    match result {
        Ok(code) | Err(Failure::Exit(code)) => ExitCode::from(code),
        Err(Failure::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(Failure::Output(e)) => {
            eprintln!("slipctl: writing output: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli, out: &mut impl Write, color: bool) -> Result<u8, Failure> {
    let command = cli.command.unwrap_or(Command::Status {
        unit: None,
        json: false,
    });
    let timeout = |default: u64| Duration::from_secs(cli.timeout.unwrap_or(default));
    match command {
        Command::Status { unit, json } => status(unit, json, timeout(10), out, color),
        Command::Start { units } => {
            each_unit(units, timeout(120), out, |unit| Request::Start { unit })
        }
        Command::Stop { units } => {
            each_unit(units, timeout(120), out, |unit| Request::Stop { unit })
        }
        Command::Restart { units } => {
            each_unit(units, timeout(120), out, |unit| Request::Restart { unit })
        }
        Command::Enable { now, units } => each_unit(units, timeout(120), out, |unit| {
            Request::Enable { unit, now }
        }),
        Command::Disable { now, units } => each_unit(units, timeout(120), out, |unit| {
            Request::Disable { unit, now }
        }),
        Command::Reboot => power(Request::Reboot, timeout(120), out),
        Command::Poweroff => power(Request::Poweroff, timeout(120), out),
        Command::Logs {
            unit,
            lines,
            follow,
        } => show_logs(&unit_name(&unit), lines, follow, out),
    }
}

/// Sends one request; an error is reported on stderr, prefixed by `what`.
fn request(req: &Request, timeout: Duration, what: Option<&str>) -> Result<Response, Failure> {
    match call(&socket_path(), req, timeout) {
        Ok(resp) => Ok(resp),
        Err(e) => {
            match what {
                Some(what) => eprintln!("slipctl: {what}: {e}"),
                None => eprintln!("slipctl: {e}"),
            }
            Err(Failure::Exit(1))
        }
    }
}

fn error_text(resp: &Response) -> &str {
    resp.error
        .as_deref()
        .unwrap_or("the service manager refused (no reason given)")
}

/// `<unit>: <error>`, without saying the unit twice when the service
/// manager's error already begins with it.
fn about_unit(unit: &str, error: &str) -> String {
    match error.strip_prefix(unit) {
        Some(rest) if rest.starts_with(':') => error.to_owned(),
        _ => format!("{unit}: {error}"),
    }
}

fn status(
    unit: Option<String>,
    json: bool,
    timeout: Duration,
    out: &mut impl Write,
    color: bool,
) -> Result<u8, Failure> {
    let unit = unit.map(|u| unit_name(&u));
    let resp = request(
        &Request::Status { unit: unit.clone() },
        timeout,
        unit.as_deref(),
    )?;
    if !resp.ok {
        match &unit {
            Some(u) => eprintln!("slipctl: {}", about_unit(u, error_text(&resp))),
            None => eprintln!("slipctl: {}", error_text(&resp)),
        }
        return Err(Failure::Exit(1));
    }
    let Some(status) = resp.status else {
        eprintln!("slipctl: the service manager sent no status");
        return Err(Failure::Exit(1));
    };
    let shown = unit
        .as_deref()
        .map(|name| status.units.iter().find(|u| u.name == name));
    if json {
        let text = serde_json::to_string_pretty(&status).map_err(io::Error::other)?;
        writeln!(out, "{text}")?;
    } else {
        match shown {
            None => {
                for line in render::status_table(&status, color) {
                    writeln!(out, "{line}")?;
                }
            }
            Some(Some(u)) => {
                for line in render::unit_block(u, status.uptime_ms, color) {
                    writeln!(out, "{line}")?;
                }
                unit_log_tail(u, out)?;
            }
            Some(None) => {}
        }
    }
    Ok(match (shown, &unit) {
        (Some(Some(u)), _) if u.active == ActiveState::Active => 0,
        (Some(Some(_)), _) => 3,
        (Some(None), Some(name)) => {
            // Like the service manager's own answer for an unknown unit: an error.
            eprintln!("slipctl: {name}: unit could not be found");
            1
        }
        _ => 0,
    })
}

/// The last 10 lines of a unit's log, after its status block.
fn unit_log_tail(u: &slipway_control::UnitStatus, out: &mut impl Write) -> Result<(), Failure> {
    let current = u
        .log
        .as_ref()
        .map(PathBuf::from)
        .unwrap_or_else(|| log_path(&log_dir(), &u.name));
    let files = logs::LogFiles::for_current(current);
    match logs::tail(&files, 10) {
        Ok(tail) => {
            if !tail.lines.is_empty() {
                writeln!(out)?;
            }
            tail.write_all(out)?;
        }
        Err(logs::LogError::Missing(_)) => {}
        Err(e) => eprintln!("slipctl: {}: {e}", u.name),
    }
    Ok(())
}

fn each_unit(
    units: Vec<String>,
    timeout: Duration,
    out: &mut impl Write,
    make: impl Fn(String) -> Request,
) -> Result<u8, Failure> {
    let mut code = 0;
    for unit in units {
        let unit = unit_name(&unit);
        let req = make(unit.clone());
        let resp = match call(&socket_path(), &req, timeout) {
            Ok(resp) => resp,
            Err(e @ ProtoError::Connect { .. }) => {
                // No point in trying the other units.
                eprintln!("slipctl: {e}");
                return Err(Failure::Exit(1));
            }
            Err(e) => {
                eprintln!("slipctl: {unit}: {e}");
                code = 1;
                continue;
            }
        };
        if resp.ok {
            if let Some(msg) = &resp.message {
                writeln!(out, "{msg}")?;
            }
        } else {
            out.flush()?;
            eprintln!("slipctl: {}", about_unit(&unit, error_text(&resp)));
            code = 1;
        }
    }
    Ok(code)
}

fn power(req: Request, timeout: Duration, out: &mut impl Write) -> Result<u8, Failure> {
    let resp = match call(&socket_path(), &req, timeout) {
        Ok(resp) => resp,
        // The manager may go down before it answers: that is what was asked.
        Err(ProtoError::Eof) => return Ok(0),
        Err(e) => {
            eprintln!("slipctl: {}: {e}", req.command());
            return Err(Failure::Exit(1));
        }
    };
    if resp.ok {
        if let Some(msg) = &resp.message {
            writeln!(out, "{msg}")?;
        }
        Ok(0)
    } else {
        eprintln!("slipctl: {}: {}", req.command(), error_text(&resp));
        Ok(1)
    }
}

fn show_logs(unit: &str, n: usize, follow: bool, out: &mut impl Write) -> Result<u8, Failure> {
    let files = logs::LogFiles::new(&log_dir(), unit);
    let tail = match logs::tail_for_follow(&files, n, follow) {
        Ok(tail) => tail,
        Err(e) => {
            eprintln!("slipctl: {unit}: {e}");
            return Err(Failure::Exit(1));
        }
    };
    tail.write_all(out)?;
    out.flush()?;
    if follow {
        logs::follow(&files, tail.position, out, &|| false, logs::POLL)?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn arguments_parse_as_documented() {
        let cli = Cli::try_parse_from(["slipctl", "enable", "--now", "a", "b.socket"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Enable { now: true, ref units }) if units == &["a", "b.socket"]
        ));
        let cli = Cli::try_parse_from(["slipctl", "logs", "-n", "5", "-f", "web"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Logs { lines: 5, follow: true, ref unit }) if unit == "web"
        ));
        let cli = Cli::try_parse_from(["slipctl", "status", "--json", "--timeout", "3"]).unwrap();
        assert_eq!(cli.timeout, Some(3));
        assert!(Cli::try_parse_from(["slipctl", "start"]).is_err());
        assert!(Cli::try_parse_from(["slipctl"]).unwrap().command.is_none());
    }

    #[test]
    fn errors_name_the_unit_once() {
        assert_eq!(
            about_unit("a.service", "not loaded"),
            "a.service: not loaded"
        );
        assert_eq!(
            about_unit("a.service", "a.service: not loaded"),
            "a.service: not loaded"
        );
        assert_eq!(
            about_unit("a.service", "a.services gone"),
            "a.service: a.services gone"
        );
    }
}

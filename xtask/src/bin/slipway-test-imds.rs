//! `slipway-test-imds DATA_FILE`: serves one connection of the test EC2
//! metadata service on stdin/stdout (see `xtask::imds`). QEMU runs it for
//! each guest connection to 169.254.169.254:80; nothing else should.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(file) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: slipway-test-imds DATA_FILE (run by QEMU's guestfwd, see xtask::imds)");
        return ExitCode::from(2);
    };
    match xtask::imds::serve_connection(&file, std::io::stdin(), std::io::stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // stderr is the guest's connection too: say it in the log.
            let log = xtask::imds::request_log(&file);
            let _ = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .and_then(|mut f| {
                    std::io::Write::write_all(&mut f, format!("error: {e:#}\n").as_bytes())
                });
            ExitCode::FAILURE
        }
    }
}

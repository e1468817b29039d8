//! `slipctl`: the command-line client of the Slipway service manager.
//! Everything but the entry point is in `cli/`, compiled into the binary
//! only (the library stays serde + serde_json).

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}

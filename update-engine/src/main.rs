//! `update-engine` on the machine; the logic is in the library (`cli`).

fn main() -> std::process::ExitCode {
    slipway_update::cli::main()
}

//! The Slipway PID 1. All logic lives in the library; see `slipway_init::main`.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

fn main() {
    let code = slipway_init::main(std::env::args_os().collect());
    std::process::exit(code);
}

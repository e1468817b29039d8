//! The installer's fuzz target's body (`fuzz_bodies/`, shared with
//! `../fuzz/`) over its regression inputs, valid seeds and a few thousand
//! mutations of them (see `boot-contract/tests/fuzz_support/smoke.rs`).

mod fuzz_bodies;
#[path = "../../boot-contract/tests/fuzz_support/smoke.rs"]
mod smoke;

const CRATE: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn gpt_read() {
    let seeds = fuzz_bodies::gpt_disk::reader_seeds();
    smoke::smoke(CRATE, "gpt_read", &seeds, fuzz_bodies::gpt_read, 2000);
}

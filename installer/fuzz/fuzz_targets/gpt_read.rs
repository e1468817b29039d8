//! cargo-fuzz target `gpt_read`: the body is shared with the ordinary test
//! suite (`installer/tests/fuzz_smoke.rs`).
#![no_main]

#[path = "../../tests/fuzz_bodies/mod.rs"]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bodies::gpt_read(data);
});

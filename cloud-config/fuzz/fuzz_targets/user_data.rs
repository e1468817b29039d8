//! cargo-fuzz target `user_data`: the body is shared with the ordinary test
//! suite (`cloud-config/tests/robustness.rs`).
#![no_main]

#[path = "../../tests/fuzz_bodies/mod.rs"]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bodies::user_data(data);
});

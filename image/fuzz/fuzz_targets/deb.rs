//! cargo-fuzz target `deb`: the body is shared with the ordinary test
//! suite (`image/tests/fuzz_smoke.rs`).
#![no_main]

#[allow(dead_code)] // each target uses one body of the shared file
#[path = "../../tests/fuzz_bodies/mod.rs"]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bodies::deb(data);
});

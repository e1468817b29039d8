//! cargo-fuzz target `response`: the body is shared with the ordinary test
//! suite (`initramfs/control/tests/fuzz_smoke.rs`).
#![no_main]

#[allow(dead_code)] // each target uses one body of the shared file
#[path = "../../tests/fuzz_bodies/mod.rs"]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bodies::response(data);
});

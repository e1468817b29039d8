//! cargo-fuzz target `cpio`: the body is shared with the ordinary test
//! suite (`initramfs/archive/tests/fuzz_smoke.rs`).
#![no_main]

#[path = "../../tests/fuzz_bodies/mod.rs"]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bodies::cpio(data);
});

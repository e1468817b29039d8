//! cargo-fuzz target `delta_index`: the body is shared with the ordinary
//! test suite (`update-engine/tests/fuzz_smoke.rs`), see that file's module
//! doc.
#![no_main]

#[allow(dead_code)] // each target uses one body of the shared file
#[path = "../../tests/fuzz_bodies/mod.rs"]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bodies::delta_index(data);
});

//! The fuzz targets' bodies (`fuzz_bodies/`, shared with `../fuzz/`) over
//! their regression inputs and a deterministic corpus in the ordinary test
//! suite: the seeds (lines the builder writes, windows the docs show) and
//! thousands of mutations of them (`fuzz_support/smoke.rs`, which every
//! crate's smoke test shares). Not a fuzzer: the same inputs every run, so
//! a failure reproduces; a failing input is named in the panic message.

mod fuzz_bodies;
#[path = "fuzz_support/smoke.rs"]
mod smoke;

const CRATE: &str = env!("CARGO_MANIFEST_DIR");

const SEEDS_CMDLINE: [&str; 5] = [
    "console=ttyS0 gpt slipway.slot=a slipway.root=PARTUUID=6a4f36e5-5b1e-4d8a-9c3f-2b7e1d0c9a81 \
     slipway.roothash=4392a8f0e2c1b7d6a5f4e3d2c1b0a9f8e7d6c5b4a3928170f6e5d4c3b2a19080 \
     slipway.verity_hash=PARTUUID=7d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6 \
     slipway.verity_salt=0011223344556677889900aabbccddeeff00112233445566778899aabbccddee \
     slipway.verity_blocks=1000",
    "slipway.slot=b slipway.root=PARTUUID=6a4f36e5-5b1e-4d8a-9c3f-2b7e1d0c9a81 slipway.verity=off",
    "\"slipway.slot=a\" slipway.root=\"PARTUUID=6a4f36e5-5b1e-4d8a-9c3f-2b7e1d0c9a81\" slipway.verity=off",
    "quiet slipway.slot=A slipway.slot=b slipway.root=PARTUUID=6A4F36E5-5B1E-4D8A-9C3F-2B7E1D0C9A81 slipway.verity=off",
    "",
];

const SEEDS_WINDOW: [&str; 6] = [
    "Thu 04:00\n1h30m\n",
    "Sun 0:0\n168h\nx",
    "23:59\n24h\n0",
    "thursday 4:05\n90m\n",
    "Mon 04:00\n2d\n",
    "04:00\n0.5h\n1800000000",
];

fn seeds(texts: &[&str]) -> Vec<Vec<u8>> {
    texts.iter().map(|t| t.as_bytes().to_vec()).collect()
}

#[test]
fn cmdline_corpus() {
    smoke::smoke(
        CRATE,
        "cmdline",
        &seeds(&SEEDS_CMDLINE[..4]),
        fuzz_bodies::cmdline,
        10_000,
    );
    // The empty line has no arguments: refused, and no panic.
    assert!(!fuzz_bodies::cmdline(b""));
}

#[test]
fn window_corpus() {
    smoke::smoke(
        CRATE,
        "window",
        &seeds(&SEEDS_WINDOW),
        fuzz_bodies::window,
        12_000,
    );
}

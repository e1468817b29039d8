//! The fuzz targets' bodies (`fuzz_bodies/`, shared with `../fuzz/`) over a
//! deterministic corpus in the ordinary test suite: the seeds (lines the
//! builder writes, windows the docs show) and a few thousand mutations of
//! them. Not a fuzzer: the same inputs every run, so a failure reproduces;
//! a failing input is named in the panic message.

mod fuzz_bodies;

use std::panic::{self, AssertUnwindSafe};

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

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Bytes that matter to these grammars.
const INTERESTING: &[u8] = b" \t\n\r\"=:.0123456789abcdefABCDEFhmsdx-+\x00\x7f\xff";

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(4) {
            0 if at < out.len() => out[at] ^= 1 << rng.below(8),
            1 => out.insert(at, INTERESTING[rng.below(INTERESTING.len())]),
            2 if at < out.len() => {
                out.remove(at);
            }
            _ => out.truncate(at),
        }
    }
    out
}

fn run(name: &str, seeds: &[&str], body: fn(&[u8]), rounds: usize) {
    let mut rng = Rng(0x5eed_0000 + name.len() as u64);
    for seed in seeds {
        let seed = seed.as_bytes();
        for i in 0..rounds {
            let input = if i == 0 {
                seed.to_vec()
            } else {
                mutate(&mut rng, seed)
            };
            let result = panic::catch_unwind(AssertUnwindSafe(|| body(&input)));
            assert!(
                result.is_ok(),
                "{name}: the body failed on {:?}",
                String::from_utf8_lossy(&input)
            );
        }
    }
}

#[test]
fn cmdline_corpus() {
    run("cmdline", &SEEDS_CMDLINE, fuzz_bodies::cmdline, 2000);
}

#[test]
fn window_corpus() {
    run("window", &SEEDS_WINDOW, fuzz_bodies::window, 2000);
}

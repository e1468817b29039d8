//! The deterministic half of fuzzing, shared by every crate's
//! `tests/fuzz_smoke.rs` (included with `#[path]`, as the bodies are in the
//! fuzz targets): a target's body over its valid seeds, a few thousand
//! byte-level mutations of them, and the inputs a fuzzer once found failing
//! (`tests/fuzz_regressions/<target>/`, kept after the fix). Not a fuzzer:
//! the same inputs on every run, so a failure reproduces; a failing input
//! is written to the temporary directory and named in the panic message.
//!
//! In `boot-contract/` because it is what the crates share; a test-only
//! helper crate would be one more workspace member for one file. It uses
//! the standard library only, so every crate can include it.

#![allow(dead_code)] // each includer uses part of it

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// splitmix64: small, fixed, good enough to pick mutations.
pub struct Rng(pub u64);

impl Rng {
    /// A fixed stream per name, whatever the order tests run in.
    pub fn for_name(name: &str) -> Rng {
        Rng(name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        }))
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// Bytes that matter to the text grammars and binary headers fuzzed here.
pub const INTERESTING: &[u8] =
    b" \t\n\r\"'\\=:;,.#[]{}-+/*%$0123456789abcfxAFZ\x00\x01\x7f\x80\xfe\xff";

/// One to four byte-level changes: a bit flipped, a byte inserted or set
/// to an interesting value, a run deleted or duplicated, a 32-bit
/// little-endian word set to an edge value, the tail cut off.
pub fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let len = out.len();
        let at = rng.below(len + 1);
        match rng.below(8) {
            0 | 1 if at < len => out[at] ^= 1 << rng.below(8),
            2 => out.insert(at, *rng.pick(INTERESTING)),
            3 if at < len => out[at] = *rng.pick(INTERESTING),
            4 if at < len => {
                let n = (1 + rng.below(16)).min(len - at);
                out.drain(at..at + n);
            }
            5 => {
                let end = (at + 1 + rng.below(48)).min(len);
                let piece = out[at.min(end)..end].to_vec();
                out.splice(at..at, piece);
            }
            6 if at + 4 <= len => {
                let edge = *rng.pick(&[0u32, 1, 0x7f, 0x80, 0xffff, 0x8000_0000, u32::MAX]);
                out[at..at + 4].copy_from_slice(&edge.to_le_bytes());
            }
            7 if rng.chance(30) => out.truncate(at),
            _ => out.insert(at, rng.next() as u8),
        }
    }
    out
}

/// Calls `body`, turning a panic into one naming the target, what the
/// input was and a file holding it.
pub fn guarded(target: &str, what: &str, input: &[u8], body: fn(&[u8]) -> bool) -> bool {
    match panic::catch_unwind(AssertUnwindSafe(|| body(input))) {
        Ok(accepted) => accepted,
        Err(e) => {
            let why = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let file = std::env::temp_dir().join(format!("slipway-fuzz-smoke-{target}.bin"));
            let _ = std::fs::write(&file, input);
            panic!(
                "{target}: the body failed on {what}, saved as {}: {why}\ninput: {:?}",
                file.display(),
                String::from_utf8_lossy(&input[..input.len().min(512)])
            );
        }
    }
}

/// `body` over `seeds` (each must be accepted) and `mutants` mutations of
/// them; not every mutant may be accepted (else the mutations do nothing).
/// Returns how many were.
pub fn run(target: &str, seeds: &[Vec<u8>], body: fn(&[u8]) -> bool, mutants: usize) -> usize {
    for (i, seed) in seeds.iter().enumerate() {
        assert!(
            guarded(target, &format!("seed {i}"), seed, body),
            "{target}: valid seed {i} was refused"
        );
    }
    let mut rng = Rng::for_name(target);
    let mut accepted = 0;
    for n in 0..mutants {
        let input = mutate(&mut rng, &seeds[n % seeds.len()]);
        if guarded(target, &format!("mutant {n}"), &input, body) {
            accepted += 1;
        }
    }
    println!(
        "{target}: {} seeds, {mutants} mutants, {accepted} accepted",
        seeds.len()
    );
    assert!(
        accepted < mutants,
        "{target}: every mutant was accepted: the mutations do nothing"
    );
    accepted
}

/// Where the crate keeps `target`'s regression inputs.
pub fn regressions_dir(crate_dir: &str, target: &str) -> PathBuf {
    Path::new(crate_dir)
        .join("tests/fuzz_regressions")
        .join(target)
}

/// Replays every input kept in `<crate_dir>/tests/fuzz_regressions/<target>/`
/// (none is fine: the target has found nothing yet). Returns how many.
pub fn replay(crate_dir: &str, target: &str, body: fn(&[u8]) -> bool) -> usize {
    let dir = regressions_dir(crate_dir, target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    let mut paths: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    paths.sort();
    for path in &paths {
        let input = std::fs::read(path).unwrap();
        guarded(target, &path.display().to_string(), &input, body);
    }
    paths.len()
}

/// With `SLIPWAY_FUZZ_SEEDS=<dir>`, writes the seeds to `<dir>/<target>/`,
/// the layout cargo-fuzz reads a corpus from.
pub fn write_seeds(target: &str, seeds: &[Vec<u8>]) {
    let Some(dir) = std::env::var_os("SLIPWAY_FUZZ_SEEDS") else {
        return;
    };
    let dir = PathBuf::from(dir).join(target);
    std::fs::create_dir_all(&dir).unwrap();
    for (i, seed) in seeds.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i}")), seed).unwrap();
    }
}

/// A target's whole smoke test: seeds written out if asked, regression
/// inputs replayed, then seeds and mutants.
pub fn smoke(
    crate_dir: &str,
    target: &str,
    seeds: &[Vec<u8>],
    body: fn(&[u8]) -> bool,
    mutants: usize,
) {
    write_seeds(target, seeds);
    replay(crate_dir, target, body);
    run(target, seeds, body, mutants);
}

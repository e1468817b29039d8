//! No input makes the checker panic: mutated fixtures (bytes flipped,
//! cut, YAML punctuation inserted) go through `validate`, and every
//! finding it returns has a real position. The tool runs at every boot on
//! user-data anyone with access to the cloud console can write.
//! (A stand-in for a fuzzer: deterministic, so a failure reproduces.)

#[allow(dead_code)] // the datasource bodies are run by fuzz_smoke.rs
mod fuzz_bodies;

use std::path::Path;

/// xorshift64*: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const PUNCTUATION: &[u8] = b":-[]{}|>&*!%@`'\"#,?\t\n \\\x00\xff";

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(4) {
            0 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] ^= 1 << rng.below(8);
            }
            1 => out.truncate(at),
            2 => out.insert(at, PUNCTUATION[rng.below(PUNCTUATION.len())]),
            _ => {
                // Duplicate a slice: repeated keys, deeper nesting.
                let end = (at + rng.below(40)).min(out.len());
                let piece = out[at.min(end)..end].to_vec();
                out.splice(at..at, piece);
            }
        }
    }
    out
}

#[test]
fn mutated_user_data_never_panics_and_findings_have_positions() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut fixtures: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    fixtures.push(b"#cloud-config\n".to_vec());
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut checked = 0;
    for fixture in &fixtures {
        for _ in 0..5000 {
            let input = mutate(&mut rng, fixture);
            let result = std::panic::catch_unwind(|| fuzz_bodies::user_data(&input)).map_err(|e| {
                e.downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_else(|| "a panic".into())
            });
            if let Err(why) = result {
                panic!("{why} on:\n{}", String::from_utf8_lossy(&input));
            }
            checked += 1;
        }
    }
    assert!(checked >= 30_000, "only {checked} inputs checked");
}

/// Inputs the `user_data` fuzz target found failing, kept and replayed:
/// each must now pass the body.
#[test]
fn fuzz_regressions_pass() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions/user_data");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let input = std::fs::read(&path).unwrap();
        let result = std::panic::catch_unwind(|| fuzz_bodies::user_data(&input));
        assert!(result.is_ok(), "{} fails again", path.display());
        n += 1;
    }
    assert!(n >= 1, "no regression inputs in {}", dir.display());
}

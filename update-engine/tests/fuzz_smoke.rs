//! The fuzz targets' bodies (`fuzz_bodies/`, shared with
//! `update-engine/fuzz/`) over a deterministic corpus, in the ordinary test
//! suite: valid seeds made with the crate's own writers, each of which must
//! still be accepted, and a few thousand mutations of them (bit flips,
//! truncations, insertions, byte-value extremes, duplicated JSON keys, huge
//! numbers, edge values), none of which may panic.
//!
//! Not a fuzzer: the same inputs on every run, from a fixed-seed generator,
//! so a failure reproduces. A failing input is written to the temporary
//! directory and named in the panic message.
//!
//! `SLIPWAY_FUZZ_SEEDS=<dir>` also writes the seeds to `<dir>/<target>/`,
//! the layout cargo-fuzz reads a corpus from (see `update-engine/fuzz/`).

mod fuzz_bodies;
#[path = "../../boot-contract/tests/fuzz_support/smoke.rs"]
mod smoke;

use smoke::{guarded, write_seeds, Rng};

use fuzz_bodies as bodies;
use slipway_update::feed::{PayloadRef, Release as FeedRelease};
use slipway_update::keys::SecretKey;
use slipway_update::manifest::{VerityInfo, MIN_CHUNK};
use slipway_update::payload::{self, Release, HEADER_LEN, MAGIC, MANIFEST_CONTEXT};
use slipway_update::waves::Wave;

// ---------------------------------------------------------------- generator

const EXTREME_BYTES: [u8; 11] = [
    0x00, 0x01, 0x7f, 0x80, 0xff, b'"', b'\\', b'\n', b'\r', b'=', b'.',
];

const HUGE_NUMBERS: [&str; 20] = [
    "0",
    "-0",
    "-1",
    "1",
    "4095",
    "4096",
    "65536",
    "16777216",
    "33554432",
    "4294967295",
    "4294967296",
    "68719476736",
    "68719476737",
    "9223372036854775807",
    "18446744073709551615",
    "18446744073709551616",
    "340282366920938463463374607431768211456",
    "99999999999999999999999999999999999999999999999999",
    "1e400",
    "1.5",
];

const EDGE_STRINGS: [&str; 12] = [
    "",
    "a",
    "slipway.verity=off",
    "\\u0000",
    "\\ud800",
    "\\n",
    "é",
    "abababababababababababababababababababababababababababababababab",
    "ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB",
    "abababababababababababababababababababababababababababababababa",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "1.0~rc1",
];

/// One byte-level mutation inside `lo..hi` of `input` (clamped).
fn mutate_bytes_in(rng: &mut Rng, input: &[u8], lo: usize, hi: usize) -> (Vec<u8>, String) {
    let mut out = input.to_vec();
    let hi = hi.min(out.len());
    let lo = lo.min(hi);
    let at = |rng: &mut Rng| lo + rng.below(hi - lo + 1);
    match rng.below(8) {
        0 | 1 if hi > lo => {
            let i = lo + rng.below(hi - lo);
            let bit = rng.below(8);
            out[i] ^= 1 << bit;
            (out, format!("flip bit {bit} of byte {i}"))
        }
        2 => {
            let n = at(rng);
            out.truncate(n);
            (out, format!("truncate to {n}"))
        }
        3 => {
            let i = at(rng);
            let n = 1 + rng.below(8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            out.splice(i..i, bytes);
            (out, format!("insert {n} random bytes at {i}"))
        }
        4 if hi > lo => {
            let i = lo + rng.below(hi - lo);
            let b = *rng.pick(&EXTREME_BYTES);
            out[i] = b;
            (out, format!("byte {i} = {b:#04x}"))
        }
        5 if hi > lo => {
            let i = lo + rng.below(hi - lo);
            let n = (1 + rng.below(16)).min(hi - i);
            out.drain(i..i + n);
            (out, format!("delete {n} bytes at {i}"))
        }
        6 if hi > lo => {
            let i = lo + rng.below(hi - lo);
            let n = (1 + rng.below(32)).min(hi - i);
            let copy = out[i..i + n].to_vec();
            out.splice(i..i, copy);
            (out, format!("duplicate {n} bytes at {i}"))
        }
        _ => {
            let i = at(rng);
            let b = *rng.pick(&EXTREME_BYTES);
            let n = 1 + rng.below(64);
            out.splice(i..i, std::iter::repeat_n(b, n));
            (out, format!("insert {n} x {b:#04x} at {i}"))
        }
    }
}

fn mutate_bytes(rng: &mut Rng, input: &[u8]) -> (Vec<u8>, String) {
    mutate_bytes_in(rng, input, 0, input.len())
}

/// Byte ranges of the runs of ASCII digits in `text`.
fn digit_runs(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut runs = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            runs.push((start, i));
        } else {
            i += 1;
        }
    }
    runs
}

/// A mutation of JSON text that keeps most of its shape: duplicated keys,
/// huge numbers, edge strings, lines removed or swapped.
fn mutate_json(rng: &mut Rng, text: &str) -> (String, String) {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let keyed: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains("\":"))
        .collect();
    match rng.below(6) {
        // The same key twice, with the same value or an extreme one.
        0 | 1 if !keyed.is_empty() => {
            let i = *rng.pick(&keyed);
            let line = lines[i];
            let dup = if rng.chance(50) {
                line.to_string()
            } else {
                let (key, _) = line.split_once("\":").unwrap_or((line, ""));
                format!("{key}\": {},\n", rng.pick(&HUGE_NUMBERS))
            };
            let mut out = lines[..=i].concat();
            out += &dup;
            out += &lines[i + 1..].concat();
            (out, format!("duplicate key on line {i}"))
        }
        2 => {
            let runs = digit_runs(text);
            if runs.is_empty() {
                return (text.to_string(), "unchanged".into());
            }
            let (s, e) = *rng.pick(&runs);
            let n = rng.pick(&HUGE_NUMBERS);
            (
                format!("{}{n}{}", &text[..s], &text[e..]),
                format!("number at {s} = {n}"),
            )
        }
        3 => {
            // Replace the contents of one string value (after `": "`).
            let starts: Vec<usize> = text.match_indices("\": \"").map(|(i, _)| i + 4).collect();
            if starts.is_empty() {
                return (text.to_string(), "unchanged".into());
            }
            let s = *rng.pick(&starts);
            let e = text[s..].find('"').map_or(text.len(), |n| s + n);
            let v = rng.pick(&EDGE_STRINGS);
            (
                format!("{}{v}{}", &text[..s], &text[e..]),
                format!("string at {s} = {v:?}"),
            )
        }
        4 if lines.len() > 1 => {
            let i = rng.below(lines.len());
            let mut out: Vec<&str> = lines.clone();
            out.remove(i);
            (out.concat(), format!("remove line {i}"))
        }
        _ if lines.len() > 1 => {
            let (i, j) = (rng.below(lines.len()), rng.below(lines.len()));
            let mut out: Vec<&str> = lines.clone();
            out.swap(i, j);
            (out.concat(), format!("swap lines {i} and {j}"))
        }
        _ => {
            let (b, how) = mutate_bytes(rng, text.as_bytes());
            (String::from_utf8_lossy(&b).into_owned(), how)
        }
    }
}

// ---------------------------------------------------------------- runner

/// Replays the target's regression inputs (`tests/fuzz_regressions/<target>/`),
/// then runs `body` over `seeds` (each must be accepted) and `count` mutants
/// made by `mutate` from them, about a quarter mutated twice. Returns how
/// many mutants were accepted.
fn smoke(
    target: &str,
    body: fn(&[u8]) -> bool,
    seeds: &[Vec<u8>],
    count: usize,
    mutate: fn(&mut Rng, &[u8]) -> (Vec<u8>, String),
) -> usize {
    write_seeds(target, seeds);
    smoke::replay(env!("CARGO_MANIFEST_DIR"), target, body);
    for (i, seed) in seeds.iter().enumerate() {
        assert!(
            guarded(target, "seed", seed, body),
            "{target}: valid seed {i} was refused"
        );
    }
    let mut rng = Rng::for_name(target);
    let mut accepted = 0;
    for n in 0..count {
        let seed = &seeds[n % seeds.len()];
        let (mut input, mut how) = mutate(&mut rng, seed);
        if rng.chance(25) {
            let (again, how2) = mutate(&mut rng, &input);
            input = again;
            how = format!("{how}, then {how2}");
        }
        if guarded(target, &format!("mutant {n}: {how}"), &input, body) {
            accepted += 1;
        }
    }
    println!(
        "{target}: {} seeds, {count} mutants, {accepted} accepted",
        seeds.len()
    );
    assert!(
        accepted < count,
        "{target}: every mutant was accepted: the mutations do nothing"
    );
    accepted
}

// ---------------------------------------------------------------- seeds

fn pattern(n: usize, k: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(k) ^ 0x5a).collect()
}

/// A signed payload built with the crate's writer.
fn payload_seed(version: &str, parts: [Vec<u8>; 4], keys: &[&SecretKey]) -> Vec<u8> {
    let release = Release {
        os_name: "Slipway".into(),
        version: version.into(),
        board: bodies::BOARD.into(),
        build_id: "fuzz-seed".into(),
        cmdline: "console=ttyS0 panic=5 quiet".into(),
        verity: VerityInfo {
            root_hash: "11".repeat(32),
            salt: "22".repeat(32),
            data_blocks: parts[0].len() as u64 / 4096,
        },
        chunk_size: MIN_CHUNK,
    };
    let refs = [&parts[0][..], &parts[1][..], &parts[2][..], &parts[3][..]];
    let m = payload::manifest_for(&release, refs).unwrap();
    let mut out = Vec::new();
    payload::write(&mut out, &m, refs, keys).unwrap();
    out
}

fn other_key() -> SecretKey {
    SecretKey::from_seed(&[0x42; 32])
}

fn payload_seeds() -> Vec<Vec<u8>> {
    let trusted = bodies::secret_key();
    vec![
        // One short chunk.
        payload_seed(
            "2.0.1",
            [
                pattern(4096, 3),
                pattern(64, 5),
                pattern(33, 7),
                pattern(7, 11),
            ],
            &[trusted],
        ),
        // Two chunks, the boundary inside the verity part; signed by an
        // untrusted key too (key rotation), which is ignored.
        payload_seed(
            "2.1~rc1",
            [
                pattern(16 * 4096, 13),
                pattern(100, 17),
                pattern(50, 19),
                pattern(10, 23),
            ],
            &[&other_key(), trusted],
        ),
    ]
}

/// The three regions of a payload: header, manifest, signatures (data is
/// the rest). `None` if the lengths do not fit.
fn payload_regions(p: &[u8]) -> Option<(usize, usize, usize)> {
    let word = |i: usize| -> Option<usize> {
        Some(u32::from_le_bytes(p.get(i..i + 4)?.try_into().ok()?) as usize)
    };
    let (m, s) = (word(20)?, word(24)?);
    (HEADER_LEN + m + s <= p.len()).then_some((HEADER_LEN, m, s))
}

/// A payload container around the given pieces, with correct lengths.
fn container(manifest: &[u8], signatures: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    for w in [1, manifest.len() as u32, signatures.len() as u32, 0] {
        out.extend_from_slice(&w.to_le_bytes());
    }
    out.extend_from_slice(manifest);
    out.extend_from_slice(signatures);
    out.extend_from_slice(data);
    out
}

fn mutate_payload(rng: &mut Rng, p: &[u8]) -> (Vec<u8>, String) {
    let Some((h, m, s)) = payload_regions(p) else {
        return mutate_bytes(rng, p);
    };
    let (manifest, sigs, data) = (&p[h..h + m], &p[h + m..h + m + s], &p[h + m + s..]);
    match rng.below(10) {
        // The manifest changed and signed again with the trusted key, so
        // the change gets past the signature to the checks and the chunks.
        0..=2 => {
            let (text, how) = mutate_json(rng, &String::from_utf8_lossy(manifest));
            let sig = bodies::secret_key().sign(MANIFEST_CONTEXT, text.as_bytes());
            let sigs = serde_json::to_vec(&[sig]).unwrap();
            (
                container(text.as_bytes(), &sigs, data),
                format!("manifest re-signed after {how}"),
            )
        }
        // The signatures' JSON changed; lengths kept right.
        3 => {
            let (text, how) = mutate_json(rng, &String::from_utf8_lossy(sigs));
            (
                container(manifest, text.as_bytes(), data),
                format!("signatures: {how}"),
            )
        }
        // A header word set to an edge value.
        4 => {
            let mut out = p.to_vec();
            let at = 16 + 4 * rng.below(4);
            let v = *rng.pick(&[
                0,
                1,
                2,
                u32::MAX,
                payload::MAX_MANIFEST,
                payload::MAX_MANIFEST + 1,
                payload::MAX_SIGNATURES,
                payload::MAX_SIGNATURES + 1,
                m as u32 + 1,
                m.saturating_sub(1) as u32,
                s as u32 + 1,
                s.saturating_sub(1) as u32,
            ]);
            out[at..at + 4].copy_from_slice(&v.to_le_bytes());
            (out, format!("header word at {at} = {v}"))
        }
        // Raw damage in the header, manifest and signatures.
        5..=7 => mutate_bytes_in(rng, p, 0, h + m + s),
        // Raw damage in the data (chunk checks, truncation, trailing bytes).
        _ => mutate_bytes_in(rng, p, h + m + s, p.len()),
    }
}

fn feed_release(version: &str, url: &str) -> FeedRelease {
    FeedRelease {
        format: 1,
        board: bodies::BOARD.into(),
        channel: bodies::CHANNEL.into(),
        version: version.into(),
        payload: PayloadRef {
            url: url.into(),
            size: 123_456,
            sha256: "ab".repeat(32),
        },
        published: bodies::NOW - 3600,
        expires: bodies::NOW + 7 * 86_400,
        waves: None,
    }
}

fn with_mode(mode: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![mode];
    out.extend_from_slice(bytes);
    out
}

fn feed_seeds() -> Vec<Vec<u8>> {
    let trusted = bodies::secret_key();
    let a = feed_release("2.0.1", "../payloads/qemu-x86_64/2.0.1.payload");
    let b = FeedRelease {
        // Mutations of a phased rollout reach the waves' checks.
        waves: Some(vec![
            Wave {
                seeds_below: 512,
                after_s: 0,
            },
            Wave {
                seeds_below: 2048,
                after_s: 3600,
            },
        ]),
        ..feed_release("2.1~rc1", "http://127.0.0.1:8080/p/2.1~rc1.payload")
    };
    vec![
        with_mode(bodies::FEED_RAW, &a.sign(&[trusted])),
        with_mode(bodies::FEED_RAW, &b.sign(&[&other_key(), trusted])),
        with_mode(
            bodies::FEED_SIGN,
            serde_json::to_string_pretty(&a).unwrap().as_bytes(),
        ),
        with_mode(
            bodies::FEED_SIGN,
            serde_json::to_string(&b).unwrap().as_bytes(),
        ),
    ]
}

fn mutate_feed(rng: &mut Rng, f: &[u8]) -> (Vec<u8>, String) {
    let Some((&mode, rest)) = f.split_first() else {
        return mutate_bytes(rng, f);
    };
    if rng.chance(60) {
        let (text, how) = mutate_json(rng, &String::from_utf8_lossy(rest));
        (with_mode(mode, text.as_bytes()), how)
    } else {
        mutate_bytes(rng, f)
    }
}

/// Delta indexes of the fixed manifest, cut with two chunkings.
fn delta_index_seeds() -> Vec<Vec<u8>> {
    use slipway_update::delta::index::{Chunking, Index, PartPieces};
    let (m, sha) = bodies::delta_manifest();
    let parts = bodies::delta_parts();
    let mut seeds = Vec::new();
    for chunking in [
        Chunking {
            min: 1024,
            avg: 2048,
            max: 4096,
        },
        Chunking {
            min: 2048,
            avg: 8192,
            max: 16384,
        },
    ] {
        let index = Index {
            format: 1,
            manifest_sha256: sha.clone(),
            chunking,
            parts: m
                .offsets()
                .iter()
                .zip(&parts)
                .map(|((part, _, size), bytes)| PartPieces {
                    part: *part,
                    size: *size,
                    pieces: chunking
                        .cut(&bytes[..])
                        .unwrap()
                        .into_iter()
                        .map(|(len, h)| (len, hex::encode(h)))
                        .collect(),
                })
                .collect(),
        };
        let text = serde_json::to_string(&index).unwrap();
        seeds.push(with_mode(bodies::FEED_SIGN, text.as_bytes()));
        seeds.push(with_mode(
            bodies::FEED_RAW,
            &index.sign(&[bodies::secret_key()]),
        ));
    }
    seeds
}

fn update_conf_seeds() -> Vec<Vec<u8>> {
    [
        "# Slipway update configuration\n\
         SERVER=https://updates.example.org/slipway\n\
         GROUP=beta\n\
         REBOOT_STRATEGY=etcd-lock\n\
         WINDOW_START=Thu 04:00\n\
         WINDOW_LENGTH=1h30m\n\
         INTERVAL=2h\n\
         JITTER=5m\n\
         IO_WRITE_MAX=20M\n\
         IO_READ_MAX=max\n\
         CPU_WEIGHT=50\n\
         CPU_MAX=150%\n\
         MEMORY_MAX=128M\n\
         DOWNLOAD_MAX=1.5M\n\
         CGROUP=/sys/fs/cgroup/updates\n\
         LOCKSMITHD_ENDPOINT=http://127.0.0.1:2379\n",
        // As cloud-config writes it, with locksmith's window names.
        "GROUP=stable\r\n\
         REBOOT_STRATEGY=best-effort\r\n\
         REBOOT_WINDOW_START=Sun 23:30\r\n\
         REBOOT_WINDOW_LENGTH=2d\r\n\
         LOCKSMITHD_ETCD_CAFILE= /etc/ssl/etcd/ca.pem\r\n",
        "\u{feff}  # defaults undone\n\n\
         SERVER=\n\
         WINDOW_START=\n\
         WINDOW_LENGTH=\n\
         INTERVAL=3600\n\
         JITTER=300ms\n\
         MEMORY_MAX=infinity\n\
         CPU_MAX=max\n\
         UNKNOWN_KEY=kept as a warning\n\
         GROUP=alpha\n\
         GROUP=beta\n",
        "LOCKSMITHD_REBOOT_WINDOW_START=23:00\n\
         LOCKSMITHD_REBOOT_WINDOW_LENGTH=1.5h\n\
         IO_WRITE_MAX=1.25GiB\n\
         DOWNLOAD_MAX=64K\n\
         INTERVAL=1h0m30.5s\n",
        "",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

const CONF_KEYS: [&str; 20] = [
    "SERVER",
    "GROUP",
    "REBOOT_STRATEGY",
    "WINDOW_START",
    "WINDOW_LENGTH",
    "REBOOT_WINDOW_START",
    "LOCKSMITHD_REBOOT_WINDOW_LENGTH",
    "INTERVAL",
    "JITTER",
    "IO_WRITE_MAX",
    "IO_READ_MAX",
    "CPU_WEIGHT",
    "CPU_MAX",
    "MEMORY_MAX",
    "DOWNLOAD_MAX",
    "CGROUP",
    "LOCKSMITHD_ENDPOINT",
    "lower",
    "",
    " SPACED KEY ",
];

const CONF_VALUES: [&str; 50] = [
    "",
    " ",
    "max",
    "MAX",
    "infinity",
    "0",
    "-1",
    "+5m",
    "18446744073709551615",
    "18446744073709551616",
    "18446744073709551615K",
    "99999999999999999999T",
    "999999999999999999999",
    "1.5",
    "1.",
    ".5M",
    "1..5M",
    "1e3",
    "16M",
    "15.99M",
    "64K",
    "1KB",
    "1.5h",
    "9999999999999999999h",
    "99999999999999999999d",
    "1h1h1h1h1h1h1h1h1h1h",
    "1µs",
    "1μs",
    "µs",
    "0.000000000000000000001s",
    "1m0.5s",
    "Thu 23:59",
    "Mon 0:00",
    "Sunday 24:00",
    "Thu  04:00",
    "25:00",
    "7d",
    "8d",
    "0s",
    "10000%",
    "10001%",
    "0%",
    "50 %",
    "/sys/fs/cgroup/a/",
    "/sys/fs/cgroup/..",
    "/sys/fs/cgroup/a /",
    "v\r",
    "http://",
    "https://host/path x",
    "best-effort",
];

fn mutate_conf(rng: &mut Rng, c: &[u8]) -> (Vec<u8>, String) {
    let text = String::from_utf8_lossy(c);
    let lines: Vec<&str> = text.lines().collect();
    match rng.below(6) {
        0 | 1 => {
            // One line's value replaced, or a new line added.
            let key = rng.pick(&CONF_KEYS);
            let value = rng.pick(&CONF_VALUES);
            let line = format!("{key}={value}");
            let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            let i = rng.below(out.len() + 1);
            if i < out.len() && rng.chance(50) {
                out[i] = line.clone();
            } else {
                out.insert(i, line.clone());
            }
            (out.join("\n").into_bytes(), format!("line {i} = {line:?}"))
        }
        2 if !lines.is_empty() => {
            let i = rng.below(lines.len());
            let mut out = lines.clone();
            out.insert(i, lines[i]);
            (out.join("\n").into_bytes(), format!("line {i} twice"))
        }
        3 if !lines.is_empty() => {
            let i = rng.below(lines.len());
            let mut out = lines.clone();
            out.remove(i);
            (out.join("\r\n").into_bytes(), format!("remove line {i}"))
        }
        4 => {
            let (text, how) = mutate_json(rng, &text);
            (text.into_bytes(), how)
        }
        _ => mutate_bytes(rng, c),
    }
}

fn esp_name_seeds() -> Vec<Vec<u8>> {
    [
        "slipway-a.conf",
        "slipway-b.conf",
        "slipway-b+3.conf",
        "slipway-a+2-1.conf",
        "slipway-b+0-3.conf",
        "slipway-a+4294967295-4294967295.conf",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

fn mutate_text_numbers(rng: &mut Rng, t: &[u8]) -> (Vec<u8>, String) {
    if rng.chance(40) {
        let (text, how) = mutate_json(rng, &String::from_utf8_lossy(t));
        (text.into_bytes(), how)
    } else {
        mutate_bytes(rng, t)
    }
}

fn version_seeds() -> Vec<Vec<u8>> {
    [
        "1.0\n1.0~rc1",
        "6.0\n6.0.rc1",
        "2.0^1\n2.0-1",
        "123.a\n123a",
        "1.0+3\n1.0_3",
        "0001\n1",
        "2024.05.01\n2024.5.1~beta2",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

// ---------------------------------------------------------------- tests

#[test]
fn manifest() {
    let manifests: Vec<Vec<u8>> = payload_seeds()
        .iter()
        .map(|p| {
            let (h, m, _) = payload_regions(p).unwrap();
            p[h..h + m].to_vec()
        })
        .collect();
    smoke("manifest", bodies::manifest, &manifests, 4000, |rng, m| {
        if rng.chance(70) {
            let (text, how) = mutate_json(rng, &String::from_utf8_lossy(m));
            (text.into_bytes(), how)
        } else {
            mutate_bytes(rng, m)
        }
    });
}

#[test]
fn payload() {
    let accepted = smoke(
        "payload",
        bodies::payload,
        &payload_seeds(),
        2500,
        mutate_payload,
    );
    assert!(accepted > 0, "no re-signed mutant got through");
}

#[test]
fn feed() {
    let accepted = smoke("feed", bodies::feed, &feed_seeds(), 3000, mutate_feed);
    assert!(accepted > 0, "no mutant reached the end of verify");
}

#[test]
fn delta_index() {
    let accepted = smoke(
        "delta_index",
        bodies::delta_index,
        &delta_index_seeds(),
        3000,
        mutate_feed,
    );
    assert!(accepted > 0, "no mutant reached the end of verify");
}

#[test]
fn update_conf() {
    let accepted = smoke(
        "update_conf",
        bodies::update_conf,
        &update_conf_seeds(),
        4000,
        mutate_conf,
    );
    assert!(accepted > 0);
}

#[test]
fn esp_name() {
    smoke(
        "esp_name",
        bodies::esp_name,
        &esp_name_seeds(),
        3000,
        mutate_text_numbers,
    );
}

#[test]
fn version() {
    smoke(
        "version",
        bodies::version,
        &version_seeds(),
        3000,
        mutate_text_numbers,
    );
}

#[test]
fn fetch_headers() {
    let seeds: Vec<Vec<u8>> = [
        "bytes 0-1048575/536870912\nhttp://updates.example:8080/stable/qemu-x86_64.json\n\
         ../payloads/2.1.0.payload?x=1#f",
        "bytes  100-199/*\nhttp://h\n//mirror/a/./b/../c",
        "bytes 5-5/6\n/srv/feeds/stable.json\nfile:///srv/p.payload",
        "bytes 0-0/1\nHTTP://H/a/b/c?q\n?r",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    smoke(
        "fetch_headers",
        bodies::fetch_headers,
        &seeds,
        3000,
        mutate_bytes,
    );
}

//! The formats as files: a small payload and a feed (and the same feed
//! with waves), signed with the test key of seed `[42; 32]`, kept in
//! `tests/fixtures/`. This test rebuilds them and requires the same bytes,
//! so a change to either format shows up as a diff in review (rewrite them
//! with `SLIPWAY_BLESS_FIXTURES=1` when the change is meant), and checks
//! that the stored files still parse and verify.

use std::path::PathBuf;

use slipway_update::feed::{PayloadRef, Release};
use slipway_update::keys::{SecretKey, TrustedKeys};
use slipway_update::manifest::{VerityInfo, MIN_CHUNK};
use slipway_update::payload::{self, ChunkReader};
use slipway_update::waves::Wave;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn key() -> SecretKey {
    SecretKey::from_seed(&[42; 32])
}

fn build() -> Vec<(&'static str, Vec<u8>)> {
    let root: Vec<u8> = (0..2 * 4096u32).map(|i| (i % 251) as u8).collect();
    let verity = vec![0x5a; 4096];
    let kernel = b"not really a kernel\n".repeat(400);
    let initrd = b"not really an initramfs\n".repeat(300);
    let parts = [&root[..], &verity[..], &kernel[..], &initrd[..]];
    let release = payload::Release {
        os_name: "Slipway".into(),
        version: "1.2.3".into(),
        board: "qemu-x86_64".into(),
        build_id: "fixture".into(),
        cmdline: "quiet panic=5 gpt console=ttyS0,115200".into(),
        verity: VerityInfo {
            root_hash: "ab".repeat(32),
            salt: "cd".repeat(32),
            data_blocks: 2,
        },
        chunk_size: MIN_CHUNK,
    };
    let m = payload::manifest_for(&release, parts).unwrap();
    let mut bytes = Vec::new();
    payload::write(&mut bytes, &m, parts, &[&key()]).unwrap();
    let feed_release = Release {
        format: 1,
        board: "qemu-x86_64".into(),
        channel: "stable".into(),
        version: "1.2.3".into(),
        payload: PayloadRef {
            url: "../payloads/qemu-x86_64/1.2.3.payload".into(),
            size: bytes.len() as u64,
            sha256: slipway_update::hashing::sha256_reader(&bytes[..], u64::MAX)
                .unwrap()
                .1,
        },
        published: 1_796_000_000,
        expires: 4_102_444_800,
        waves: None,
    };
    let feed = feed_release.sign(&[&key()]);
    // The same release rolled out in three waves (README.md "Phased rollout").
    let feed_waves = Release {
        waves: Some(vec![
            Wave {
                seeds_below: 512,
                after_s: 0,
            },
            Wave {
                seeds_below: 1024,
                after_s: 3600,
            },
            Wave {
                seeds_below: 2048,
                after_s: 14_400,
            },
        ]),
        ..feed_release
    }
    .sign(&[&key()]);
    vec![
        ("payload.bin", bytes),
        ("feed.json", feed),
        ("feed-waves.json", feed_waves),
        (
            "test-key.pub",
            key()
                .public()
                .to_line("fixture key, seed [42; 32]")
                .into_bytes(),
        ),
    ]
}

#[test]
fn fixtures_are_current_and_verify() {
    let bless = std::env::var_os("SLIPWAY_BLESS_FIXTURES").is_some();
    for (name, bytes) in build() {
        let path = dir().join(name);
        if bless {
            std::fs::write(&path, &bytes).unwrap();
        }
        let stored = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (SLIPWAY_BLESS_FIXTURES=1 writes it)",
                path.display()
            )
        });
        assert!(
            stored == bytes,
            "{name}: the format changed; if that is meant, rewrite the fixtures with \
             SLIPWAY_BLESS_FIXTURES=1 and say so in the change"
        );
    }
    let keys = TrustedKeys::new(vec![slipway_update::keys::PublicKey::load(
        &dir().join("test-key.pub"),
    )
    .unwrap()]);
    let bytes = std::fs::read(dir().join("payload.bin")).unwrap();
    let mut r = &bytes[..];
    let h = payload::read_header(&mut r).unwrap();
    h.verify(&keys).unwrap();
    let mut chunks = ChunkReader::new(r, &h.manifest, 0);
    let mut buf = Vec::new();
    let mut n = 0;
    while chunks.next_into(&mut buf).unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, h.manifest.chunks.len());
    let feed = std::fs::read(dir().join("feed.json")).unwrap();
    let r = Release::verify(&feed, &keys, 1_800_000_000, "qemu-x86_64", "stable").unwrap();
    assert_eq!(r.payload.size, bytes.len() as u64);
    assert_eq!(r.waves, None);
    let feed = std::fs::read(dir().join("feed-waves.json")).unwrap();
    let w = Release::verify(&feed, &keys, 1_800_000_000, "qemu-x86_64", "stable").unwrap();
    assert_eq!(
        Release {
            waves: None,
            ..w.clone()
        },
        r
    );
    let waves = w.waves.expect("feed-waves.json has waves");
    assert_eq!(
        slipway_update::waves::format_spec(&waves),
        "512@0s,1024@1h,2048@4h"
    );
}

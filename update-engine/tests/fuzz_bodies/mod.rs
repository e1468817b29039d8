//! The bodies of the update engine's fuzz targets, shared by two users:
//!
//! - `update-engine/fuzz/fuzz_targets/*.rs` (cargo-fuzz, its own workspace)
//!   include this file with `#[path = "../../tests/fuzz_bodies/mod.rs"]`;
//! - `update-engine/tests/fuzz_smoke.rs` runs the same bodies over a
//!   deterministic corpus in the ordinary test suite.
//!
//! Plain `pub fn`s in an included file, not a crate: the main workspace's
//! tests cannot depend on the fuzz crate (it is a workspace of its own), and
//! a shared helper crate would be one more member for a few functions. Keep
//! this file dependent on nothing but `slipway_update` and the crate's own
//! dependencies (`serde_json`, `hex`), which both users can name.
//!
//! Each body must never panic on any input; a panic (including a failed
//! `assert!` on a property below) is the bug a fuzzer reports. Each returns
//! whether the input was accepted, so the smoke test can check that its valid
//! seeds still are; the fuzz targets ignore it.

use std::io::Read;
use std::sync::OnceLock;

use slipway_update::config::Config;
use slipway_update::delta::index::{self as delta_index_fmt, Index};
use slipway_update::esp::{self, EntryState};
use slipway_update::feed::{self, Release};
use slipway_update::fetch::{self, Source};
use slipway_update::keys::{SecretKey, TrustedKeys};
use slipway_update::manifest::Manifest;
use slipway_update::payload::{self, ChunkReader};
use slipway_update::version;

/// The seed of the one key every target trusts. Seeds made with
/// [`secret_key`] verify, so the fuzzers reach the code behind the
/// signature checks.
pub const KEY_SEED: [u8; 32] = [0x5e; 32];
/// What the feed target passes as the machine's clock, board and channel.
pub const NOW: u64 = 1_700_000_000;
pub const BOARD: &str = "qemu-x86_64";
pub const CHANNEL: &str = "stable";

fn keys() -> &'static (SecretKey, TrustedKeys) {
    static KEYS: OnceLock<(SecretKey, TrustedKeys)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let key = SecretKey::from_seed(&KEY_SEED);
        let trusted = TrustedKeys::new(vec![key.public()]);
        (key, trusted)
    })
}

/// The signing half of the trusted key, for building seeds.
pub fn secret_key() -> &'static SecretKey {
    &keys().0
}

pub fn trusted_keys() -> &'static TrustedKeys {
    &keys().1
}

/// `Manifest::parse` on the bytes. Accepted manifests must serialise and
/// parse back to themselves, and their chunk ranges must tile the data.
pub fn manifest(data: &[u8]) -> bool {
    let Ok(m) = Manifest::parse(data) else {
        return false;
    };
    check_manifest(&m);
    true
}

fn check_manifest(m: &Manifest) {
    assert_eq!(
        Manifest::parse(&m.to_json()).as_ref(),
        Ok(m),
        "an accepted manifest does not round-trip"
    );
    let total = m.data_size().expect("check() accepted overflowing sizes");
    let mut at = 0;
    for (part, start, size) in m.offsets() {
        assert_eq!(m.artifact(part).size, size);
        assert_eq!(
            start,
            at,
            "artifact {} does not follow the last",
            part.name()
        );
        at += size;
    }
    assert_eq!(at, total);
    let mut at = 0;
    for i in 0..m.chunks.len() {
        let (start, end) = m.chunk_range(i);
        assert_eq!(start, at, "chunk {i} does not follow the last");
        assert!(start < end && end - start <= u64::from(m.chunk_size));
        at = end;
    }
    assert_eq!(at, total, "chunks do not cover the data");
}

/// A payload: `read_header`, the signature check against the fixed trusted
/// key, then every chunk through `ChunkReader` over the rest of the input.
/// Chunks are streamed even when the signature fails (the engine would stop
/// there), so that mutated manifests still drive the chunk reader.
/// Accepted: signature good and every chunk matched.
pub fn payload(data: &[u8]) -> bool {
    let mut rest = data;
    let Ok(header) = payload::read_header(&mut rest) else {
        return false;
    };
    assert_eq!(
        header.data_offset,
        (data.len() - rest.len()) as u64,
        "data_offset is not where the data starts"
    );
    check_manifest(&header.manifest);
    let verified = header.verify(trusted_keys()).is_ok();
    let total = header.manifest.data_size().unwrap_or(0);
    let mut chunks = ChunkReader::new(&mut rest, &header.manifest, 0);
    let mut buf = Vec::new();
    let mut read = 0u64;
    let complete = loop {
        match chunks.next_into(&mut buf) {
            Ok(Some((i, start, end))) => {
                assert_eq!(start, read, "chunk {i} out of order");
                assert_eq!(end - start, buf.len() as u64);
                read = end;
            }
            Ok(None) => break true,
            Err(_) => break false,
        }
    };
    if complete {
        assert_eq!(read, total, "the chunks ended before the data");
        assert_eq!(chunks.position(), header.manifest.chunks.len());
        // Whatever follows the data is not read.
        let mut tail = Vec::new();
        let _ = rest.read_to_end(&mut tail);
        assert_eq!(
            data.len() as u64,
            header.data_offset + total + tail.len() as u64
        );
    }
    verified && complete
}

/// Mode byte of the feed target: the rest is a whole feed file, checked as
/// it is (only feeds signed with the fixed key get past the signature).
pub const FEED_RAW: u8 = 0;
/// Mode byte of the feed target: the rest is the signed `release` document;
/// the body signs it with the fixed key and wraps it in an envelope, so the
/// fuzzer reaches the release's parsing and checks, which no mutation of a
/// signed feed can (every change breaks the signature).
pub const FEED_SIGN: u8 = 1;

/// `feed::Release::verify` for [`BOARD`], [`CHANNEL`] at [`NOW`]; the first
/// byte chooses [`FEED_RAW`] (even) or [`FEED_SIGN`] (odd).
pub fn feed(data: &[u8]) -> bool {
    let Some((&mode, rest)) = data.split_first() else {
        return false;
    };
    let signed;
    let bytes = if mode & 1 == FEED_RAW {
        rest
    } else {
        signed = sign_release_text(&String::from_utf8_lossy(rest));
        &signed[..]
    };
    let Ok(r) = Release::verify(bytes, trusted_keys(), NOW, BOARD, CHANNEL) else {
        return false;
    };
    assert!(r.expires > NOW && r.expires > r.published);
    assert_eq!((r.board.as_str(), r.channel.as_str()), (BOARD, CHANNEL));
    assert!(r.payload.size > 0);
    version::validate(&r.version).expect("an accepted feed has an invalid version");
    // Signing the parsed release again gives a feed that verifies to it.
    let again = r.sign(&[secret_key()]);
    assert_eq!(
        Release::verify(&again, trusted_keys(), NOW, BOARD, CHANNEL).as_ref(),
        Ok(&r),
        "an accepted feed does not round-trip through sign"
    );
    true
}

/// `Index::verify` (the delta index) against a fixed manifest. The first
/// byte chooses, as for the feed, between the bytes as the signed file
/// ([`FEED_RAW`]) and the rest as the index text, signed here
/// ([`FEED_SIGN`]), so mutations reach the checks behind the signature.
/// An accepted index's pieces tile the manifest's data exactly.
pub fn delta_index(data: &[u8]) -> bool {
    let Some((&mode, rest)) = data.split_first() else {
        return false;
    };
    let (m, sha) = delta_manifest();
    let signed;
    let bytes = if mode & 1 == FEED_RAW {
        rest
    } else {
        signed = sign_index_text(&String::from_utf8_lossy(rest));
        &signed[..]
    };
    let Ok(index) = Index::verify(bytes, trusted_keys(), m, sha) else {
        return false;
    };
    let mut at = 0;
    for p in index.pieces() {
        assert_eq!(p.offset, at, "pieces leave a gap or overlap");
        assert!(p.len > 0 && p.len <= index.chunking.max);
        at = p.end();
    }
    assert_eq!(Some(at), m.data_size(), "pieces do not cover the data");
    true
}

/// The manifest every delta index is checked against, and the sha256 of
/// its bytes.
pub fn delta_manifest() -> &'static (Manifest, String) {
    static M: OnceLock<(Manifest, String)> = OnceLock::new();
    M.get_or_init(|| {
        let parts = delta_parts();
        let refs = [&parts[0][..], &parts[1][..], &parts[2][..], &parts[3][..]];
        let release = payload::Release {
            os_name: "Slipway".into(),
            version: "2.0".into(),
            board: BOARD.into(),
            build_id: "fuzz".into(),
            cmdline: "console=ttyS0".into(),
            verity: slipway_update::manifest::VerityInfo {
                root_hash: "aa".repeat(32),
                salt: "bb".repeat(32),
                data_blocks: 2,
            },
            chunk_size: slipway_update::manifest::MIN_CHUNK,
        };
        let m = payload::manifest_for(&release, refs).expect("the fixed parts make a manifest");
        let (_, sha) = slipway_update::hashing::sha256_reader(&m.to_json()[..], u64::MAX)
            .expect("hashing bytes in memory");
        (m, sha)
    })
}

/// The four parts behind [`delta_manifest`].
pub fn delta_parts() -> [Vec<u8>; 4] {
    let fill = |n: usize, k: u8| {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(k) ^ (i >> 7) as u8)
            .collect()
    };
    [fill(8192, 3), fill(4096, 5), fill(3000, 7), fill(1000, 11)]
}

/// A signed delta index file around `text`.
pub fn sign_index_text(text: &str) -> Vec<u8> {
    slipway_update::keys::seal(
        "index",
        delta_index_fmt::CONTEXT,
        text.to_string(),
        &[secret_key()],
        false,
    )
}

/// A feed envelope around `release`, signed with the fixed key.
pub fn sign_release_text(release: &str) -> Vec<u8> {
    let sig = secret_key().sign(feed::FEED_CONTEXT, release.as_bytes());
    serde_json::to_vec(&serde_json::json!({ "release": release, "signatures": [sig] }))
        .expect("serialising a JSON value")
}

/// `Config::parse` of `update.conf` text over the defaults, as the engine
/// reads the image's file; then the same text over the result, as a second
/// file. The engine refuses non-UTF-8 files before parsing, so such input is
/// skipped. Accepted configurations must survive `describe` written out as a
/// file and parsed again (which its documentation promises).
pub fn update_conf(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let mut config = Config::default();
    if config.parse("/usr/lib/slipway/update.conf", text).is_err() {
        assert_eq!(
            config,
            Config::default(),
            "a refused file changed the config"
        );
        return false;
    }
    let mut twice = config.clone();
    let second = twice.parse("/etc/slipway/update.conf", text);
    assert!(
        second.is_ok(),
        "a file accepted once is refused over itself"
    );
    let described: String = config
        .describe()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect();
    let mut back = Config::default();
    if let Err(e) = back.parse("describe", &described) {
        panic!("describe() wrote a file that does not parse: {e}\n{described}");
    }
    assert_eq!(back, config, "describe() does not round-trip:\n{described}");
    if let Some(w) = config.window {
        let _ = w.wait_from(NOW);
        let _ = w.wait_from(u64::MAX);
    }
    true
}

/// `esp::parse_name` on the bytes as a file name (FAT names are text: input
/// that is not UTF-8 is skipped). Accepted names, written back in the
/// engine's own spelling, must parse to the same slot and state.
pub fn esp_name(data: &[u8]) -> bool {
    let Ok(name) = std::str::from_utf8(data) else {
        return false;
    };
    let Some((slot, state)) = esp::parse_name(name) else {
        return false;
    };
    let letter = slot.letter();
    let written = match state {
        EntryState::Good => format!("slipway-{letter}.conf"),
        EntryState::Trying { left, done } => {
            assert!(left > 0, "Trying with no tries left");
            format!("slipway-{letter}+{left}-{done}.conf")
        }
        EntryState::Bad { done } => format!("slipway-{letter}+0-{done}.conf"),
    };
    assert_eq!(esp::parse_name(&written), Some((slot, state)), "{written}");
    true
}

/// `version::compare` and `validate` on two versions split at the first
/// newline: the order must be antisymmetric and reflexive. Accepted: both
/// halves are valid versions.
pub fn version(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    let (a, b) = text.split_once('\n').unwrap_or((&text, ""));
    assert_eq!(version::compare(a, a), std::cmp::Ordering::Equal);
    assert_eq!(
        version::compare(a, b),
        version::compare(b, a).reverse(),
        "compare({a:?}, {b:?}) is not antisymmetric"
    );
    version::validate(a).is_ok() && version::validate(b).is_ok()
}

/// What the HTTP side of fetching reads from a server or a feed: a
/// `Content-Range` value (first line), then a base URL or path and a
/// reference to resolve against it (second and third lines). An accepted
/// range ends within its total and written back reads the same; a
/// resolved URL keeps the base's origin for a relative reference, has no
/// `.` or `..` segment left, and resolving the empty reference against it
/// gives it again; `Source::parse` reads its own description back; a URL
/// `check_http_url` accepts is accepted again unchanged.
pub fn fetch_headers(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.splitn(3, '\n');
    let range = lines.next().unwrap_or_default();
    let base = lines.next().unwrap_or_default();
    let reference = lines.next().unwrap_or_default();

    let accepted = fetch::parse_content_range(range);
    if let Some((start, total)) = accepted {
        assert!(total.is_none_or(|t| t > start), "{range:?}");
        let total_text = total.map_or("*".to_string(), |t| t.to_string());
        let written = format!("bytes {start}-{start}/{total_text}");
        assert_eq!(
            fetch::parse_content_range(&written),
            accepted,
            "{written:?}"
        );
    }

    let base_source = Source::parse(base);
    assert_eq!(Source::parse(&base_source.describe()), base_source);
    let resolved = fetch::resolve(&base_source, reference);
    if let (Source::Url(b), Source::Url(r)) = (&base_source, &resolved) {
        let lower = reference.to_ascii_lowercase();
        let absolute = lower.starts_with("http://") || lower.starts_with("https://");
        if !absolute && !reference.starts_with("//") {
            let origin_end = b.find("://").map_or(0, |i| i + 3);
            let origin_end = b[origin_end..]
                .find(['/', '?', '#'])
                .map_or(b.len(), |i| origin_end + i);
            assert!(
                r.starts_with(&b[..origin_end]),
                "{b:?} + {reference:?} = {r:?}"
            );
            let path = r[origin_end..].split('?').next().unwrap_or_default();
            if !reference.is_empty() && !reference.starts_with(['?', '#']) {
                assert!(
                    path.split('/').all(|seg| seg != "." && seg != ".."),
                    "{b:?} + {reference:?} = {r:?}"
                );
            }
        }
        if !absolute {
            assert_eq!(fetch::resolve(&resolved, ""), resolved, "{r:?}");
        }
    }
    if let Ok(url) = fetch::check_http_url("server", base) {
        assert_eq!(
            fetch::check_http_url("server", &url).as_deref(),
            Ok(url.as_str())
        );
        assert!(!url.ends_with('/'));
    }
    accepted.is_some()
}

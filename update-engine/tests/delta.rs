//! Delta applies on files: the active slot's pieces reused, only the rest
//! read from the payload by byte ranges, and every fault (no index, a
//! refused index, a lying index, an active slot that changed under the
//! apply, an interrupted apply) still ending with exactly the new release
//! in the passive slot, or a whole download that says why.

use std::path::{Path, PathBuf};

use slipway_image::bls;
use slipway_image::layout::Slot;
use slipway_update::apply::{
    self, ApplyError, Observer, Request, ResumePoint, Running, SlotTarget, Step,
};
use slipway_update::delta::index::{Chunking, Index};
use slipway_update::delta::local::ActiveSlot;
use slipway_update::esp::Esp;
use slipway_update::feed::PayloadRef;
use slipway_update::fetch::{FetchOptions, Source};
use slipway_update::keys::{SecretKey, TrustedKeys};
use slipway_update::manifest::{VerityInfo, MIN_CHUNK};
use slipway_update::payload::{self, Release};

const SLOT: usize = 2 << 20;
const VERITY: usize = 64 << 10;
const CHUNKING: Chunking = Chunking {
    min: 2048,
    avg: 8192,
    max: 32768,
};

/// Bytes that do not repeat, so content-defined cuts fall everywhere.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A root image: "hsqs" and its length where squashfs keeps them.
fn root_image(body: &[u8]) -> Vec<u8> {
    let mut r = body.to_vec();
    r.resize(body.len().div_ceil(4096) * 4096, 0);
    r[..4].copy_from_slice(b"hsqs");
    r[40..48].copy_from_slice(&(body.len() as u64).to_le_bytes());
    r
}

struct ReleaseParts {
    root: Vec<u8>,
    verity: Vec<u8>,
    kernel: Vec<u8>,
    initrd: Vec<u8>,
}

fn old_release() -> ReleaseParts {
    ReleaseParts {
        root: root_image(&noise(700_000, 1)),
        verity: noise(3 * 4096, 2),
        kernel: noise(200_000, 3),
        initrd: noise(90_000, 4),
    }
}

/// The old release with a small change: 9000 bytes inserted in the middle
/// of the root (everything after it shifts), a new verity tree, the same
/// kernel, an initramfs with a few bytes changed.
fn new_release() -> ReleaseParts {
    let old = old_release();
    let body_len = u64::from_le_bytes(old.root[40..48].try_into().unwrap()) as usize;
    let mut body = old.root[..body_len].to_vec();
    let at = 350_000;
    let insert = noise(9000, 5);
    body.splice(at..at, insert);
    let mut initrd = old.initrd.clone();
    initrd[45_000..45_010].copy_from_slice(b"0123456789");
    ReleaseParts {
        root: root_image(&body),
        verity: noise(3 * 4096, 6),
        kernel: old.kernel.clone(),
        initrd,
    }
}

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    esp: Esp,
    target: SlotTarget,
    active: ActiveSlot,
    key: SecretKey,
    payload: PathBuf,
    payload_ref: PayloadRef,
    new: ReleaseParts,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let key = SecretKey::from_seed(&[42; 32]);
    // The active slot: partitions larger than what they hold, as on a disk.
    let old = old_release();
    let mut root_a = old.root.clone();
    root_a.resize(SLOT, 0x5a);
    let mut verity_a = old.verity.clone();
    verity_a.resize(VERITY, 0x5b);
    std::fs::write(dir.join("root-a"), &root_a).unwrap();
    std::fs::write(dir.join("root-a-verity"), &verity_a).unwrap();
    std::fs::write(dir.join("root-b"), vec![0u8; SLOT]).unwrap();
    std::fs::write(dir.join("root-b-verity"), vec![0u8; VERITY]).unwrap();
    let esp_dir = dir.join("esp");
    std::fs::create_dir_all(esp_dir.join("loader/entries")).unwrap();
    std::fs::create_dir_all(esp_dir.join("slipway/a")).unwrap();
    std::fs::write(esp_dir.join("slipway/a/vmlinuz"), &old.kernel).unwrap();
    std::fs::write(esp_dir.join("slipway/a/initrd"), &old.initrd).unwrap();
    let entry = bls::Entry {
        os_name: "Slipway".into(),
        version: "1.0".into(),
        slot: Slot::A,
        options: "slipway.slot=a".into(),
    };
    std::fs::write(
        esp_dir.join("loader/entries/slipway-a.conf"),
        entry.render(),
    )
    .unwrap();

    // The new release, published with its index.
    let new = new_release();
    let refs = [
        &new.root[..],
        &new.verity[..],
        &new.kernel[..],
        &new.initrd[..],
    ];
    let release = Release {
        os_name: "Slipway".into(),
        version: "2.0".into(),
        board: "qemu-x86_64".into(),
        build_id: "t".into(),
        cmdline: "console=ttyS0".into(),
        verity: VerityInfo {
            root_hash: "aa".repeat(32),
            salt: "bb".repeat(32),
            data_blocks: new.root.len() as u64 / 4096,
        },
        chunk_size: MIN_CHUNK,
    };
    let m = payload::manifest_for(&release, refs).unwrap();
    let mut bytes = Vec::new();
    payload::write(&mut bytes, &m, refs, &[&key]).unwrap();
    let payload = dir.join("pub/2.0.payload");
    std::fs::create_dir_all(payload.parent().unwrap()).unwrap();
    std::fs::write(&payload, &bytes).unwrap();
    publish_index(&payload, &Index::build(&payload, CHUNKING).unwrap(), &key);
    let payload_ref = PayloadRef {
        url: payload.display().to_string(),
        size: bytes.len() as u64,
        sha256: slipway_update::hashing::sha256_reader(&bytes[..], u64::MAX)
            .unwrap()
            .1,
    };
    Fixture {
        esp: Esp::new(&esp_dir),
        target: SlotTarget {
            slot: Slot::B,
            root: dir.join("root-b"),
            root_capacity: SLOT as u64,
            root_partuuid: uuid::Uuid::from_u128(0xb),
            verity: dir.join("root-b-verity"),
            verity_capacity: VERITY as u64,
            verity_partuuid: uuid::Uuid::from_u128(0xbb),
        },
        active: ActiveSlot {
            name: "slot a".into(),
            root: dir.join("root-a"),
            verity: dir.join("root-a-verity"),
            kernel: esp_dir.join("slipway/a/vmlinuz"),
            initrd: esp_dir.join("slipway/a/initrd"),
        },
        dir,
        _tmp: tmp,
        key,
        payload,
        payload_ref,
        new,
    }
}

fn publish_index(payload: &Path, index: &Index, key: &SecretKey) {
    let path = PathBuf::from(format!("{}.index", payload.display()));
    std::fs::write(path, index.sign(&[key])).unwrap();
}

/// Records what the apply says; may change the active slot once the scan
/// is done, or stop before a step.
#[derive(Default)]
struct Watch {
    said: Vec<String>,
    after_scan: Option<Box<dyn FnMut()>>,
    stop_before: Option<Step>,
    last: Option<ResumePoint>,
}

impl Observer for Watch {
    fn step(&mut self, step: Step, _: &str) -> Result<(), String> {
        if self.stop_before == Some(step) {
            return Err("power cut".into());
        }
        Ok(())
    }
    fn progress(&mut self, _: u64, _: u64, r: &ResumePoint) {
        self.last = Some(r.clone());
    }
    fn say(&mut self, text: &str) {
        if text.contains("are on this machine") {
            if let Some(f) = self.after_scan.as_mut() {
                f();
            }
        }
        self.said.push(text.to_string());
    }
}

fn run(
    f: &Fixture,
    obs: &mut Watch,
    resume: Option<ResumePoint>,
) -> Result<apply::Outcome, ApplyError> {
    let src = Source::File(f.payload.clone());
    let running = Running {
        slot: Slot::A,
        version: "1.0".into(),
        board: "qemu-x86_64".into(),
    };
    let keys = TrustedKeys::new(vec![f.key.public()]);
    let req = Request {
        source: &src,
        expect: Some(&f.payload_ref),
        running: &running,
        target: &f.target,
        esp: &f.esp,
        keys: &keys,
        allow_downgrade: false,
        floor: None,
        fetch: FetchOptions::default(),
        resume,
        staging: &f.dir.join("staging"),
        delta: Some(&f.active),
    };
    apply::apply(&req, obs)
}

/// The passive slot and its boot files hold exactly the new release.
fn assert_new_release_written(f: &Fixture) {
    let root_b = std::fs::read(&f.target.root).unwrap();
    assert!(
        root_b[..f.new.root.len()] == f.new.root[..],
        "root-b differs"
    );
    let verity_b = std::fs::read(&f.target.verity).unwrap();
    assert!(verity_b[..f.new.verity.len()] == f.new.verity[..]);
    let esp = f.esp.root();
    assert!(std::fs::read(esp.join("slipway/b/vmlinuz")).unwrap() == f.new.kernel);
    assert!(std::fs::read(esp.join("slipway/b/initrd")).unwrap() == f.new.initrd);
}

#[test]
fn a_small_change_downloads_a_small_part() {
    let f = fixture();
    let mut w = Watch::default();
    let out = run(&f, &mut w, None).unwrap();
    assert_new_release_written(&f);
    let d = &out.download;
    eprintln!("{}", d.summary());
    assert_eq!(d.mode, "delta", "{d:?} {:?}", w.said);
    let data = out.data_bytes;
    // 9000 inserted bytes, a few pieces around them and the initramfs
    // change, the new verity tree, the index and the header.
    assert!(
        d.downloaded < data / 8,
        "downloaded {} of {data}: {d:?}",
        d.downloaded
    );
    assert!(d.reused_bytes > data * 3 / 4, "{d:?}");
    assert_eq!((d.local_mismatches, d.whole_chunks), (0, 0), "{d:?}");
    assert_eq!(d.reused_from.as_deref(), Some("slot a"));
    assert!(
        d.summary().contains("reused from slot a"),
        "{}",
        d.summary()
    );
    // The active slot is read, never written.
    let root_a = std::fs::read(&f.active.root).unwrap();
    assert!(root_a[..old_release().root.len()] == old_release().root[..]);
}

#[test]
fn an_active_slot_that_changed_after_the_scan_costs_downloads_not_bytes() {
    let f = fixture();
    let root = f.active.root.clone();
    let mut w = Watch {
        after_scan: Some(Box::new(move || {
            // Corrupt the first 100 KiB of the active root under the apply.
            let mut bytes = std::fs::read(&root).unwrap();
            for b in &mut bytes[..100_000] {
                *b ^= 0xff;
            }
            std::fs::write(&root, bytes).unwrap();
        })),
        ..Watch::default()
    };
    let out = run(&f, &mut w, None).unwrap();
    assert_new_release_written(&f);
    let d = &out.download;
    assert!(d.local_mismatches > 3, "{d:?}");
    assert_eq!(d.whole_chunks, 0, "{d:?}");
    assert!(d.summary().contains("did not match"), "{}", d.summary());
}

#[test]
fn a_lying_index_makes_whole_chunks_come_from_the_payload() {
    let f = fixture();
    // Signed by the trusted key, yet two root pieces swapped: both are on
    // the machine, their hashes check, but the chunk they make does not.
    let mut index = Index::build(&f.payload, CHUNKING).unwrap();
    index.parts[0].pieces.swap(2, 3);
    publish_index(&f.payload, &index, &f.key);
    let mut w = Watch::default();
    let out = run(&f, &mut w, None).unwrap();
    assert_new_release_written(&f);
    assert!(out.download.whole_chunks >= 1, "{:?}", out.download);
}

#[test]
fn without_a_usable_index_the_whole_payload_comes_with_the_reason() {
    let f = fixture();
    let index_path = PathBuf::from(format!("{}.index", f.payload.display()));
    std::fs::remove_file(&index_path).unwrap();
    let mut w = Watch::default();
    let out = run(&f, &mut w, None).unwrap();
    assert_new_release_written(&f);
    assert_eq!(out.download.mode, "full");
    assert_eq!(out.download.downloaded, f.payload_ref.size);
    let why = out.download.fallback.clone().unwrap();
    assert!(
        why.contains("no delta index") && why.contains(".index"),
        "{why}"
    );
    assert!(
        w.said
            .iter()
            .any(|s| s.contains("downloading the whole payload")),
        "{:?}",
        w.said
    );

    // Signed by a key the machine does not trust: refused, whole payload.
    let f = fixture();
    let stranger = SecretKey::from_seed(&[9; 32]);
    publish_index(
        &f.payload,
        &Index::build(&f.payload, CHUNKING).unwrap(),
        &stranger,
    );
    let out = run(&f, &mut Watch::default(), None).unwrap();
    assert_new_release_written(&f);
    assert_eq!(out.download.mode, "full");
    let why = out.download.fallback.unwrap();
    assert!(
        why.contains("delta index refused") && why.contains("unknown key"),
        "{why}"
    );
}

#[test]
fn an_interrupted_delta_resumes_where_the_intact_data_ends() {
    let f = fixture();
    let mut w = Watch {
        stop_before: Some(Step::ReadBack),
        ..Watch::default()
    };
    let err = run(&f, &mut w, None).unwrap_err();
    assert!(err.to_string().contains("power cut"), "{err}");
    let resume = w.last.clone().unwrap();
    // The second half of what was written is lost (a power cut before the
    // writeback).
    let mut root_b = std::fs::read(&f.target.root).unwrap();
    let half = f.new.root.len() / 2;
    root_b[half..].fill(0);
    std::fs::write(&f.target.root, root_b).unwrap();
    let out = run(&f, &mut Watch::default(), Some(resume)).unwrap();
    assert_new_release_written(&f);
    assert!(out.resumed_chunks > 0, "{out:?}");
    assert_eq!(out.download.mode, "delta");
}

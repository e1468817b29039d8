//! The apply on files: slot partitions as files, the ESP as a folder.
//! Every refusal leaves the active slot, its entry and (for refusals found
//! before writing) the passive slot byte-identical; every abort leaves the
//! passive slot without an entry; a re-run after an abort succeeds.

use std::path::{Path, PathBuf};

use slipway_image::bls;
use slipway_image::layout::Slot;
use slipway_update::apply::{
    self, ApplyError, Observer, Request, ResumePoint, Running, SlotTarget, Step,
};
use slipway_update::esp::{EntryState, Esp};
use slipway_update::feed::PayloadRef;
use slipway_update::fetch::{FetchOptions, Source};
use slipway_update::keys::{SecretKey, TrustedKeys};
use slipway_update::manifest::{Manifest, VerityInfo, MIN_CHUNK};
use slipway_update::payload::{self, PayloadError, Release};
use slipway_update::state::{State, Tracker};

const SLOT: u64 = 1 << 20;
const VERITY: u64 = 64 << 10;

struct Fixture {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    esp: Esp,
    target: SlotTarget,
    active_root: PathBuf,
    key: SecretKey,
}

fn parts(seed: u8) -> [Vec<u8>; 4] {
    let fill = |n: usize, k: u8| -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(k).wrapping_add(seed))
            .collect()
    };
    [
        fill(150 * 4096, 3),
        fill(2 * 4096, 5),
        fill(90_001, 7),
        fill(33_333, 11),
    ]
}

fn release(version: &str, board: &str, root_len: usize) -> Release {
    Release {
        os_name: "Slipway".into(),
        version: version.into(),
        board: board.into(),
        build_id: "t".into(),
        cmdline: "console=ttyS0 panic=5".into(),
        verity: VerityInfo {
            root_hash: "aa".repeat(32),
            salt: "bb".repeat(32),
            data_blocks: root_len as u64 / 4096,
        },
        chunk_size: MIN_CHUNK,
    }
}

fn payload_bytes(version: &str, board: &str, key: &SecretKey, seed: u8) -> Vec<u8> {
    let p = parts(seed);
    let refs = [&p[0][..], &p[1][..], &p[2][..], &p[3][..]];
    let m = payload::manifest_for(&release(version, board, p[0].len()), refs).unwrap();
    let mut out = Vec::new();
    payload::write(&mut out, &m, refs, &[key]).unwrap();
    out
}

/// A payload signed by `key` whose manifest `edit` changed after it was
/// made (the builder's own checks would refuse to make it): what a leaked
/// key or a broken builder could sign.
fn payload_edited(key: &SecretKey, edit: impl Fn(&mut Manifest)) -> Vec<u8> {
    let p = parts(1);
    let refs = [&p[0][..], &p[1][..], &p[2][..], &p[3][..]];
    let mut m = payload::manifest_for(&release("2.0", "qemu-x86_64", p[0].len()), refs).unwrap();
    edit(&mut m);
    let mut out = Vec::new();
    payload::write(&mut out, &m, refs, &[key]).unwrap();
    out
}

fn fixture() -> Fixture {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().to_path_buf();
    let mk = |name: &str, len: u64, byte: u8| {
        let p = dir.join(name);
        std::fs::write(&p, vec![byte; len as usize]).unwrap();
        p
    };
    let active_root = mk("root-a", SLOT, 0xaa);
    mk("root-a-verity", VERITY, 0xab);
    let root_b = mk("root-b", SLOT, 0x00);
    let verity_b = mk("root-b-verity", VERITY, 0x00);
    let esp_dir = dir.join("esp");
    std::fs::create_dir_all(esp_dir.join("loader/entries")).unwrap();
    std::fs::create_dir_all(esp_dir.join("slipway/a")).unwrap();
    std::fs::write(esp_dir.join("slipway/a/vmlinuz"), b"kernel a").unwrap();
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
    Fixture {
        _dir: d,
        esp: Esp::new(&esp_dir),
        target: SlotTarget {
            slot: Slot::B,
            root: root_b,
            root_capacity: SLOT,
            root_partuuid: uuid::Uuid::from_u128(0xb),
            verity: verity_b,
            verity_capacity: VERITY,
            verity_partuuid: uuid::Uuid::from_u128(0xbb),
        },
        dir,
        active_root,
        key: SecretKey::from_seed(&[42; 32]),
    }
}

fn running() -> Running {
    Running {
        slot: Slot::A,
        version: "1.0".into(),
        board: "qemu-x86_64".into(),
    }
}

/// Everything on disk (path and sha256), for byte-identity checks; the
/// payloads fed in (`in/`) are left out.
fn snapshot(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                if !rel.starts_with("in/") {
                    let sum = slipway_update::hashing::sha256_reader(
                        std::fs::File::open(&p).unwrap(),
                        u64::MAX,
                    )
                    .unwrap()
                    .1;
                    out.push((rel, sum));
                }
            }
        }
    }
    out.sort();
    out
}

/// The files a refusal found after writing may have changed: the passive
/// slot's partitions and staged boot files. Everything else must not.
fn bootable_snapshot(dir: &Path) -> Vec<(String, String)> {
    snapshot(dir)
        .into_iter()
        .filter(|(p, _)| {
            !p.starts_with("root-b")
                && !p.starts_with("staging/")
                && !p.ends_with(".new")
                && !p.contains("slipway/b/")
        })
        .collect()
}

/// The paths that differ between two snapshots.
fn diff(a: &[(String, String)], b: &[(String, String)]) -> String {
    let mut out: Vec<&str> = a
        .iter()
        .filter(|x| !b.contains(x))
        .chain(b.iter().filter(|x| !a.contains(x)))
        .map(|(p, _)| p.as_str())
        .collect();
    out.dedup();
    out.join(", ")
}

struct Quiet {
    stop_before: Option<Step>,
    last: Option<ResumePoint>,
}

impl Observer for Quiet {
    fn step(&mut self, step: Step, _: &str) -> Result<(), String> {
        if self.stop_before == Some(step) {
            return Err("power cut".into());
        }
        Ok(())
    }
    fn progress(&mut self, _: u64, _: u64, r: &ResumePoint) {
        self.last = Some(r.clone());
    }
}

fn quiet() -> Quiet {
    Quiet {
        stop_before: None,
        last: None,
    }
}

fn run(
    f: &Fixture,
    source: &Path,
    keys: &TrustedKeys,
    expect: Option<&PayloadRef>,
    allow_downgrade: bool,
    resume: Option<ResumePoint>,
    obs: &mut dyn Observer,
) -> Result<apply::Outcome, ApplyError> {
    run_above(f, source, allow_downgrade, None, keys, expect, resume, obs)
}

/// [`run`] with a version floor (`trust.rs`).
#[allow(clippy::too_many_arguments)]
fn run_above(
    f: &Fixture,
    source: &Path,
    allow_downgrade: bool,
    floor: Option<&str>,
    keys: &TrustedKeys,
    expect: Option<&PayloadRef>,
    resume: Option<ResumePoint>,
    obs: &mut dyn Observer,
) -> Result<apply::Outcome, ApplyError> {
    let src = Source::File(source.to_path_buf());
    let run = running();
    let req = Request {
        source: &src,
        expect,
        running: &run,
        target: &f.target,
        esp: &f.esp,
        keys,
        allow_downgrade,
        floor,
        fetch: FetchOptions::default(),
        resume,
        staging: &f.dir.join("staging"),
        delta: None,
    };
    apply::apply(&req, obs)
}

fn write_payload(f: &Fixture, name: &str, bytes: &[u8]) -> PathBuf {
    let p = f.dir.join("in").join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, bytes).unwrap();
    p
}

fn trusted(f: &Fixture) -> TrustedKeys {
    TrustedKeys::new(vec![f.key.public()])
}

#[test]
fn apply_writes_the_passive_slot_and_a_trial_entry() {
    let f = fixture();
    let src = write_payload(&f, "p", &payload_bytes("2.0", "qemu-x86_64", &f.key, 1));
    let before_active = std::fs::read(&f.active_root).unwrap();
    let out = run(&f, &src, &trusted(&f), None, false, None, &mut quiet()).unwrap();
    assert_eq!(out.entry, "slipway-b+3.conf");
    let p = parts(1);
    let root = std::fs::read(&f.target.root).unwrap();
    assert_eq!(&root[..p[0].len()], &p[0][..]);
    let verity = std::fs::read(&f.target.verity).unwrap();
    assert_eq!(&verity[..p[1].len()], &p[1][..]);
    assert_eq!(
        std::fs::read(f.esp.path("/slipway/b/vmlinuz")).unwrap(),
        p[2]
    );
    assert_eq!(
        std::fs::read(f.esp.path("/slipway/b/initrd")).unwrap(),
        p[3]
    );
    assert_eq!(std::fs::read(&f.active_root).unwrap(), before_active);
    let e = f.esp.entry(Slot::B).unwrap().unwrap();
    assert_eq!(e.state, EntryState::Trying { left: 3, done: 0 });
    assert_eq!(e.version.as_deref(), Some("2.0"));
    let text =
        std::fs::read_to_string(f.esp.root().join("loader/entries/slipway-b+3.conf")).unwrap();
    assert!(text.contains("options console=ttyS0 panic=5 slipway.slot=b slipway.root=PARTUUID=00000000-0000-0000-0000-00000000000b slipway.roothash="), "{text}");
    assert!(text.contains("slipway.verity_blocks=150"), "{text}");
    // No staging files left behind.
    assert!(snapshot(&f.dir).iter().all(|(p, _)| !p.ends_with(".new")));
}

/// Refusals found before the first write: nothing at all changes.
#[test]
fn refusals_before_writing_change_nothing() {
    let f = fixture();
    let stranger = SecretKey::from_seed(&[7; 32]);
    let good = payload_bytes("2.0", "qemu-x86_64", &f.key, 1);
    let mut bad_sig = good.clone();
    // Flip a byte inside the manifest's version digits ("2.0" → "2.1")
    // keeps it parseable, so the signature is what refuses it.
    let at = find(&bad_sig, b"\"version\": \"2.0\"").unwrap() + 14;
    bad_sig[at] = b'1';
    type Check = Box<dyn Fn(&ApplyError) -> bool>;
    let cases: Vec<(&str, Vec<u8>, Check)> = vec![
        (
            "bad signature",
            bad_sig,
            Box::new(|e| {
                matches!(e, ApplyError::Payload(PayloadError::Signature(_)))
                    && e.to_string().contains("BAD SIGNATURE")
            }),
        ),
        (
            "unknown key",
            payload_bytes("2.0", "qemu-x86_64", &stranger, 1),
            Box::new(|e| e.to_string().contains("unknown key")),
        ),
        (
            "wrong board",
            payload_bytes("2.0", "generic-x86_64", &f.key, 1),
            Box::new(|e| matches!(e, ApplyError::WrongBoard { .. })),
        ),
        (
            "same version",
            payload_bytes("1.0", "qemu-x86_64", &f.key, 1),
            Box::new(|e| matches!(e, ApplyError::NotNewer { .. })),
        ),
        (
            "older version",
            payload_bytes("0.9", "qemu-x86_64", &f.key, 1),
            Box::new(|e| matches!(e, ApplyError::NotNewer { .. })),
        ),
        // Signed, but with a boot line the init must not be given
        // (ARCHITECTURE.md, "Update order", step 1: no payload can turn
        // verity off or name a slot).
        (
            "verity off in the command line",
            payload_edited(&f.key, |r| {
                r.cmdline = "console=ttyS0 slipway.verity=off".into()
            }),
            Box::new(|e| {
                e.to_string().contains("cmdline") && e.to_string().contains("slipway.verity=off")
            }),
        ),
        (
            "another slot in the command line",
            payload_edited(&f.key, |r| r.cmdline = "quiet   slipway.slot=a".into()),
            Box::new(|e| e.to_string().contains("sets slipway.slot=a")),
        ),
        (
            "a quote in the command line",
            payload_edited(&f.key, |r| r.cmdline = "a=\"b slipway.verity=off\"".into()),
            Box::new(|e| e.to_string().contains("double quote")),
        ),
        (
            "a carriage return in the command line",
            payload_edited(&f.key, |r| r.cmdline = "quiet\rpanic=1".into()),
            Box::new(|e| e.to_string().contains("control character")),
        ),
        (
            "a salt the init refuses",
            payload_edited(&f.key, |r| r.verity.salt = "bb".repeat(31)),
            Box::new(|e| e.to_string().contains("verity.salt")),
        ),
        (
            "truncated header",
            good[..100].to_vec(),
            Box::new(|e| e.to_string().contains("truncated")),
        ),
        (
            "not a payload",
            b"<html>404</html>".repeat(10),
            Box::new(|e| e.to_string().contains("not a Slipway payload")),
        ),
    ];
    for (what, bytes, check) in cases {
        let src = write_payload(&f, what, &bytes);
        let before = snapshot(&f.dir.join("esp"));
        let before_b = snapshot(&f.dir);
        let err = run(&f, &src, &trusted(&f), None, false, None, &mut quiet()).unwrap_err();
        assert!(check(&err), "{what}: unexpected error {err}");
        assert!(
            snapshot(&f.dir.join("esp")) == before,
            "{what}: ESP changed"
        );
        assert!(snapshot(&f.dir) == before_b, "{what}: a slot changed");
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn too_large_for_the_slot_and_active_target_are_refused() {
    let mut f = fixture();
    let src = write_payload(&f, "p", &payload_bytes("2.0", "qemu-x86_64", &f.key, 1));
    let before = snapshot(&f.dir);
    f.target.root_capacity = 4096;
    let err = run(&f, &src, &trusted(&f), None, false, None, &mut quiet()).unwrap_err();
    assert!(
        matches!(err, ApplyError::TooLarge { part: "root", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("root-b holds only 4096"), "{err}");
    f.target.root_capacity = SLOT;
    f.target.slot = Slot::A;
    let err = run(&f, &src, &trusted(&f), None, false, None, &mut quiet()).unwrap_err();
    assert!(matches!(err, ApplyError::ActiveSlot('a')), "{err}");
    assert!(snapshot(&f.dir) == before, "something changed");
}

#[test]
fn a_local_downgrade_passes_with_allow_downgrade() {
    let f = fixture();
    let src = write_payload(&f, "p", &payload_bytes("0.9", "qemu-x86_64", &f.key, 1));
    run(&f, &src, &trusted(&f), None, true, None, &mut quiet()).unwrap();
    assert!(f.esp.entry(Slot::B).unwrap().is_some());
}

/// Below the version floor (a release the machine has run healthy) nothing
/// is installed, not even with `--allow-downgrade`; at the floor it is.
#[test]
fn the_version_floor_holds_even_with_allow_downgrade() {
    let f = fixture();
    let install = |name: &str, version: &str| {
        let src = write_payload(&f, name, &payload_bytes(version, "qemu-x86_64", &f.key, 1));
        let keys = trusted(&f);
        run_above(&f, &src, true, Some("1.0"), &keys, None, None, &mut quiet())
    };
    let before = snapshot(&f.dir.join("esp"));
    let err = install("old", "0.9").unwrap_err();
    assert!(matches!(err, ApplyError::BelowFloor { .. }), "{err}");
    assert!(
        err.to_string().contains("even with --allow-downgrade"),
        "{err}"
    );
    assert_eq!(snapshot(&f.dir.join("esp")), before);
    install("same", "1.0").unwrap();
    assert!(f.esp.entry(Slot::B).unwrap().is_some());
}

/// A flipped byte in any chunk, or a cut anywhere in the data: refused;
/// the active slot and its entry are untouched and the passive slot has
/// no entry (its partitions may hold the chunks before the bad one).
#[test]
fn corrupt_or_truncated_data_is_refused_in_any_chunk() {
    let f = fixture();
    let good = payload_bytes("2.0", "qemu-x86_64", &f.key, 1);
    let mut r = &good[..];
    let h = payload::read_header(&mut r).unwrap();
    let data_at = h.data_offset as usize;
    let n = h.manifest.chunks.len();
    let mut cases = Vec::new();
    for i in 0..n {
        let (s, e) = h.manifest.chunk_range(i);
        let mut b = good.clone();
        b[data_at + ((s + e) / 2) as usize] ^= 1;
        cases.push((format!("flip in chunk {i}"), b));
        cases.push((
            format!("cut in chunk {i}"),
            good[..data_at + ((s + e) / 2) as usize].to_vec(),
        ));
    }
    // Leave a stale entry for slot B first: it must be gone afterwards.
    std::fs::write(
        f.esp.root().join("loader/entries/slipway-b.conf"),
        "version 0.5\n",
    )
    .unwrap();
    let before = bootable_snapshot(&f.dir);
    for (what, bytes) in cases {
        let src = write_payload(&f, "bad", &bytes);
        let err = run(&f, &src, &trusted(&f), None, false, None, &mut quiet()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("does not match the signed manifest") || text.contains("truncated"),
            "{what}: {text}"
        );
        assert!(
            f.esp.entry(Slot::B).unwrap().is_none(),
            "{what}: slot B has an entry"
        );
        let mut now = bootable_snapshot(&f.dir);
        now.retain(|(p, _)| p != "esp/loader/entries/slipway-b.conf");
        let mut want = before.clone();
        want.retain(|(p, _)| p != "esp/loader/entries/slipway-b.conf");
        assert!(
            now == want,
            "{what}: something bootable changed: {}",
            diff(&want, &now)
        );
    }
}

#[test]
fn feed_expectations_are_enforced() {
    let f = fixture();
    let bytes = payload_bytes("2.0", "qemu-x86_64", &f.key, 1);
    let src = write_payload(&f, "p", &bytes);
    let wrong_size = PayloadRef {
        url: "x".into(),
        size: bytes.len() as u64 + 1,
        sha256: "00".repeat(32),
    };
    let err = run(
        &f,
        &src,
        &trusted(&f),
        Some(&wrong_size),
        false,
        None,
        &mut quiet(),
    )
    .unwrap_err();
    // The source itself refuses a file of another length than announced.
    assert!(
        matches!(
            err,
            ApplyError::Fetch(_) | ApplyError::FeedMismatch { what: "size", .. }
        ),
        "{err}"
    );
    let wrong_sum = PayloadRef {
        size: bytes.len() as u64,
        ..wrong_size
    };
    let err = run(
        &f,
        &src,
        &trusted(&f),
        Some(&wrong_sum),
        false,
        None,
        &mut quiet(),
    )
    .unwrap_err();
    assert!(
        matches!(err, ApplyError::FeedMismatch { what: "sha256", .. }),
        "{err}"
    );
    assert!(f.esp.entry(Slot::B).unwrap().is_none());
}

/// An abort (power cut, stop request) before each step: the passive slot
/// never has an entry unless the apply finished, the active one is
/// untouched, and a re-run completes.
#[test]
fn abort_before_each_step_then_rerun() {
    for stop in Step::ALL {
        let f = fixture();
        let src = write_payload(&f, "p", &payload_bytes("2.0", "qemu-x86_64", &f.key, 1));
        let before = bootable_snapshot(&f.dir);
        let mut obs = Quiet {
            stop_before: Some(stop),
            last: None,
        };
        let err = run(&f, &src, &trusted(&f), None, false, None, &mut obs).unwrap_err();
        assert!(matches!(err, ApplyError::Aborted { .. }), "{stop:?}: {err}");
        assert!(f.esp.entry(Slot::B).unwrap().is_none(), "{stop:?}");
        assert!(
            bootable_snapshot(&f.dir) == before,
            "{stop:?}: something bootable changed"
        );
        let out = run(
            &f,
            &src,
            &trusted(&f),
            None,
            false,
            obs.last.clone(),
            &mut quiet(),
        )
        .unwrap();
        assert_eq!(out.entry, "slipway-b+3.conf", "{stop:?}");
    }
}

/// Resuming after an interruption: the chunks recorded as done are
/// re-checked on the target and the rest is fetched; a damaged chunk on
/// the target is fetched again rather than trusted.
#[test]
fn resume_rechecks_what_is_on_the_target() {
    let f = fixture();
    let bytes = payload_bytes("2.0", "qemu-x86_64", &f.key, 1);
    let full = write_payload(&f, "full", &bytes);
    // First run: the payload is cut in the middle of the data.
    let mut r = &bytes[..];
    let h = payload::read_header(&mut r).unwrap();
    let (s, _) = h.manifest.chunk_range(5);
    let cut = write_payload(
        &f,
        "cut",
        &bytes[..h.data_offset as usize + s as usize + 10],
    );
    let mut obs = quiet();
    assert!(run(&f, &cut, &trusted(&f), None, false, None, &mut obs).is_err());
    let rp = obs.last.clone().unwrap();
    assert_eq!(rp.chunks_done, 5);
    let out = run(
        &f,
        &full,
        &trusted(&f),
        None,
        false,
        Some(rp.clone()),
        &mut quiet(),
    )
    .unwrap();
    assert_eq!(out.resumed_chunks, 5);
    // Damage chunk 2 on the target, then resume again from a claim of 5.
    f.esp.remove_entries(Slot::B).unwrap();
    let mut root = std::fs::read(&f.target.root).unwrap();
    root[2 * MIN_CHUNK as usize + 7] ^= 0xff;
    std::fs::write(&f.target.root, root).unwrap();
    let out = run(&f, &full, &trusted(&f), None, false, Some(rp), &mut quiet()).unwrap();
    assert_eq!(out.resumed_chunks, 2);
    let p = parts(1);
    assert_eq!(
        &std::fs::read(&f.target.root).unwrap()[..p[0].len()],
        &p[0][..]
    );
}

/// The state file follows the apply and keeps the resume point after a
/// failure.
#[test]
fn tracker_records_steps_and_failure() {
    let f = fixture();
    let src = write_payload(&f, "p", &payload_bytes("2.0", "qemu-x86_64", &f.key, 1));
    let state_path = f.dir.join("state.json");
    let mut t = Tracker::new(Some(state_path.clone()), State::default(), "p", 'b');
    t.stop_before = Some(Step::ReadBack);
    let err = run(&f, &src, &trusted(&f), None, false, None, &mut t).unwrap_err();
    t.fail(&err.to_string());
    let (state, _) = State::load(&state_path);
    let a = state.apply.unwrap();
    assert_eq!(a.step, "write");
    assert!(a.error.unwrap().contains("stop requested"));
    assert_eq!(a.done, a.total);
    assert!(a.resume.is_some());
}

/// A kernel whose checked bytes are followed by more (a staged file that
/// grew): the copy on the ESP is checked for its whole length, and no entry
/// is written.
#[test]
fn a_boot_file_longer_than_the_manifest_says_is_refused() {
    struct Grow(PathBuf);
    impl Observer for Grow {
        fn step(&mut self, step: Step, _: &str) -> Result<(), String> {
            if step == Step::InstallBootFiles {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&self.0)
                    .unwrap();
                f.write_all(b"trailing bytes").unwrap();
            }
            Ok(())
        }
        fn progress(&mut self, _: u64, _: u64, _: &ResumePoint) {}
    }
    let f = fixture();
    let src = write_payload(&f, "p", &payload_bytes("2.0", "qemu-x86_64", &f.key, 1));
    let err = run(
        &f,
        &src,
        &trusted(&f),
        None,
        false,
        None,
        &mut Grow(f.dir.join("staging/kernel")),
    )
    .unwrap_err();
    assert!(matches!(err, ApplyError::ReadBack { .. }), "{err}");
    assert!(err.to_string().contains("the manifest says"), "{err}");
    assert!(f.esp.entry(Slot::B).unwrap().is_none());
}

/// A medium that does not keep what was written: the re-read of step 4
/// catches it and no entry is written.
#[test]
fn read_back_catches_a_medium_that_lost_a_write() {
    struct Corrupt(PathBuf);
    impl Observer for Corrupt {
        fn step(&mut self, step: Step, _: &str) -> Result<(), String> {
            if step == Step::ReadBack {
                let mut b = std::fs::read(&self.0).unwrap();
                b[3 * MIN_CHUNK as usize + 1] ^= 0x10;
                std::fs::write(&self.0, b).unwrap();
            }
            Ok(())
        }
        fn progress(&mut self, _: u64, _: u64, _: &ResumePoint) {}
    }
    let f = fixture();
    let src = write_payload(&f, "p", &payload_bytes("2.0", "qemu-x86_64", &f.key, 1));
    let err = run(
        &f,
        &src,
        &trusted(&f),
        None,
        false,
        None,
        &mut Corrupt(f.target.root.clone()),
    )
    .unwrap_err();
    assert!(matches!(err, ApplyError::ReadBack { .. }), "{err}");
    assert!(err.to_string().contains("chunk 3 "), "{err}");
    assert!(f.esp.entry(Slot::B).unwrap().is_none());
}

/// A stop asked for at step 5, while the re-read of step 4 runs beside
/// it: the apply ends with that stop once the re-read is done, and no
/// entry is written.
#[test]
fn a_stop_beside_the_re_read_writes_no_entry() {
    let f = fixture();
    let src = write_payload(&f, "p", &payload_bytes("2.0", "qemu-x86_64", &f.key, 1));
    let mut t = Tracker::new(None, State::default(), "p", 'b');
    t.stop_before = Some(Step::InstallBootFiles);
    let err = run(&f, &src, &trusted(&f), None, false, None, &mut t).unwrap_err();
    assert!(matches!(err, ApplyError::Aborted { .. }), "{err}");
    assert!(err.to_string().contains("install-boot-files"), "{err}");
    assert!(f.esp.entry(Slot::B).unwrap().is_none());
}

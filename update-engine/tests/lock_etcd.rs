//! The reboot lock against Debian's real etcd (`etcd-server`, 3.4): each
//! test starts its own single-member etcd on loopback with free ports and
//! a temporary data dir, and reads back with the real `etcdctl` (v3).
//!
//! Without etcd installed the tests are skipped outside CI and fail in CI
//! (the `CI` variable), as the VM tests do (`xtask/src/testing.rs`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use slipway_update::lock::etcd::{semaphore_key, EtcdLock};
use slipway_update::lock::semaphore::{Change, Semaphore, SemaphoreError};
use slipway_update::lock::{LockError, RebootLock};

const KEY: &str = "coreos.com/updateengine/rebootlock/semaphore";
const A: &str = "0123456789abcdef0123456789abcdef";
const B: &str = "fedcba9876543210fedcba9876543210";
const C: &str = "00000000000000000000000000000003";

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

fn find(name: &str) -> Option<PathBuf> {
    let usr = Path::new("/usr/bin").join(name);
    if usr.is_file() {
        return Some(usr);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// A running etcd, killed (and its data dir removed) on drop.
struct Etcd {
    child: Child,
    url: String,
    etcdctl: PathBuf,
    dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts etcd, or says why not: `None` skips the test (outside CI only).
fn etcd(test: &str) -> Option<Etcd> {
    let (Some(etcd), Some(etcdctl)) = (find("etcd"), find("etcdctl")) else {
        let why = "etcd or etcdctl is not installed (apt-get install etcd-server etcd-client)";
        if in_ci() {
            panic!("{test}: {why}");
        }
        eprintln!("{test}: skipped: {why}");
        return None;
    };
    // Free ports can be taken between the probe and etcd's bind; a few
    // tries make that harmless.
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let client = format!("http://127.0.0.1:{}", free_port());
        let peer = format!("http://127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
        let mut cmd = Command::new(&etcd);
        // etcd reads every flag from ETCD_* too: none of the caller's.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ETCD") {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .args(["--name", "lock-test"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("lock-test={peer}")])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut e = Etcd {
            child,
            url: client,
            etcdctl: etcdctl.clone(),
            dir,
        };
        let t = Instant::now();
        if e.wait_healthy(Duration::from_secs(30)) {
            eprintln!("{test}: etcd healthy after {:?}", t.elapsed());
            return Some(e);
        }
        let log = std::fs::read_to_string(e.dir.path().join("etcd.log")).unwrap_or_default();
        eprintln!("{test}: etcd did not become healthy; its log:\n{log}");
    }
    panic!("{test}: etcd did not start in three tries");
}

impl Etcd {
    fn wait_healthy(&mut self, within: Duration) -> bool {
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(2)))
                .build(),
        );
        let end = Instant::now() + within;
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(mut r) = agent.get(format!("{}/health", self.url)).call() {
                if r.body_mut()
                    .read_to_string()
                    .is_ok_and(|b| b.contains("\"true\""))
                {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    fn client(&self, group: Option<&str>) -> EtcdLock {
        EtcdLock::new(std::slice::from_ref(&self.url), group).unwrap()
    }

    fn etcdctl(&self, args: &[&str]) -> String {
        let mut cmd = Command::new(&self.etcdctl);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ETCDCTL") {
                cmd.env_remove(k);
            }
        }
        let out = cmd
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.url])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The key's value as `etcdctl get` prints it, or `None` if absent.
    fn get(&self, key: &str) -> Option<String> {
        let out = self.etcdctl(&["get", key, "--print-value-only"]);
        (!out.is_empty()).then(|| out.trim_end_matches('\n').to_owned())
    }

    /// `update-engine lock ARGS --endpoint URL`: (success, stdout, stderr).
    fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_update-engine"))
            .arg("lock")
            .args(args)
            .args(["--endpoint", &self.url])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }
}

fn busy(e: &LockError) -> bool {
    matches!(
        e,
        LockError::Semaphore {
            error: SemaphoreError::Busy { .. },
            ..
        }
    )
}

#[test]
fn lock_unlock_and_set_max_as_locksmith_did() {
    let Some(etcd) = etcd("lock_unlock_and_set_max_as_locksmith_did") else {
        return;
    };
    let started = Instant::now();
    let l = etcd.client(None);
    assert_eq!(l.key(), KEY);

    // Looking does not create the key.
    let read = l.read().unwrap();
    assert!(!read.exists());
    assert_eq!(read.semaphore, Semaphore::default());
    assert_eq!(etcd.get(KEY), None);
    let (ok, out, err) = etcd.cli(&["status"]);
    assert!(ok, "{err}");
    assert_eq!(out, "Available: 1\nMax: 1\n");
    assert!(err.contains("does not exist yet"), "{err}");

    // The first lock creates the key with locksmith's JSON, which the real
    // etcdctl (v3) reads.
    let (now, change) = l.lock(A).unwrap();
    assert_eq!(change, Change::Changed);
    assert_eq!(now.version, 1);
    assert_eq!(
        etcd.get(KEY).as_deref(),
        Some(format!(r#"{{"semaphore":0,"max":1,"holders":["{A}"]}}"#).as_str())
    );
    // Again by the holder: success, nothing written.
    assert_eq!(l.lock(A).unwrap().1, Change::Unchanged);
    assert_eq!(l.read().unwrap().version, 1);

    // A second machine is refused while the first holds it, and told who.
    let e = l.lock(B).unwrap_err();
    assert!(busy(&e), "{e:?}");
    assert!(e.is_busy());
    assert_eq!(
        e.to_string(),
        format!("{KEY}: the reboot lock is busy: 1 of 1 held by {A}")
    );
    let (ok, out, err) = etcd.cli(&["status"]);
    assert!(ok, "{err}");
    assert_eq!(out, format!("Available: 0\nMax: 1\n\nMACHINE ID\n{A}\n"));
    let (ok, out, _) = etcd.cli(&["status", "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"key": KEY, "exists": true, "semaphore": 0, "max": 1, "holders": [A]})
    );

    // Unlock (by the operator's CLI, as for a dead machine) frees it.
    let (ok, _, err) = etcd.cli(&["unlock", B]);
    assert!(!ok);
    assert!(
        err.contains(&format!("{B} does not hold the reboot lock (holders: {A})")),
        "{err}"
    );
    let (ok, out, err) = etcd.cli(&["unlock", A]);
    assert!(ok, "{err}");
    assert_eq!(out, "Available: 1\nMax: 1\n");
    assert_eq!(
        etcd.get(KEY).as_deref(),
        Some(r#"{"semaphore":1,"max":1,"holders":[]}"#)
    );
    l.lock(B).unwrap();

    // set-max 2 lets two hold; the third is refused naming both.
    let (ok, out, err) = etcd.cli(&["set-max", "2"]);
    assert!(ok, "{err}");
    assert_eq!(out, format!("Available: 1\nMax: 2\n\nMACHINE ID\n{B}\n"));
    l.lock(A).unwrap();
    assert_eq!(
        etcd.get(KEY).as_deref(),
        Some(format!(r#"{{"semaphore":0,"max":2,"holders":["{A}","{B}"]}}"#).as_str())
    );
    let e = l.lock(C).unwrap_err();
    assert!(
        e.to_string().ends_with(&format!("2 of 2 held by {A}, {B}")),
        "{e}"
    );
    // The daemon's release is idempotent; the CLI's unlock is not.
    l.release(A).unwrap();
    l.release(A).unwrap();
    l.release(B).unwrap();
    assert_eq!(
        etcd.get(KEY).as_deref(),
        Some(r#"{"semaphore":2,"max":2,"holders":[]}"#)
    );

    // A value upstream locksmith wrote ("holders":null) is taken as is.
    etcd.etcdctl(&["put", KEY, r#"{"semaphore":1,"max":1,"holders":null}"#]);
    l.acquire(C).unwrap();
    assert_eq!(
        etcd.get(KEY).as_deref(),
        Some(format!(r#"{{"semaphore":0,"max":1,"holders":["{C}"]}}"#).as_str())
    );
    eprintln!(
        "lock_unlock_and_set_max: {:?} after etcd was healthy",
        started.elapsed()
    );
}

#[test]
fn a_value_that_is_not_the_semaphore_is_refused_and_left_untouched() {
    let Some(etcd) = etcd("a_value_that_is_not_the_semaphore_is_refused_and_left_untouched") else {
        return;
    };
    let l = etcd.client(Some("db"));
    let key = "coreos.com/updateengine/rebootlock/groups/db/semaphore";
    assert_eq!(l.key(), key);
    for bad in [
        "not json at all",
        r#"{"semaphore":1,"max":1}"#,
        r#"{"semaphore":"one","max":1,"holders":[]}"#,
    ] {
        etcd.etcdctl(&["put", key, bad]);
        let before = etcd.etcdctl(&["get", key, "-w", "json"]);
        for e in [
            l.lock(A).unwrap_err(),
            l.unlock(A).unwrap_err(),
            l.set_max(3).unwrap_err(),
            l.read().unwrap_err(),
        ] {
            let text = e.to_string();
            assert!(
                matches!(
                    e,
                    LockError::Semaphore {
                        error: SemaphoreError::NotSemaphore { .. },
                        ..
                    }
                ),
                "{e:?}"
            );
            assert!(text.starts_with(&format!("{key}: holds ")), "{text}");
            assert!(text.contains("refusing to change it"), "{text}");
        }
        // Not rewritten: same value, same mod_revision.
        assert_eq!(etcd.etcdctl(&["get", key, "-w", "json"]), before);
        assert_eq!(etcd.get(key).as_deref(), Some(bad));
        let (ok, _, err) = etcd.cli(&["--group", "db", "status"]);
        assert!(!ok);
        assert!(
            err.contains(key) && err.contains("not locksmith's semaphore JSON"),
            "{err}"
        );
    }
    // The fleet-wide key is another key: untouched by the group's trouble.
    etcd.client(None).lock(A).unwrap();
}

#[test]
fn concurrent_lockers_never_exceed_max() {
    let Some(etcd) = etcd("concurrent_lockers_never_exceed_max") else {
        return;
    };
    const MAX: usize = 2;
    const THREADS: usize = 6;
    const ROUNDS: usize = 4;
    let started = Instant::now();
    etcd.client(None).set_max(MAX as i64).unwrap();
    let inside = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let conflicts = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(120);
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (inside, peak, conflicts) = (inside.clone(), peak.clone(), conflicts.clone());
            let l = etcd.client(None);
            std::thread::spawn(move || {
                let id = format!("machine-{t}");
                let mut done = 0;
                while done < ROUNDS {
                    assert!(Instant::now() < deadline, "{id}: no progress in 120 s");
                    match l.lock(&id) {
                        Ok((_, Change::Changed)) => {}
                        Ok((_, Change::Unchanged)) => panic!("{id} held the lock already"),
                        Err(e) if busy(&e) => {
                            std::thread::sleep(Duration::from_millis(5));
                            continue;
                        }
                        Err(LockError::Conflict { .. }) => {
                            conflicts.fetch_add(1, Ordering::SeqCst);
                            continue;
                        }
                        Err(e) => panic!("{id}: {e}"),
                    }
                    // Counted only while the CAS says we hold it: a lost
                    // update would let a third thread in.
                    let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(n, Ordering::SeqCst);
                    assert!(n <= MAX, "{n} machines hold a lock of max {MAX}");
                    let held = l.read().unwrap().semaphore;
                    assert!(held.holders.contains(&id) && held.holders.len() <= MAX);
                    std::thread::sleep(Duration::from_millis(20));
                    inside.fetch_sub(1, Ordering::SeqCst);
                    loop {
                        match l.unlock(&id) {
                            Ok(_) => break,
                            Err(LockError::Conflict { .. }) => {
                                conflicts.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(e) => panic!("{id}: unlock: {e}"),
                        }
                    }
                    done += 1;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(peak.load(Ordering::SeqCst), MAX, "never two at once?");
    assert_eq!(
        etcd.get(KEY).as_deref(),
        Some(r#"{"semaphore":2,"max":2,"holders":[]}"#)
    );
    // Every change is one put: 1 set-max + 2 per round.
    let version = etcd.client(None).read().unwrap().version;
    assert_eq!(version as usize, 1 + THREADS * ROUNDS * 2);
    eprintln!(
        "concurrent: {THREADS} threads × {ROUNDS} rounds in {:?}, {} conflicts gave up",
        started.elapsed(),
        conflicts.load(Ordering::SeqCst)
    );
}

#[test]
fn a_dead_endpoint_is_skipped_and_groups_are_separate_keys() {
    let Some(etcd) = etcd("a_dead_endpoint_is_skipped_and_groups_are_separate_keys") else {
        return;
    };
    let dead = format!("http://127.0.0.1:{}", free_port());
    let l = EtcdLock::new(&[dead.clone(), etcd.url.clone()], Some("web servers")).unwrap();
    let key = semaphore_key(Some("web servers"));
    assert_eq!(
        key,
        "coreos.com/updateengine/rebootlock/groups/web+servers/semaphore"
    );
    l.lock(A).unwrap();
    assert_eq!(
        etcd.get(&key).as_deref(),
        Some(format!(r#"{{"semaphore":0,"max":1,"holders":["{A}"]}}"#).as_str())
    );
    assert_eq!(etcd.get(KEY), None);
    // The fleet-wide lock is free for another machine.
    etcd.client(None).lock(B).unwrap();

    // The CLI takes several endpoints and the group.
    let out = Command::new(env!("CARGO_BIN_EXE_update-engine"))
        .args(["lock", "status", "--group", "web servers"])
        .args(["--endpoint", &dead, "--endpoint", &etcd.url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("Available: 0\nMax: 1\n\nMACHINE ID\n{A}\n")
    );

    // A path that is not etcd's gateway is named in the error too.
    let wrong = format!("{}/nothing-here", etcd.url);
    let e = EtcdLock::new(&[dead.clone(), wrong.clone()], None)
        .unwrap()
        .read()
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with("no etcd endpoint answered (tried "),
        "{text}"
    );
    assert!(text.contains(&format!("{dead}: ")), "{text}");
    assert!(text.contains(&format!("{wrong}: HTTP 404")), "{text}");
}

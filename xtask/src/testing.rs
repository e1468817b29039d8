//! `cargo xtask test` and what the VM tests share: where the image under
//! test is, and the rule that VM tests never skip silently in CI.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::build::{build_image, BuildOptions};
use crate::{paths, qemu, test_lanes};

/// Set by `cargo xtask test` to the folder of the image the VM tests boot.
pub const IMAGE_ENV: &str = "SLIPWAY_TEST_IMAGE_DIR";

/// True when running in CI (the `CI` variable set and not "false").
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The bare-metal board, which `cargo xtask test` also builds so a VM test
/// boots Debian's generic kernel (its drivers are modules the board must
/// list, where the qemu board's cloud kernel builds them in).
pub const GENERIC_BOARD: &str = "generic-x86_64";

/// Set by `cargo xtask test` to the folder of the [`GENERIC_BOARD`] image.
pub const GENERIC_IMAGE_ENV: &str = "SLIPWAY_TEST_GENERIC_IMAGE_DIR";

/// The image a VM test should boot, or `None` to skip outside CI. In CI a
/// missing image or QEMU fails the test instead.
pub fn vm_test_image(test: &str) -> Option<PathBuf> {
    image_from_env(test, IMAGE_ENV)
}

/// Like [`vm_test_image`], for the [`GENERIC_BOARD`] image.
pub fn vm_test_generic_image(test: &str) -> Option<PathBuf> {
    image_from_env(test, GENERIC_IMAGE_ENV)
}

fn image_from_env(test: &str, var: &str) -> Option<PathBuf> {
    let why = match (std::env::var_os(var), qemu::find_qemu(), qemu::find_ovmf()) {
        (Some(dir), Ok(_), Ok(_)) => return Some(PathBuf::from(dir)),
        (None, _, _) => format!("{var} is not set (run the suite with `cargo xtask test`)"),
        (_, Err(e), _) | (_, _, Err(e)) => format!("{e:#}"),
    };
    if in_ci() {
        panic!("{test}: VM test cannot run in CI: {why}");
    }
    eprintln!("{test}: SKIPPED (not in CI): {why}");
    None
}

#[derive(Debug, Clone)]
pub struct TestArgs {
    pub board: String,
    /// Passed to `cargo test` after `--` (a filter, `--nocapture`, …).
    pub cargo_test_args: Vec<String>,
}

/// The whole suite: build the board's image, then the tests with the VM
/// tests pointed at it. The host tools the tests call are there by then:
/// `cargo xtask test` runs [`crate::host_setup::ensure`] first. With
/// arguments for `cargo test` (a filter, `--nocapture`), one
/// `cargo test --workspace` with them; without, the steps of
/// [`test_lanes`], every one run even after another failed, so that a red
/// run shows every failure.
pub fn run(args: &TestArgs) -> Result<()> {
    eprintln!("test: building the {} image", args.board);
    let opts = BuildOptions::new(&args.board)?;
    let report = build_image(&opts)?;
    let generic_dir = if args.board == GENERIC_BOARD {
        report.out_dir.clone()
    } else {
        eprintln!("test: building the {GENERIC_BOARD} image");
        build_image(&BuildOptions::new(GENERIC_BOARD)?)?.out_dir
    };

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let cargo_test = |args: &[String]| {
        let mut cmd = Command::new(&cargo);
        cmd.args(["test", "--workspace", "--locked"])
            .args(args)
            .current_dir(paths::project_root())
            .env(IMAGE_ENV, &report.out_dir)
            .env(GENERIC_IMAGE_ENV, &generic_dir);
        cmd
    };
    if !args.cargo_test_args.is_empty() {
        let mut with_args = vec!["--".to_string()];
        with_args.extend(args.cargo_test_args.iter().cloned());
        let status = cargo_test(&with_args)
            .status()
            .context("running cargo test")?;
        if !status.success() {
            bail!("cargo test failed ({status})");
        }
        return Ok(());
    }

    let targets = test_lanes::workspace_targets(&cargo, &paths::project_root())?;
    let schedule = test_lanes::schedule(&test_lanes::plan(&targets));
    let mut outcomes = Vec::new();
    let one_by_one = |steps: &[test_lanes::Step], outcomes: &mut Vec<_>| {
        for step in steps {
            eprintln!("test: {} (cargo test {})", step.name, step.args.join(" "));
            outcomes.push(test_lanes::run_step(&step.name, cargo_test(&step.args)));
        }
    };
    one_by_one(&schedule.before, &mut outcomes);
    for lane in &schedule.lanes {
        eprintln!("test: [{}] cargo test {}", lane.name, lane.args.join(" "));
    }
    outcomes.extend(test_lanes::run_lanes(
        schedule
            .lanes
            .iter()
            .map(|l| (l.name.clone(), cargo_test(&l.args)))
            .collect(),
    ));
    one_by_one(&schedule.after, &mut outcomes);

    for o in &outcomes {
        eprintln!("{}", o.line());
    }
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.result.is_err())
        .map(|o| o.name.as_str())
        .collect();
    if !failed.is_empty() {
        bail!("tests failed in: {}", failed.join(", "));
    }
    Ok(())
}

/// A release of the board under test for VM tests, newer than the image
/// (`version`), with `extra` files on its root, built once per suite run:
/// the update and container tests both install `<v1>.2`, and building a
/// root with the container engine costs about a minute of compression.
/// The output under `target/slipway/test-images/` is reused only if its
/// stamp names the same image under test (its build ID), version and extra
/// files; anything else is rebuilt.
pub fn test_release(
    image_dir: &std::path::Path,
    version: &str,
    extra: Vec<(String, u32, Vec<u8>)>,
) -> Result<PathBuf> {
    use sha2::{Digest, Sha256};
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(image_dir.join("manifest.json"))
            .with_context(|| format!("reading {}/manifest.json", image_dir.display()))?,
    )
    .context("manifest.json")?;
    let field = |k: &str| {
        manifest[k]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("manifest.json has no {k}"))
    };
    let (board, base_id) = (field("board")?, field("build_id")?);
    let mut h = Sha256::new();
    for (path, mode, bytes) in &extra {
        h.update(format!("{path}\0{mode}\0{}\0", bytes.len()));
        h.update(bytes);
    }
    let stamp = format!("{base_id} {version} {}\n", hex::encode(h.finalize()));
    let images = paths::slipway_dir().join("test-images");
    let ReleaseFiles {
        out,
        stamp: stamp_path,
        lock: lock_path,
    } = ReleaseFiles::new(&images, version, !extra.is_empty());
    // The VM lanes of `cargo xtask test` run at the same time, and both
    // `vm_update` and `vm_containers` install `<v1>.2`: the second caller
    // waits here, then reuses, instead of rebuilding the folder the first
    // one's VM is installing from. The kernel drops the lock when the
    // process ends, however it ends.
    std::fs::create_dir_all(&images).with_context(|| format!("creating {}", images.display()))?;
    let lock = std::fs::File::create(&lock_path)
        .with_context(|| format!("creating {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("locking {}", lock_path.display()))?;
    if std::fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp)
        && out.join("update.payload").is_file()
    {
        eprintln!("test release {version}: reusing {}", out.display());
        return Ok(out);
    }
    let _ = std::fs::remove_file(&stamp_path);
    let mut opts = BuildOptions::new(&board)?;
    opts.version = version.to_string();
    opts.out_dir = Some(out.clone());
    opts.qcow2 = false;
    opts.extra_root_files = extra;
    build_image(&opts).with_context(|| format!("building test release {version}"))?;
    std::fs::write(&stamp_path, stamp)
        .with_context(|| format!("writing {}", stamp_path.display()))?;
    Ok(out)
}

/// Where [`test_release`] keeps a release: its folder, the stamp that says
/// what is in it, and the lock held while checking and building it.
#[derive(Debug, PartialEq, Eq)]
struct ReleaseFiles {
    out: PathBuf,
    stamp: PathBuf,
    lock: PathBuf,
}

impl ReleaseFiles {
    fn new(images: &std::path::Path, version: &str, extra: bool) -> Self {
        let name = if extra {
            format!("release-{version}-extra")
        } else {
            format!("release-{version}")
        };
        // Not `with_extension`: the version's dots would make every
        // release's stamp `release-<v1>.stamp`, one file each overwrote.
        Self {
            out: images.join(&name),
            stamp: images.join(format!("{name}.stamp")),
            lock: images.join(format!("{name}.lock")),
        }
    }
}

/// The extra files of a release that fails its health check: a oneshot
/// unit wanted by `multi-user.target` that exits 1. The update and cluster
/// tests both install it as `<v1>.3`, so [`test_release`] builds it once.
pub fn failing_unit() -> Vec<(String, u32, Vec<u8>)> {
    let unit = b"[Unit]\nDescription=Fails on purpose (a release that must be rolled back)\n\
                 [Service]\nType=oneshot\nExecStart=/bin/false\n"
        .to_vec();
    vec![
        (
            "usr/lib/systemd/system/fails-on-purpose.service".into(),
            0o644,
            unit.clone(),
        ),
        // The loader reads names in `.wants/`; a file serves as the link.
        (
            "usr/lib/systemd/system/multi-user.target.wants/fails-on-purpose.service".into(),
            0o644,
            unit,
        ),
    ]
}

/// Slot A's kernel and initramfs copied out of a built image's ESP into
/// `work`, and its boot entry's command line: for tests that boot the
/// slot straight from QEMU (`qemu::Boot::Kernel`) with a command line of
/// their own making. Returns (kernel, initrd, options).
pub fn slot_a_direct_boot(
    image_dir: &std::path::Path,
    work: &std::path::Path,
) -> Result<(PathBuf, PathBuf, String)> {
    let path = image_dir.join("manifest.json");
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("parsing {}", path.display()))?;
    let options = manifest["boot_entries"][0]["options"]
        .as_str()
        .context("manifest.json: no boot_entries[0].options")?
        .to_string();
    let esp = &manifest["partitions"][0];
    let (Some(off), Some(size)) = (esp["offset"].as_u64(), esp["size"].as_u64()) else {
        bail!("manifest.json: partitions[0] has no offset and size");
    };
    let raw = image_dir.join("disk.raw");
    let mut disk =
        std::fs::File::open(&raw).with_context(|| format!("opening {}", raw.display()))?;
    let mut out = Vec::new();
    for (name, file) in [
        ("vmlinuz", "slipway/a/vmlinuz"),
        ("initrd", "slipway/a/initrd"),
    ] {
        let data = slipway_image::esp::read_file(&mut disk, off, size, file)
            .with_context(|| format!("reading {file} from the ESP"))?;
        let dest = work.join(name);
        std::fs::write(&dest, data).with_context(|| format!("writing {}", dest.display()))?;
        out.push(dest);
    }
    let initrd = out.pop().context("no initrd")?;
    let kernel = out.pop().context("no kernel")?;
    Ok((kernel, initrd, options))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_release_has_its_own_stamp_and_lock() {
        let images = std::path::Path::new("/t");
        let v2 = ReleaseFiles::new(images, "0.1.0.2", false);
        let v3 = ReleaseFiles::new(images, "0.1.0.3", true);
        assert_eq!(
            v2,
            ReleaseFiles {
                out: "/t/release-0.1.0.2".into(),
                stamp: "/t/release-0.1.0.2.stamp".into(),
                lock: "/t/release-0.1.0.2.lock".into(),
            }
        );
        assert_eq!(v3.out, PathBuf::from("/t/release-0.1.0.3-extra"));
        assert_ne!(v2.stamp, v3.stamp);
        assert_ne!(v2.lock, v3.lock);
    }
}

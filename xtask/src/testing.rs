//! `cargo xtask test` and what the VM tests share: where the image under
//! test is, and the rule that VM tests never skip silently in CI.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::build::{build_image, BuildOptions};
use crate::{paths, qemu};

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

/// The whole suite: build the board's image, then `cargo test --workspace`
/// with the VM tests pointed at it. The host tools the tests call are
/// there by then: `cargo xtask test` runs [`crate::host_setup::ensure`]
/// first.
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
    let mut cmd = Command::new(cargo);
    cmd.args(["test", "--workspace", "--locked"])
        .current_dir(paths::project_root())
        .env(IMAGE_ENV, &report.out_dir)
        .env(GENERIC_IMAGE_ENV, &generic_dir);
    if !args.cargo_test_args.is_empty() {
        cmd.arg("--").args(&args.cargo_test_args);
    }
    let status = cmd.status().context("running cargo test")?;
    if !status.success() {
        bail!("cargo test failed ({status})");
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
    let name = if extra.is_empty() {
        format!("release-{version}")
    } else {
        format!("release-{version}-extra")
    };
    let out = paths::slipway_dir().join("test-images").join(name);
    let stamp_path = out.with_extension("stamp");
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

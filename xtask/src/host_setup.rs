//! What `cargo xtask build-image` and `cargo xtask test` need on the build
//! host, checked before anything long compiles: the musl Rust target,
//! Debian's package lists (the build fetches its inputs with `apt-get
//! download`), and the programs and files of a few Debian packages. As
//! root with `apt-get`, the missing ones are installed, one stderr line per
//! step; otherwise the run stops at once with the exact commands to run.
//! With everything present this costs a few file checks, one `rustc
//! --print` and, for `test`, one `python3 -c` (no apt-get).
//!
//! The decision ([`plan`], [`blocked`]) is pure, over a [`Host`] that
//! [`survey`] fills in, so it is tested without touching the machine.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};

use crate::guest::TARGET;

/// The host programs of the registry tests (`registry.rs`): Debian's
/// `docker-registry` and `skopeo`.
pub const REGISTRY_BIN: &str = "docker-registry";
pub const SKOPEO_BIN: &str = "skopeo";

/// Which command the host is prepared for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `build-image`; `qcow2: false` is `--no-qcow2` (no qemu-img needed).
    BuildImage { qcow2: bool },
    /// `test`: builds images, boots VMs, cross-checks with host tools.
    Test,
}

impl Purpose {
    fn command(self) -> &'static str {
        match self {
            Purpose::BuildImage { .. } => "cargo xtask build-image",
            Purpose::Test => "cargo xtask test",
        }
    }
}

/// How to tell a package is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// Every one of these programs, on `PATH` or in `/usr/sbin`, `/sbin`
    /// (not on every user's `PATH`).
    Programs(&'static [&'static str]),
    /// The OVMF firmware pair QEMU boots, where [`crate::qemu::find_ovmf`]
    /// looks.
    Ovmf,
    /// `python3 -m venv` works: Debian's python3 lacks `ensurepip` without
    /// python3-venv, and `venv` then fails.
    PythonVenv,
}

/// A Debian package one of the commands needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    pub package: &'static str,
    probe: Probe,
    /// Why, for the line that says it is being installed.
    pub why: &'static str,
}

const QEMU_SYSTEM: Need = Need {
    package: "qemu-system-x86",
    probe: Probe::Programs(&[crate::qemu::QEMU]),
    why: "QEMU boots the VM tests",
};
const OVMF: Need = Need {
    package: "ovmf",
    probe: Probe::Ovmf,
    why: "the UEFI firmware the VMs boot through",
};
const QEMU_UTILS: Need = Need {
    package: "qemu-utils",
    probe: Probe::Programs(&["qemu-img", "qemu-io"]),
    why: "qemu-img writes disk.qcow2 and the VMs' overlays",
};
const E2FSPROGS: Need = Need {
    package: "e2fsprogs",
    probe: Probe::Programs(&["mke2fs", "e2fsck"]),
    why: "mke2fs makes the image's empty /var",
};

/// What `cargo xtask test` needs beyond `build-image` (with qcow2), each
/// named by what calls it: the VM harness (`qemu.rs`, `vm/ssh.rs`), the
/// host tests that cross-check the disk (`tests/disk_tools.rs`,
/// `image/src/verity/tests.rs`), the container tests' registry
/// (`registry.rs`) and the etcd the lock and swarm tests start
/// (`update-engine/tests/lock_etcd.rs`, `fleet.rs`, `tests/swarm_etcd.rs`),
/// and the venv the SBOM's validator is installed into (`tests/sbom.rs`,
/// [`spdx_tools`]).
const TEST_NEEDS: [Need; 11] = [
    QEMU_SYSTEM,
    OVMF,
    Need {
        package: "dosfstools",
        probe: Probe::Programs(&["fsck.vfat"]),
        why: "fsck.vfat checks the image's ESP",
    },
    Need {
        package: "fdisk",
        probe: Probe::Programs(&["sfdisk"]),
        why: "sfdisk reads the image's GPT",
    },
    Need {
        package: "cryptsetup-bin",
        probe: Probe::Programs(&["veritysetup"]),
        why: "veritysetup verifies the image's dm-verity tree",
    },
    Need {
        package: "openssh-client",
        probe: Probe::Programs(&["ssh", "ssh-keygen"]),
        why: "the VM tests log in with ssh",
    },
    Need {
        package: "docker-registry",
        probe: Probe::Programs(&[REGISTRY_BIN]),
        why: "the container tests' registry on loopback",
    },
    Need {
        package: "skopeo",
        probe: Probe::Programs(&[SKOPEO_BIN]),
        why: "skopeo pushes the container tests' image",
    },
    Need {
        package: "etcd-server",
        probe: Probe::Programs(&["etcd"]),
        why: "the reboot-lock and swarm tests run a real etcd",
    },
    Need {
        package: "etcd-client",
        probe: Probe::Programs(&["etcdctl"]),
        why: "etcdctl reads the tests' etcd back",
    },
    Need {
        package: "python3-venv",
        probe: Probe::PythonVenv,
        why: "the SBOM test installs the SPDX validator into a Python venv",
    },
];

/// Services whose packages start them on install (a registry on :5000
/// with auth, an etcd on :2379); the tests start their own on free ports
/// with their own config, so the packaged ones are stopped and disabled.
const PACKAGED_SERVICES: [(&str, &str); 2] = [
    ("docker-registry", "docker-registry"),
    ("etcd-server", "etcd"),
];

/// The packages `purpose` needs, in install order.
pub fn needs(purpose: Purpose) -> Vec<Need> {
    let mut needs = vec![E2FSPROGS];
    match purpose {
        Purpose::BuildImage { qcow2: false } => {}
        Purpose::BuildImage { qcow2: true } => needs.push(QEMU_UTILS),
        Purpose::Test => {
            needs.push(QEMU_UTILS);
            needs.extend(TEST_NEEDS);
        }
    }
    needs
}

/// What the machine has, as far as `purpose` cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub root: bool,
    pub apt_get: bool,
    pub rustup: bool,
    /// `/var/lib/apt/lists` holds at least one `Packages` index.
    pub package_lists: bool,
    pub musl_target: bool,
    /// The needed packages whose probe failed.
    pub missing: Vec<Need>,
}

/// One thing to do to the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    AptUpdate {
        why: &'static str,
    },
    AptInstall {
        packages: Vec<&'static str>,
        why: String,
    },
    /// `systemctl disable --now UNIT` (only where it is running).
    StopService {
        unit: &'static str,
        package: &'static str,
    },
    RustTarget,
}

impl Step {
    /// Whether only root may take this step.
    fn needs_root(&self) -> bool {
        !matches!(self, Step::RustTarget)
    }

    /// The shell command that takes the step, for a user who must run it
    /// (`sudo` when they are not root).
    pub fn command(&self, root: bool) -> String {
        let sudo = if root { "" } else { "sudo " };
        match self {
            Step::AptUpdate { .. } => format!("{sudo}apt-get update"),
            Step::AptInstall { packages, .. } => format!(
                "{sudo}apt-get install -y --no-install-recommends {}",
                packages.join(" ")
            ),
            Step::StopService { unit, .. } => format!("{sudo}systemctl disable --now {unit}"),
            Step::RustTarget => format!("rustup target add {TARGET}"),
        }
    }

    /// The stderr line said before the step: what and why.
    pub fn describe(&self) -> String {
        match self {
            Step::AptUpdate { why } => format!("setup: apt-get update ({why})"),
            Step::AptInstall { packages, why } => {
                format!("setup: apt-get install {} ({why})", packages.join(" "))
            }
            Step::StopService { unit, package } => format!(
                "setup: systemctl disable --now {unit} (installing {package} started it; the \
                 tests start their own)"
            ),
            Step::RustTarget => format!(
                "setup: rustup target add {TARGET} (the guest programs are static musl binaries)"
            ),
        }
    }
}

/// The steps that give the host what `purpose` needs, in order; empty
/// when it has everything.
///
/// Packages go in with `apt-get update` first (lists may be stale, and
/// installing needs pool files they name), in up to three `apt-get
/// install` runs: `qemu-system-x86 ovmf`, then `qemu-utils` alone (with
/// both at once apt may take a newer qemu-utils from backports that
/// qemu-system-x86 conflicts with, and remove it), then the rest.
pub fn plan(purpose: Purpose, host: &Host) -> Vec<Step> {
    let mut steps = Vec::new();
    if !host.musl_target {
        steps.push(Step::RustTarget);
    }
    let missing = |need: &Need| host.missing.iter().any(|m| m.package == need.package);
    let groups: [Vec<Need>; 3] = [
        needs(purpose)
            .into_iter()
            .filter(|n| missing(n) && [QEMU_SYSTEM, OVMF].contains(n))
            .collect(),
        needs(purpose)
            .into_iter()
            .filter(|n| missing(n) && *n == QEMU_UTILS)
            .collect(),
        needs(purpose)
            .into_iter()
            .filter(|n| missing(n) && ![QEMU_SYSTEM, OVMF, QEMU_UTILS].contains(n))
            .collect(),
    ];
    let installing = groups.iter().any(|g| !g.is_empty());
    if installing {
        steps.push(Step::AptUpdate {
            why: "fresh package lists to install from",
        });
    } else if host.apt_get && !host.package_lists {
        steps.push(Step::AptUpdate {
            why: "the package lists are empty, and the build fetches its Debian packages with \
                  apt-get download",
        });
    }
    for group in groups.into_iter().filter(|g| !g.is_empty()) {
        steps.push(Step::AptInstall {
            packages: group.iter().map(|n| n.package).collect(),
            why: group.iter().map(|n| n.why).collect::<Vec<_>>().join("; "),
        });
    }
    for (package, unit) in PACKAGED_SERVICES {
        if host.missing.iter().any(|m| m.package == package) {
            steps.push(Step::StopService { unit, package });
        }
    }
    steps
}

/// Why this process cannot take `steps` itself, with what to run instead;
/// `None` when it can.
pub fn blocked(purpose: Purpose, host: &Host, steps: &[Step]) -> Option<String> {
    let root_needed = steps.iter().any(Step::needs_root);
    let rust_needed = steps.contains(&Step::RustTarget);
    let lacks: Vec<String> = host
        .missing
        .iter()
        .map(|n| n.package.to_string())
        .chain(rust_needed.then(|| format!("the Rust target {TARGET}")))
        .chain(
            steps
                .iter()
                .any(|s| matches!(s, Step::AptUpdate { .. }))
                .then(|| "package lists".to_string())
                .filter(|_| !host.package_lists),
        )
        .collect();
    let what = format!(
        "`{}` needs what this machine lacks ({})",
        purpose.command(),
        lacks.join(", ")
    );
    let mut problems = Vec::new();
    if root_needed && !host.apt_get {
        let programs: Vec<String> = host
            .missing
            .iter()
            .map(|n| match n.probe {
                Probe::Programs(p) => format!("{} (Debian: {})", p.join(", "), n.package),
                Probe::Ovmf => format!("the OVMF UEFI firmware (Debian: {})", n.package),
                Probe::PythonVenv => format!("Python's venv module (Debian: {})", n.package),
            })
            .collect();
        problems.push(format!(
            "there is no apt-get here: install with your system's package manager: {}",
            programs.join("; ")
        ));
    }
    if rust_needed && !host.rustup {
        problems.push(format!(
            "there is no rustup here: install the Rust standard library for {TARGET} for your \
             toolchain"
        ));
    }
    let sudo_needed = root_needed && host.apt_get && !host.root;
    if problems.is_empty() && !sudo_needed {
        return None;
    }
    let mut message = what;
    if !problems.is_empty() {
        message = format!("{message}, and {}", problems.join("; and "));
    }
    if sudo_needed {
        // What rustup cannot do is said above; the rest is runnable.
        let commands: Vec<String> = steps
            .iter()
            .filter(|s| host.rustup || **s != Step::RustTarget)
            .map(|s| s.command(false))
            .collect();
        message = format!(
            "{message}{} run:\n  {}\nthen `{}` again (or run it as root, which installs it all \
             itself)",
            if problems.is_empty() {
                ", and only root can install it;"
            } else {
                ". As root, with sudo,"
            },
            commands.join("\n  "),
            purpose.command()
        );
    }
    Some(message)
}

/// Looks at the machine: the probes of `purpose`'s packages, the musl
/// target, the package lists, root, apt-get, rustup.
pub fn survey(purpose: Purpose) -> Host {
    let missing = needs(purpose)
        .into_iter()
        .filter(|n| !present(n.probe))
        .collect();
    Host {
        root: is_root(),
        apt_get: find_program("apt-get").is_some(),
        rustup: find_program("rustup").is_some(),
        package_lists: package_lists_present(),
        musl_target: musl_target_installed(),
        missing,
    }
}

/// Makes the machine ready for `purpose`, or says what to run: see the
/// module documentation. With `check_only` nothing is changed: the steps
/// are printed and the result is an error if there are any.
pub fn ensure(purpose: Purpose, check_only: bool) -> Result<()> {
    let host = survey(purpose);
    let steps = plan(purpose, &host);
    if steps.is_empty() {
        return Ok(());
    }
    if check_only {
        for step in &steps {
            eprintln!("setup: would run `{}`", step.command(host.root));
        }
        match blocked(purpose, &host, &steps) {
            Some(why) => bail!("{why}"),
            None => bail!(
                "`{}` needs {} step(s) of set-up; it takes them itself, as does `cargo xtask \
                 setup --for {}`",
                purpose.command(),
                steps.len(),
                match purpose {
                    Purpose::BuildImage { .. } => "build-image",
                    Purpose::Test => "test",
                }
            ),
        }
    }
    if let Some(why) = blocked(purpose, &host, &steps) {
        bail!("{why}");
    }
    for step in &steps {
        // A service is stopped, and its line said, only where it runs.
        if !matches!(step, Step::StopService { .. }) {
            eprintln!("{}", step.describe());
        }
        run_step(step)?;
    }
    let after = survey(purpose);
    if let Some(need) = after.missing.first() {
        bail!(
            "installed {} but its {} is still not found",
            need.package,
            match need.probe {
                Probe::Programs(p) => p.join(", "),
                Probe::Ovmf => "OVMF firmware".to_string(),
                Probe::PythonVenv => "`python3 -m venv`".to_string(),
            }
        );
    }
    if !after.musl_target {
        bail!(
            "rustup target add {TARGET} ran, but `rustc --print target-libdir --target \
             {TARGET}` names a folder without libstd"
        );
    }
    Ok(())
}

fn run_step(step: &Step) -> Result<()> {
    match step {
        Step::AptUpdate { .. } => update_lists(),
        Step::AptInstall { packages, .. } => {
            let mut cmd = Command::new("apt-get");
            cmd.args(["install", "-y", "-q", "--no-install-recommends"])
                .args(packages);
            run_quietly(&mut cmd, &step.command(true))
        }
        Step::StopService { unit, .. } => {
            // Without a running systemd (a container, a chroot) the postinst
            // started nothing, and there is nothing to stop.
            let active = find_program("systemctl").is_some()
                && Command::new("systemctl")
                    .args(["is-active", "--quiet", unit])
                    .status()
                    .is_ok_and(|s| s.success());
            if active {
                eprintln!("{}", step.describe());
                let mut cmd = Command::new("systemctl");
                cmd.args(["disable", "--now", unit]);
                run_quietly(&mut cmd, &step.command(true))?;
            }
            Ok(())
        }
        Step::RustTarget => {
            let mut cmd = Command::new("rustup");
            cmd.args(["target", "add", TARGET]);
            run_quietly(&mut cmd, &step.command(true))
        }
    }
}

/// Runs `cmd` with its output kept, shown only if it fails (the step's
/// line already says what is happening).
fn run_quietly(cmd: &mut Command, shown: &str) -> Result<()> {
    let out = cmd
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .with_context(|| format!("running `{shown}`"))?;
    if !out.status.success() {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        bail!(
            "`{shown}` failed ({}):\n  {}",
            out.status,
            lines[lines.len().saturating_sub(15)..].join("\n  ")
        );
    }
    Ok(())
}

/// Whether `apt-get update` ran in this process (it runs at most once:
/// a second run could not make the lists any fresher).
static LISTS_UPDATED: Mutex<bool> = Mutex::new(false);

fn update_lists() -> Result<()> {
    let mut done = LISTS_UPDATED.lock().unwrap_or_else(|e| e.into_inner());
    run_apt_update(&mut done)
}

fn run_apt_update(done: &mut bool) -> Result<()> {
    let mut cmd = Command::new("apt-get");
    cmd.args(["update", "-q"]);
    run_quietly(&mut cmd, "apt-get update")?;
    *done = true;
    Ok(())
}

/// Runs `apt-get update` unless it already ran in this process, saying
/// why on stderr; `Ok(false)` when it had already run (the lists are as
/// fresh as they get).
pub fn update_lists_once(why: &str) -> Result<bool> {
    let mut done = LISTS_UPDATED.lock().unwrap_or_else(|e| e.into_inner());
    if *done {
        return Ok(false);
    }
    eprintln!("setup: apt-get update ({why})");
    run_apt_update(&mut done)?;
    Ok(true)
}

/// Whether this process ran `apt-get update`.
pub fn lists_updated() -> bool {
    *LISTS_UPDATED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where apt keeps its package lists (`Dir::State::lists`, Debian's default).
const APT_LISTS: &str = "/var/lib/apt/lists";

/// Whether the package lists hold any `Packages` index (a fresh container
/// or debootstrap has none, and `apt-get download` then finds nothing).
pub fn package_lists_present() -> bool {
    lists_in(Path::new(APT_LISTS))
}

fn lists_in(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().contains("_Packages"))
    })
}

/// Whether this process runs as root: `/proc/self` belongs to the
/// effective user (no `/proc`: assume not, which only means commands are
/// printed instead of run).
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Whether the toolchain cargo builds with has the musl standard library:
/// `rustc` (or `$RUSTC`; under rustup, the same toolchain through
/// `RUSTUP_TOOLCHAIN`) names the folder, which must hold a `libstd`.
fn musl_target_installed() -> bool {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(out) = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
    else {
        return false;
    };
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    out.status.success() && has_libstd(&dir)
}

fn has_libstd(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.filter_map(|e| e.ok()).any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("libstd-") && name.ends_with(".rlib")
        })
    })
}

fn present(probe: Probe) -> bool {
    match probe {
        Probe::Programs(programs) => programs.iter().all(|p| find_program(p).is_some()),
        Probe::Ovmf => crate::qemu::find_ovmf().is_ok(),
        Probe::PythonVenv => python_has_venv(),
    }
}

/// Whether `python3` has what `python3 -m venv` needs (`venv` and the
/// `ensurepip` that python3-venv adds on Debian).
fn python_has_venv() -> bool {
    Command::new("python3")
        .args(["-c", "import venv, ensurepip"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The SPDX validator the SBOM test runs, pinned: PyPI's spdx-tools.
pub const SPDX_TOOLS: &str = "spdx-tools==0.8.5";

/// `pyspdxtools` of [`SPDX_TOOLS`], installed on first use into a venv
/// under the target folder (no root needed; `pip` asks the Python package
/// index). The error says what to run when `python3 -m venv` cannot work.
pub fn spdx_tools() -> Result<PathBuf> {
    let dir = crate::paths::slipway_dir()
        .join("tools")
        .join(SPDX_TOOLS.replace("==", "-"));
    let program = dir.join("bin/pyspdxtools");
    // Written after pip succeeded: a folder without it is half made.
    let marker = dir.join(".slipway-installed");
    if marker.is_file() && program.is_file() {
        return Ok(program);
    }
    if !python_has_venv() {
        bail!(
            "`python3 -m venv` cannot work here (no python3, or Debian's python3 without \
             python3-venv): run `{}apt-get install -y --no-install-recommends python3-venv` \
             (or `cargo xtask setup --for test`)",
            if is_root() { "" } else { "sudo " }
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "setup: python3 -m venv {} (for {SPDX_TOOLS})",
        dir.display()
    );
    let mut venv = Command::new("python3");
    venv.arg("-m").arg("venv").arg(&dir);
    run_quietly(&mut venv, &format!("python3 -m venv {}", dir.display()))?;
    let pip = dir.join("bin/pip");
    eprintln!("setup: pip install {SPDX_TOOLS}");
    let mut install = Command::new(&pip);
    install.args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        SPDX_TOOLS,
    ]);
    run_quietly(
        &mut install,
        &format!("{} install {SPDX_TOOLS}", pip.display()),
    )?;
    if !program.is_file() {
        bail!(
            "pip installed {SPDX_TOOLS} but {} is missing",
            program.display()
        );
    }
    std::fs::write(&marker, SPDX_TOOLS).with_context(|| format!("writing {}", marker.display()))?;
    Ok(program)
}

/// A program on `PATH`, or in the sbin folders a user's `PATH` may lack.
fn find_program(name: &str) -> Option<PathBuf> {
    crate::util::which(name).or_else(|| {
        ["/usr/sbin", "/sbin"]
            .iter()
            .map(|d| Path::new(d).join(name))
            .find(|p| p.is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need(package: &str) -> Need {
        needs(Purpose::Test)
            .into_iter()
            .find(|n| n.package == package)
            .unwrap_or_else(|| panic!("{package} is not a need of test"))
    }

    fn ready() -> Host {
        Host {
            root: true,
            apt_get: true,
            rustup: true,
            package_lists: true,
            musl_target: true,
            missing: Vec::new(),
        }
    }

    fn commands(steps: &[Step], root: bool) -> Vec<String> {
        steps.iter().map(|s| s.command(root)).collect()
    }

    #[test]
    fn a_ready_host_has_nothing_to_do() {
        for purpose in [
            Purpose::BuildImage { qcow2: true },
            Purpose::BuildImage { qcow2: false },
            Purpose::Test,
        ] {
            assert_eq!(plan(purpose, &ready()), []);
            // Not root changes nothing when nothing is missing.
            let host = Host {
                root: false,
                ..ready()
            };
            assert_eq!(plan(purpose, &host), []);
            assert_eq!(blocked(purpose, &host, &[]), None);
        }
    }

    #[test]
    fn build_image_needs_less_than_test() {
        let names = |p| needs(p).iter().map(|n| n.package).collect::<Vec<_>>();
        assert_eq!(names(Purpose::BuildImage { qcow2: false }), ["e2fsprogs"]);
        assert_eq!(
            names(Purpose::BuildImage { qcow2: true }),
            ["e2fsprogs", "qemu-utils"]
        );
        let test = names(Purpose::Test);
        for p in [
            "qemu-system-x86",
            "ovmf",
            "qemu-utils",
            "e2fsprogs",
            "dosfstools",
            "fdisk",
            "cryptsetup-bin",
            "openssh-client",
            "docker-registry",
            "skopeo",
            "etcd-server",
            "etcd-client",
            "python3-venv",
        ] {
            assert!(test.contains(&p), "test does not install {p}");
        }
        assert_eq!(test.len(), 13, "{test:?}");
    }

    #[test]
    fn a_fresh_machine_gets_everything_in_the_install_order() {
        let host = Host {
            package_lists: false,
            musl_target: false,
            missing: needs(Purpose::Test),
            ..ready()
        };
        let steps = plan(Purpose::Test, &host);
        assert_eq!(
            commands(&steps, true),
            [
                "rustup target add x86_64-unknown-linux-musl",
                "apt-get update",
                "apt-get install -y --no-install-recommends qemu-system-x86 ovmf",
                "apt-get install -y --no-install-recommends qemu-utils",
                "apt-get install -y --no-install-recommends e2fsprogs dosfstools fdisk \
                 cryptsetup-bin openssh-client docker-registry skopeo etcd-server etcd-client \
                 python3-venv",
                "systemctl disable --now docker-registry",
                "systemctl disable --now etcd",
            ]
        );
        assert_eq!(blocked(Purpose::Test, &host, &steps), None);
        assert!(steps[2].describe().contains("QEMU boots the VM tests"));
    }

    #[test]
    fn one_missing_package_is_one_install_after_an_update() {
        let host = Host {
            missing: vec![need("skopeo")],
            ..ready()
        };
        let steps = plan(Purpose::Test, &host);
        assert_eq!(
            commands(&steps, true),
            [
                "apt-get update",
                "apt-get install -y --no-install-recommends skopeo"
            ]
        );
        assert_eq!(
            steps[1].describe(),
            "setup: apt-get install skopeo (skopeo pushes the container tests' image)"
        );
    }

    #[test]
    fn no_qcow2_does_not_need_qemu_img() {
        let host = Host {
            missing: vec![need("qemu-utils")],
            ..ready()
        };
        assert_eq!(plan(Purpose::BuildImage { qcow2: false }, &host), []);
        assert_eq!(
            commands(&plan(Purpose::BuildImage { qcow2: true }, &host), true),
            [
                "apt-get update",
                "apt-get install -y --no-install-recommends qemu-utils"
            ]
        );
    }

    #[test]
    fn empty_package_lists_are_updated_for_the_build() {
        let host = Host {
            package_lists: false,
            ..ready()
        };
        let steps = plan(Purpose::BuildImage { qcow2: true }, &host);
        assert_eq!(commands(&steps, true), ["apt-get update"]);
        assert!(steps[0].describe().contains("apt-get download"));
        // Without apt-get there are no lists to fill; the build says so
        // itself if it has to download.
        let host = Host {
            apt_get: false,
            ..host
        };
        assert_eq!(plan(Purpose::BuildImage { qcow2: true }, &host), []);
    }

    #[test]
    fn not_root_stops_with_the_exact_commands() {
        let host = Host {
            root: false,
            missing: vec![need("e2fsprogs"), need("qemu-utils")],
            ..ready()
        };
        let purpose = Purpose::BuildImage { qcow2: true };
        let steps = plan(purpose, &host);
        let why = blocked(purpose, &host, &steps).expect("not root must stop");
        assert_eq!(
            why,
            "`cargo xtask build-image` needs what this machine lacks (e2fsprogs, qemu-utils), \
             and only root can install it; run:\n  \
             sudo apt-get update\n  \
             sudo apt-get install -y --no-install-recommends qemu-utils\n  \
             sudo apt-get install -y --no-install-recommends e2fsprogs\n\
             then `cargo xtask build-image` again (or run it as root, which installs it all \
             itself)"
        );
    }

    #[test]
    fn not_root_still_adds_the_rust_target_itself() {
        let host = Host {
            root: false,
            musl_target: false,
            ..ready()
        };
        let purpose = Purpose::BuildImage { qcow2: true };
        let steps = plan(purpose, &host);
        assert_eq!(steps, [Step::RustTarget]);
        assert_eq!(blocked(purpose, &host, &steps), None);
        // Without rustup it cannot.
        let host = Host {
            rustup: false,
            ..host
        };
        let why = blocked(purpose, &host, &steps).unwrap();
        assert!(why.contains("no rustup"), "{why}");
        assert!(why.contains("x86_64-unknown-linux-musl"), "{why}");
    }

    #[test]
    fn not_root_without_rustup_gets_both_reasons() {
        let host = Host {
            root: false,
            rustup: false,
            musl_target: false,
            missing: vec![need("skopeo")],
            ..ready()
        };
        let why = blocked(Purpose::Test, &host, &plan(Purpose::Test, &host)).unwrap();
        assert!(
            why.starts_with(
                "`cargo xtask test` needs what this machine lacks (skopeo, the Rust target \
                 x86_64-unknown-linux-musl), and there is no rustup here"
            ),
            "{why}"
        );
        assert!(
            why.contains(
                ". As root, with sudo, run:\n  sudo apt-get update\n  \
                 sudo apt-get install -y --no-install-recommends skopeo\nthen"
            ),
            "{why}"
        );
        assert!(!why.contains("rustup target add"), "{why}");
    }

    #[test]
    fn not_root_with_the_lists_empty_is_told_to_update() {
        let host = Host {
            root: false,
            package_lists: false,
            ..ready()
        };
        let purpose = Purpose::BuildImage { qcow2: true };
        let why = blocked(purpose, &host, &plan(purpose, &host)).unwrap();
        assert!(why.contains("(package lists)"), "{why}");
        assert!(why.contains("\n  sudo apt-get update\n"), "{why}");
    }

    #[test]
    fn no_apt_get_names_the_programs_and_packages() {
        let host = Host {
            apt_get: false,
            missing: vec![need("ovmf"), need("fdisk")],
            ..ready()
        };
        let why = blocked(Purpose::Test, &host, &plan(Purpose::Test, &host)).unwrap();
        assert!(why.contains("there is no apt-get here"), "{why}");
        assert!(
            why.contains("the OVMF UEFI firmware (Debian: ovmf)"),
            "{why}"
        );
        assert!(why.contains("sfdisk (Debian: fdisk)"), "{why}");
    }

    #[test]
    fn packaged_services_are_stopped_only_after_installing_them() {
        let host = Host {
            missing: vec![need("etcd-client")],
            ..ready()
        };
        assert!(!plan(Purpose::Test, &host)
            .iter()
            .any(|s| matches!(s, Step::StopService { .. })));
        let host = Host {
            missing: vec![need("etcd-server")],
            ..ready()
        };
        assert_eq!(
            plan(Purpose::Test, &host).last(),
            Some(&Step::StopService {
                unit: "etcd",
                package: "etcd-server"
            })
        );
    }

    #[test]
    fn package_lists_are_the_packages_indexes() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!lists_in(dir.path()));
        assert!(!lists_in(&dir.path().join("missing")));
        std::fs::write(dir.path().join("lock"), b"").unwrap();
        std::fs::create_dir(dir.path().join("partial")).unwrap();
        std::fs::write(
            dir.path()
                .join("deb.debian.org_debian_dists_bookworm_InRelease"),
            b"",
        )
        .unwrap();
        assert!(!lists_in(dir.path()));
        std::fs::write(
            dir.path()
                .join("deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4"),
            b"",
        )
        .unwrap();
        assert!(lists_in(dir.path()));
    }

    #[test]
    fn libstd_marks_an_installed_target() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!has_libstd(dir.path()));
        std::fs::write(dir.path().join("libcore-0123.rlib"), b"").unwrap();
        assert!(!has_libstd(dir.path()));
        std::fs::write(dir.path().join("libstd-0123.rlib"), b"").unwrap();
        assert!(has_libstd(dir.path()));
    }
}

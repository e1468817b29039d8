//! The build's inputs: Debian packages fetched with `apt-get download`,
//! cached under `target/slipway/`, unpacked in Rust, and pinned by
//! `board/<name>/inputs.lock` (name, version, sha256), which is checked on
//! every reuse.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use slipway_image::deb;

use crate::board::Board;
use crate::paths;
use crate::util::sha256_file;

/// What a package is used for; one lock entry per role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Kernel,
    Bootloader,
    Busybox,
    /// A package the board lists in `packages.extra`.
    Extra,
    /// A package in the `Depends`/`Pre-Depends` closure of the extra
    /// packages (where their shared libraries and the loader come from).
    Dependency,
}

/// One pinned package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Locked {
    pub role: Role,
    /// What the board asked for (a metapackage, for the kernel).
    pub requested: String,
    pub package: String,
    pub version: String,
    pub sha256: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct LockFile {
    #[serde(default, rename = "package")]
    packages: Vec<Locked>,
}

const LOCK_HEADER: &str = "\
# Inputs of this board's image, pinned by `cargo xtask build-image`.
# Every build checks the cached .deb files against these hashes.
# Re-resolve to the archive's current versions with
#   cargo xtask build-image --board <board> --update-inputs
";

/// The kernel the image boots.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub vmlinuz: PathBuf,
    /// `lib/modules/<release>` with `kernel/` and `modules.builtin`.
    pub modules_dir: PathBuf,
    pub release: String,
}

/// Everything the image is made from, resolved to files on disk.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub kernel: Kernel,
    pub systemd_boot: PathBuf,
    pub busybox: PathBuf,
    /// The extra packages and their dependency closure, unpacked, sorted by
    /// package name.
    pub extras: Vec<ExtraPackage>,
    /// The pinned packages (the kernel's is absent when the user brought
    /// their own kernel).
    pub packages: Vec<Locked>,
    /// sha256 of a user-supplied kernel image.
    pub kernel_override_sha256: Option<String>,
}

/// An unpacked package of the extra closure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraPackage {
    pub package: String,
    /// Listed by the board (its programs go into the root); otherwise only a
    /// dependency (only the libraries the programs need are taken from it).
    pub listed: bool,
    pub root: PathBuf,
}

#[derive(Debug, Clone, Default)]
pub struct InputOptions {
    /// Re-resolve every package to the archive's candidate and rewrite the lock.
    pub update: bool,
    /// `--kernel FILE --modules DIR`.
    pub kernel_override: Option<(PathBuf, PathBuf)>,
}

pub fn resolve(board: &Board, opts: &InputOptions) -> Result<Inputs> {
    let lock_path = crate::board::lock_path(&paths::boards_dir(), &board.name);
    let mut lock = read_lock(&lock_path)?;
    let mut changed = false;

    let mut wanted = vec![
        (Role::Bootloader, board.packages.bootloader.clone()),
        (Role::Busybox, board.packages.busybox.clone()),
    ];
    if opts.kernel_override.is_none() {
        wanted.insert(0, (Role::Kernel, board.kernel.package.clone()));
    }

    let mut pinned = Vec::new();
    for (role, requested) in wanted {
        let existing = lock
            .packages
            .iter()
            .find(|l| l.role == role && l.requested == requested)
            .cloned();
        let entry = match existing {
            Some(l) if !opts.update => {
                ensure_cached(&l, &lock_path, &paths::deb_cache())?;
                l
            }
            _ => {
                let l = fetch_candidate(role, &requested)?;
                changed = true;
                l
            }
        };
        pinned.push(entry);
    }

    // Dependencies only maintainer scripts use (adduser, lsb-base, …) are
    // not followed: nothing runs at install time here.
    let setup = crate::package_setup::Setup::load(&paths::boards_dir())?;
    let skip: std::collections::BTreeMap<String, Vec<String>> = setup
        .packages
        .iter()
        .map(|(name, p)| (name.clone(), p.skip_depends.clone()))
        .collect();
    let extras = resolve_extras(&board.packages.extra, &lock, opts.update, &lock_path, &skip)?;
    let locked_extras: Vec<Locked> = sorted(
        lock.packages
            .iter()
            .filter(|l| is_extra_role(l.role))
            .cloned()
            .collect(),
    );
    if extras != locked_extras {
        changed = true;
    }

    if changed {
        // Keep entries of roles not used this time (e.g. the kernel while a
        // user kernel is given), replace the rest; the extra closure is
        // replaced as a whole.
        lock.packages.retain(|old| {
            !is_extra_role(old.role) && !pinned.iter().any(|new| new.role == old.role)
        });
        lock.packages.extend(pinned.iter().cloned());
        lock.packages.extend(extras.iter().cloned());
        lock.packages = sorted(std::mem::take(&mut lock.packages));
        write_lock(&lock_path, &lock)?;
        eprintln!("inputs: wrote {}", lock_path.display());
    }

    let dir_of = |role: Role| -> Result<PathBuf> {
        let l = pinned
            .iter()
            .find(|l| l.role == role)
            .context("internal: role not resolved")?;
        unpacked(l)
    };

    let systemd_boot =
        dir_of(Role::Bootloader)?.join("usr/lib/systemd/boot/efi/systemd-bootx64.efi");
    if !systemd_boot.is_file() {
        bail!(
            "package {} has no {}: is it systemd-boot-efi?",
            board.packages.bootloader,
            "usr/lib/systemd/boot/efi/systemd-bootx64.efi"
        );
    }
    let bb_dir = dir_of(Role::Busybox)?;
    let busybox = ["bin/busybox", "usr/bin/busybox"]
        .iter()
        .map(|p| bb_dir.join(p))
        .find(|p| p.is_file())
        .with_context(|| format!("package {} has no bin/busybox", board.packages.busybox))?;

    let (kernel, kernel_override_sha256) = match &opts.kernel_override {
        Some((vmlinuz, modules)) => (user_kernel(vmlinuz, modules)?, Some(sha256_file(vmlinuz)?)),
        None => (
            packaged_kernel(&dir_of(Role::Kernel)?, &board.kernel.package)?,
            None,
        ),
    };

    let extra_dirs = extras
        .iter()
        .map(|l| {
            Ok(ExtraPackage {
                package: l.package.clone(),
                listed: l.role == Role::Extra,
                root: unpacked(l)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    pinned.extend(extras);

    Ok(Inputs {
        kernel,
        systemd_boot,
        busybox,
        extras: extra_dirs,
        packages: pinned,
        kernel_override_sha256,
    })
}

fn is_extra_role(role: Role) -> bool {
    matches!(role, Role::Extra | Role::Dependency)
}

/// Lock order: by role, then package name.
fn sorted(mut packages: Vec<Locked>) -> Vec<Locked> {
    packages.sort_by(|a, b| (a.role, &a.package).cmp(&(b.role, &b.package)));
    packages
}

/// Pins the board's extra packages and their `Depends`/`Pre-Depends`
/// closure (first alternative of each item, as apt would pick on a system
/// without the others installed), breadth first from the listed packages.
///
/// A package the lock already pins is reused as pinned (its dependencies
/// read from the cached `.deb`); only names the lock lacks, or every name
/// with `update`, ask the archive for its candidate. The result is sorted
/// and holds no entry the closure no longer reaches.
fn resolve_extras(
    listed: &[String],
    lock: &LockFile,
    update: bool,
    lock_path: &Path,
    skip_depends: &std::collections::BTreeMap<String, Vec<String>>,
) -> Result<Vec<Locked>> {
    let mut queue: std::collections::VecDeque<(String, Role, Option<String>)> = listed
        .iter()
        .map(|n| (n.clone(), Role::Extra, None))
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    let mut by_package: std::collections::BTreeMap<String, Locked> = Default::default();
    while let Some((name, role, via)) = queue.pop_front() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let why = || match &via {
            Some(parent) => format!("{name} (a dependency of {parent})"),
            None => format!("{name} (packages.extra)"),
        };
        let existing = lock
            .packages
            .iter()
            .find(|l| is_extra_role(l.role) && l.requested == name)
            .cloned();
        let entry = match existing {
            Some(l) if !update => {
                ensure_cached(&l, lock_path, &paths::deb_cache()).with_context(why)?;
                Locked { role, ..l }
            }
            _ => fetch_candidate(role, &name).with_context(why)?,
        };
        let deb = deb_path(&entry.package, &entry.version);
        let control = deb::control(&deb).with_context(|| format!("reading {}", deb.display()))?;
        let mut deps = control.depends.clone();
        deps.extend(
            control
                .field("Pre-Depends")
                .map(first_alternatives)
                .unwrap_or_default(),
        );
        let skip = skip_depends.get(&entry.package);
        for dep in deps {
            if skip.is_some_and(|s| s.contains(&dep)) {
                continue;
            }
            if !seen.contains(&dep) {
                queue.push_back((dep, Role::Dependency, Some(entry.package.clone())));
            }
        }
        // Two names reaching one package (a listed package that is also a
        // dependency) keep the first, which is the listed one.
        by_package.entry(entry.package.clone()).or_insert(entry);
    }
    Ok(sorted(by_package.into_values().collect()))
}

/// The package names of a relationship field, first alternative of each
/// item, without versions, architecture qualifiers or restrictions:
/// `a (>= 1) | b, c:any [amd64]` gives `[a, c]`.
fn first_alternatives(field: &str) -> Vec<String> {
    field
        .split(',')
        .filter_map(|item| {
            let first = item.split('|').next()?.trim();
            let name = first
                .split(|c: char| c.is_whitespace() || "([<:".contains(c))
                .next()?;
            (!name.is_empty()).then(|| name.to_string())
        })
        .collect()
}

/// The pins of a board's lock file (none if it does not exist).
pub fn read_pins(path: &Path) -> Result<Vec<Locked>> {
    Ok(read_lock(path)?.packages)
}

/// What a build with these pins would still have to resolve for `board`
/// (each a line naming the `board.toml` field), or leave stale in the lock:
/// the kernel package, the bootloader, busybox and every `packages.extra`
/// name must each be pinned under its role as [`resolve`] looks it up, and
/// no pin may be left for an extra the board no longer lists. A lock that
/// passes is one the build uses as it is, rather than rewriting it with
/// whatever the archive offers that day. (The dependency closure needs
/// the `.deb` files to check; the build does that.)
pub fn unpinned(board: &Board, pins: &[Locked]) -> Vec<String> {
    let has = |role: Role, requested: &str| {
        pins.iter()
            .any(|l| l.role == role && l.requested == requested)
    };
    let mut problems = Vec::new();
    for (field, role, requested) in [
        ("kernel.package", Role::Kernel, &board.kernel.package),
        (
            "packages.bootloader",
            Role::Bootloader,
            &board.packages.bootloader,
        ),
        ("packages.busybox", Role::Busybox, &board.packages.busybox),
    ] {
        if !has(role, requested) {
            problems.push(format!("{field} `{requested}` is not pinned"));
        }
    }
    for name in &board.packages.extra {
        if !has(Role::Extra, name) {
            problems.push(format!("packages.extra `{name}` is not pinned"));
        }
    }
    for l in pins.iter().filter(|l| l.role == Role::Extra) {
        if !board.packages.extra.contains(&l.requested) {
            problems.push(format!(
                "`{}` is pinned as an extra package but packages.extra does not list it",
                l.requested
            ));
        }
    }
    for l in pins {
        if l.version.is_empty()
            || l.sha256.len() != 64
            || !l.sha256.bytes().all(|b| b.is_ascii_hexdigit())
        {
            problems.push(format!(
                "the pin of `{}` has no version or no sha256",
                l.requested
            ));
        }
    }
    problems
}

fn read_lock(path: &Path) -> Result<LockFile> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("lock file {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LockFile::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn write_lock(path: &Path, lock: &LockFile) -> Result<()> {
    let body = toml::to_string(lock).context("serialising the lock file")?;
    crate::util::write_atomic(path, format!("{LOCK_HEADER}\n{body}").as_bytes())
}

fn deb_path(package: &str, version: &str) -> PathBuf {
    deb_path_in(&paths::deb_cache(), package, version)
}

fn deb_path_in(cache: &Path, package: &str, version: &str) -> PathBuf {
    cache.join(format!("{package}_{version}.deb"))
}

/// Makes sure the locked package is in the cache with the locked hash.
fn ensure_cached(l: &Locked, lock_path: &Path, cache: &Path) -> Result<()> {
    let path = deb_path_in(cache, &l.package, &l.version);
    if !path.is_file() {
        let fetched = apt_download(&format!("{}={}", l.package, l.version)).with_context(|| {
            format!(
                "fetching {} {} pinned by {} (if the archive no longer has it, \
                 run with --update-inputs)",
                l.package,
                l.version,
                lock_path.display()
            )
        })?;
        std::fs::rename(&fetched, &path)
            .with_context(|| format!("moving {} to {}", fetched.display(), path.display()))?;
    }
    let sum = sha256_file(&path)?;
    if sum != l.sha256 {
        bail!(
            "cached package {} has sha256 {sum} but {} pins {}: delete the file to fetch it \
             again, or run with --update-inputs to trust a new build",
            path.display(),
            lock_path.display(),
            l.sha256
        );
    }
    Ok(())
}

/// Downloads the archive's candidate of `requested` (following a kernel
/// metapackage to the real image package) and returns its pin.
fn fetch_candidate(role: Role, requested: &str) -> Result<Locked> {
    let mut deb = apt_download(requested)?;
    let mut control = deb::control(&deb).with_context(|| format!("reading {}", deb.display()))?;
    // A kernel metapackage (linux-image-cloud-amd64) depends on the real
    // image package; the real one depends on no other linux-image-*.
    let meta_target = control
        .depends
        .iter()
        .find(|d| d.starts_with("linux-image-"))
        .cloned();
    if let (Role::Kernel, Some(real)) = (role, meta_target) {
        let _ = std::fs::remove_file(&deb);
        deb = apt_download(&real)?;
        control = deb::control(&deb).with_context(|| format!("reading {}", deb.display()))?;
    }
    let dest = deb_path(&control.package, &control.version);
    std::fs::rename(&deb, &dest)
        .with_context(|| format!("moving {} to {}", deb.display(), dest.display()))?;
    let sha256 = sha256_file(&dest)?;
    eprintln!(
        "inputs: {} {} sha256 {sha256}",
        control.package, control.version
    );
    Ok(Locked {
        role,
        requested: requested.to_string(),
        package: control.package,
        version: control.version,
        sha256,
    })
}

/// Runs `apt-get download SPEC` in a fresh folder of the cache and returns
/// the one `.deb` it produced.
///
/// Empty or stale package lists are the usual reason apt finds nothing (a
/// fresh container has none; lists from months ago name versions the
/// archive has since replaced), so as root an `apt-get update` runs first
/// when the lists are empty, or once after apt cannot find the package,
/// and the download is tried again. Not as root, the error says what to run.
fn apt_download(spec: &str) -> Result<PathBuf> {
    use crate::host_setup;
    let root = host_setup::is_root();
    if root && !host_setup::package_lists_present() {
        host_setup::update_lists_once(
            "the package lists are empty and apt-get download needs them",
        )?;
    }
    let mut result = apt_download_once(spec)?;
    if let Err(stderr) = &result {
        if root
            && apt_found_nothing(stderr)
            && host_setup::update_lists_once(&format!(
                "apt-get download {spec} found no such package: the package lists may be stale"
            ))?
        {
            result = apt_download_once(spec)?;
        }
    }
    let failure = match result {
        Ok(deb) => return Ok(deb),
        Err(stderr) => stderr,
    };
    let last = failure
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("");
    let hint = if host_setup::lists_updated() {
        "with package lists updated in this run"
    } else if root {
        "run `apt-get update` if the package lists are missing or stale"
    } else {
        "run `sudo apt-get update` if the package lists are missing or stale"
    };
    bail!("apt-get download {spec} failed: {last} ({hint})")
}

/// Whether apt's stderr says the lists do not have the package or version,
/// or name a file the archive no longer has: what fresh lists can cure.
fn apt_found_nothing(stderr: &str) -> bool {
    [
        "Unable to locate package",
        "Couldn't find any package",
        "was not found",
        "has no installation candidate",
        "404  Not Found",
    ]
    .iter()
    .any(|s| stderr.contains(s))
}

/// One `apt-get download SPEC`: the `.deb`, or apt's stderr when it failed.
fn apt_download_once(spec: &str) -> Result<std::result::Result<PathBuf, String>> {
    let tmp_root = paths::deb_cache();
    std::fs::create_dir_all(&tmp_root)
        .with_context(|| format!("creating {}", tmp_root.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".download-")
        .tempdir_in(&tmp_root)
        .context("creating a download folder")?;
    eprintln!("inputs: apt-get download {spec}");
    let out = Command::new("apt-get")
        // apt drops to the `_apt` user for downloads, which cannot write to
        // our cache; downloading as the caller is what we want.
        .args(["-o", "APT::Sandbox::User=root", "-q", "download", spec])
        .current_dir(tmp.path())
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "apt-get not found: the image is built from Debian packages; run on Debian or \
             Ubuntu (or bring your own kernel with --kernel FILE --modules DIR and put the \
             other packages in {})",
            paths::deb_cache().display()
        ),
        Err(e) => return Err(e).context("running apt-get"),
    };
    if !out.status.success() {
        return Ok(Err(String::from_utf8_lossy(&out.stderr).into_owned()));
    }
    let mut debs: Vec<PathBuf> = std::fs::read_dir(tmp.path())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    if debs.len() != 1 {
        bail!(
            "apt-get download {spec} produced {} .deb files, expected 1",
            debs.len()
        );
    }
    let deb = debs.remove(0);
    let kept = tmp_root.join(format!(".fetched-{}", std::process::id()));
    std::fs::rename(&deb, &kept)?;
    Ok(Ok(kept))
}

/// Unpacks a pinned package once; a marker holding the sha256 says the
/// folder is complete (an interrupted unpack is redone, never trusted).
fn unpacked(l: &Locked) -> Result<PathBuf> {
    let dir = paths::unpack_cache().join(format!("{}_{}", l.package, l.version));
    let marker = dir.join(".slipway-unpacked");
    if std::fs::read_to_string(&marker).is_ok_and(|s| s.trim() == l.sha256) {
        return Ok(dir);
    }
    let deb = deb_path(&l.package, &l.version);
    let tmp = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&tmp);
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("inputs: unpacking {}", deb.display());
    deb::extract(&deb, &tmp).with_context(|| format!("unpacking {}", deb.display()))?;
    std::fs::write(tmp.join(".slipway-unpacked"), &l.sha256)?;
    std::fs::rename(&tmp, &dir)
        .with_context(|| format!("moving {} to {}", tmp.display(), dir.display()))?;
    Ok(dir)
}

fn packaged_kernel(root: &Path, package: &str) -> Result<Kernel> {
    let boot = root.join("boot");
    let vmlinuz = std::fs::read_dir(&boot)
        .with_context(|| format!("kernel package {package}: no boot/ folder"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .with_context(|| format!("kernel package {package}: no boot/vmlinuz-*"))?;
    let release = vmlinuz
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .trim_start_matches("vmlinuz-")
                .to_string()
        })
        .unwrap_or_default();
    let modules_dir = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|d| root.join(d).join(&release))
        .find(|d| d.is_dir())
        .with_context(|| format!("kernel package {package}: no lib/modules/{release}"))?;
    Ok(Kernel {
        vmlinuz,
        modules_dir,
        release,
    })
}

fn user_kernel(vmlinuz: &Path, modules: &Path) -> Result<Kernel> {
    if !vmlinuz.is_file() {
        bail!("--kernel {}: no such file", vmlinuz.display());
    }
    if !modules.join("kernel").is_dir() {
        bail!(
            "--modules {}: expected a lib/modules/<release> folder holding kernel/",
            modules.display()
        );
    }
    let release = modules
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Kernel {
        vmlinuz: vmlinuz.to_path_buf(),
        modules_dir: modules.to_path_buf(),
        release,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_round_trips_and_has_a_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inputs.lock");
        let lock = LockFile {
            packages: vec![Locked {
                role: Role::Kernel,
                requested: "linux-image-cloud-amd64".into(),
                package: "linux-image-6.1.0-56-cloud-amd64".into(),
                version: "6.1.192-2".into(),
                sha256: "ab".repeat(32),
            }],
        };
        write_lock(&path, &lock).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# Inputs of this board"));
        assert!(text.contains("role = \"kernel\""));
        assert_eq!(read_lock(&path).unwrap().packages, lock.packages);
    }

    #[test]
    fn corrupt_cached_package_is_refused_with_what_to_do() {
        let cache = tempfile::tempdir().unwrap();
        let l = Locked {
            role: Role::Busybox,
            requested: "busybox-static".into(),
            package: "busybox-static".into(),
            version: "1.0".into(),
            sha256: crate::util::sha256_bytes(b"the real package"),
        };
        let file = deb_path_in(cache.path(), "busybox-static", "1.0");
        std::fs::write(&file, b"the real package").unwrap();
        ensure_cached(&l, Path::new("board/x/inputs.lock"), cache.path()).unwrap();

        std::fs::write(&file, b"a flipped bit").unwrap();
        let msg = ensure_cached(&l, Path::new("board/x/inputs.lock"), cache.path())
            .unwrap_err()
            .to_string();
        assert!(msg.contains(&file.display().to_string()), "{msg}");
        assert!(msg.contains("board/x/inputs.lock pins"), "{msg}");
        assert!(msg.contains("delete the file"), "{msg}");
    }

    #[test]
    fn relationship_fields_give_first_alternatives_without_versions() {
        assert_eq!(
            first_alternatives(
                "libc6 (>= 2.34), libcrypt1 (>= 1:4.1.0) | libxcrypt, zlib1g:any, \
                 foo [amd64], bar <!nocheck>"
            ),
            ["libc6", "libcrypt1", "zlib1g", "foo", "bar"]
        );
        assert!(first_alternatives("").is_empty());
    }

    #[test]
    fn lock_order_is_role_then_package() {
        let l = |role, package: &str| Locked {
            role,
            requested: package.into(),
            package: package.into(),
            version: "1".into(),
            sha256: String::new(),
        };
        let got = sorted(vec![
            l(Role::Dependency, "zlib1g"),
            l(Role::Extra, "dropbear-bin"),
            l(Role::Dependency, "libc6"),
            l(Role::Kernel, "linux-image"),
        ]);
        let names: Vec<&str> = got.iter().map(|l| l.package.as_str()).collect();
        assert_eq!(names, ["linux-image", "dropbear-bin", "libc6", "zlib1g"]);
    }

    #[test]
    fn what_fresh_package_lists_can_cure() {
        // apt-get 2.6's words for a package or version its lists lack, and
        // for a pool file the archive has replaced.
        for stderr in [
            "E: Unable to locate package linux-image-6.1.0-57-cloud-amd64\n\
             E: Couldn't find any package by glob 'linux-image-6.1.0-57-cloud-amd64'\n\
             E: Couldn't find any package by regex 'linux-image-6.1.0-57-cloud-amd64'\n",
            "E: Version '6.1.192-3' for 'linux-image-6.1.0-57-cloud-amd64' was not found\n",
            "E: Failed to fetch http://mirror/debian/pool/main/b/busybox/busybox-static_1.deb  \
             404  Not Found [IP: 192.0.2.1 80]\n",
        ] {
            assert!(apt_found_nothing(stderr), "{stderr}");
        }
        assert!(!apt_found_nothing(
            "E: Could not open lock file /var/lib/apt/lists/lock - open (13: Permission denied)"
        ));
    }

    #[test]
    fn user_kernel_checks_its_arguments() {
        let dir = tempfile::tempdir().unwrap();
        let err = user_kernel(&dir.path().join("nope"), dir.path()).unwrap_err();
        assert!(err.to_string().contains("--kernel"), "{err}");
        let k = dir.path().join("vmlinuz");
        std::fs::write(&k, b"k").unwrap();
        let err = user_kernel(&k, dir.path()).unwrap_err();
        assert!(err.to_string().contains("--modules"), "{err}");
    }
}

//! The programs of a board's extra packages and the shared-library closure
//! they need, as root-tree entries.
//!
//! The listed packages give their files under `/usr/bin`, `/usr/sbin`,
//! `/bin` and `/sbin` (nothing else: no docs, man pages or init scripts).
//! Every ELF file taken is read with the `object` crate: its `PT_INTERP`
//! (the dynamic loader) is taken at that path, and each `DT_NEEDED` name is
//! looked up the way the loader of a system without `ld.so.cache` does it,
//! in [`LIBRARY_DIRS`], over all the unpacked packages (listed ones and
//! their dependencies) seen as one tree. Symlinks are followed inside that
//! tree and kept, so the image has the names the loader asks for (`libz.so.1
//! -> libz.so.1.2.13`). Libraries are read in turn until nothing new is
//! needed. A name found nowhere is an error naming the file that needs it,
//! the library and the packages searched.
//!
//! Everything is walked in sorted order and only paths relative to the
//! packages' roots, permission bits and contents leave this module, so the
//! result depends on the packages alone.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::os::unix::fs::PermissionsExt;

use anyhow::{bail, Context, Result};
use object::elf;
use object::read::elf::{ElfFile64, ProgramHeader};
use object::{Endianness, FileKind};
use slipway_image::tree::Node;

use crate::inputs::ExtraPackage;

/// Where the programs of a listed package are taken from.
pub const PROGRAM_DIRS: [&str; 4] = ["bin", "sbin", "usr/bin", "usr/sbin"];

/// Where a `DT_NEEDED` library is looked for, in this order: Debian's
/// multiarch folders (the loader's built-in system path) and `/lib64`.
pub const LIBRARY_DIRS: [&str; 3] = ["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib64"];

/// Symlinks followed while resolving one path before giving up (the
/// kernel's limit).
const MAX_LINKS: usize = 40;

/// What an ELF file asks of the loader.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ElfNeeds {
    /// `PT_INTERP`: the dynamic loader's absolute path, if dynamically linked.
    pub interpreter: Option<String>,
    /// `DT_NEEDED` names, in file order.
    pub needed: Vec<String>,
    /// `DT_RUNPATH` (or the older `DT_RPATH`) folders, split at `:`, as
    /// written (`$ORIGIN` not yet replaced): sudo finds its
    /// `libsudo_util.so.0` in `/usr/libexec/sudo` this way.
    pub runpath: Vec<String>,
}

/// Reads `PT_INTERP` and `DT_NEEDED` of a 64-bit ELF file; `None` if `data`
/// is not ELF (a script, a data file). 32-bit ELF is refused: the image is
/// x86_64 only.
pub fn elf_needs(data: &[u8]) -> Result<Option<ElfNeeds>> {
    match FileKind::parse(data) {
        Ok(FileKind::Elf64) => {}
        Ok(FileKind::Elf32) => bail!("32-bit ELF: the image holds only x86_64 programs"),
        _ => return Ok(None),
    }
    let file = ElfFile64::<Endianness>::parse(data).context("parsing ELF")?;
    let endian = file.endian();
    let mut needs = ElfNeeds::default();
    for ph in file.elf_program_headers() {
        if let Some(interp) = ph.interpreter(endian, data).context("reading PT_INTERP")? {
            needs.interpreter = Some(String::from_utf8_lossy(interp).into_owned());
        }
    }
    let dynamic = file
        .elf_section_table()
        .dynamic_table(endian, data)
        .context("reading the dynamic section")?;
    for d in dynamic.iter() {
        if d.tag == elf::DT_NEEDED {
            let name = dynamic.string(d).context("reading a DT_NEEDED name")?;
            needs
                .needed
                .push(String::from_utf8_lossy(name).into_owned());
        } else if d.tag == elf::DT_RUNPATH || d.tag == elf::DT_RPATH {
            let text = dynamic.string(d).context("reading DT_RUNPATH")?;
            needs.runpath.extend(
                String::from_utf8_lossy(text)
                    .split(':')
                    .filter(|p| !p.is_empty())
                    .map(str::to_string),
            );
        }
    }
    Ok(Some(needs))
}

/// What a listed package gives besides its programs, and which of its
/// programs it does not give (from `board/common/packages.toml`).
#[derive(Debug, Clone, Default)]
pub struct Take {
    /// Files or folders (everything under them), relative. ELF files among
    /// them are read for their needs like programs (dlopen'ed plugins).
    /// Paths under `lib/systemd/` go to `usr/lib/systemd/`.
    pub files: Vec<String>,
    /// Program paths left out.
    pub leave_out: Vec<String>,
}

/// The root-tree entries the extra packages contribute: the listed
/// packages' programs, then the loader and libraries they need. Paths are
/// relative (`usr/sbin/dropbear`), sorted.
pub fn closure(packages: &[ExtraPackage]) -> Result<BTreeMap<String, Node>> {
    closure_with(packages, &BTreeMap::new())
}

/// [`closure`], with more files from (and programs left out of) the listed
/// packages named in `takes`.
pub fn closure_with(
    packages: &[ExtraPackage],
    takes: &BTreeMap<String, Take>,
) -> Result<BTreeMap<String, Node>> {
    let view = Union::new(packages);
    let mut out = BTreeMap::new();
    // ELF files still to read, by path in the tree.
    let mut queue = VecDeque::new();

    for pkg in view.packages.iter().filter(|p| p.listed) {
        let take = takes.get(&pkg.package).cloned().unwrap_or_default();
        for left in &take.leave_out {
            if std::fs::symlink_metadata(pkg.root.join(left)).is_err() {
                bail!(
                    "{}: leave_out names /{left}, which the package does not have",
                    pkg.package
                );
            }
        }
        let mut paths = Vec::new();
        for dir in PROGRAM_DIRS {
            let Ok(entries) = std::fs::read_dir(pkg.root.join(dir)) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            for name in names {
                let path = format!("{dir}/{name}");
                if !take.leave_out.contains(&path) {
                    paths.push(path);
                }
            }
        }
        for file in &take.files {
            let full = pkg.root.join(file);
            let md = std::fs::symlink_metadata(&full).with_context(|| {
                format!(
                    "{}: files names /{file}, which the package does not have",
                    pkg.package
                )
            })?;
            if let Some(unit) = file.strip_prefix("lib/systemd/") {
                if !md.is_file() {
                    bail!("{}: /{file} is not a file", pkg.package);
                }
                let data = std::fs::read(&full)?;
                out.insert(
                    format!("usr/lib/systemd/{unit}"),
                    Node::File { mode: 0o644, data },
                );
            } else if md.is_dir() {
                walk_files(&pkg.root, file, &mut paths)?;
            } else {
                paths.push(file.clone());
            }
        }
        for path in paths {
            let md = std::fs::symlink_metadata(pkg.root.join(&path))?;
            if md.is_dir() {
                continue;
            }
            // A program link (`bin/foo -> ../lib/foo/foo`) brings its
            // target; a link to what only maintainer scripts create
            // (`/etc/alternatives/…`) resolves nowhere and is left out.
            match view.resolve(&path)? {
                Some(resolved) => {
                    view.add(&resolved, &mut out, &mut queue)?;
                }
                None => eprintln!(
                    "inputs: {}: leaving out /{path}, a link to nothing in the packages",
                    pkg.package
                ),
            }
        }
    }

    let mut read = BTreeSet::new();
    while let Some(path) = queue.pop_front() {
        if !read.insert(path.clone()) {
            continue;
        }
        let Some(Node::File { data, .. }) = out.get(&path) else {
            continue;
        };
        let Some(needs) = elf_needs(data).with_context(|| format!("/{path}"))? else {
            continue;
        };
        if let Some(interp) = &needs.interpreter {
            let rel = interp.trim_start_matches('/');
            match view.resolve(rel)? {
                Some(r) => view.add(&r, &mut out, &mut queue)?,
                None => bail!(
                    "/{path} needs the dynamic loader {interp}, which none of the packages \
                     searched has ({})",
                    view.names()
                ),
            }
        }
        for lib in &needs.needed {
            let found = if lib.contains('/') {
                view.resolve(lib.trim_start_matches('/'))?
            } else {
                let mut hit = None;
                // The loader's order: the file's own run path first, then
                // the system folders.
                let origin = path.rsplit_once('/').map_or("", |(dir, _)| dir);
                let runpath = needs.runpath.iter().map(|d| {
                    d.replace("${ORIGIN}", &format!("/{origin}"))
                        .replace("$ORIGIN", &format!("/{origin}"))
                        .trim_start_matches('/')
                        .to_string()
                });
                let dirs: Vec<String> = runpath
                    .chain(LIBRARY_DIRS.iter().map(|d| d.to_string()))
                    .collect();
                for dir in &dirs {
                    if let Some(r) = view.resolve(&format!("{dir}/{lib}"))? {
                        hit = Some(r);
                        break;
                    }
                }
                hit
            };
            match found {
                Some(r) => view.add(&r, &mut out, &mut queue)?,
                None => bail!(
                    "/{path} needs the library {lib}, which none of the packages searched has \
                     in /{} ({})",
                    LIBRARY_DIRS.join(", /"),
                    view.names()
                ),
            }
        }
    }
    Ok(out)
}

/// A path followed to a regular file through the union of the packages.
#[derive(Debug)]
struct Resolved {
    /// Symlinks crossed: their path and target as written.
    links: Vec<(String, String)>,
    /// The file's path.
    file: String,
    /// Index of the package it is in.
    package: usize,
}

/// The unpacked packages seen as one tree: a path is taken from the first
/// package (by name) that has it.
struct Union<'a> {
    packages: Vec<&'a ExtraPackage>,
}

impl<'a> Union<'a> {
    fn new(packages: &'a [ExtraPackage]) -> Self {
        let mut packages: Vec<&ExtraPackage> = packages.iter().collect();
        packages.sort_by(|a, b| a.package.cmp(&b.package));
        Self { packages }
    }

    fn names(&self) -> String {
        let names: Vec<&str> = self.packages.iter().map(|p| p.package.as_str()).collect();
        names.join(", ")
    }

    fn lookup(&self, path: &str) -> Option<(usize, std::fs::Metadata)> {
        self.packages.iter().enumerate().find_map(|(i, p)| {
            std::fs::symlink_metadata(p.root.join(path))
                .ok()
                .map(|md| (i, md))
        })
    }

    /// Follows `path` (relative to the root) to a regular file, through
    /// symlinks at any component, absolute targets meaning the union's
    /// root. `None` if some component is missing or it ends in a folder.
    fn resolve(&self, path: &str) -> Result<Option<Resolved>> {
        let mut pending: VecDeque<String> = components(path).collect();
        let mut done: Vec<String> = Vec::new();
        let mut links = Vec::new();
        while let Some(c) = pending.pop_front() {
            if c == ".." {
                done.pop();
                continue;
            }
            done.push(c);
            let cur = done.join("/");
            let Some((i, md)) = self.lookup(&cur) else {
                return Ok(None);
            };
            if md.file_type().is_symlink() {
                if links.len() >= MAX_LINKS {
                    bail!("/{path}: more than {MAX_LINKS} symlinks (a loop?)");
                }
                let target = std::fs::read_link(self.packages[i].root.join(&cur))?
                    .to_string_lossy()
                    .into_owned();
                done.pop();
                if target.starts_with('/') {
                    done.clear();
                }
                for t in components(&target).rev() {
                    pending.push_front(t);
                }
                links.push((cur, target));
            }
        }
        let file = done.join("/");
        match self.lookup(&file) {
            Some((package, md)) if md.is_file() => Ok(Some(Resolved {
                links,
                file,
                package,
            })),
            _ => Ok(None),
        }
    }

    /// Puts a resolved path (its links and its file) into `out` and queues
    /// the file to be read for what it needs.
    fn add(
        &self,
        r: &Resolved,
        out: &mut BTreeMap<String, Node>,
        queue: &mut VecDeque<String>,
    ) -> Result<()> {
        for (link, target) in &r.links {
            out.entry(link.clone()).or_insert_with(|| Node::Symlink {
                target: target.clone(),
            });
        }
        if !out.contains_key(&r.file) {
            let src = self.packages[r.package].root.join(&r.file);
            let data = std::fs::read(&src).with_context(|| format!("reading {}", src.display()))?;
            let mode = std::fs::metadata(&src)?.permissions().mode() & 0o7777;
            out.insert(r.file.clone(), Node::File { mode, data });
            queue.push_back(r.file.clone());
        }
        Ok(())
    }
}

/// Every non-folder path under `root/dir`, sorted, appended to `out`.
fn walk_files(root: &std::path::Path, dir: &str, out: &mut Vec<String>) -> Result<()> {
    let full = root.join(dir);
    let mut names: Vec<String> = std::fs::read_dir(&full)
        .with_context(|| format!("listing {}", full.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let path = format!("{dir}/{name}");
        if std::fs::symlink_metadata(root.join(&path))?.is_dir() {
            walk_files(root, &path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

fn components(path: &str) -> impl DoubleEndedIterator<Item = String> + '_ {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;
    use std::path::{Path, PathBuf};

    use super::*;

    /// This test program: a dynamically linked glibc ELF on every host the
    /// builder runs on.
    fn this_exe() -> Vec<u8> {
        std::fs::read(std::env::current_exe().unwrap()).unwrap()
    }

    fn pkg(base: &Path, name: &str, listed: bool) -> ExtraPackage {
        let root = base.join(name);
        std::fs::create_dir_all(&root).unwrap();
        ExtraPackage {
            package: name.to_string(),
            listed,
            root,
        }
    }

    fn write(root: &Path, path: &str, data: &[u8], mode: u32) -> PathBuf {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    fn link(root: &Path, path: &str, target: &str) {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        symlink(target, p).unwrap();
    }

    #[test]
    fn reads_interp_and_needed_of_a_real_program_and_ignores_scripts() {
        let needs = elf_needs(&this_exe()).unwrap().unwrap();
        assert_eq!(
            needs.interpreter.as_deref(),
            Some("/lib64/ld-linux-x86-64.so.2")
        );
        assert!(needs.needed.iter().any(|n| n == "libc.so.6"), "{needs:?}");
        assert_eq!(elf_needs(b"#!/bin/sh\necho hi\n").unwrap(), None);
        assert_eq!(elf_needs(b"").unwrap(), None);
        let mut elf32 = this_exe();
        elf32[4] = 1; // EI_CLASS = ELFCLASS32
        assert!(elf_needs(&elf32).is_err());
    }

    /// A listed package with a program (the test binary itself), a doc and
    /// an init script; a "libc" package with the loader behind an absolute
    /// link and every library behind a relative one; a package nobody
    /// lists.
    fn fixture(base: &Path) -> Vec<ExtraPackage> {
        let needs = elf_needs(&this_exe()).unwrap().unwrap();
        let prog = pkg(base, "prog", true);
        write(&prog.root, "usr/sbin/progd", &this_exe(), 0o755);
        link(&prog.root, "usr/bin/prog", "../sbin/progd");
        link(&prog.root, "usr/bin/alt", "/etc/alternatives/alt");
        write(&prog.root, "usr/share/doc/prog/README", b"docs", 0o644);
        write(&prog.root, "etc/init.d/prog", b"#!/bin/sh\n", 0o755);
        let libc = pkg(base, "libc", false);
        write(
            &libc.root,
            "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            b"loader",
            0o755,
        );
        link(
            &libc.root,
            "lib64/ld-linux-x86-64.so.2",
            "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        );
        // glibc programs also name the loader in DT_NEEDED; it is there.
        for lib in needs.needed.iter().filter(|l| !l.starts_with("ld-linux")) {
            write(
                &libc.root,
                &format!("usr/lib/x86_64-linux-gnu/{lib}.real"),
                lib.as_bytes(),
                0o644,
            );
            link(
                &libc.root,
                &format!("lib/x86_64-linux-gnu/{lib}"),
                &format!("../../usr/lib/x86_64-linux-gnu/{lib}.real"),
            );
        }
        let other = pkg(base, "other", false);
        write(&other.root, "usr/bin/other", b"#!/bin/sh\n", 0o755);
        vec![prog, libc, other]
    }

    #[test]
    fn programs_links_loader_and_libraries_are_taken_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let packages = fixture(dir.path());
        let out = closure(&packages).unwrap();
        let needs = elf_needs(&this_exe()).unwrap().unwrap();

        let mut want = vec![
            "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2".to_string(),
            "lib64/ld-linux-x86-64.so.2".to_string(),
            "usr/bin/prog".to_string(),
            "usr/sbin/progd".to_string(),
        ];
        for lib in needs.needed.iter().filter(|l| !l.starts_with("ld-linux")) {
            want.push(format!("lib/x86_64-linux-gnu/{lib}"));
            want.push(format!("usr/lib/x86_64-linux-gnu/{lib}.real"));
        }
        want.sort();
        let got: Vec<&String> = out.keys().collect();
        assert_eq!(got, want.iter().collect::<Vec<_>>());

        assert_eq!(
            out["lib64/ld-linux-x86-64.so.2"],
            Node::Symlink {
                target: "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2".into()
            }
        );
        assert_eq!(
            out["usr/bin/prog"],
            Node::Symlink {
                target: "../sbin/progd".into()
            }
        );
        assert!(matches!(
            out["usr/sbin/progd"],
            Node::File { mode: 0o755, .. }
        ));
        let lib = "libc.so.6";
        assert_eq!(
            out[&format!("usr/lib/x86_64-linux-gnu/{lib}.real")],
            Node::File {
                mode: 0o644,
                data: lib.as_bytes().to_vec()
            }
        );
        // Same packages, same result.
        assert_eq!(closure(&packages).unwrap(), out);
    }

    #[test]
    fn a_missing_library_names_the_file_the_library_and_the_packages() {
        let dir = tempfile::tempdir().unwrap();
        let packages = fixture(dir.path());
        let lib = "libc.so.6";
        std::fs::remove_file(packages[1].root.join(format!("lib/x86_64-linux-gnu/{lib}"))).unwrap();
        let msg = format!("{:#}", closure(&packages).unwrap_err());
        assert!(msg.contains("/usr/sbin/progd needs the library"), "{msg}");
        assert!(msg.contains(lib), "{msg}");
        assert!(msg.contains("(libc, other, prog)"), "{msg}");

        std::fs::remove_file(packages[1].root.join("lib64/ld-linux-x86-64.so.2")).unwrap();
        let msg = format!("{:#}", closure(&packages).unwrap_err());
        assert!(
            msg.contains("needs the dynamic loader /lib64/ld-linux-x86-64.so.2"),
            "{msg}"
        );
    }

    #[test]
    fn symlink_loops_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = pkg(dir.path(), "loop", true);
        link(&p.root, "usr/bin/a", "b");
        link(&p.root, "usr/bin/b", "a");
        let msg = format!("{:#}", closure(&[p]).unwrap_err());
        assert!(msg.contains("symlinks (a loop?)"), "{msg}");
    }

    /// The qemu-x86_64 board's extra packages as the lock pins them, if a
    /// build has unpacked them all.
    fn unpacked_board_packages() -> Option<Vec<ExtraPackage>> {
        let lock = crate::board::lock_path(&crate::paths::boards_dir(), "qemu-x86_64");
        let text = std::fs::read_to_string(&lock).unwrap();
        let lock: toml::Value = toml::from_str(&text).unwrap();
        let mut packages = Vec::new();
        for p in lock["package"].as_array().unwrap() {
            let role = p["role"].as_str().unwrap();
            if role != "extra" && role != "dependency" {
                continue;
            }
            let name = p["package"].as_str().unwrap();
            let root = crate::paths::unpack_cache()
                .join(format!("{name}_{}", p["version"].as_str().unwrap()));
            if !root.join(".slipway-unpacked").is_file() {
                eprintln!(
                    "SKIPPED: {} not unpacked (build the image first)",
                    root.display()
                );
                return None;
            }
            packages.push(ExtraPackage {
                package: name.to_string(),
                listed: role == "extra",
                root,
            });
        }
        Some(packages)
    }

    /// The container engine with packages.toml's files and leave_out: the
    /// programs, the dlopen'ed iptables extensions with their libraries,
    /// the units moved to /usr/lib/systemd, docker-init through tini.
    #[test]
    fn engine_closure_from_the_unpacked_packages() {
        let Some(packages) = unpacked_board_packages() else {
            return;
        };
        let setup = crate::package_setup::Setup::load(&crate::paths::boards_dir()).unwrap();
        let takes: BTreeMap<String, Take> = setup
            .packages
            .iter()
            .map(|(n, p)| {
                (
                    n.clone(),
                    Take {
                        files: p.files.clone(),
                        leave_out: p.leave_out.clone(),
                    },
                )
            })
            .collect();
        let out = closure_with(&packages, &takes).unwrap();
        for path in [
            "usr/sbin/dockerd",
            "usr/bin/docker",
            "usr/sbin/docker-proxy",
            "usr/bin/containerd",
            "usr/bin/containerd-shim-runc-v2",
            "usr/bin/ctr",
            "usr/sbin/runc",
            "usr/bin/tini-static",
            "usr/sbin/xtables-nft-multi",
            "usr/lib/x86_64-linux-gnu/xtables/libxt_conntrack.so",
            "usr/lib/x86_64-linux-gnu/xtables/libxt_NAT.so",
            "usr/lib/systemd/system/docker.service",
            "usr/lib/systemd/system/docker.socket",
            "usr/lib/systemd/system/containerd.service",
            "etc/default/docker",
            "etc/containerd/config.toml",
            "etc/protocols",
        ] {
            assert!(
                matches!(out.get(path), Some(Node::File { .. })),
                "{path} missing"
            );
        }
        assert_eq!(
            out.get("usr/bin/docker-init"),
            Some(&Node::Symlink {
                target: "tini-static".into()
            })
        );
        assert_eq!(
            out.get("usr/lib/x86_64-linux-gnu/xtables/libxt_MASQUERADE.so"),
            Some(&Node::Symlink {
                target: "libxt_NAT.so".into()
            })
        );
        // dockerd's, runc's and the extensions' own libraries.
        let has_lib = |name: &str| {
            LIBRARY_DIRS
                .iter()
                .any(|d| out.contains_key(&format!("{d}/{name}")))
        };
        for lib in [
            "libsystemd.so.0",
            "libdevmapper.so.1.02.1",
            "libseccomp.so.2",
            "libxtables.so.12",
            "libnftnl.so.11",
            "libnetfilter_conntrack.so.3",
        ] {
            assert!(has_lib(lib), "{lib} missing");
        }
        for gone in [
            "usr/bin/dnet",
            "usr/sbin/ovrouter",
            "usr/bin/containerd-shim",
            "usr/bin/containerd-shim-runc-v1",
            "lib/systemd/system/docker.service",
            "etc/init.d/docker",
        ] {
            assert!(!out.contains_key(gone), "{gone} should not be taken");
        }

        let mut bad = takes.clone();
        bad.get_mut("docker.io")
            .unwrap()
            .leave_out
            .push("usr/bin/nope".into());
        let msg = format!("{:#}", closure_with(&packages, &bad).unwrap_err());
        assert!(
            msg.contains("docker.io: leave_out names /usr/bin/nope"),
            "{msg}"
        );
    }

    /// The real thing, when the qemu-x86_64 board's packages are unpacked
    /// (any build has done it): dropbear's programs, libtomcrypt's own
    /// needs (libtommath, libgmp) and the loader are all found.
    #[test]
    fn dropbear_closure_from_the_unpacked_packages() {
        let Some(packages) = unpacked_board_packages() else {
            return;
        };
        if !packages.iter().any(|p| p.package == "dropbear-bin") {
            eprintln!("SKIPPED: the qemu-x86_64 lock pins no dropbear-bin");
            return;
        }
        let out = closure(&packages).unwrap();
        for path in [
            "usr/sbin/dropbear",
            "usr/bin/dropbearkey",
            "usr/bin/dbclient",
            "lib64/ld-linux-x86-64.so.2",
            "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            "lib/x86_64-linux-gnu/libc.so.6",
            "lib/x86_64-linux-gnu/libcrypt.so.1",
            "lib/x86_64-linux-gnu/libz.so.1",
            "usr/lib/x86_64-linux-gnu/libtomcrypt.so.1",
            "usr/lib/x86_64-linux-gnu/libtommath.so.1",
            "usr/lib/x86_64-linux-gnu/libgmp.so.10",
        ] {
            assert!(out.contains_key(path), "{path} missing: {:?}", out.keys());
        }
        assert!(out
            .keys()
            .all(|p| !p.starts_with("usr/share") && !p.starts_with("etc")));
        // Every link in the result points at something in the result.
        for (path, node) in &out {
            if let Node::Symlink { target } = node {
                let parent = path.rsplit_once('/').map_or("", |(d, _)| d);
                let full = if target.starts_with('/') {
                    target.trim_start_matches('/').to_string()
                } else {
                    format!("{parent}/{target}")
                };
                let norm = components(&full).fold(Vec::new(), |mut v: Vec<String>, c| {
                    if c == ".." {
                        v.pop();
                    } else {
                        v.push(c);
                    }
                    v
                });
                assert!(
                    out.contains_key(&norm.join("/")),
                    "{path} -> {target} dangles"
                );
            }
        }
    }
}

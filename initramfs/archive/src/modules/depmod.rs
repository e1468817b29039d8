//! Modules for the root filesystem, loadable on demand with `modprobe`
//! once the machine runs (dockerd runs `modprobe bridge br_netfilter …`,
//! the kernel runs `/sbin/modprobe -q -- nft-chain-2-nat` through
//! `request_module`).
//!
//! What `depmod` would write, computed here from each module's `.modinfo`
//! (`depends=`, `alias=`), in the text formats busybox's `modprobe` reads
//! from `/lib/modules/$(uname -r)/` (it reads no `.bin` index):
//!
//! - `modules.dep`: one line per module, `kernel/a/b.ko: dep1.ko dep2.ko`,
//!   the *whole* dependency closure (busybox expects it, like kmod's
//!   depmod writes it) with the deepest dependency last: modprobe loads the
//!   list from the end, the module itself last.
//! - `modules.alias`: `alias <pattern> <module>` lines, what the kernel's
//!   requests (`nft-chain-2-nat`, `nfnetlink-subsys-10`, `ipt_MASQUERADE`)
//!   are matched against (shell wildcards).
//! - `modules.builtin`: the kernel's own list, so `modprobe overlay` on a
//!   kernel with overlay built in succeeds without a file.
//!
//! Written by hand: the formats are three line-oriented text files, and the
//! only tool that writes them (kmod's `depmod`) needs a populated
//! `/lib/modules` tree on the build host and writes binary indexes we do
//! not need. Everything is sorted, so the same kernel and selection always
//! give the same bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::{KernelModules, Module, ModulesError};

/// A module file and the index files of [`KernelModules::root_modules`],
/// with paths relative to `lib/modules/<release>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootModules {
    /// `(kernel/net/bridge/bridge.ko, uncompressed bytes)`, sorted by path.
    pub files: Vec<(String, Vec<u8>)>,
    pub modules_dep: String,
    pub modules_alias: String,
    pub modules_builtin: String,
}

impl RootModules {
    /// Every file to put under `lib/modules/<release>/`, sorted by path.
    pub fn all_files(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = self.files.clone();
        out.push(("modules.alias".into(), self.modules_alias.clone().into()));
        out.push((
            "modules.builtin".into(),
            self.modules_builtin.clone().into(),
        ));
        out.push(("modules.dep".into(), self.modules_dep.clone().into()));
        out.sort();
        out
    }
}

impl KernelModules {
    /// The module names `wanted` stands for: a name is itself; a folder of
    /// the module tree (`kernel/net/netfilter`) is every module file under
    /// it. A folder holding no module is an error (a typo, or a kernel
    /// that lays modules out differently).
    pub fn expand<S: AsRef<str>>(&self, wanted: &[S]) -> Result<Vec<String>, ModulesError> {
        let mut out = Vec::new();
        for w in wanted {
            let w = w.as_ref();
            if w.contains('/') {
                let prefix = self.dir.join(w.trim_end_matches('/'));
                let before = out.len();
                for (name, path) in &self.files {
                    if path.starts_with(&prefix) {
                        out.push(name.clone());
                    }
                }
                if out.len() == before {
                    return Err(ModulesError::NotInKernel {
                        module: format!("{w}/ (a folder of modules)"),
                        kernel_dir: self.dir.clone(),
                        needed_by: None,
                    });
                }
            } else {
                out.push(super::normalize(w));
            }
        }
        Ok(out)
    }

    /// The modules `wanted` names (see [`Self::expand`]) with their
    /// `depends=` closure, as files and `modules.dep`/`modules.alias`/
    /// `modules.builtin` for the root.
    pub fn root_modules<S: AsRef<str>>(&self, wanted: &[S]) -> Result<RootModules, ModulesError> {
        let names = self.expand(wanted)?;
        let ordered = self.closure(&names)?;
        let position: BTreeMap<&str, usize> = ordered
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name.as_str(), i))
            .collect();
        let by_name: BTreeMap<&str, &Module> =
            ordered.iter().map(|m| (m.name.as_str(), m)).collect();
        let rel = |m: &Module| -> Result<String, ModulesError> { self.relative_ko(&m.name) };

        let mut dep_lines = Vec::new();
        let mut alias_lines = BTreeSet::new();
        let mut files = Vec::new();
        for m in &ordered {
            // The closure of this module, without built-ins (not in the map).
            let mut seen = BTreeSet::new();
            let mut stack: Vec<&str> = m.depends.iter().map(String::as_str).collect();
            while let Some(d) = stack.pop() {
                if let Some(dm) = by_name.get(d) {
                    if seen.insert(d) {
                        stack.extend(dm.depends.iter().map(String::as_str));
                    }
                }
            }
            // Deepest (earliest loaded) last.
            let mut deps: Vec<&str> = seen.into_iter().collect();
            deps.sort_by_key(|d| std::cmp::Reverse(position.get(d).copied().unwrap_or(0)));
            let mut line = format!("{}:", rel(m)?);
            for d in deps {
                if let Some(dm) = by_name.get(d) {
                    line.push(' ');
                    line.push_str(&rel(dm)?);
                }
            }
            dep_lines.push(line);
            for alias in modinfo_values(&m.data, "alias") {
                // One alias per line, no blanks inside: what modprobe splits on.
                if !alias.is_empty() && !alias.contains(char::is_whitespace) {
                    alias_lines.insert(format!("alias {alias} {}", m.name));
                }
            }
            files.push((rel(m)?, m.data.clone()));
        }
        dep_lines.sort();
        files.sort();
        let builtin_path = self.dir.join("modules.builtin");
        let modules_builtin =
            std::fs::read_to_string(&builtin_path).map_err(|source| ModulesError::Io {
                action: "reading",
                path: builtin_path.clone(),
                source,
            })?;
        Ok(RootModules {
            files,
            modules_dep: join_lines(dep_lines),
            modules_alias: join_lines(alias_lines),
            modules_builtin,
        })
    }

    /// `kernel/net/bridge/bridge.ko` for `bridge`: the path under the
    /// modules folder, with a compression suffix dropped (the root gets the
    /// module uncompressed; squashfs compresses it).
    fn relative_ko(&self, name: &str) -> Result<String, ModulesError> {
        let path = self
            .files
            .get(name)
            .ok_or_else(|| ModulesError::NotInKernel {
                module: name.to_string(),
                kernel_dir: self.dir.clone(),
                needed_by: None,
            })?;
        let rel = path.strip_prefix(&self.dir).unwrap_or(Path::new(name));
        let rel = rel.to_string_lossy();
        let rel = rel
            .strip_suffix(".xz")
            .or_else(|| rel.strip_suffix(".zst"))
            .unwrap_or(&rel);
        Ok(rel.to_string())
    }
}

fn join_lines<I: IntoIterator<Item = String>>(lines: I) -> String {
    lines.into_iter().map(|l| l + "\n").collect()
}

/// Every value of `key=` in a module's `.modinfo` section, in file order.
pub fn modinfo_values(elf: &[u8], key: &str) -> Vec<String> {
    use object::{Object, ObjectSection};
    let Ok(file) = object::File::parse(elf) else {
        return Vec::new();
    };
    let Some(data) = file.section_by_name(".modinfo").and_then(|s| s.data().ok()) else {
        return Vec::new();
    };
    let prefix = format!("{key}=");
    data.split(|b| *b == 0)
        .filter_map(|field| field.strip_prefix(prefix.as_bytes()))
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

//! The kernel modules stage 1 must load, with their dependency closure,
//! resolved at build time so the initramfs needs no `modprobe` and no
//! `modules.dep`.
//!
//! Dependencies are read from each module's own `.modinfo` section
//! (`depends=a,b`), the same source `depmod` uses; `softdep=` hints are not
//! followed. Only the modules in the closure are decompressed and parsed.

mod depmod;
mod order;

pub use depmod::{modinfo_values, RootModules};

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use object::{Object, ObjectSection};

/// A module to load, in the order [`KernelModules::closure`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// Normalised name (`-` written as `_`), e.g. `dm_verity`.
    pub name: String,
    /// The uncompressed `.ko` file.
    pub data: Vec<u8>,
    /// Normalised names from `depends=`, as the module declares them.
    pub depends: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ModulesError {
    #[error(
        "module `{module}` is not in the kernel at {} (neither a .ko file nor built in){}",
        .kernel_dir.display(),
        needed_by_suffix(.needed_by)
    )]
    NotInKernel {
        module: String,
        kernel_dir: PathBuf,
        /// The module whose `depends=` named it; `None` when it was asked for.
        needed_by: Option<String>,
    },
    #[error("kernel modules depend on each other in a cycle: {}", .cycle.join(" -> "))]
    Cycle {
        /// The modules on the cycle, the first repeated at the end.
        cycle: Vec<String>,
    },
    #[error("{} is not a kernel module: {reason}", .path.display())]
    NotAModule { path: PathBuf, reason: String },
    #[error("{action} {}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

fn needed_by_suffix(needed_by: &Option<String>) -> String {
    needed_by
        .as_ref()
        .map(|m| format!(", needed by `{m}`"))
        .unwrap_or_default()
}

/// The module name the kernel uses: `dm-verity` and `dm_verity` are one
/// module, known as `dm_verity`.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// An index of one kernel's modules directory, e.g.
/// `<root>/lib/modules/6.1.0-56-cloud-amd64`: which modules are files under
/// `kernel/` (`.ko`, `.ko.xz`, `.ko.zst`) and which are built in
/// (`modules.builtin`).
#[derive(Debug, Clone)]
pub struct KernelModules {
    dir: PathBuf,
    files: BTreeMap<String, PathBuf>,
    builtin: BTreeSet<String>,
}

impl KernelModules {
    /// Indexes `dir`. Reads directory entries and `modules.builtin` only.
    pub fn open(dir: &Path) -> Result<Self, ModulesError> {
        let mut files = BTreeMap::new();
        index_dir(&dir.join("kernel"), &mut files)?;
        let builtin_path = dir.join("modules.builtin");
        let builtin = fs::read_to_string(&builtin_path)
            .map_err(io_error("reading", &builtin_path))?
            .lines()
            .filter_map(|line| module_name(line.trim()))
            .collect();
        Ok(Self {
            dir: dir.to_path_buf(),
            files,
            builtin,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether `name` is compiled into the kernel (nothing to load).
    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains(&normalize(name))
    }

    /// The module file for `name`, if it is one.
    pub fn path(&self, name: &str) -> Option<&Path> {
        self.files.get(&normalize(name)).map(PathBuf::as_path)
    }

    /// The `wanted` modules and everything they depend on, each after all
    /// of its dependencies, ties broken by name.
    ///
    /// Built-in modules are left out, whether wanted or depended on: the
    /// kernel already has them (ask [`Self::is_builtin`] to report them).
    pub fn closure<S: AsRef<str>>(&self, wanted: &[S]) -> Result<Vec<Module>, ModulesError> {
        let mut loaded: BTreeMap<String, Module> = BTreeMap::new();
        // (module, the module that needs it); a stack, so depth first.
        let mut pending: Vec<(String, Option<String>)> = wanted
            .iter()
            .rev()
            .map(|name| (normalize(name.as_ref()), None))
            .collect();
        while let Some((name, needed_by)) = pending.pop() {
            if loaded.contains_key(&name) || self.builtin.contains(&name) {
                continue;
            }
            let Some(path) = self.files.get(&name) else {
                return Err(ModulesError::NotInKernel {
                    module: name,
                    kernel_dir: self.dir.clone(),
                    needed_by,
                });
            };
            let module = load(&name, path)?;
            pending.extend(
                module
                    .depends
                    .iter()
                    .rev()
                    .map(|dep| (dep.clone(), Some(name.clone()))),
            );
            loaded.insert(name, module);
        }
        order::load_order(loaded)
    }
}

/// Adds every module file under `dir` to `files`. Directories are read in
/// name order, so if two files give the same module name the first in path
/// order wins, whatever the file system's order (depmod also keeps one).
fn index_dir(dir: &Path, files: &mut BTreeMap<String, PathBuf>) -> Result<(), ModulesError> {
    let mut entries = fs::read_dir(dir)
        .map_err(io_error("reading directory", dir))?
        .map(|e| e.map_err(io_error("reading directory", dir)))
        .collect::<Result<Vec<_>, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let kind = entry.file_type().map_err(io_error("inspecting", &path))?;
        if kind.is_dir() {
            index_dir(&path, files)?;
        } else if let Some(name) = entry.file_name().to_str().and_then(module_name) {
            files.entry(name).or_insert(path);
        }
    }
    Ok(())
}

/// `kernel/drivers/md/dm-verity.ko.xz` → `dm_verity`; `None` for files that
/// are not modules.
fn module_name(path: &str) -> Option<String> {
    let file = path.rsplit('/').next()?;
    let stem = [".ko", ".ko.xz", ".ko.zst"]
        .iter()
        .find_map(|suffix| file.strip_suffix(suffix))?;
    (!stem.is_empty()).then(|| normalize(stem))
}

fn load(name: &str, path: &Path) -> Result<Module, ModulesError> {
    let data = read_module(path)?;
    let depends = depends(&data).map_err(|reason| ModulesError::NotAModule {
        path: path.to_path_buf(),
        reason,
    })?;
    Ok(Module {
        name: name.to_string(),
        data,
        depends,
    })
}

/// The module file's bytes, decompressed as its suffix says.
fn read_module(path: &Path) -> Result<Vec<u8>, ModulesError> {
    let file = fs::read(path).map_err(io_error("reading", path))?;
    let name = path.to_string_lossy();
    let mut data = Vec::new();
    let decoded = if name.ends_with(".ko.xz") {
        liblzma::read::XzDecoder::new(file.as_slice()).read_to_end(&mut data)
    } else if name.ends_with(".ko.zst") {
        zstd::stream::read::Decoder::new(file.as_slice()).and_then(|mut d| d.read_to_end(&mut data))
    } else {
        return Ok(file);
    };
    decoded.map_err(io_error("decompressing", path))?;
    Ok(data)
}

/// The `depends=` list of a module's `.modinfo` section: NUL-separated
/// `key=value` strings.
fn depends(elf: &[u8]) -> Result<Vec<String>, String> {
    let file = object::File::parse(elf).map_err(|e| format!("not an ELF file ({e})"))?;
    let section = file
        .section_by_name(".modinfo")
        .ok_or("no .modinfo section")?;
    let modinfo = section
        .data()
        .map_err(|e| format!("unreadable .modinfo section ({e})"))?;
    let list = modinfo
        .split(|b| *b == 0)
        .find_map(|field| field.strip_prefix(b"depends="))
        .unwrap_or_default();
    Ok(String::from_utf8_lossy(list)
        .split(',')
        .filter(|dep| !dep.is_empty())
        .map(normalize)
        .collect())
}

fn io_error<'p>(action: &'static str, path: &'p Path) -> impl Fn(io::Error) -> ModulesError + 'p {
    move |source| ModulesError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests;

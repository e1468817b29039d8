//! Finding unit files, drop-ins and `.wants/` links under a root
//! directory. Symbolic links are followed by hand so that absolute link
//! targets stay under the root (`/etc/…/foo.service → /usr/lib/…` in an
//! image tree, or `→ /dev/null` for a mask).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// Where unit files are looked for, first match wins.
pub const UNIT_SEARCH_PATH: &[&str] = &[
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

/// What a path on the target system is, seen from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resolved {
    /// Nothing there (or a dangling link, or a link loop).
    Missing,
    /// A (chain of) link(s) to `/dev/null`, or `/dev/null` itself.
    DevNull,
    /// The host path after following every link.
    Found(PathBuf),
}

const MAX_LINKS: usize = 40;

/// Follows `path` (absolute, on the target system) under `root`.
pub(crate) fn resolve(root: &Path, path: &Path) -> Resolved {
    // Components still to walk, in reverse so `pop` takes the next one.
    let mut pending: Vec<OsString> = Vec::new();
    push_components(&mut pending, path);
    let mut done: Vec<OsString> = Vec::new();
    let mut links = 0;
    if is_dev_null(&done, &pending) {
        return Resolved::DevNull;
    }
    while let Some(c) = pending.pop() {
        if c == ".." {
            done.pop();
            continue;
        }
        done.push(c);
        let host = host_path(root, &done);
        let Ok(meta) = std::fs::symlink_metadata(&host) else {
            return Resolved::Missing;
        };
        if meta.file_type().is_symlink() {
            links += 1;
            let Ok(target) = std::fs::read_link(&host) else {
                return Resolved::Missing;
            };
            if links > MAX_LINKS {
                return Resolved::Missing;
            }
            done.pop();
            if target.is_absolute() {
                done.clear();
            }
            push_components(&mut pending, &target);
            if is_dev_null(&done, &pending) {
                return Resolved::DevNull;
            }
        }
    }
    Resolved::Found(host_path(root, &done))
}

/// Whether the walk so far plus what is left names `/dev/null`
/// (lexically; the target's `/dev` is not looked at, it is not populated
/// in an image tree).
fn is_dev_null(done: &[OsString], pending: &[OsString]) -> bool {
    let mut path: Vec<&OsString> = done.iter().collect();
    for c in pending.iter().rev() {
        if c == ".." {
            path.pop();
        } else {
            path.push(c);
        }
    }
    matches!(path.as_slice(), [d, n] if *d == "dev" && *n == "null")
}

/// Pushes the normal and `..` components of `p` onto `stack`, reversed.
fn push_components(stack: &mut Vec<OsString>, p: &Path) {
    let comps: Vec<OsString> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect();
    stack.extend(comps.into_iter().rev());
}

fn host_path(root: &Path, comps: &[OsString]) -> PathBuf {
    let mut p = root.to_path_buf();
    p.extend(comps);
    p
}

/// The file that defines a unit: where it was found (a path on the target
/// system) and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fragment {
    /// A non-empty file (or something not a file nor a directory, which
    /// reading refuses).
    File { path: PathBuf, host: PathBuf },
    /// A link to `/dev/null` or an empty file.
    Masked { path: PathBuf },
}

/// The first `<dir>/<name>` in the search path that exists.
pub(crate) fn find_fragment(root: &Path, name: &str) -> Option<Fragment> {
    for dir in UNIT_SEARCH_PATH {
        let path = Path::new(dir).join(name);
        match resolve(root, &path) {
            Resolved::Missing => {}
            Resolved::DevNull => return Some(Fragment::Masked { path }),
            Resolved::Found(host) => match std::fs::metadata(&host) {
                Ok(m) if m.is_file() && m.len() == 0 => return Some(Fragment::Masked { path }),
                Ok(m) if m.is_dir() => {}
                // A FIFO, socket or device is the unit's file all the
                // same: reading it is refused with an error naming it.
                Ok(_) => return Some(Fragment::File { path, host }),
                Err(_) => {}
            },
        }
    }
    None
}

/// For a unit whose file is a link to a file of another name of the same
/// type (an `Alias=` that `enable` made: `etcd2.service` →
/// `etcd.service`), that name; templates are not aliases.
pub fn alias_target(root: &Path, name: &str) -> Option<String> {
    let Some(Fragment::File { host, .. }) = find_fragment(root, name) else {
        return None;
    };
    let target = host.file_name()?.to_str()?.to_string();
    let parsed = super::UnitName::parse(&target).ok()?;
    let same_type = name.rsplit_once('.').map(|(_, t)| t) == Some(parsed.suffix.as_str());
    (target != name && same_type && !parsed.is_template()).then_some(target)
}

/// A drop-in to read: its path on the target system and on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DropIn {
    pub path: PathBuf,
    pub host: PathBuf,
}

/// The `*.conf` files of `<dir>/<n>.d/` for each search directory and
/// each of `names` (more specific first), sorted by file name. A file
/// name seen earlier hides later ones; when that earlier one is a link to
/// `/dev/null` or empty, the drop-in is masked and nothing is read.
pub(crate) fn find_drop_ins(root: &Path, names: &[String]) -> Vec<DropIn> {
    let mut by_name: BTreeMap<OsString, Option<DropIn>> = BTreeMap::new();
    for dir in UNIT_SEARCH_PATH {
        for name in names {
            let d = Path::new(dir).join(format!("{name}.d"));
            for file in list_dir(root, &d) {
                if !file.to_string_lossy().ends_with(".conf") || by_name.contains_key(&file) {
                    continue;
                }
                let path = d.join(&file);
                let entry = match resolve(root, &path) {
                    Resolved::Found(host) => match std::fs::metadata(&host) {
                        Ok(m) if m.is_file() && m.len() == 0 => None,
                        // Directories named *.conf: skipped.
                        Ok(m) if m.is_dir() => continue,
                        // A FIFO, socket or device: reading it is refused
                        // with a warning naming it.
                        Ok(_) => Some(DropIn { path, host }),
                        Err(_) => continue,
                    },
                    Resolved::DevNull => None,
                    Resolved::Missing => continue,
                };
                by_name.insert(file, entry);
            }
        }
    }
    by_name.into_values().flatten().collect()
}

/// Entry names of a directory on the target system, sorted; empty when it
/// is missing.
fn list_dir(root: &Path, dir: &Path) -> Vec<OsString> {
    let Resolved::Found(host) = resolve(root, dir) else {
        return Vec::new();
    };
    let Ok(rd) = std::fs::read_dir(host) else {
        return Vec::new();
    };
    let mut names: Vec<OsString> = rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
    names.sort();
    names
}

/// How a `.wants/` or `.requires/` entry pulls a unit in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Pull {
    Wants,
    Requires,
}

/// The units in `<dir>/<unit>.wants/` and `.requires/` across the search
/// path, sorted and without duplicates.
pub(crate) fn pulled_by(root: &Path, unit: &str) -> Vec<(String, Pull)> {
    let mut out: Vec<(String, Pull)> = Vec::new();
    for dir in UNIT_SEARCH_PATH {
        for (suffix, kind) in [(".wants", Pull::Wants), (".requires", Pull::Requires)] {
            let d = Path::new(dir).join(format!("{unit}{suffix}"));
            for entry in list_dir(root, &d) {
                if let Some(n) = entry.to_str() {
                    if super::name::UnitName::parse(n).is_ok() {
                        out.push((n.to_string(), kind));
                    }
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The units linked into `<target>.wants/` or `<target>.requires/` in any
/// search directory (what `systemctl enable` creates): sorted, without
/// duplicates.
pub fn units_wanted_by(root: &Path, target: &str) -> Vec<String> {
    let mut v: Vec<String> = pulled_by(root, target)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    v.dedup();
    v
}

/// The units (usually targets) that have `name` in their `.wants/` or
/// `.requires/` directory in any search directory, i.e. where the unit is
/// enabled: sorted, without duplicates. Empty: not enabled.
pub fn wanted_by_targets(root: &Path, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for dir in UNIT_SEARCH_PATH {
        for entry in list_dir(root, Path::new(dir)) {
            let Some(e) = entry.to_str() else { continue };
            let Some(target) = e
                .strip_suffix(".wants")
                .or_else(|| e.strip_suffix(".requires"))
            else {
                continue;
            };
            let Resolved::Found(host) = resolve(root, &Path::new(dir).join(e)) else {
                continue;
            };
            // The link itself, dangling or not, is what enables.
            if std::fs::symlink_metadata(host.join(name)).is_ok() {
                out.push(target.to_string());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    fn write(root: &Path, p: &str, text: &str) {
        let p = root.join(p.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn link(root: &Path, target: &str, p: &str) {
        let p = root.join(p.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        symlink(target, p).unwrap();
    }

    #[test]
    fn absolute_links_stay_under_root() {
        let t = tree();
        let r = t.path();
        write(r, "/usr/lib/systemd/system/a.service", "x");
        link(
            r,
            "/usr/lib/systemd/system/a.service",
            "/etc/systemd/system/a.service",
        );
        link(r, "usr/lib", "/lib");
        link(r, "../../../dev/null", "/etc/systemd/system/m.service");
        link(r, "loop2", "/etc/loop1");
        link(r, "loop1", "/etc/loop2");
        assert_eq!(
            resolve(r, Path::new("/etc/systemd/system/a.service")),
            Resolved::Found(r.join("usr/lib/systemd/system/a.service"))
        );
        assert_eq!(
            resolve(r, Path::new("/lib/systemd/system/a.service")),
            Resolved::Found(r.join("usr/lib/systemd/system/a.service"))
        );
        assert_eq!(
            resolve(r, Path::new("/etc/systemd/system/m.service")),
            Resolved::DevNull
        );
        assert_eq!(resolve(r, Path::new("/etc/loop1")), Resolved::Missing);
        assert_eq!(resolve(r, Path::new("/etc/nothing")), Resolved::Missing);
    }

    #[test]
    fn fragments_and_masks() {
        let t = tree();
        let r = t.path();
        write(r, "/usr/lib/systemd/system/a.service", "vendor");
        write(r, "/etc/systemd/system/a.service", "admin");
        write(r, "/usr/lib/systemd/system/b.service", "vendor");
        link(r, "/dev/null", "/etc/systemd/system/b.service");
        write(r, "/run/systemd/system/c.service", "");
        match find_fragment(r, "a.service") {
            Some(Fragment::File { path, .. }) => {
                assert_eq!(path, Path::new("/etc/systemd/system/a.service"))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            find_fragment(r, "b.service"),
            Some(Fragment::Masked { .. })
        ));
        assert!(matches!(
            find_fragment(r, "c.service"),
            Some(Fragment::Masked { .. })
        ));
        assert_eq!(find_fragment(r, "d.service"), None);
    }

    #[test]
    fn drop_in_precedence() {
        let t = tree();
        let r = t.path();
        write(
            r,
            "/usr/lib/systemd/system/a.service.d/10-x.conf",
            "vendor10",
        );
        write(
            r,
            "/usr/lib/systemd/system/a.service.d/30-x.conf",
            "vendor30",
        );
        write(
            r,
            "/usr/lib/systemd/system/a.service.d/40-x.conf",
            "vendor40",
        );
        write(r, "/etc/systemd/system/a.service.d/30-x.conf", "admin30");
        write(r, "/run/systemd/system/a.service.d/20-x.conf", "run20");
        write(r, "/run/systemd/system/a.service.d/ignored.txt", "x");
        link(r, "/dev/null", "/etc/systemd/system/a.service.d/40-x.conf");
        let d = find_drop_ins(r, &["a.service".to_string()]);
        let paths: Vec<_> = d
            .iter()
            .map(|d| d.path.to_str().unwrap().to_string())
            .collect();
        assert_eq!(
            paths,
            [
                "/usr/lib/systemd/system/a.service.d/10-x.conf",
                "/run/systemd/system/a.service.d/20-x.conf",
                "/etc/systemd/system/a.service.d/30-x.conf",
            ]
        );
    }

    #[test]
    fn wants_links() {
        let t = tree();
        let r = t.path();
        link(
            r,
            "../a.service",
            "/etc/systemd/system/multi-user.target.wants/a.service",
        );
        link(
            r,
            "/usr/lib/systemd/system/b.service",
            "/usr/lib/systemd/system/multi-user.target.wants/b.service",
        );
        link(
            r,
            "../a.service",
            "/run/systemd/system/network-online.target.requires/a.service",
        );
        write(
            r,
            "/etc/systemd/system/multi-user.target.wants/not a unit",
            "",
        );
        assert_eq!(
            units_wanted_by(r, "multi-user.target"),
            ["a.service", "b.service"]
        );
        assert_eq!(
            pulled_by(r, "network-online.target"),
            [("a.service".to_string(), Pull::Requires)]
        );
        assert_eq!(
            wanted_by_targets(r, "a.service"),
            ["multi-user.target", "network-online.target"]
        );
        assert_eq!(wanted_by_targets(r, "b.service"), ["multi-user.target"]);
        assert!(wanted_by_targets(r, "c.service").is_empty());
        assert!(units_wanted_by(r, "none.target").is_empty());
    }
}

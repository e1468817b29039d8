//! One cgroup2 group per service under `/sys/fs/cgroup/services/`, so a
//! service's whole process tree can be counted, measured and stopped as
//! one, whatever it forks or daemonizes.
//!
//! Without cgroup2 (tests on a host, a kernel without it) a service is
//! still stopped through its process group: each service starts in a
//! session of its own.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The parent group of all services' groups.
pub const SERVICES_CGROUP: &str = "/sys/fs/cgroup/services";

/// The groups of the services, under one parent.
#[derive(Debug, Clone)]
pub struct Cgroups {
    parent: PathBuf,
}

impl Cgroups {
    /// Creates the parent group, turns on every controller for the root's
    /// children and the `memory` and `pids` controllers for the services'
    /// groups (for the status output).
    /// Errors are for the console; the caller goes on without cgroups.
    pub fn setup(parent: &Path) -> Result<Cgroups, String> {
        let root = parent.parent().unwrap_or(Path::new("/"));
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("creating {}: {e}", parent.display()))?;
        // Controllers are enabled top-down; one that is missing from the
        // kernel is not a reason to stop (status just lacks the figure).
        // Every controller the kernel has is enabled for the root's
        // children: the container engine makes its groups there
        // (`/sys/fs/cgroup/docker/<id>` with the cgroupfs driver) and
        // reports each missing one as a `docker info` warning (no CPU
        // shares, no blkio weight, no cpuset); the update engine's group
        // uses `cpu` and `io` too.
        let available =
            std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        for controller in available.split_whitespace() {
            let _ = std::fs::write(
                root.join("cgroup.subtree_control"),
                format!("+{controller}"),
            );
        }
        for controller in ["+memory", "+pids"] {
            let _ = std::fs::write(parent.join("cgroup.subtree_control"), controller);
        }
        Ok(Cgroups {
            parent: parent.to_path_buf(),
        })
    }

    /// The group of `unit`.
    pub fn path(&self, unit: &str) -> PathBuf {
        self.parent.join(unit)
    }

    /// Creates the unit's group (if needed; a group left over by
    /// `KillMode=process` is joined) and opens its `cgroup.procs` for the
    /// child to write itself into before it execs. `TasksMax=` goes to
    /// `pids.max` where the controller is on; with `Delegate=` and a
    /// `User=`, the group is handed to that user, as systemd does.
    pub fn prepare(&self, unit: &str, opts: &GroupOptions) -> Result<File, String> {
        let dir = self.path(unit);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("creating cgroup {}: {e}", dir.display())),
        }
        if let Some(max) = &opts.pids_max {
            let file = dir.join("pids.max");
            // Without the pids controller the file is missing: nothing to
            // limit with, and `infinity` asks for nothing anyway.
            if file.exists() {
                std::fs::write(&file, max)
                    .map_err(|e| format!("TasksMax=: writing {}: {e}", file.display()))?;
            }
        }
        if let Some((uid, gid)) = opts.delegate_to {
            for f in [
                "",
                "cgroup.procs",
                "cgroup.subtree_control",
                "cgroup.threads",
            ] {
                let p = if f.is_empty() {
                    dir.clone()
                } else {
                    dir.join(f)
                };
                if p.exists() {
                    std::os::unix::fs::chown(&p, Some(uid), Some(gid)).map_err(|e| {
                        format!("Delegate=: handing {} to the user: {e}", p.display())
                    })?;
                }
            }
        }
        OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(dir.join("cgroup.procs"))
            .map_err(|e| format!("opening {}/cgroup.procs: {e}", dir.display()))
    }

    /// The processes in the unit's group and in the groups below it (a
    /// service with `Delegate=yes` makes its own).
    pub fn pids(&self, unit: &str) -> Vec<i32> {
        let mut out = Vec::new();
        let mut dirs = vec![self.path(unit)];
        // Bounded: a cgroup tree is finite, but a loop must not hang PID 1.
        let mut budget = 10_000usize;
        while let Some(dir) = dirs.pop() {
            budget = budget.saturating_sub(1);
            if budget == 0 {
                break;
            }
            if let Ok(t) = std::fs::read_to_string(dir.join("cgroup.procs")) {
                out.extend(parse_pids(&t));
            }
            dirs.extend(sub_groups(&dir));
        }
        out
    }

    /// The unit a process belongs to, from `/proc/<pid>/cgroup`.
    pub fn unit_of(&self, pid: i32) -> Option<String> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let rel = self.parent.strip_prefix(CGROUP_MOUNT).ok()?;
        unit_in(&text, &format!("/{}", rel.display()))
    }

    /// SIGKILLs every process of the group at once (`cgroup.kill`,
    /// Linux 5.14); on older kernels, each listed process.
    pub fn kill_all(&self, unit: &str) {
        if std::fs::write(self.path(unit).join("cgroup.kill"), "1").is_err() {
            for pid in self.pids(unit) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }

    /// `memory.current` in bytes.
    pub fn memory(&self, unit: &str) -> Option<u64> {
        read_number(&self.path(unit).join("memory.current"))
    }

    /// `pids.current`.
    pub fn tasks(&self, unit: &str) -> Option<u32> {
        read_number(&self.path(unit).join("pids.current")).and_then(|n| u32::try_from(n).ok())
    }

    /// Removes an empty group and the empty groups below it, deepest
    /// first (a group with processes cannot be removed; that is left for
    /// the next start, which reuses it).
    pub fn remove(&self, unit: &str) {
        fn remove_tree(dir: &Path, depth: usize) {
            if depth < 64 {
                for sub in sub_groups(dir) {
                    remove_tree(&sub, depth + 1);
                }
            }
            let _ = std::fs::remove_dir(dir);
        }
        remove_tree(&self.path(unit), 0);
    }
}

/// Where cgroup2 is mounted.
const CGROUP_MOUNT: &str = "/sys/fs/cgroup";

/// How to set up a unit's group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupOptions {
    /// `pids.max`: a number or `max`.
    pub pids_max: Option<String>,
    /// `Delegate=yes` with a `User=`: the owner of the group.
    pub delegate_to: Option<(u32, u32)>,
}

/// The groups directly below `dir`.
fn sub_groups(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// The unit in a `/proc/<pid>/cgroup` text (`0::/services/x.service/sub`
/// with `parent` `/services` → `x.service`).
pub fn unit_in(proc_cgroup: &str, parent: &str) -> Option<String> {
    proc_cgroup.lines().find_map(|l| {
        let path = l.strip_prefix("0::")?;
        let rest = path.strip_prefix(parent)?.strip_prefix('/')?;
        let unit = rest.split('/').next()?;
        (!unit.is_empty()).then(|| unit.to_string())
    })
}

fn read_number(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `cgroup.procs`: one pid per line.
pub fn parse_pids(text: &str) -> Vec<i32> {
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_one_per_line_ignoring_junk() {
        assert_eq!(parse_pids("12\n345\n\nx\n"), vec![12, 345]);
        assert!(parse_pids("").is_empty());
    }

    #[test]
    fn groups_in_a_plain_directory() {
        // On a plain directory the files are ordinary files: enough to
        // check paths and parsing without touching the host's cgroups.
        let dir = tempfile::tempdir().unwrap();
        let parent = dir.path().join("services");
        let cg = Cgroups::setup(&parent).unwrap();
        std::fs::create_dir_all(parent.join("a.service")).unwrap();
        std::fs::write(parent.join("a.service/cgroup.procs"), "").unwrap();
        let mut procs = cg.prepare("a.service", &GroupOptions::default()).unwrap();
        use std::io::Write;
        procs.write_all(b"7\n9\n").unwrap();
        assert_eq!(cg.pids("a.service"), vec![7, 9]);
        std::fs::write(parent.join("a.service/memory.current"), "4096\n").unwrap();
        assert_eq!(cg.memory("a.service"), Some(4096));
        assert_eq!(cg.tasks("a.service"), None);
        // A delegated sub-group's processes count too, and removal takes
        // the empty tree.
        std::fs::create_dir_all(parent.join("a.service/docker/x")).unwrap();
        std::fs::write(parent.join("a.service/docker/x/cgroup.procs"), "11\n").unwrap();
        let mut pids = cg.pids("a.service");
        pids.sort();
        assert_eq!(pids, vec![7, 9, 11]);
        std::fs::write(parent.join("a.service/pids.max"), "").unwrap();
        cg.prepare(
            "a.service",
            &GroupOptions {
                pids_max: Some("max".into()),
                delegate_to: Some((500, 500)),
            },
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(parent.join("a.service/pids.max")).unwrap(),
            "max"
        );
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(parent.join("a.service/cgroup.procs")).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (500, 500));
    }

    #[test]
    fn unit_of_a_process_from_its_cgroup_line() {
        let text = "0::/services/docker.service/docker/abc\n";
        assert_eq!(
            unit_in(text, "/services").as_deref(),
            Some("docker.service")
        );
        assert_eq!(
            unit_in("0::/services/x.service\n", "/services").as_deref(),
            Some("x.service")
        );
        assert_eq!(unit_in("0::/init.scope\n", "/services"), None);
        assert_eq!(unit_in("0::/servicesX/a\n", "/services"), None);
        assert_eq!(unit_in("1:name=systemd:/services/a\n", "/services"), None);
    }
}

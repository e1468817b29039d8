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
    /// Creates the parent group and turns on the `memory` and `pids`
    /// controllers for the services' groups (for the status output).
    /// Errors are for the console; the caller goes on without cgroups.
    pub fn setup(parent: &Path) -> Result<Cgroups, String> {
        let root = parent.parent().unwrap_or(Path::new("/"));
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("creating {}: {e}", parent.display()))?;
        // Controllers are enabled top-down; one that is missing from the
        // kernel is not a reason to stop (status just lacks the figure).
        for controller in ["+memory", "+pids"] {
            let _ = std::fs::write(root.join("cgroup.subtree_control"), controller);
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

    /// Creates the unit's group (if needed) and opens its `cgroup.procs`
    /// for the child to write itself into before it execs.
    pub fn prepare(&self, unit: &str) -> Result<File, String> {
        let dir = self.path(unit);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("creating cgroup {}: {e}", dir.display())),
        }
        OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(dir.join("cgroup.procs"))
            .map_err(|e| format!("opening {}/cgroup.procs: {e}", dir.display()))
    }

    /// The processes in the unit's group.
    pub fn pids(&self, unit: &str) -> Vec<i32> {
        std::fs::read_to_string(self.path(unit).join("cgroup.procs"))
            .map(|t| parse_pids(&t))
            .unwrap_or_default()
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

    /// Removes an empty group (a group with processes cannot be removed;
    /// that is left for the next start, which reuses it).
    pub fn remove(&self, unit: &str) {
        let _ = std::fs::remove_dir(self.path(unit));
    }
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
        let mut procs = cg.prepare("a.service").unwrap();
        use std::io::Write;
        procs.write_all(b"7\n9\n").unwrap();
        assert_eq!(cg.pids("a.service"), vec![7, 9]);
        std::fs::write(parent.join("a.service/memory.current"), "4096\n").unwrap();
        assert_eq!(cg.memory("a.service"), Some(4096));
        assert_eq!(cg.tasks("a.service"), None);
    }
}

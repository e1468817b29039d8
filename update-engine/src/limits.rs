//! The cgroup the writer runs in, so an update never starves the
//! machine's real work (the CoreOS promise). cgroup v2 files:
//!
//! | file | what it does here |
//! |---|---|
//! | `io.max` `MAJ:MIN wbps=N rbps=N` | caps the bytes per second the writer's I/O may move to and from the boot disk (the whole disk's numbers: the block layer throttles per disk, not per partition). Page-cache writeback is charged to the cgroup that dirtied the pages, so buffered writes are throttled too. |
//! | `cpu.weight` | the writer's share of CPU when others want it (100 is a normal service; lower yields to them) |
//! | `cpu.max` `QUOTA 100000` | a hard ceiling: at most QUOTA µs of CPU per 100 ms, even on an idle machine |
//! | `memory.max` | resident memory plus the page cache the writer dirties; when it is reached the kernel reclaims the writer's own cache instead of the services' memory |
//!
//! The group is a child of the cgroup root (`/sys/fs/cgroup/slipway-update`
//! by default), outside the service manager's `services/` tree: cgroup v2
//! forbids enabling controllers for the children of a group that itself
//! holds processes, which a service's group does.

use std::path::{Path, PathBuf};

use crate::config::Limits;

/// The lines written, for the log and `status`.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    pub cgroup: PathBuf,
    pub settings: Vec<(String, String)>,
    /// Limits that could not be set, with why (a kernel without a
    /// controller): reported, not fatal, so an update is never blocked by a
    /// missing knob.
    pub warnings: Vec<String>,
}

/// The `(file, value)` pairs for `limits`; pure, for tests.
pub fn settings(limits: &Limits, disk_devno: Option<&str>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    // `u64::MAX` is update.conf's `max`: no limit.
    if limits.memory_max != u64::MAX {
        out.push(("memory.max".to_string(), limits.memory_max.to_string()));
    }
    out.push((
        "cpu.weight".to_string(),
        limits.cpu_weight.clamp(1, 10000).to_string(),
    ));
    if let Some(p) = limits.cpu_max_percent {
        // Quota per 100 ms period; 100% is one whole CPU.
        let quota = u64::from(p.max(1)) * 1000;
        out.push(("cpu.max".to_string(), format!("{quota} 100000")));
    }
    if let Some(dev) = disk_devno {
        let mut io = Vec::new();
        if let Some(w) = limits.io_write_bps {
            io.push(format!("wbps={w}"));
        }
        if let Some(r) = limits.io_read_bps {
            io.push(format!("rbps={r}"));
        }
        if !io.is_empty() {
            out.push(("io.max".to_string(), format!("{dev} {}", io.join(" "))));
        }
    }
    out
}

/// Creates the group under `cgroup_root`, enables the controllers it needs,
/// writes the limits and moves this process (all its threads) into it.
pub fn enter(
    cgroup_root: &Path,
    group: &Path,
    limits: &Limits,
    disk_devno: Option<&str>,
) -> std::io::Result<Applied> {
    let mut applied = Applied {
        cgroup: group.to_path_buf(),
        ..Applied::default()
    };
    // Each controller separately: one the kernel lacks must not stop the
    // others from being enabled.
    for c in ["+io", "+cpu", "+memory"] {
        if let Err(e) = std::fs::write(cgroup_root.join("cgroup.subtree_control"), c) {
            applied.warnings.push(format!(
                "enabling the {} controller in {}: {e}",
                &c[1..],
                cgroup_root.display()
            ));
        }
    }
    match std::fs::create_dir(group) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(std::io::Error::new(
                e.kind(),
                format!("creating cgroup {}: {e}", group.display()),
            ))
        }
    }
    for (file, value) in settings(limits, disk_devno) {
        match std::fs::write(group.join(&file), &value) {
            Ok(()) => applied.settings.push((file, value)),
            Err(e) => applied
                .warnings
                .push(format!("{}/{file} = {value}: {e}", group.display())),
        }
    }
    std::fs::write(group.join("cgroup.procs"), std::process::id().to_string()).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("moving into cgroup {}: {e}", group.display()),
        )
    })?;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_name_the_cgroup_files() {
        let l = Limits {
            io_write_bps: Some(5 << 20),
            io_read_bps: None,
            cpu_weight: 20,
            cpu_max_percent: Some(50),
            memory_max: 64 << 20,
            download_bps: None,
        };
        let s = settings(&l, Some("254:0"));
        assert_eq!(
            s,
            vec![
                ("memory.max".into(), "67108864".into()),
                ("cpu.weight".into(), "20".into()),
                ("cpu.max".into(), "50000 100000".into()),
                ("io.max".into(), "254:0 wbps=5242880".into()),
            ]
        );
        // Without a disk there is nothing to throttle.
        assert!(!settings(&l, None).iter().any(|(f, _)| f == "io.max"));
    }

    #[test]
    fn enter_writes_the_files_of_a_fake_cgroup_tree() {
        let root = tempfile::tempdir().unwrap();
        let group = root.path().join("slipway-update");
        let l = Limits {
            io_write_bps: Some(1000),
            io_read_bps: Some(2000),
            cpu_max_percent: None,
            memory_max: u64::MAX,
            ..Limits::default()
        };
        let a = enter(root.path(), &group, &l, Some("8:0")).unwrap();
        assert_eq!(
            std::fs::read_to_string(group.join("io.max")).unwrap(),
            "8:0 wbps=1000 rbps=2000"
        );
        assert_eq!(
            std::fs::read_to_string(group.join("cgroup.procs")).unwrap(),
            std::process::id().to_string()
        );
        assert!(a.warnings.is_empty(), "{:?}", a.warnings);
    }
}

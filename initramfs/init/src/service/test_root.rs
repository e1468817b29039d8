//! A machine's root in a temporary folder, for the manager's tests: unit
//! files under `etc/systemd/system`, enabled into `multi-user.target`.

use std::path::Path;
use std::time::Duration;

use super::{Config, DEFAULT_MAX_BYTES, DEFAULT_SETTLE_TIMEOUT, DEFAULT_TARGET};

/// A root with `units` (`name`, text): a name starting with `!` is not
/// enabled; one with a `/` (`x.service.d/a.conf`) is a drop-in.
pub fn unit_root(units: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let sys = root.join("etc/systemd/system");
    std::fs::create_dir_all(sys.join("multi-user.target.wants")).unwrap();
    std::fs::write(
        sys.join("multi-user.target"),
        "[Unit]\nDescription=Multi-User\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::os::unix::fs::symlink("/bin/sh", root.join("bin/sh")).unwrap();
    for (name, text) in units {
        let (file, enable) = match name.strip_prefix('!') {
            Some(n) => (n, false),
            None => (*name, true),
        };
        let path = match file.split_once('/') {
            Some((d, _)) => {
                std::fs::create_dir_all(sys.join(d)).unwrap();
                sys.join(file)
            }
            None => sys.join(file),
        };
        std::fs::write(&path, text).unwrap();
        if enable && !file.contains('/') {
            std::os::unix::fs::symlink(
                format!("../{file}"),
                sys.join("multi-user.target.wants").join(file),
            )
            .unwrap();
        }
    }
    dir
}

/// The configuration for a root made by [`unit_root`]: no cgroups, a
/// short health grace.
pub fn test_config(root: &Path) -> Config {
    Config {
        root: root.to_path_buf(),
        cgroup_parent: None,
        log_dir: root.join("var/log/services"),
        log_max_bytes: DEFAULT_MAX_BYTES,
        health_file: Some(root.join("run/slipway/health")),
        health_grace: Duration::from_millis(300),
        target: DEFAULT_TARGET.into(),
        health_hook: None,
        settle_timeout: DEFAULT_SETTLE_TIMEOUT,
        notify_socket: Some(root.join("run/slipway/notify")),
    }
}

//! `enable` and `disable`: the `.wants/`/`.requires/` links under
//! `/etc/systemd/system` that `systemctl enable` makes, from the unit's
//! `[Install]` section, and the `Alias=` links (`etcd2.service` →
//! `etcd.service`).

use super::machine::{load_failure, Machine};
use crate::units;

impl Machine {
    /// Enables a unit: links it into the `.wants/` of each `WantedBy=`
    /// target under `/etc/systemd/system` (`systemctl enable`).
    pub fn enable(&mut self, name: &str) -> Result<String, String> {
        let (unit, _) = units::load_unit(&self.cfg.root, name, &self.ctx);
        if let Some(reason) = load_failure(&unit) {
            return Err(reason);
        }
        let targets: Vec<&String> = unit
            .install
            .wanted_by
            .iter()
            .chain(&unit.install.required_by)
            .collect();
        if targets.is_empty() && unit.install.alias.is_empty() {
            return Err(
                "the unit has no [Install] WantedBy= or RequiredBy=; nothing to enable".into(),
            );
        }
        let source = unit
            .sources
            .first()
            .cloned()
            .ok_or_else(|| "no unit file".to_string())?;
        let mut made = Vec::new();
        for t in targets {
            let kind = if unit.install.required_by.contains(t) {
                "requires"
            } else {
                "wants"
            };
            let dir = format!("etc/systemd/system/{t}.{kind}");
            let host_dir = self.cfg.root.join(&dir);
            std::fs::create_dir_all(&host_dir).map_err(|e| format!("creating /{dir}: {e}"))?;
            let link = host_dir.join(name);
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&source, &link)
                .map_err(|e| format!("linking /{dir}/{name}: {e}"))?;
            made.push(format!("/{dir}/{name} → {}", source.display()));
        }
        for alias in &unit.install.alias {
            let dir = self.cfg.root.join("etc/systemd/system");
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("creating /etc/systemd/system: {e}"))?;
            let link = dir.join(alias);
            // Only a link is replaced, never a unit file of that name.
            if std::fs::symlink_metadata(&link).is_ok_and(|m| !m.file_type().is_symlink()) {
                return Err(format!(
                    "Alias={alias}: /etc/systemd/system/{alias} exists and is not a link"
                ));
            }
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&source, &link)
                .map_err(|e| format!("linking /etc/systemd/system/{alias}: {e}"))?;
            made.push(format!(
                "/etc/systemd/system/{alias} → {}",
                source.display()
            ));
        }
        Ok(format!("enabled: {}", made.join(", ")))
    }

    /// Removes the unit's links from `.wants/`/`.requires/` directories
    /// under `/etc/systemd/system`.
    pub fn disable(&mut self, name: &str) -> Result<String, String> {
        let dir = self.cfg.root.join("etc/systemd/system");
        let mut removed = Vec::new();
        // Alias= links made by enable.
        let (unit, _) = units::load_unit(&self.cfg.root, name, &self.ctx);
        for alias in &unit.install.alias {
            let link = dir.join(alias);
            if std::fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()) {
                std::fs::remove_file(&link)
                    .map_err(|err| format!("removing /etc/systemd/system/{alias}: {err}"))?;
                removed.push(format!("/etc/systemd/system/{alias}"));
            }
        }
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let fname = e.file_name().to_string_lossy().into_owned();
                if fname.ends_with(".wants") || fname.ends_with(".requires") {
                    let link = e.path().join(name);
                    if std::fs::symlink_metadata(&link).is_ok() {
                        std::fs::remove_file(&link).map_err(|err| {
                            format!("removing /etc/systemd/system/{fname}/{name}: {err}")
                        })?;
                        removed.push(format!("/etc/systemd/system/{fname}/{name}"));
                    }
                }
            }
        }
        if removed.is_empty() {
            let elsewhere = units::wanted_by_targets(&self.cfg.root, name);
            if elsewhere.is_empty() {
                return Ok("not enabled".into());
            }
            return Err(format!(
                "enabled by the image (wanted by {}), which is read-only; mask it instead",
                elsewhere.join(", ")
            ));
        }
        removed.sort();
        Ok(format!("removed {}", removed.join(", ")))
    }
}

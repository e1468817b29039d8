//! `coreos.units`: unit files, drop-ins, masking, enabling. Nothing is
//! started: each `command` is queued in `/run/slipway/unit-commands` (one
//! `<command> <unit>` line per unit, in list order) for the service
//! manager to carry out.
//!
//! - `content` → `/etc/systemd/system/<name>` (`/run/…` when `runtime`);
//!   network units (`.network`, `.netdev`, `.link`) go to
//!   `/etc/systemd/network/` (`/run/…`) instead and cannot be enabled or
//!   masked;
//! - `drop_ins` → `<dir>/<name>.d/<drop-in>`;
//! - `mask` → `<dir>/<name>` → `/dev/null` (content is then not written;
//!   enabling is skipped). A unit that is not masked but whose `<dir>/<name>`
//!   is a `/dev/null` link is unmasked;
//! - `enable` → for each `WantedBy=` (and `RequiredBy=`) target in the
//!   unit's `[Install]` section, `<dir>/<target>.wants/<name>` (or
//!   `.requires`) → `../<name>`; without either, `multi-user.target`. The
//!   `[Install]` section is read from `content`, else from an existing unit
//!   file (`/etc`, `/run`, `/usr/lib`, `/lib` under the root; a unit found
//!   elsewhere than `<dir>` is linked by its absolute path).

use std::path::{Path, PathBuf};

use crate::schema::Unit;

use super::fsops::{self, Owner};

pub(crate) const UNIT_COMMANDS: &str = "/run/slipway/unit-commands";

/// A unit command for the service manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitCommand {
    /// `start`, `restart`, …
    pub command: String,
    pub unit: String,
}

fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.starts_with('.') || name.contains(['/', '\n', '\r', ' ', '\\']) {
        return Err(format!(
            "invalid {what} name {name:?}: must be a plain file name"
        ));
    }
    Ok(())
}

fn base_dir(unit: &Unit) -> &'static str {
    match (unit.is_network(), unit.runtime) {
        (true, true) => "/run/systemd/network",
        (true, false) => "/etc/systemd/network",
        (false, true) => "/run/systemd/system",
        (false, false) => "/etc/systemd/system",
    }
}

/// Applies one unit; returns notes for the log.
pub(crate) fn apply_unit(root: &Path, unit: &Unit) -> Result<Vec<String>, String> {
    check_name("unit", &unit.name)?;
    for d in &unit.drop_ins {
        check_name("drop-in", &d.name)?;
    }
    if let Some(c) = &unit.command {
        if !crate::schema::UNIT_COMMANDS.contains(&c.as_str()) {
            return Err(format!("invalid command {c:?}"));
        }
    }
    let mut notes = Vec::new();
    let dir_machine = base_dir(unit);
    let dir = fsops::under_root(root, dir_machine);
    let path = dir.join(&unit.name);
    let masked_now = is_masked(&path);

    if unit.mask {
        if unit.content.is_some() {
            notes.push("masked: content not written".to_string());
        }
        if unit.is_network() {
            return Err("network units cannot be masked".into());
        }
        fsops::symlink_atomic(root, "/dev/null", &path)?;
    } else {
        if masked_now {
            std::fs::remove_file(&path)
                .map_err(|e| format!("cannot unmask {}: {e}", path.display()))?;
            notes.push("unmasked".to_string());
        }
        if let Some(content) = &unit.content {
            fsops::write_atomic(root, &path, content.as_bytes(), 0o644, Owner::default())?;
        }
    }
    for d in &unit.drop_ins {
        let p = dir.join(format!("{}.d", unit.name)).join(&d.name);
        fsops::write_atomic(root, &p, d.content.as_bytes(), 0o644, Owner::default())?;
    }
    if unit.enable {
        if unit.mask {
            notes.push("masked: not enabled".to_string());
        } else if unit.is_network() {
            notes.push("network units need no enabling".to_string());
        } else {
            notes.extend(enable(root, unit, &dir)?);
        }
    }
    if let Some(c) = &unit.command {
        notes.push(format!("{c} queued"));
    }
    Ok(notes)
}

fn is_masked(path: &Path) -> bool {
    std::fs::read_link(path).is_ok_and(|t| t == Path::new("/dev/null"))
}

/// Where the unit file is, and the symlink target for `.wants` links.
fn find_unit(root: &Path, unit: &Unit, dir: &Path) -> Option<(PathBuf, String)> {
    let own = dir.join(&unit.name);
    if own.is_file() {
        return Some((own, format!("../{}", unit.name)));
    }
    [
        "/etc/systemd/system",
        "/run/systemd/system",
        "/usr/lib/systemd/system",
        "/lib/systemd/system",
    ]
    .iter()
    .map(|d| format!("{d}/{}", unit.name))
    .find(|p| fsops::under_root(root, p).is_file())
    .map(|p| (fsops::under_root(root, &p), p))
}

fn enable(root: &Path, unit: &Unit, dir: &Path) -> Result<Vec<String>, String> {
    let (text, target) = match &unit.content {
        Some(c) => (c.clone(), format!("../{}", unit.name)),
        None => {
            let (path, target) = find_unit(root, unit, dir).ok_or_else(|| {
                format!(
                    "cannot enable {}: no content given and no unit file found",
                    unit.name
                )
            })?;
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            (text, target)
        }
    };
    let mut links = install_targets(&text);
    if links.is_empty() {
        links.push(("multi-user.target".to_string(), "wants"));
    }
    let mut notes = Vec::new();
    for (t, kind) in links {
        check_name("target", &t)?;
        let link = dir.join(format!("{t}.{kind}")).join(&unit.name);
        fsops::symlink_atomic(root, &target, &link)?;
        notes.push(format!("enabled in {t}.{kind}"));
    }
    Ok(notes)
}

/// `WantedBy=` and `RequiredBy=` targets of the `[Install]` section, in
/// order, as (target, "wants" | "requires"). An empty assignment resets
/// the list, as in systemd.
pub(crate) fn install_targets(unit_text: &str) -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> = Vec::new();
    let mut in_install = false;
    for line in unit_text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_install = line == "[Install]";
            continue;
        }
        if !in_install || line.starts_with(['#', ';']) {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let kind = match key.trim() {
            "WantedBy" => "wants",
            "RequiredBy" => "requires",
            _ => continue,
        };
        if value.trim().is_empty() {
            out.retain(|(_, k)| *k != kind);
        }
        for t in value.split_whitespace() {
            if !out.iter().any(|(o, k)| o == t && *k == kind) {
                out.push((t.to_string(), kind));
            }
        }
    }
    out
}

/// Writes the command queue (replacing any earlier one).
pub(crate) fn write_commands(root: &Path, commands: &[UnitCommand]) -> Result<(), String> {
    let mut text = String::new();
    for c in commands {
        text.push_str(&format!("{} {}\n", c.command, c.unit));
    }
    fsops::write_atomic(
        root,
        &fsops::under_root(root, UNIT_COMMANDS),
        text.as_bytes(),
        0o644,
        Owner::default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_section() {
        let text = "[Unit]\nWantedBy=nope.target\n[Install]\n# c\nWantedBy=a.target b.target\nRequiredBy=c.target\nWantedBy=\nWantedBy=d.target\n";
        assert_eq!(
            install_targets(text),
            vec![
                ("c.target".to_string(), "requires"),
                ("d.target".to_string(), "wants")
            ]
        );
        assert!(install_targets("[Service]\nExecStart=/bin/true\n").is_empty());
    }
}

//! Boards as data: `board/<name>/board.toml` names the kernel package, the
//! initramfs modules, the command line and consoles, partition sizes, the OS
//! name and the Debian packages the image takes files from. No Rust `cfg`
//! per board: one test run checks every board.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use slipway_image::layout::{Sizes, Slot, MIB};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    /// The folder name; not in the file.
    #[serde(skip)]
    pub name: String,
    pub description: String,
    pub os_name: String,
    pub kernel: KernelSpec,
    pub consoles: Vec<String>,
    pub partitions: PartitionsMib,
    pub packages: Packages,
}

pub use slipway_boot_contract::cmdline::{BootArgs, RootSpec, Verity, VerityArgs};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelSpec {
    /// Debian package, possibly a metapackage such as
    /// `linux-image-cloud-amd64` (resolved to the real one and locked).
    pub package: String,
    pub modules: Vec<String>,
    /// Modules for the root, loadable with `modprobe` once the machine runs
    /// (containers need bridge, netfilter, overlay, …): module names, or
    /// folders of the kernel's module tree (`kernel/net/netfilter`) when
    /// the honest way to cover the aliases the kernel asks for is all of
    /// them. Their `depends=` closure is added.
    #[serde(default)]
    pub root_modules: Vec<String>,
    #[serde(default)]
    pub cmdline: String,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionsMib {
    pub esp_mib: u64,
    pub root_mib: u64,
    pub verity_mib: u64,
    pub var_mib: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Packages {
    /// Provides `usr/lib/systemd/boot/efi/systemd-bootx64.efi`.
    pub bootloader: String,
    /// Provides a static `bin/busybox` for the rescue shell.
    pub busybox: String,
    /// More packages whose programs (`/usr/bin`, `/usr/sbin`, `/bin`,
    /// `/sbin`) go into the root, with the shared libraries and the dynamic
    /// loader they need, taken from their `Depends` closure.
    #[serde(default)]
    pub extra: Vec<String>,
}

impl Board {
    /// Loads and checks `boards_dir/<name>/board.toml`.
    pub fn load(boards_dir: &Path, name: &str) -> Result<Board> {
        let path = boards_dir.join(name).join("board.toml");
        if !path.is_file() {
            let known = list(boards_dir).unwrap_or_default().join(", ");
            bail!(
                "unknown board `{name}` (no {}); known boards: {known}",
                path.display()
            );
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Self::parse(name, &text).with_context(|| format!("board file {}", path.display()))
    }

    pub fn parse(name: &str, text: &str) -> Result<Board> {
        let mut board: Board = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        board.name = name.to_string();
        board.check()?;
        Ok(board)
    }

    fn check(&self) -> Result<()> {
        if self.os_name.trim().is_empty() {
            bail!("os_name: must not be empty");
        }
        if self.kernel.package.trim().is_empty() {
            bail!("kernel.package: must not be empty");
        }
        if self.consoles.is_empty() {
            bail!("consoles: list at least one console, e.g. \"ttyS0,115200\"");
        }
        for m in &self.kernel.modules {
            if m.is_empty() || m.contains(['/', ' ', '.']) {
                bail!(
                    "kernel.modules: `{m}` is not a module name (write `virtio_blk`, not a path)"
                );
            }
        }
        for m in &self.kernel.root_modules {
            let folder = m.starts_with("kernel/")
                && !m.ends_with('/')
                && m.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
            if !folder && (m.is_empty() || m.contains(['/', ' ', '.'])) {
                bail!(
                    "kernel.root_modules: `{m}` is neither a module name (`veth`) nor a folder \
                     of the module tree (`kernel/net/netfilter`)"
                );
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for name in &self.packages.extra {
            if !is_package_name(name) {
                bail!(
                    "packages.extra: `{name}` is not a Debian package name (write \
                     `dropbear-bin`, without a version or architecture)"
                );
            }
            if !seen.insert(name) {
                bail!("packages.extra: `{name}` is listed twice");
            }
        }
        let p = self.partitions;
        for (field, value) in [
            ("esp_mib", p.esp_mib),
            ("root_mib", p.root_mib),
            ("verity_mib", p.verity_mib),
            ("var_mib", p.var_mib),
        ] {
            if value == 0 {
                bail!("partitions.{field}: must be at least 1");
            }
        }
        // FAT32 needs at least 65525 clusters; with 4 KiB clusters that is
        // about 260 MB, and firmware is pickiest about FAT32.
        if p.esp_mib < 256 {
            bail!(
                "partitions.esp_mib: {} is too small, FAT32 needs at least 256",
                p.esp_mib
            );
        }
        // What the update engine will refuse in a payload is refused here.
        slipway_boot_contract::cmdline::check_base(&self.base_cmdline())
            .map_err(|e| anyhow::anyhow!("kernel.cmdline and consoles: {e}"))?;
        Ok(())
    }

    pub fn sizes(&self) -> Sizes {
        let p = self.partitions;
        Sizes {
            esp: p.esp_mib * MIB,
            root: p.root_mib * MIB,
            verity: p.verity_mib * MIB,
            var: p.var_mib * MIB,
        }
    }

    /// The board's part of every boot entry's command line: its own
    /// arguments, `gpt`, the consoles. Payloads carry it, so the update
    /// engine writes the same line the builder does.
    pub fn base_cmdline(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if !self.kernel.cmdline.trim().is_empty() {
            parts.push(self.kernel.cmdline.trim().to_string());
        }
        // If a power cut tears the primary GPT while the init grows `/var`
        // at first boot, Linux only falls back to the backup GPT (written
        // first, so already complete) with `gpt` on its command line.
        parts.push("gpt".to_string());
        parts.extend(self.consoles.iter().map(|c| format!("console={c}")));
        parts.join(" ")
    }

    /// A slot's whole kernel command line (the board's arguments, then
    /// the slot's own as the init reads them). `Verity::Off` writes the
    /// developer switch `slipway.verity=off`, which the init logs loudly:
    /// there is no silent way to boot an unverified root.
    pub fn cmdline(
        &self,
        slot: Slot,
        root_partuuid: &uuid::Uuid,
        verity: Verity,
    ) -> Result<String> {
        BootArgs {
            slot,
            root: RootSpec::PartUuid(*root_partuuid),
            verity,
        }
        .render(&self.base_cmdline())
        .with_context(|| format!("board {}", self.name))
    }
}

/// Debian Policy 5.6.1: lower case letters, digits, `+`, `-`, `.`; at least
/// two characters, starting with a letter or digit.
pub(crate) fn is_package_name(name: &str) -> bool {
    name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
}

/// Names of the boards under `boards_dir`, sorted.
pub fn list(boards_dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(boards_dir)
        .with_context(|| format!("listing boards in {}", boards_dir.display()))?
    {
        let entry = entry?;
        if entry.path().join("board.toml").is_file() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

pub fn lock_path(boards_dir: &Path, name: &str) -> PathBuf {
    boards_dir.join(name).join("inputs.lock")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_board_in_the_tree_loads() {
        let dir = crate::paths::boards_dir();
        let names = list(&dir).unwrap();
        assert!(names.contains(&"qemu-x86_64".to_string()));
        assert!(names.contains(&"generic-x86_64".to_string()));
        for name in names {
            let b = Board::load(&dir, &name).unwrap();
            assert!(!b.kernel.modules.is_empty(), "{name}");
            assert!(b.sizes().root >= 512 * MIB, "{name}");
        }
    }

    #[test]
    fn unknown_board_names_the_known_ones() {
        let err = Board::load(&crate::paths::boards_dir(), "nope").unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("unknown board `nope`"), "{msg}");
        assert!(msg.contains("qemu-x86_64"), "{msg}");
    }

    const GOOD: &str = r#"
description = "d"
os_name = "Slipway"
consoles = ["tty0", "ttyS0,115200"]
[kernel]
package = "linux-image-cloud-amd64"
modules = ["virtio_blk"]
cmdline = "quiet"
[partitions]
esp_mib = 256
root_mib = 1024
verity_mib = 64
var_mib = 128
[packages]
bootloader = "systemd-boot-efi"
busybox = "busybox-static"
"#;

    #[test]
    fn malformed_board_errors_name_the_field_and_line() {
        let bad = GOOD.replace("esp_mib = 256", "esp_mib = \"big\"");
        let msg = format!("{:#}", Board::parse("x", &bad).unwrap_err());
        assert!(msg.contains("esp_mib"), "{msg}");
        assert!(msg.contains("line 10"), "{msg}");

        let unknown = GOOD.replace("cmdline = \"quiet\"", "cmdlin = \"quiet\"");
        let msg = format!("{:#}", Board::parse("x", &unknown).unwrap_err());
        assert!(msg.contains("unknown field `cmdlin`"), "{msg}");

        let path = GOOD.replace("\"virtio_blk\"", "\"kernel/virtio_blk.ko\"");
        let msg = format!("{:#}", Board::parse("x", &path).unwrap_err());
        assert!(msg.contains("not a module name"), "{msg}");
    }

    #[test]
    fn root_modules_are_names_or_folders_of_the_module_tree() {
        assert!(Board::parse("x", GOOD)
            .unwrap()
            .kernel
            .root_modules
            .is_empty());
        let with =
            |list: &str| GOOD.replace("cmdline = \"quiet\"", &format!("root_modules = {list}"));
        let b = Board::parse("x", &with(r#"["veth", "kernel/net/netfilter"]"#)).unwrap();
        assert_eq!(b.kernel.root_modules, ["veth", "kernel/net/netfilter"]);
        for bad in [
            r#"["net/netfilter"]"#,
            r#"["kernel/../etc"]"#,
            r#"["kernel/net/"]"#,
            r#"["veth.ko"]"#,
        ] {
            let msg = format!("{:#}", Board::parse("x", &with(bad)).unwrap_err());
            assert!(msg.contains("kernel.root_modules"), "{bad}: {msg}");
        }
    }

    #[test]
    fn extra_packages_default_to_none_and_are_checked() {
        assert!(Board::parse("x", GOOD).unwrap().packages.extra.is_empty());
        let with = |list: &str| format!("{GOOD}extra = {list}\n");
        let b = Board::parse("x", &with(r#"["dropbear-bin", "libc6"]"#)).unwrap();
        assert_eq!(b.packages.extra, ["dropbear-bin", "libc6"]);
        for (bad, why) in [
            (r#"["dropbear-bin (>= 2022)"]"#, "not a Debian package name"),
            (r#"["dropbear-bin:amd64"]"#, "not a Debian package name"),
            (r#"["Dropbear"]"#, "not a Debian package name"),
            (r#"["a", "zlib1g"]"#, "not a Debian package name"),
            (r#"["zlib1g", "zlib1g"]"#, "listed twice"),
        ] {
            let msg = format!("{:#}", Board::parse("x", &with(bad)).unwrap_err());
            assert!(msg.contains(why), "{bad}: {msg}");
        }
    }

    #[test]
    fn cmdline_puts_gpt_consoles_then_slot_root_and_verity() {
        let b = Board::parse("x", GOOD).unwrap();
        let u = uuid::Uuid::nil();
        assert_eq!(
            b.cmdline(Slot::B, &u, Verity::Off).unwrap(),
            "quiet gpt console=tty0 console=ttyS0,115200 slipway.slot=b \
             slipway.root=PARTUUID=00000000-0000-0000-0000-000000000000 slipway.verity=off"
        );
        let v = VerityArgs::new(&"ab".repeat(32), u, &"cd".repeat(32), 7).unwrap();
        let line = b.cmdline(Slot::A, &u, Verity::On(v)).unwrap();
        assert!(
            line.ends_with(&format!(
                "slipway.roothash={} slipway.verity_hash=PARTUUID={u} slipway.verity_salt={} \
             slipway.verity_blocks=7",
                "ab".repeat(32),
                "cd".repeat(32)
            )),
            "{line}"
        );
        assert!(!line.contains("verity=off"));
    }
}

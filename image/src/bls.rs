//! Boot Loader Specification files for systemd-boot: `loader.conf` and one
//! type #1 entry per slot.
//!
//! systemd-boot (252) sorts entries with no tries left last, then by
//! `sort-key`, then by `version`, newest first; the `+N-M` boot counter is
//! part of the entry ID. So `loader.conf` must not name an exact entry
//! (ARCHITECTURE.md, "Boot chain"): we write no `default` at all.

use crate::layout::Slot;

/// `loader/loader.conf`: boot the first entry at once, no editor (an editable
/// command line would let anyone at the console turn verity off).
pub fn loader_conf() -> String {
    "timeout 0\neditor no\nauto-entries no\nauto-firmware no\n".to_string()
}

/// Where a slot's kernel and initramfs live on the ESP.
pub fn kernel_path(slot: Slot) -> String {
    format!("/slipway/{}/vmlinuz", slot.letter())
}

pub fn initrd_path(slot: Slot) -> String {
    format!("/slipway/{}/initrd", slot.letter())
}

/// The entry file name, e.g. `slipway-a.conf` or, while on trial,
/// `slipway-b+3.conf`.
pub fn entry_file_name(slot: Slot, tries_left: Option<u32>) -> String {
    match tries_left {
        Some(n) => format!("slipway-{}+{n}.conf", slot.letter()),
        None => format!("slipway-{}.conf", slot.letter()),
    }
}

/// One boot entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub os_name: String,
    pub version: String,
    pub slot: Slot,
    pub options: String,
}

impl Entry {
    pub fn render(&self) -> String {
        let letter = self.slot.letter().to_ascii_uppercase();
        format!(
            "title {name} {version} (slot {letter})\n\
             sort-key slipway\n\
             version {version}\n\
             linux {kernel}\n\
             initrd {initrd}\n\
             options {options}\n",
            name = self.os_name,
            version = self.version,
            kernel = kernel_path(self.slot),
            initrd = initrd_path(self.slot),
            options = self.options,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loader_conf_names_no_default() {
        assert!(!loader_conf().contains("default"));
    }

    #[test]
    fn entry_has_version_and_slot_paths() {
        let e = Entry {
            os_name: "Slipway".into(),
            version: "1.2.3".into(),
            slot: Slot::B,
            options: "console=ttyS0 slipway.slot=b".into(),
        };
        let text = e.render();
        assert!(text.contains("\nversion 1.2.3\n"));
        assert!(text.contains("\nlinux /slipway/b/vmlinuz\n"));
        assert!(text.contains("\ninitrd /slipway/b/initrd\n"));
        assert!(text.ends_with("options console=ttyS0 slipway.slot=b\n"));
        assert_eq!(entry_file_name(Slot::B, Some(3)), "slipway-b+3.conf");
        assert_eq!(entry_file_name(Slot::A, None), "slipway-a.conf");
    }
}

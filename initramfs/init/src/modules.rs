//! Loading the kernel modules listed in the initramfs.
//!
//! The image builder resolved the dependency closure from each module's
//! `.modinfo` and wrote `/etc/slipway/modules.load` in load order, so there is
//! no modprobe logic here: load top to bottom.

use nix::errno::Errno;

use crate::console::say;
use crate::error::errno_text;
use crate::sys::Sys;

pub const MODULES_LOAD: &str = "/etc/slipway/modules.load";

/// Module paths from `modules.load` text; blank lines and `#` comments are
/// skipped.
pub fn parse_modules_load(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// Loads every listed module. A module that fails is reported and skipped:
/// it may not matter on this machine (a driver for absent hardware), and if it
/// does, waiting for the root partition fails with a clear message.
/// Returns how many modules failed.
pub fn load_listed(sys: &mut dyn Sys, list_path: &str) -> usize {
    let text = match sys.read_file(list_path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        // A kernel with every needed driver built in needs no list.
        Err(Errno::ENOENT) => return 0,
        Err(errno) => {
            say(
                sys,
                &format!("slipway: reading {list_path}: {}", errno_text(errno)),
            );
            return 1;
        }
    };
    let mut failed = 0;
    for module in parse_modules_load(&text) {
        match sys.finit_module(&module) {
            // Already loaded (built in, or pulled in by an earlier probe).
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(errno) => {
                failed += 1;
                say(
                    sys,
                    &format!("slipway: module {module}: {}", errno_text(errno)),
                );
            }
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::recording::RecordingSys;

    #[test]
    fn parses_paths_skipping_blanks_and_comments() {
        let text = "# generated\n/lib/modules/virtio.ko\n\n  /lib/modules/virtio_blk.ko  \n";
        assert_eq!(
            parse_modules_load(text),
            vec!["/lib/modules/virtio.ko", "/lib/modules/virtio_blk.ko"]
        );
    }

    #[test]
    fn loads_in_order_tolerating_eexist_and_reporting_failures() {
        let mut sys = RecordingSys::new();
        sys.add_file("/dev/console", "").add_file(
            MODULES_LOAD,
            "/lib/modules/a.ko\n/lib/modules/b.ko\n/lib/modules/c.ko\n",
        );
        sys.fail("finit_module /lib/modules/a.ko", Errno::EEXIST)
            .fail("finit_module /lib/modules/b.ko", Errno::ENOEXEC);
        assert_eq!(load_listed(&mut sys, MODULES_LOAD), 1);
        assert_eq!(
            sys.calls,
            vec![
                "finit_module /lib/modules/a.ko",
                "finit_module /lib/modules/b.ko",
                "write /dev/console: slipway: module /lib/modules/b.ko: Exec format error",
                "finit_module /lib/modules/c.ko",
            ]
        );
    }

    #[test]
    fn missing_list_loads_nothing() {
        let mut sys = RecordingSys::new();
        assert_eq!(load_listed(&mut sys, MODULES_LOAD), 0);
        assert!(sys.calls.is_empty());
    }
}

//! Messages on the console.
//!
//! A user-space write to `/dev/console` reaches only one console device (the
//! last `console=` on the command line), while an operator may be watching the
//! serial port or the screen. So every `slipway:` line goes to each device in
//! `/proc/consoles`, falling back to `/dev/console` when that list is not
//! available (before `/proc` is mounted, or after it moved to `/sysroot`).

use std::time::Duration;

pub use crate::sys::types::DEV_CONSOLE;
use crate::sys::Sys;

/// Device names (e.g. `ttyS0`, `tty0`) from `/proc/consoles` text, in order,
/// without duplicates.
pub fn parse_proc_consoles(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for line in text.lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        // The kernel only ever lists plain names; refuse anything that
        // would make `/dev/<name>` point elsewhere.
        if name.contains('/') || name == "." || name == ".." {
            continue;
        }
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    names
}

/// The `/dev` paths of the active consoles; empty if `/proc/consoles` cannot
/// be read.
pub fn console_devices(sys: &mut dyn Sys) -> Vec<String> {
    match sys.read_file("/proc/consoles") {
        Ok(bytes) => parse_proc_consoles(&String::from_utf8_lossy(&bytes))
            .into_iter()
            .map(|name| format!("/dev/{name}"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The terminal for the rescue shell: the first serial console, because
/// that is what a headless server's operator (and the VM tests) can reach;
/// else `/dev/console`.
pub fn rescue_tty(sys: &mut dyn Sys) -> String {
    console_devices(sys)
        .into_iter()
        .find(|dev| dev.starts_with("/dev/ttyS"))
        .unwrap_or_else(|| DEV_CONSOLE.to_string())
}

/// Prints one line on every console. Failures are ignored: there is nowhere
/// else to report them.
pub fn say(sys: &mut dyn Sys, line: &str) {
    let text = format!("{line}\n");
    let mut written = false;
    for dev in console_devices(sys) {
        if sys.write_tty(&dev, &text).is_ok() {
            written = true;
        }
    }
    if !written {
        let _ = sys.write_tty(DEV_CONSOLE, &text);
    }
}

/// Waits (at most `limit` per device) until the consoles have sent what we
/// wrote. Terminal writes are queued and sent by the driver later; without
/// this, the last lines before `reboot(2)` never reach a serial console.
pub fn drain(sys: &mut dyn Sys, limit: Duration) {
    let mut drained = false;
    for dev in console_devices(sys) {
        if sys.drain_tty(&dev, limit).is_ok() {
            drained = true;
        }
    }
    if !drained {
        let _ = sys.drain_tty(DEV_CONSOLE, limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::recording::RecordingSys;

    const CONSOLES: &str = "\
tty0                 -WU (E  p  )    4:7
ttyS0                -W- (E  p a)    4:64
ttyS0                -W- (E  p a)    4:64
netcon0              -W- (E     )
";

    #[test]
    fn parses_names_in_order_without_duplicates() {
        assert_eq!(
            parse_proc_consoles(CONSOLES),
            vec!["tty0", "ttyS0", "netcon0"]
        );
        assert!(parse_proc_consoles("").is_empty());
        assert!(parse_proc_consoles("\n   \n").is_empty());
        assert_eq!(parse_proc_consoles("../sda -W-\nttyS1"), vec!["ttyS1"]);
    }

    #[test]
    fn says_on_every_console_that_exists() {
        let mut sys = RecordingSys::new();
        sys.add_file("/proc/consoles", CONSOLES)
            .add_file("/dev/tty0", "")
            .add_file("/dev/ttyS0", "")
            .add_file("/dev/console", "");
        say(&mut sys, "slipway: hello");
        assert_eq!(
            sys.calls,
            vec![
                "write /dev/tty0: slipway: hello",
                "write /dev/ttyS0: slipway: hello"
            ]
        );
        assert_eq!(rescue_tty(&mut sys), "/dev/ttyS0");
    }

    #[test]
    fn falls_back_to_dev_console() {
        let mut sys = RecordingSys::new();
        sys.add_file("/dev/console", "");
        say(&mut sys, "slipway: hello");
        assert_eq!(sys.written_to("/dev/console"), vec!["slipway: hello"]);
        assert_eq!(rescue_tty(&mut sys), "/dev/console");

        // Listed consoles whose nodes are missing count as unreadable.
        let mut sys = RecordingSys::new();
        sys.add_file("/proc/consoles", "netcon0 -W- (E)\n")
            .add_file("/dev/console", "");
        say(&mut sys, "x");
        assert_eq!(sys.written_to("/dev/console"), vec!["x"]);
    }

    #[test]
    fn rescue_tty_prefers_the_first_serial_console() {
        let mut sys = RecordingSys::new();
        sys.add_file("/proc/consoles", "tty0 -WU\nttyS1 -W-\nttyS0 -W-\n");
        assert_eq!(rescue_tty(&mut sys), "/dev/ttyS1");
    }
}

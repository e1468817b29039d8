//! Power requests (signals, the ACPI power button) and the clean shutdown.

use std::time::Duration;

use nix::mount::MsFlags;
use nix::sys::signal::Signal;

use crate::console::{drain, say};
use crate::mounts::{parse_mountinfo, shutdown_unmounts};
use crate::sys::{Reaped, Reboot, Sys};

/// What the machine should do once everything is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    Reboot,
    PowerOff,
}

impl PowerAction {
    pub fn requested_line(self) -> &'static str {
        match self {
            PowerAction::Reboot => "slipway: reboot requested",
            PowerAction::PowerOff => "slipway: poweroff requested",
        }
    }

    pub fn final_line(self) -> &'static str {
        match self {
            PowerAction::Reboot => "slipway: rebooting",
            PowerAction::PowerOff => "slipway: powering off",
        }
    }

    fn reboot_mode(self) -> Reboot {
        match self {
            PowerAction::Reboot => Reboot::Restart,
            PowerAction::PowerOff => Reboot::PowerOff,
        }
    }
}

/// The signals PID 1 handles, besides SIGCHLD.
///
/// SIGINT is what the kernel sends on ctrl-alt-del once it is disabled as
/// an immediate reboot; SIGTERM, SIGUSR1 and SIGUSR2 are what busybox's
/// `reboot`, `halt` and `poweroff` send to PID 1 (sysvinit's convention).
/// We have no halt-and-stay-on state worth having on a server, so halt
/// powers off.
pub fn action_for_signal(signal: Signal) -> Option<PowerAction> {
    match signal {
        Signal::SIGINT | Signal::SIGTERM => Some(PowerAction::Reboot),
        Signal::SIGUSR1 | Signal::SIGUSR2 => Some(PowerAction::PowerOff),
        _ => None,
    }
}

/// Size of `struct input_event` (24 bytes on x86_64: a 16-byte timeval,
/// then type u16, code u16, value i32).
pub const INPUT_EVENT_SIZE: usize = std::mem::size_of::<libc::input_event>();
const EV_KEY: u16 = 0x01;
const KEY_POWER: u16 = 116;

/// Whether a read from an evdev device holds a power-key press (not the
/// release, not autorepeat). Trailing partial records are ignored.
pub fn power_key_pressed(bytes: &[u8]) -> bool {
    bytes.chunks_exact(INPUT_EVENT_SIZE).any(|event| {
        // The fields after the timeval, in native byte order.
        let Some(tail) = event.get(INPUT_EVENT_SIZE - 8..) else {
            return false;
        };
        let mut fields = [0u8; 8];
        fields.copy_from_slice(tail);
        let [t0, t1, c0, c1, v0, v1, v2, v3] = fields;
        u16::from_ne_bytes([t0, t1]) == EV_KEY
            && u16::from_ne_bytes([c0, c1]) == KEY_POWER
            && i32::from_ne_bytes([v0, v1, v2, v3]) == 1
    })
}

/// How long to let the consoles send the last lines before the machine
/// goes away.
const CONSOLE_DRAIN_LIMIT: Duration = Duration::from_secs(1);

/// Grace periods of the shutdown.
#[derive(Debug, Clone, Copy)]
pub struct ShutdownPolicy {
    /// How long processes get to exit after SIGTERM.
    pub term_grace: Duration,
    /// How long to wait for SIGKILLed processes to be reaped (a process in
    /// uninterruptible sleep may never go; we must still power off).
    pub kill_grace: Duration,
    pub poll: Duration,
}

impl Default for ShutdownPolicy {
    fn default() -> Self {
        ShutdownPolicy {
            term_grace: Duration::from_secs(3),
            kill_grace: Duration::from_secs(1),
            poll: Duration::from_millis(20),
        }
    }
}

/// Reaps until no children remain (true) or `limit` passes (false).
pub fn reap_until_none(sys: &mut dyn Sys, limit: Duration, poll: Duration) -> bool {
    let deadline = sys.now().saturating_add(limit);
    loop {
        match sys.reap() {
            Reaped::Child(..) => continue,
            Reaped::NoChildren => return true,
            Reaped::NoneReady => {
                if sys.now() >= deadline {
                    return false;
                }
                sys.sleep(poll);
            }
        }
    }
}

/// Stops everything and reboots or powers off. `sessions` are session
/// leaders (the rescue shell) to hang up: an interactive shell ignores
/// SIGTERM but exits on SIGHUP. Returns only if `reboot(2)` fails.
pub fn shutdown(sys: &mut dyn Sys, action: PowerAction, sessions: &[i32], policy: &ShutdownPolicy) {
    say(sys, action.requested_line());

    // kill(-1) from PID 1 reaches every process but init itself.
    let _ = sys.kill(-1, Signal::SIGTERM);
    // A stopped process cannot act on SIGTERM until continued.
    let _ = sys.kill(-1, Signal::SIGCONT);
    for &leader in sessions {
        let _ = sys.kill(-leader, Signal::SIGHUP);
    }
    if !reap_until_none(sys, policy.term_grace, policy.poll) {
        let _ = sys.kill(-1, Signal::SIGKILL);
        reap_until_none(sys, policy.kill_grace, policy.poll);
    }

    // Flush before unmounting, so that a filesystem that cannot be
    // unmounted (busy) still has its data on disk.
    sys.sync();
    unmount_all(sys);
    // The root is a read-only squashfs already; the remount matters when
    // someone runs stage 2 on a writable root, and costs nothing otherwise.
    let _ = sys.mount(
        None,
        "/",
        None,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        None,
    );
    sys.sync();

    say(sys, action.final_line());
    drain(sys, CONSOLE_DRAIN_LIMIT);
    let _ = sys.reboot(action.reboot_mode());
}

/// Unmounts every filesystem that can hold data, deepest first; what
/// cannot be unmounted (still busy) is at least remounted read-only so its
/// journal is clean.
fn unmount_all(sys: &mut dyn Sys) {
    let targets = match sys.read_file("/proc/self/mountinfo") {
        Ok(bytes) => shutdown_unmounts(&parse_mountinfo(&String::from_utf8_lossy(&bytes))),
        // Without /proc, fall back to what stage 2 mounted.
        Err(_) => ["/tmp", "/dev/shm", "/run"].map(String::from).to_vec(),
    };
    for target in targets {
        if sys.umount(&target).is_err() {
            let _ = sys.mount(
                None,
                &target,
                None,
                MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                None,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::recording::RecordingSys;
    use nix::errno::Errno;

    fn event(kind: u16, code: u16, value: i32) -> Vec<u8> {
        let mut e = vec![0u8; INPUT_EVENT_SIZE - 8];
        e.extend_from_slice(&kind.to_ne_bytes());
        e.extend_from_slice(&code.to_ne_bytes());
        e.extend_from_slice(&value.to_ne_bytes());
        e
    }

    #[test]
    fn input_event_is_24_bytes_on_x86_64() {
        #[cfg(target_arch = "x86_64")]
        assert_eq!(INPUT_EVENT_SIZE, 24);
    }

    #[test]
    fn recognises_a_power_key_press() {
        let syn = event(0, 0, 0);
        let press = event(EV_KEY, KEY_POWER, 1);
        let release = event(EV_KEY, KEY_POWER, 0);
        let other_key = event(EV_KEY, 115, 1);
        assert!(power_key_pressed(
            &[syn.clone(), press.clone(), syn.clone()].concat()
        ));
        assert!(!power_key_pressed(
            &[release, syn.clone(), other_key].concat()
        ));
        assert!(!power_key_pressed(&press[..INPUT_EVENT_SIZE - 1]));
        assert!(!power_key_pressed(&[]));
    }

    #[test]
    fn maps_signals_like_busybox_expects() {
        assert_eq!(
            action_for_signal(Signal::SIGTERM),
            Some(PowerAction::Reboot)
        );
        assert_eq!(action_for_signal(Signal::SIGINT), Some(PowerAction::Reboot));
        assert_eq!(
            action_for_signal(Signal::SIGUSR1),
            Some(PowerAction::PowerOff)
        );
        assert_eq!(
            action_for_signal(Signal::SIGUSR2),
            Some(PowerAction::PowerOff)
        );
        assert_eq!(action_for_signal(Signal::SIGCHLD), None);
    }

    const MOUNTINFO: &str = "\
22 1 254:2 / / ro - squashfs /dev/vda2 ro
23 22 0:5 / /dev rw - devtmpfs devtmpfs rw
24 22 0:21 / /proc rw - proc proc rw
26 22 0:22 / /run rw - tmpfs tmpfs rw
28 23 0:24 / /dev/shm rw - tmpfs tmpfs rw
29 22 0:25 / /tmp rw - tmpfs tmpfs rw
";

    fn machine() -> RecordingSys {
        let mut sys = RecordingSys::new();
        sys.add_file("/dev/console", "")
            .add_file("/proc/self/mountinfo", MOUNTINFO);
        sys
    }

    #[test]
    fn poweroff_after_children_exit_on_sigterm() {
        let mut sys = machine();
        sys.script_reaps([
            Reaped::Child(100, crate::units::ExitOutcome::Success),
            Reaped::NoneReady,
            Reaped::NoneReady,
            Reaped::Child(42, crate::units::ExitOutcome::Signal(15)),
        ]);
        sys.fail("umount /run", Errno::EBUSY);
        shutdown(
            &mut sys,
            PowerAction::PowerOff,
            &[42],
            &ShutdownPolicy::default(),
        );
        assert_eq!(
            sys.calls,
            vec![
                "write /dev/console: slipway: poweroff requested",
                "kill -1 SIGTERM",
                "kill -1 SIGCONT",
                "kill -42 SIGHUP",
                "sleep 20ms",
                "sleep 20ms",
                "sync",
                "umount /tmp",
                "umount /dev/shm",
                "umount /run",
                "mount --remount /run ro",
                "mount --remount / ro",
                "sync",
                "write /dev/console: slipway: powering off",
                "drain /dev/console",
                "reboot RB_POWER_OFF",
            ]
        );
    }

    #[test]
    fn stubborn_processes_are_killed_after_three_seconds() {
        let mut sys = machine();
        sys.script_reaps(vec![Reaped::NoneReady; 1000]);
        shutdown(
            &mut sys,
            PowerAction::Reboot,
            &[],
            &ShutdownPolicy::default(),
        );
        let calls = sys.calls_without_polling();
        assert_eq!(
            calls[..4],
            [
                "write /dev/console: slipway: reboot requested",
                "kill -1 SIGTERM",
                "kill -1 SIGCONT",
                "kill -1 SIGKILL",
            ]
        );
        // 3 s of SIGTERM grace, then 1 s for the killed ones to be reaped.
        assert_eq!(sys.clock(), Duration::from_secs(4));
        assert_eq!(
            calls[calls.len() - 3..],
            [
                "write /dev/console: slipway: rebooting",
                "drain /dev/console",
                "reboot RB_AUTOBOOT"
            ]
        );
    }

    #[test]
    fn without_proc_unmounts_what_stage2_mounted() {
        let mut sys = RecordingSys::new();
        sys.add_file("/dev/console", "");
        shutdown(
            &mut sys,
            PowerAction::Reboot,
            &[],
            &ShutdownPolicy::default(),
        );
        let umounts: Vec<&String> = sys
            .calls
            .iter()
            .filter(|c| c.starts_with("umount"))
            .collect();
        assert_eq!(umounts, ["umount /tmp", "umount /dev/shm", "umount /run"]);
    }
}

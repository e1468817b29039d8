//! The Slipway init: one static binary, two stages.
//!
//! In the initramfs it is `/init` and runs [`stage1`] (the initramfs carries
//! `/etc/initrd-release`); on the real root it is `/sbin/init` and runs
//! [`stage2`]. The boot steps are written against the [`sys::Sys`] seam so
//! tests assert the exact system calls; `unsafe` lives only in [`ioctl`].
//!
//! A PID 1 panic is a kernel panic, hence the denied lints below and the
//! `catch_unwind` around each stage in [`main`].
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod accounts;
pub use slipway_boot_contract::cmdline;
pub mod console;
pub mod control;
pub mod dm;
pub mod error;
pub mod gpt_grow;
pub mod ioctl;
pub mod modules;
pub mod mounts;
pub use slipway_boot_contract::os_release;
pub mod partition;
pub mod power;
pub mod service;
pub mod shell;
pub mod stage1;
pub mod stage2;
pub mod state;
pub mod supervise;
pub mod sys;
pub mod tmpfiles;
pub mod units;
pub mod var;
pub mod verity;
pub mod verity_error;

use std::any::Any;
use std::ffi::OsString;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use crate::console::{say, DEV_CONSOLE};
use crate::error::chain;
use crate::power::{shutdown, PowerAction, ShutdownPolicy};
use crate::supervise::Supervisor;
use crate::sys::{LinuxSys, Reboot, Sys};

const HELP: &str = "\
slipway-init: the Slipway PID 1

Started by the kernel, never by hand:
  /init in the initramfs (stage 1): mounts the slot's read-only root,
      selected by slipway.slot= and slipway.root=PARTUUID=<uuid> on the
      kernel command line, through dm-verity (slipway.roothash=,
      slipway.verity_hash=PARTUUID=<uuid>, slipway.verity_salt=,
      slipway.verity_blocks=; slipway.verity=off boots it unverified),
      mounts /var from the disk's var partition (grown to fill the disk
      at first boot), and switches to it;
  /sbin/init on the root (stage 2): mounts /dev/pts, /tmp, cgroup2 and
      the rest, makes /etc an overlay kept on /var, binds /home and /root
      from /var, writes /etc/machine-id once, makes the folders
      tmpfiles.d's `d` lines name (/usr/lib/tmpfiles.d, /etc/tmpfiles.d), runs
      /usr/bin/slipway-cloud-config boot local (user-data from fw_cfg or a
      seed disk; runcmd and network sources come later, from
      slipway-cloud-config.service), sets the hostname
      from /etc/hostname, prints the ready line, starts multi-user.target
      and the units it wants (systemd unit files; control them with
      slipctl), runs a rescue shell on the serial console, and on a
      reboot or poweroff request stops the services in reverse order
      before it reboots or powers off.

Options (only when not PID 1):
  --help       print this text
  --version    print the version
";

/// The whole program; `main.rs` only calls this. Returns the exit code,
/// which only matters when not running as PID 1.
pub fn main(args: Vec<OsString>) -> i32 {
    if nix::unistd::getpid().as_raw() != 1 {
        return not_pid1(&args);
    }
    // Arguments are ignored as PID 1: the kernel passes unknown command
    // line words to init, and none of them are for us.
    install_panic_hook();
    let mut sys = LinuxSys::new();
    if sys.exists(stage1::INITRD_RELEASE) {
        run_stage1(&mut sys)
    } else {
        run_stage2(&mut sys)
    }
}

fn not_pid1(args: &[OsString]) -> i32 {
    let mut out = std::io::stdout();
    match args.get(1).and_then(|a| a.to_str()) {
        Some("--help" | "-h") => {
            let _ = out.write_all(HELP.as_bytes());
            0
        }
        Some("--version" | "-V") => {
            let _ = writeln!(out, "slipway-init {}", env!("CARGO_PKG_VERSION"));
            0
        }
        _ => {
            let _ = writeln!(
                std::io::stderr(),
                "slipway-init: not running as PID 1; this is the system's init and is \
                 started by the kernel (try --help)"
            );
            1
        }
    }
}

/// Prints where a panic happened; the stage's `catch_unwind` then decides
/// what to do (stage 1 reboots, stage 2 keeps supervising).
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        say(
            &mut LinuxSys::new(),
            &format!(
                "slipway: panic{location}: {}",
                panic_message(info.payload())
            ),
        );
    }));
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Returning from PID 1 panics the kernel, which without `panic=` on the
/// command line hangs forever. Keep asking for the reboot instead.
fn reboot_forever(sys: &mut dyn Sys, how: Reboot) -> ! {
    loop {
        sys.sleep(Duration::from_secs(5));
        let _ = sys.reboot(how);
    }
}

fn run_stage1(sys: &mut LinuxSys) -> ! {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| stage1::run(sys))) {
        let reason = format!("internal error: {}", panic_message(payload.as_ref()));
        let _ = catch_unwind(AssertUnwindSafe(|| stage1::fail(sys, &reason)));
    }
    // Only reached when reboot(2) itself failed.
    reboot_forever(sys, Reboot::Restart)
}

/// How many internal errors stage 2 tolerates before it reboots rather
/// than run a supervisor that keeps failing.
const STAGE2_MAX_FAILURES: u32 = 3;

fn run_stage2(sys: &mut LinuxSys) -> ! {
    let stage2_start = sys.boot_time();
    let tty = match catch_unwind(AssertUnwindSafe(|| stage2::prepare(sys))) {
        Ok(tty) => tty,
        Err(payload) => {
            say(
                sys,
                &format!(
                    "slipway: stage2: internal error: {}",
                    panic_message(payload.as_ref())
                ),
            );
            DEV_CONSOLE.to_string()
        }
    };

    let (manager, control) = match catch_unwind(AssertUnwindSafe(|| {
        stage2::start_services(sys, stage2_start)
    })) {
        Ok(started) => started,
        Err(payload) => {
            say(
                sys,
                &format!(
                    "slipway: services: internal error: {}",
                    panic_message(payload.as_ref())
                ),
            );
            (None, None)
        }
    };
    let mut supervisor = Supervisor::new(tty, manager, control);
    let mut failures = 0;
    let action = loop {
        let reason = match catch_unwind(AssertUnwindSafe(|| supervisor.run(sys))) {
            Ok(Ok(action)) => break action,
            Ok(Err(e)) => chain(&e),
            Err(payload) => format!("internal error: {}", panic_message(payload.as_ref())),
        };
        failures += 1;
        say(sys, &format!("slipway: stage2: {reason}"));
        if failures >= STAGE2_MAX_FAILURES {
            break PowerAction::Reboot;
        }
        sys.sleep(Duration::from_secs(1));
    };

    supervisor.close_services();
    let sessions: Vec<i32> = supervisor.shell_pid().into_iter().collect();
    let _ = catch_unwind(AssertUnwindSafe(|| {
        shutdown(sys, action, &sessions, &ShutdownPolicy::default())
    }));
    let how = match action {
        PowerAction::Reboot => Reboot::Restart,
        PowerAction::PowerOff => Reboot::PowerOff,
    };
    reboot_forever(sys, how)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages_from_str_and_string() {
        let p = catch_unwind(|| std::panic::panic_any("static")).unwrap_err();
        assert_eq!(panic_message(p.as_ref()), "static");
        let p = catch_unwind(|| std::panic::panic_any(format!("built {}", 1))).unwrap_err();
        assert_eq!(panic_message(p.as_ref()), "built 1");
        let p = catch_unwind(|| std::panic::panic_any(5u8)).unwrap_err();
        assert_eq!(panic_message(p.as_ref()), "unknown panic");
    }
}

//! The only `unsafe` in the init: two ioctls and a pre-exec hook, each
//! wrapped in a safe function.
#![allow(unsafe_code)]

use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::errno::Errno;
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow};

// EVIOCGNAME(len): the device name of an evdev node (linux/input.h).
nix::ioctl_read_buf!(eviocgname, b'E', 0x06, u8);
// TIOCSCTTY: make the terminal on the fd our controlling terminal.
nix::ioctl_write_int_bad!(tiocsctty, libc::TIOCSCTTY);
// TIOCOUTQ: bytes still waiting in a terminal's output queue.
nix::ioctl_read_bad!(tiocoutq, libc::TIOCOUTQ, libc::c_int);

/// The name an input device reports, e.g. `Power Button`.
pub fn input_device_name(device: &impl AsFd) -> Result<String, Errno> {
    let mut buf = [0u8; 256];
    // SAFETY: the fd is open for the duration of the call (borrowed), and
    // the request encodes `buf.len()`, so the kernel writes within `buf`.
    unsafe { eviocgname(device.as_fd().as_raw_fd(), &mut buf) }?;
    let name = buf.split(|b| *b == 0).next().unwrap_or_default();
    Ok(String::from_utf8_lossy(name).into_owned())
}

/// How many bytes written to a terminal have not been sent yet.
pub fn terminal_output_pending(terminal: &impl AsFd) -> Result<usize, Errno> {
    let mut pending: libc::c_int = 0;
    // SAFETY: the fd is open for the duration of the call, and TIOCOUTQ
    // writes exactly one int through the pointer, which points to one.
    unsafe { tiocoutq(terminal.as_fd().as_raw_fd(), &mut pending) }?;
    Ok(usize::try_from(pending).unwrap_or(0))
}

/// Prepares the spawned program's process: unblocks every signal, and
/// makes it the leader of a new session whose controlling terminal is its
/// stdin, so that ctrl-c and job control work in the rescue shell.
pub fn spawn_in_new_session_on_stdin_tty(command: &mut Command) {
    // SAFETY: the closure runs in the child between fork and exec, where
    // only async-signal-safe calls are allowed. It makes three system calls
    // (sigprocmask, setsid, ioctl) and builds an io::Error from an errno,
    // none of which allocates or takes a lock.
    unsafe {
        command.pre_exec(|| {
            // PID 1 blocks the signals it reads from its signalfd; a mask
            // survives fork and exec, and a shell with SIGINT blocked
            // ignores ctrl-c.
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
                .map_err(std::io::Error::from)?;
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            // Fails on a terminal that cannot be a controlling tty (e.g.
            // /dev/console): the shell then runs without job control, which
            // is better than no shell.
            let _ = tiocsctty(libc::STDIN_FILENO, 0);
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviocgname_on_a_non_input_fd_is_an_error() {
        let file = tempfile::tempfile().unwrap();
        assert!(input_device_name(&file).is_err());
    }

    #[test]
    fn output_queue_of_a_non_terminal_is_an_error() {
        let file = tempfile::tempfile().unwrap();
        assert_eq!(terminal_output_pending(&file), Err(Errno::ENOTTY));
    }

    #[test]
    fn child_starts_with_no_signal_blocked() {
        use nix::sys::signal::Signal;
        let mut blocked = SigSet::empty();
        blocked.add(Signal::SIGUSR1);
        // Test threads are separate; this only affects the current one,
        // whose mask the forked child inherits.
        blocked.thread_block().unwrap();
        // Not through a shell: dash clears its mask at startup.
        let mut cmd = Command::new("grep");
        cmd.args(["SigBlk", "/proc/self/status"]);
        spawn_in_new_session_on_stdin_tty(&mut cmd);
        let out = cmd.output();
        blocked.thread_unblock().unwrap();
        let out = String::from_utf8_lossy(&out.unwrap().stdout).into_owned();
        assert_eq!(out.trim(), "SigBlk:\t0000000000000000");
    }

    #[test]
    fn child_runs_in_its_own_session() {
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "cut -d' ' -f6 /proc/self/stat"]);
        spawn_in_new_session_on_stdin_tty(&mut cmd);
        cmd.stdout(std::process::Stdio::piped());
        let child = cmd.spawn().unwrap();
        let pid = child.id();
        let out = child.wait_with_output().unwrap();
        // Field 6 of /proc/<pid>/stat is the session id: the shell's pid,
        // since setsid made it the session leader.
        let sid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        assert_eq!(sid, pid);
    }
}

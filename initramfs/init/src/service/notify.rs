//! `Type=notify`: the datagram socket services report readiness on
//! (`sd_notify(3)`), and what a message means.
//!
//! PID 1 owns one `AF_UNIX` datagram socket ([`NOTIFY_SOCKET`], with
//! `SO_PASSCRED`) and passes its path as `$NOTIFY_SOCKET` to notify
//! services. A message belongs to the unit whose main or control process
//! sent it, or, for any other sender, the unit whose cgroup holds it.
//! libsystemd and go-systemd only read the variable, so the socket need
//! not be systemd's: `/run/systemd/system` is not created, as dockerd
//! would then pick the systemd cgroup driver (which needs D-Bus).

use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use super::phase::Phase;
use crate::units::ServiceType;

/// Where PID 1 listens for notifications.
pub const NOTIFY_SOCKET: &str = "/run/slipway/notify";

/// What one notification says (`KEY=value` lines; unknown keys are
/// ignored, as systemd does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// `READY=1`.
    pub ready: bool,
    /// `STOPPING=1`: tolerated, nothing to do.
    pub stopping: bool,
    /// `RELOADING=1`: tolerated, nothing to do.
    pub reloading: bool,
    /// `STATUS=…`, shown by `slipctl status`.
    pub status: Option<String>,
    /// `MAINPID=n`.
    pub main_pid: Option<i32>,
}

/// Parses a notification's payload.
pub fn parse(payload: &str) -> Message {
    let mut m = Message::default();
    for line in payload.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key {
            "READY" => m.ready = value == "1",
            "STOPPING" => m.stopping = value == "1",
            "RELOADING" => m.reloading = value == "1",
            "STATUS" => m.status = Some(value.to_string()),
            "MAINPID" => m.main_pid = value.parse().ok().filter(|p: &i32| *p > 0),
            _ => {}
        }
    }
    m
}

/// Whether a message ends the start phase of a unit: `READY=1` from a
/// `Type=notify` service still in its `ExecStart=` phase.
pub fn ends_start(kind: Option<ServiceType>, phase: Phase, m: &Message) -> bool {
    m.ready && kind == Some(ServiceType::Notify) && phase == Phase::Start
}

/// PID 1's end of the notification socket.
#[derive(Debug)]
pub struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
}

impl NotifySocket {
    /// Binds `path` (a stale socket file from an earlier run is replaced).
    pub fn bind(path: &Path) -> Result<NotifySocket, String> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        let _ = std::fs::remove_file(path);
        let socket =
            UnixDatagram::bind(path).map_err(|e| format!("binding {}: {e}", path.display()))?;
        crate::ioctl::pass_credentials(&socket)
            .map_err(|e| format!("SO_PASSCRED on {}: {e}", path.display()))?;
        // Sending to a unix socket needs write permission on its file, and
        // services run as their `User=` (etcd as `etcd`): everyone may
        // send, as to systemd's notify socket. Who sent is known from the
        // kernel's credentials, not from the file's mode.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777))
            .map_err(|e| format!("making {} writable for services: {e}", path.display()))?;
        socket
            .set_nonblocking(true)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(NotifySocket {
            socket,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// The messages waiting, with their senders' pids (bounded, so a
    /// chatty service cannot starve the loop; the rest comes next poll).
    pub fn receive(&self) -> Vec<(Option<i32>, Message)> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 4096];
        for _ in 0..64 {
            match crate::ioctl::recv_with_pid(&self.socket, &mut buf) {
                Ok((n, pid)) => {
                    let text = String::from_utf8_lossy(buf.get(..n).unwrap_or_default());
                    out.push((pid, parse(&text)));
                }
                Err(Errno::EINTR) => continue,
                Err(_) => break,
            }
        }
        out
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_sd_notify_sends() {
        let m = parse("READY=1\nSTATUS=Processing requests\nMAINPID=4711\nX_FOO=bar\nnoise\n");
        assert_eq!(
            m,
            Message {
                ready: true,
                status: Some("Processing requests".into()),
                main_pid: Some(4711),
                ..Message::default()
            }
        );
        let m = parse("STOPPING=1\nRELOADING=1\nMAINPID=-3\nREADY=0");
        assert!(m.stopping && m.reloading && !m.ready);
        assert_eq!(m.main_pid, None);
        assert_eq!(parse("STATUS=a=b").status.as_deref(), Some("a=b"));
    }

    #[test]
    fn only_ready_of_a_starting_notify_service_ends_the_start() {
        let ready = parse("READY=1");
        let status = parse("STATUS=x");
        let notify = Some(ServiceType::Notify);
        assert!(ends_start(notify, Phase::Start, &ready));
        assert!(!ends_start(notify, Phase::Start, &status));
        assert!(!ends_start(notify, Phase::Running, &ready));
        assert!(!ends_start(notify, Phase::StartPre, &ready));
        assert!(!ends_start(Some(ServiceType::Simple), Phase::Start, &ready));
        assert!(!ends_start(None, Phase::Start, &ready));
    }

    #[test]
    fn messages_carry_the_senders_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let n = NotifySocket::bind(&path).unwrap();
        // A stale file is replaced on the next bind.
        drop(n);
        std::fs::write(&path, "").unwrap();
        let n = NotifySocket::bind(&path).unwrap();
        // Services that run as another user can send too.
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o777, "{mode:o}");
        let c = UnixDatagram::unbound().unwrap();
        c.send_to(b"READY=1\nSTATUS=up", &path).unwrap();
        let got = n.receive();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, Some(std::process::id() as i32));
        assert!(got[0].1.ready);
        assert_eq!(got[0].1.status.as_deref(), Some("up"));
        assert!(n.receive().is_empty());
    }
}

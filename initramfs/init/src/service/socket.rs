//! Socket units: PID 1 binds and listens, watches the fds in its poll
//! loop, and on the first readable event starts the service, which gets
//! the fds as 3, 4, … (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`).
//! While the service runs the fds are not watched; once it is inactive
//! again they are, so a later connection starts it again.

use std::net::{TcpListener, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::{Path, PathBuf};

use super::phase::Phase;
use super::spawn::{lookup_account, lookup_group};
use crate::units::{ListenAddress, Socket};

/// The bound fds of a started socket unit.
#[derive(Debug)]
pub struct Listening {
    pub fds: Vec<OwnedFd>,
    /// Socket files made, for `RemoveOnStop=`.
    pub paths: Vec<PathBuf>,
    pub remove_on_stop: bool,
}

impl Listening {
    pub fn borrowed(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.fds.iter().map(|f| f.as_fd())
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        if self.remove_on_stop {
            for p in &self.paths {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// Whether PID 1 watches a listening socket unit's fds: only while its
/// service is down with nothing queued. A service that hit its start
/// limit is not started again by traffic (a pending connection would
/// otherwise trigger a start on every poll); a start by hand resets it.
pub fn watch(service_phase: Phase, service_job_queued: bool, service_result: Option<&str>) -> bool {
    let down = match service_phase {
        Phase::Dead | Phase::Condition => true,
        Phase::Failed => !service_result.is_some_and(|r| r.starts_with("start limit hit")),
        _ => false,
    };
    down && !service_job_queued
}

/// Binds every `Listen…=` of `socket`; `root` holds `/etc/passwd` and
/// `/etc/group` for `SocketUser=`/`SocketGroup=`.
pub fn open(socket: &Socket, root: &Path) -> Result<Listening, String> {
    let uid = match &socket.user {
        Some(u) => Some(
            lookup_account(root, u, None)
                .map_err(|e| format!("Socket{e}"))?
                .uid,
        ),
        None => None,
    };
    let gid = match &socket.group {
        Some(g) => Some(lookup_group(root, g).map_err(|e| format!("Socket{e}"))?),
        None => None,
    };
    let mut out = Listening {
        fds: Vec::new(),
        paths: Vec::new(),
        remove_on_stop: socket.remove_on_stop,
    };
    for l in &socket.listen {
        let fd: OwnedFd = match &l.address {
            ListenAddress::Path(p) => {
                let path = Path::new(p);
                if let Some(dir) = path.parent() {
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(socket.directory_mode)
                        .create(dir)
                        .map_err(|e| format!("creating {}: {e}", dir.display()))?;
                }
                remove_stale_socket(path)?;
                let fd: OwnedFd = if l.datagram {
                    UnixDatagram::bind(path).map(OwnedFd::from)
                } else {
                    UnixListener::bind(path).map(OwnedFd::from)
                }
                .map_err(|e| format!("binding {p}: {e}"))?;
                out.paths.push(path.to_path_buf());
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(socket.mode))
                    .map_err(|e| format!("SocketMode= on {p}: {e}"))?;
                if uid.is_some() || gid.is_some() {
                    std::os::unix::fs::chown(path, uid, gid)
                        .map_err(|e| format!("SocketUser=/SocketGroup= on {p}: {e}"))?;
                }
                fd
            }
            ListenAddress::Inet(a) => bind_inet(a, l.datagram)?,
        };
        out.fds.push(fd);
    }
    Ok(out)
}

/// A socket file left from an earlier run is replaced; anything else at
/// the path is an error (never delete a user's file).
fn remove_stale_socket(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)
            .map_err(|e| format!("removing the old socket {}: {e}", path.display())),
        Ok(_) => Err(format!(
            "{} exists and is not a socket; not replacing it",
            path.display()
        )),
        Err(_) => Ok(()),
    }
}

/// `[::]:port` listens on IPv4 and IPv6; a kernel without IPv6 gets
/// `0.0.0.0:port`.
fn bind_inet(addr: &str, datagram: bool) -> Result<OwnedFd, String> {
    let bind = |a: &str| -> std::io::Result<OwnedFd> {
        if datagram {
            UdpSocket::bind(a).map(OwnedFd::from)
        } else {
            TcpListener::bind(a).map(OwnedFd::from)
        }
    };
    match bind(addr) {
        Ok(fd) => Ok(fd),
        Err(e) => match addr.strip_prefix("[::]:") {
            Some(port) => {
                bind(&format!("0.0.0.0:{port}")).map_err(|_| format!("binding {addr}: {e}"))
            }
            None => Err(format!("binding {addr}: {e}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::Listen;

    #[test]
    fn watched_only_while_the_service_is_down_and_idle() {
        assert!(watch(Phase::Dead, false, None));
        assert!(watch(Phase::Failed, false, Some("exit status 1")));
        assert!(watch(Phase::Condition, false, None));
        assert!(!watch(Phase::Dead, true, None));
        for p in [
            Phase::StartPre,
            Phase::Start,
            Phase::Running,
            Phase::AutoRestart,
            Phase::StopSigterm,
        ] {
            assert!(!watch(p, false, None), "{p:?}");
        }
        assert!(!watch(
            Phase::Failed,
            false,
            Some("start limit hit (restarting too often)")
        ));
    }

    #[test]
    fn binds_paths_with_mode_and_group_and_removes_on_stop() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        std::fs::write(dir.path().join("etc/group"), "root:x:0:\ndocker:x:233:\n").unwrap();
        let sock_path = dir.path().join("run/sub/docker.sock");
        // A stale socket from an earlier boot is replaced.
        std::fs::create_dir_all(sock_path.parent().unwrap()).unwrap();
        drop(UnixListener::bind(&sock_path).unwrap());
        let socket = Socket {
            listen: vec![
                Listen {
                    datagram: false,
                    address: ListenAddress::Path(sock_path.to_str().unwrap().into()),
                },
                Listen {
                    datagram: false,
                    address: ListenAddress::Inet("127.0.0.1:0".into()),
                },
            ],
            mode: 0o660,
            user: Some("root".into()),
            group: Some("docker".into()),
            remove_on_stop: true,
            ..Socket::default()
        };
        let l = open(&socket, dir.path()).unwrap();
        assert_eq!(l.fds.len(), 2);
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(&sock_path).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o660);
        assert_eq!(meta.gid(), 233);
        // It listens: a client connects before anyone accepts.
        std::os::unix::net::UnixStream::connect(&sock_path).unwrap();
        drop(l);
        assert!(!sock_path.exists());

        std::fs::write(&sock_path, "not a socket").unwrap();
        let e = open(&socket, dir.path()).unwrap_err();
        assert!(e.contains("is not a socket"), "{e}");
        let bad = Socket {
            group: Some("nogroup".into()),
            ..socket
        };
        assert_eq!(
            open(&bad, dir.path()).unwrap_err(),
            "SocketGroup=nogroup: no such group in /etc/group"
        );
    }
}

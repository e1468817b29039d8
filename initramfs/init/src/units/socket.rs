//! The `[Socket]` section of a `.socket` unit: what PID 1 listens on for
//! a service it starts on the first connection (`Accept=no` only).

/// Where a socket listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddress {
    /// An absolute file-system path (an `AF_UNIX` socket).
    Path(String),
    /// A TCP or UDP address: `[::]:2375` for a bare port (both IPv4 and
    /// IPv6, as systemd binds it), or the `addr:port` as written.
    Inet(String),
}

/// One `ListenStream=`/`ListenDatagram=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// `ListenDatagram=` (else `ListenStream=`).
    pub datagram: bool,
    pub address: ListenAddress,
}

/// The `[Socket]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socket {
    /// In the order written; they become fds 3, 4, … of the service.
    pub listen: Vec<Listen>,
    /// `SocketMode=`, default 0666.
    pub mode: u32,
    /// `SocketUser=`/`SocketGroup=`: owner of the socket file.
    pub user: Option<String>,
    pub group: Option<String>,
    /// `DirectoryMode=`, default 0755: for parents PID 1 creates.
    pub directory_mode: u32,
    /// `Service=`; without it the service of the same name.
    pub service: Option<String>,
    /// `RemoveOnStop=`: the socket files are removed when the unit stops.
    pub remove_on_stop: bool,
    /// `FileDescriptorName=`; without it the unit's name.
    pub fd_name: Option<String>,
}

impl Default for Socket {
    fn default() -> Socket {
        Socket {
            listen: Vec::new(),
            mode: 0o666,
            user: None,
            group: None,
            directory_mode: 0o755,
            service: None,
            remove_on_stop: false,
            fd_name: None,
        }
    }
}

impl Socket {
    /// The service the socket starts: `Service=`, or `foo.service` for
    /// `foo.socket`.
    pub fn service_name(&self, socket_unit: &str) -> String {
        match &self.service {
            Some(s) => s.clone(),
            None => format!(
                "{}.service",
                socket_unit.strip_suffix(".socket").unwrap_or(socket_unit)
            ),
        }
    }

    /// The name in `LISTEN_FDNAMES` for each of its fds.
    pub fn fd_name(&self, socket_unit: &str) -> String {
        self.fd_name
            .clone()
            .unwrap_or_else(|| socket_unit.to_string())
    }
}

/// What an assignment in `[Socket]` did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Applied {
    Done,
    /// Not a key of `[Socket]` known here.
    Unknown,
    /// A bad value, ignored.
    Warning(String),
    /// The unit cannot work as written (`Accept=yes`).
    Error(String),
}

/// Applies one `key=value` (specifiers already expanded) of `[Socket]`.
pub(crate) fn assign(socket: &mut Socket, key: &str, value: &str) -> Applied {
    match key {
        "ListenStream" | "ListenDatagram" => {
            if value.is_empty() {
                socket.listen.clear();
                return Applied::Done;
            }
            match listen_address(value) {
                Ok(address) => socket.listen.push(Listen {
                    datagram: key == "ListenDatagram",
                    address,
                }),
                Err(e) => return Applied::Warning(format!("{key}={value}: {e}, ignoring")),
            }
        }
        "SocketMode" | "DirectoryMode" => match u32::from_str_radix(value, 8) {
            Ok(m) if m <= 0o7777 => {
                if key == "SocketMode" {
                    socket.mode = m;
                } else {
                    socket.directory_mode = m;
                }
            }
            _ => return Applied::Warning(format!("{key}={value}: not an octal mode, ignoring")),
        },
        "SocketUser" | "SocketGroup" => {
            let v = (!value.is_empty()).then(|| value.to_string());
            if key == "SocketUser" {
                socket.user = v;
            } else {
                socket.group = v;
            }
        }
        "Service" => {
            if !value.ends_with(".service") {
                return Applied::Warning(format!("Service={value}: not a .service unit, ignoring"));
            }
            socket.service = Some(value.to_string());
        }
        "RemoveOnStop" => match super::syntax::parse_bool(value) {
            Some(b) => socket.remove_on_stop = b,
            None => return Applied::Warning(format!("{key}={value}: not a boolean, ignoring")),
        },
        "FileDescriptorName" => {
            let ok = !value.is_empty()
                && value.len() <= 255
                && value.chars().all(|c| c.is_ascii_graphic() && c != ':');
            if !ok {
                return Applied::Warning(format!(
                    "{key}={value}: not a valid name (printable ASCII without ':'), ignoring"
                ));
            }
            socket.fd_name = Some(value.to_string());
        }
        "Accept" => {
            match super::syntax::parse_bool(value) {
                Some(false) => {}
                Some(true) => return Applied::Error(
                    "Accept=yes (one service instance per connection) is not supported; refusing"
                        .to_string(),
                ),
                None => return Applied::Warning(format!("{key}={value}: not a boolean, ignoring")),
            }
        }
        // Harmless for a listening socket PID 1 hands over: the service
        // sets its own options on the fd.
        "Backlog" | "PassCredentials" | "PassSecurity" | "ReusePort" | "KeepAlive" | "NoDelay"
        | "ReceiveBuffer" | "SendBuffer" => {
            return Applied::Warning(format!(
                "unsupported directive {key}= in [Socket], ignoring"
            ))
        }
        _ => return Applied::Unknown,
    }
    Applied::Done
}

/// `/run/x.sock`, `2375`, `127.0.0.1:2375`, `[::1]:2375`.
fn listen_address(value: &str) -> Result<ListenAddress, String> {
    if value.starts_with('/') {
        return Ok(ListenAddress::Path(value.to_string()));
    }
    if value.starts_with('@') {
        return Err("abstract sockets are not supported".to_string());
    }
    if let Ok(port) = value.parse::<u16>() {
        if port == 0 {
            return Err("port 0".to_string());
        }
        return Ok(ListenAddress::Inet(format!("[::]:{port}")));
    }
    match value.parse::<std::net::SocketAddr>() {
        Ok(_) => Ok(ListenAddress::Inet(value.to_string())),
        Err(_) => Err("neither an absolute path, a port nor an address:port".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_socket_keys() {
        let mut s = Socket::default();
        for (k, v) in [
            ("ListenStream", "/run/docker.sock"),
            ("SocketMode", "0660"),
            ("SocketUser", "root"),
            ("SocketGroup", "docker"),
            ("ListenStream", "2375"),
            ("ListenDatagram", "127.0.0.1:514"),
            ("DirectoryMode", "0750"),
            ("RemoveOnStop", "yes"),
            ("FileDescriptorName", "api"),
            ("Accept", "no"),
        ] {
            assert_eq!(assign(&mut s, k, v), Applied::Done, "{k}={v}");
        }
        assert_eq!(
            s.listen,
            vec![
                Listen {
                    datagram: false,
                    address: ListenAddress::Path("/run/docker.sock".into())
                },
                Listen {
                    datagram: false,
                    address: ListenAddress::Inet("[::]:2375".into())
                },
                Listen {
                    datagram: true,
                    address: ListenAddress::Inet("127.0.0.1:514".into())
                },
            ]
        );
        assert_eq!((s.mode, s.directory_mode), (0o660, 0o750));
        assert_eq!(s.group.as_deref(), Some("docker"));
        assert!(s.remove_on_stop);
        assert_eq!(s.fd_name("docker.socket"), "api");
        assert_eq!(s.service_name("docker.socket"), "docker.service");
        assert_eq!(assign(&mut s, "Service", "dockerd.service"), Applied::Done);
        assert_eq!(s.service_name("docker.socket"), "dockerd.service");
        assert_eq!(assign(&mut s, "ListenStream", ""), Applied::Done);
        assert!(s.listen.is_empty());
    }

    #[test]
    fn bad_values_and_accept_yes() {
        let mut s = Socket::default();
        assert!(matches!(
            assign(&mut s, "ListenStream", "run/x.sock"),
            Applied::Warning(w) if w.contains("neither an absolute path")
        ));
        assert!(matches!(
            assign(&mut s, "ListenStream", "@abstract"),
            Applied::Warning(_)
        ));
        assert!(matches!(
            assign(&mut s, "SocketMode", "rw"),
            Applied::Warning(_)
        ));
        assert!(matches!(
            assign(&mut s, "Service", "x.socket"),
            Applied::Warning(_)
        ));
        assert!(matches!(
            assign(&mut s, "Accept", "yes"),
            Applied::Error(e) if e.contains("Accept=yes")
        ));
        assert_eq!(assign(&mut s, "Frobnicate", "1"), Applied::Unknown);
        assert!(s.listen.is_empty());
        assert_eq!(s.fd_name("x.socket"), "x.socket");
    }
}

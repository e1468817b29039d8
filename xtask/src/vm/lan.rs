//! A private Ethernet segment between QEMU machines: a learning switch on
//! the host, in a thread of this process, that QEMU's `-netdev dgram`
//! backends talk to over unix datagram sockets.
//!
//! Each frame a guest sends on its LAN NIC arrives as one datagram on the
//! switch's socket (`hub.sock`), from the machine's own socket
//! (`port-N.sock`, bound by its QEMU). The switch learns which port a source
//! MAC lives behind and sends a frame for a known unicast MAC to that port
//! only; broadcast, multicast and unknown destinations go to every other
//! port. So the traffic never leaves these sockets: no tap device, no real
//! interface, no multicast group on the host (QEMU's `-netdev socket,mcast`
//! would join one on a real interface).
//!
//! Sends never block the switch: a machine that is not running yet, has
//! exited, or has a full queue (a guest slowed down by TCG) loses the frame,
//! as behind a congested switch, and the drop is counted in [`LanStats`].

use std::collections::HashMap;
use std::io::ErrorKind;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// The most ports a LAN has: the last byte of the MAC numbers them.
pub const MAX_PORTS: usize = 254;

/// Longest path a unix socket address holds (`sun_path` less its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// The MAC of machine `n` (1-based) on a LAN: `52:54:00:12:34:<n in hex>` (QEMU's
/// prefix; QEMU gives the user-mode NIC `52:54:00:12:34:56`, which is on
/// another network, so the two never meet).
pub fn mac(n: usize) -> [u8; 6] {
    [0x52, 0x54, 0x00, 0x12, 0x34, (n & 0xff) as u8]
}

/// A MAC as QEMU and `ip link` write it.
pub fn mac_string(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// One machine's place on a LAN: what its QEMU command line needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanPort {
    /// 1-based port number (machine `n` of a cluster).
    pub number: usize,
    /// The switch's socket, where QEMU sends the guest's frames.
    pub hub: PathBuf,
    /// The socket QEMU binds and receives the switch's frames on.
    pub local: PathBuf,
    /// The guest NIC's MAC ([`mac`] of `number`).
    pub mac: [u8; 6],
}

impl LanPort {
    /// The `-netdev` and `-device` arguments of the LAN NIC, whose netdev
    /// is called `id`.
    pub fn qemu_args(&self, id: &str) -> Result<Vec<String>> {
        for path in [&self.hub, &self.local] {
            let text = path.to_string_lossy();
            // QEMU splits options at commas; a unix address holds 107 bytes.
            if text.contains(',') {
                bail!("LAN socket path {} contains a comma", path.display());
            }
            if text.len() > MAX_SOCKET_PATH {
                bail!(
                    "LAN socket path {} is longer than {MAX_SOCKET_PATH} bytes",
                    path.display()
                );
            }
        }
        Ok(vec![
            "-netdev".into(),
            format!(
                "dgram,id={id},local.type=unix,local.path={},remote.type=unix,remote.path={}",
                self.local.display(),
                self.hub.display()
            ),
            "-device".into(),
            format!("virtio-net-pci,netdev={id},mac={}", mac_string(self.mac)),
        ])
    }
}

/// Frame counters of a LAN's switch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LanStats {
    /// Frames received from the machines.
    pub received: u64,
    /// Copies sent on to a port.
    pub delivered: u64,
    /// Copies lost: the port's machine was not running or its queue full.
    pub dropped: u64,
    /// Datagrams from an unknown sender or shorter than an Ethernet header.
    pub ignored: u64,
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    delivered: AtomicU64,
    dropped: AtomicU64,
    ignored: AtomicU64,
}

/// A running switch; it stops (and its sockets are removed) when dropped.
pub struct Lan {
    dir: tempfile::TempDir,
    hub: PathBuf,
    /// Port `i + 1`'s socket path.
    ports: Arc<Mutex<Vec<PathBuf>>>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Lan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lan")
            .field("hub", &self.hub)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Lan {
    /// Starts a switch with no ports, its sockets in a new folder under the
    /// system's temporary folder (short paths: a socket path holds 107
    /// bytes).
    pub fn start() -> Result<Lan> {
        Self::start_in(&std::env::temp_dir())
    }

    /// Like [`Self::start`], the sockets' folder made in `parent`.
    pub fn start_in(parent: &Path) -> Result<Lan> {
        let dir = tempfile::Builder::new()
            .prefix("slipway-lan-")
            .tempdir_in(parent)
            .with_context(|| format!("creating the LAN's folder in {}", parent.display()))?;
        let hub = dir.path().join("hub.sock");
        let socket = UnixDatagram::bind(&hub)
            .with_context(|| format!("binding the LAN switch to {}", hub.display()))?;
        // The read timeout only bounds how long a stop can go unnoticed if
        // the wake-up datagram is lost; drop sends one.
        socket.set_read_timeout(Some(Duration::from_millis(500)))?;
        let sender = UnixDatagram::unbound().context("making the LAN's sending socket")?;
        sender.set_nonblocking(true)?;
        let ports = Arc::new(Mutex::new(Vec::new()));
        let counters = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let switch = Switch {
            socket,
            sender,
            ports: ports.clone(),
            counters: counters.clone(),
            stop: stop.clone(),
            table: HashMap::new(),
        };
        let thread = std::thread::Builder::new()
            .name("lan-switch".into())
            .spawn(move || switch.run())
            .context("starting the LAN switch thread")?;
        Ok(Lan {
            dir,
            hub,
            ports,
            counters,
            stop,
            thread: Some(thread),
        })
    }

    /// Adds the next port (1, 2, …) and returns what its machine needs.
    pub fn add_port(&self) -> Result<LanPort> {
        let mut ports = self.ports.lock().unwrap_or_else(|e| e.into_inner());
        let number = ports.len() + 1;
        if number > MAX_PORTS {
            bail!("a LAN has at most {MAX_PORTS} ports");
        }
        let local = self.dir.path().join(format!("port-{number}.sock"));
        ports.push(local.clone());
        Ok(LanPort {
            number,
            hub: self.hub.clone(),
            local,
            mac: mac(number),
        })
    }

    /// The switch's socket.
    pub fn hub_path(&self) -> &Path {
        &self.hub
    }

    pub fn stats(&self) -> LanStats {
        let c = &self.counters;
        LanStats {
            received: c.received.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            ignored: c.ignored.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the switch out of its receive at once.
        if let Ok(s) = UnixDatagram::unbound() {
            let _ = s.send_to(&[], &self.hub);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Switch {
    socket: UnixDatagram,
    sender: UnixDatagram,
    ports: Arc<Mutex<Vec<PathBuf>>>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    /// Source MAC → the 0-based port it was last seen on.
    table: HashMap<[u8; 6], usize>,
}

/// Ethernet header: destination, source, type.
const HEADER: usize = 14;

impl Switch {
    fn run(mut self) {
        // Frames are at most 1514 bytes without offloads; QEMU's own
        // buffer is 68 KiB, so nothing it sends is cut.
        let mut buf = vec![0u8; 69 * 1024];
        while !self.stop.load(Ordering::SeqCst) {
            let (len, from) = match self.socket.recv_from(&mut buf) {
                Ok(got) => got,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    eprintln!("lan: receive failed: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let ports = self.ports.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let Some(port) = from
                .as_pathname()
                .and_then(|p| ports.iter().position(|q| q == p))
            else {
                self.counters.ignored.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let Some(frame) = buf.get(..len).filter(|f| f.len() >= HEADER) else {
                self.counters.ignored.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            self.counters.received.fetch_add(1, Ordering::Relaxed);
            for to in self.forward(frame, port, ports.len()) {
                let delivered = ports
                    .get(to)
                    .is_some_and(|path| self.sender.send_to(frame, path).is_ok());
                let counter = if delivered {
                    &self.counters.delivered
                } else {
                    &self.counters.dropped
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Learns the frame's source and returns the ports it goes to.
    fn forward(&mut self, frame: &[u8], from: usize, ports: usize) -> Vec<usize> {
        let (Some(dst), Some(src)) = (mac_at(frame, 0), mac_at(frame, 6)) else {
            return Vec::new();
        };
        if !is_group(src) {
            self.table.insert(src, from);
        }
        match self.table.get(&dst) {
            Some(&to) if !is_group(dst) => {
                if to == from {
                    Vec::new()
                } else {
                    vec![to]
                }
            }
            _ => (0..ports).filter(|&p| p != from).collect(),
        }
    }
}

fn mac_at(frame: &[u8], at: usize) -> Option<[u8; 6]> {
    frame.get(at..at + 6)?.try_into().ok()
}

/// Broadcast and multicast addresses have the group bit set.
fn is_group(mac: [u8; 6]) -> bool {
    mac[0] & 1 == 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn frame(dst: [u8; 6], src: [u8; 6], payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(payload);
        f
    }

    /// A stand-in for a QEMU: bound to the port's socket.
    fn machine(port: &LanPort) -> UnixDatagram {
        let s = UnixDatagram::bind(&port.local).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        s
    }

    fn recv(s: &UnixDatagram) -> Option<Vec<u8>> {
        let mut buf = [0u8; 2048];
        s.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
    }

    const BCAST: [u8; 6] = [0xff; 6];

    #[test]
    fn floods_unknown_then_switches_learned_macs() {
        let lan = Lan::start().unwrap();
        let ports: Vec<LanPort> = (0..3).map(|_| lan.add_port().unwrap()).collect();
        assert_eq!(
            ports.iter().map(|p| p.mac[5]).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        let m: Vec<UnixDatagram> = ports.iter().map(machine).collect();
        let send = |i: usize, f: &[u8]| m[i].send_to(f, lan.hub_path()).unwrap();

        // A broadcast from 1 reaches 2 and 3, not 1.
        let arp = frame(BCAST, mac(1), b"who-has");
        send(0, &arp);
        assert_eq!(recv(&m[1]).as_deref(), Some(&arp[..]));
        assert_eq!(recv(&m[2]).as_deref(), Some(&arp[..]));
        assert_eq!(recv(&m[0]), None);

        // 2 answers 1 by unicast: 1 is known, so only 1 gets it.
        let reply = frame(mac(1), mac(2), b"is-at");
        send(1, &reply);
        assert_eq!(recv(&m[0]).as_deref(), Some(&reply[..]));
        assert_eq!(recv(&m[2]), None);

        // A unicast to a MAC never seen is flooded.
        let unknown = frame(mac(9), mac(3), b"anyone");
        send(2, &unknown);
        assert_eq!(recv(&m[0]).as_deref(), Some(&unknown[..]));
        assert_eq!(recv(&m[1]).as_deref(), Some(&unknown[..]));

        // Now 3 is known: 1 → 3 goes to 3 only.
        let to3 = frame(mac(3), mac(1), b"hello 3");
        send(0, &to3);
        assert_eq!(recv(&m[2]).as_deref(), Some(&to3[..]));
        assert_eq!(recv(&m[1]), None);

        let stats = lan.stats();
        assert_eq!(stats.received, 4);
        assert_eq!(stats.delivered, 6);
        assert_eq!(stats.dropped, 0);
    }

    #[test]
    fn strangers_runts_and_absent_machines() {
        let lan = Lan::start().unwrap();
        let p1 = lan.add_port().unwrap();
        let _p2 = lan.add_port().unwrap();
        let m1 = machine(&p1);

        // A socket that is no port is not listened to.
        let dir = tempfile::tempdir().unwrap();
        let stranger = UnixDatagram::bind(dir.path().join("x.sock")).unwrap();
        stranger
            .send_to(&frame(BCAST, mac(7), b"hi"), lan.hub_path())
            .unwrap();
        // Nor is a datagram shorter than an Ethernet header.
        m1.send_to(&[1, 2, 3], lan.hub_path()).unwrap();
        // Port 2's machine is not running: its copy is dropped, the switch
        // goes on.
        m1.send_to(&frame(BCAST, mac(1), b"x"), lan.hub_path())
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while lan.stats().dropped == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            lan.stats(),
            LanStats {
                received: 1,
                delivered: 0,
                dropped: 1,
                ignored: 2
            }
        );
    }

    #[test]
    fn drop_stops_the_switch_promptly_and_removes_its_sockets() {
        let lan = Lan::start().unwrap();
        let hub = lan.hub_path().to_path_buf();
        assert!(hub.exists());
        let started = Instant::now();
        drop(lan);
        assert!(
            started.elapsed() < Duration::from_millis(400),
            "{:?}",
            started.elapsed()
        );
        assert!(!hub.exists());
    }

    #[test]
    fn qemu_arguments() {
        let port = LanPort {
            number: 2,
            hub: "/tmp/l/hub.sock".into(),
            local: "/tmp/l/port-2.sock".into(),
            mac: mac(2),
        };
        assert_eq!(
            port.qemu_args("lan0").unwrap(),
            [
                "-netdev",
                "dgram,id=lan0,local.type=unix,local.path=/tmp/l/port-2.sock,\
                 remote.type=unix,remote.path=/tmp/l/hub.sock",
                "-device",
                "virtio-net-pci,netdev=lan0,mac=52:54:00:12:34:02",
            ]
        );
        let bad = LanPort {
            local: "/tmp/a,b.sock".into(),
            ..port.clone()
        };
        assert!(format!("{:#}", bad.qemu_args("x").unwrap_err()).contains("comma"));
        let long = LanPort {
            local: PathBuf::from(format!("/tmp/{}", "x".repeat(120))),
            ..port
        };
        assert!(format!("{:#}", long.qemu_args("x").unwrap_err()).contains("107 bytes"));
    }
}

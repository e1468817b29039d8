//! The daemon loop: one thread, one `poll` over the links' DHCP sockets with
//! the nearest DHCP deadline (or the next sysfs scan) as timeout.
//!
//! Every few seconds sysfs is scanned: new links are set up (static
//! addresses from their `.network` file, DHCPv4 by default), vanished links
//! forgotten, and anything that failed (netlink error, socket error) is
//! retried. Nothing here waits on one link: a silent DHCP server only
//! lengthens that link's retransmission interval.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::config::{self, Cidr, NetworkFile};
use crate::dhcp::{Action, Client, Dest, Lease};
use crate::links::{self, LinkInfo};
use crate::netlink::{Netlink, Origin};
use crate::resolv;
use crate::state::LinkState;
use crate::udp;

/// Route metrics: a base per origin plus the link index, so each link's
/// default route is its own (a REPLACE never steals another link's route)
/// and the lowest-numbered link wins.
const DHCP_METRIC_BASE: u32 = 1024;
const STATIC_METRIC_BASE: u32 = 0;

#[derive(Debug, Clone)]
pub struct Options {
    /// Prefix for the configuration and output paths (`/` on the image).
    pub root: PathBuf,
    /// Where links are listed (`/sys/class/net`).
    pub class_net: PathBuf,
    pub scan_interval: Duration,
}

impl Options {
    pub fn new(root: PathBuf) -> Options {
        Options {
            root,
            class_net: PathBuf::from("/sys/class/net"),
            scan_interval: Duration::from_secs(5),
        }
    }
    fn resolv_conf(&self) -> PathBuf {
        self.root.join("etc/resolv.conf")
    }
    fn state_dir(&self) -> PathBuf {
        self.root.join("run/slipway/network")
    }
}

/// Prints one log line (stdout goes to the service log).
fn log(line: &str) {
    println!("{line}");
}

struct DhcpLink {
    client: Client,
    socket: Option<UdpSocket>,
    /// The current lease is installed (address, route); retried if not.
    applied: bool,
}

struct Link {
    info: LinkInfo,
    file: Option<NetworkFile>,
    /// Link up and static configuration done.
    configured: bool,
    dhcp: Option<DhcpLink>,
    last_state: Option<LinkState>,
}

impl Link {
    fn prefix(&self) -> String {
        format!("link {}:", self.info.name)
    }
}

pub struct Daemon {
    opts: Options,
    files: Vec<NetworkFile>,
    nl: Netlink,
    links: BTreeMap<String, Link>,
    loopback_done: bool,
    last_resolv: Option<String>,
    hostname: Option<String>,
    seed: u64,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("links", &self.links.keys())
            .finish()
    }
}

impl Daemon {
    pub fn new(opts: Options) -> io::Result<Daemon> {
        let nl = Netlink::open()?;
        let (files, warnings) = config::load(&opts.root);
        for w in &warnings {
            log(&format!("warning: {w}"));
        }
        for f in &files {
            log(&format!("config: {}", f.path.display()));
        }
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty() && h != "(none)" && h != "localhost");
        Ok(Daemon {
            opts,
            files,
            nl,
            links: BTreeMap::new(),
            loopback_done: false,
            last_resolv: None,
            hostname,
            seed: random_seed(),
        })
    }

    /// Runs forever; returns only on an error of the poll itself.
    pub fn run(&mut self) -> io::Result<()> {
        let mut next_scan = Instant::now();
        loop {
            let now = Instant::now();
            if now >= next_scan {
                self.scan(now);
                next_scan = now + self.opts.scan_interval;
            }
            let mut wake = next_scan;
            for link in self.links.values() {
                if let Some(d) = &link.dhcp {
                    wake = wake.min(d.client.deadline());
                }
            }
            let timeout = wake.saturating_duration_since(Instant::now());
            let ready = self.wait(timeout)?;
            let now = Instant::now();
            let names: Vec<String> = self.links.keys().cloned().collect();
            for name in names {
                let readable = ready.contains(&name);
                self.service_link(&name, readable, now);
            }
            self.publish();
        }
    }

    /// Polls the DHCP sockets; returns the names of the readable links.
    fn wait(&self, timeout: Duration) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        let mut fds = Vec::new();
        for (name, link) in &self.links {
            if let Some(sock) = link.dhcp.as_ref().and_then(|d| d.socket.as_ref()) {
                names.push(name.clone());
                fds.push(PollFd::new(sock.as_fd(), PollFlags::POLLIN));
            }
        }
        // At least 10 ms, so a deadline just passed is not a busy loop.
        let ms = timeout.as_millis().clamp(10, 60_000);
        let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        }
        Ok(names
            .into_iter()
            .zip(fds.iter())
            .filter(|(_, fd)| fd.revents().is_some_and(|r| !r.is_empty()))
            .map(|(n, _)| n)
            .collect())
    }

    /// Finds new and vanished links, and retries whatever failed.
    fn scan(&mut self, now: Instant) {
        if !self.loopback_done {
            self.loopback_done = self.setup_loopback();
        }
        let found = links::scan(&self.opts.class_net);
        let gone: Vec<String> = self
            .links
            .iter()
            .filter(|(name, l)| {
                !found
                    .iter()
                    .any(|f| &f.name == *name && f.index == l.info.index)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            log(&format!("link {name}: gone"));
            self.links.remove(&name);
            let _ = std::fs::remove_file(self.opts.state_dir().join(format!("{name}.json")));
        }
        for info in found {
            if info.name == "lo" || self.links.contains_key(&info.name) {
                continue;
            }
            let file = config::find(&self.files, &info.name, info.mac).cloned();
            let managed = file.is_some() || info.default_dhcp();
            if !managed {
                continue;
            }
            let wants_dhcp = file.as_ref().is_none_or(NetworkFile::wants_dhcp4);
            match &file {
                Some(f) => log(&format!(
                    "link {}: found, using {}",
                    info.name,
                    f.path.display()
                )),
                None => log(&format!(
                    "link {}: found, no .network file: DHCPv4",
                    info.name
                )),
            }
            let dhcp = wants_dhcp.then(|| {
                self.seed = self
                    .seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                DhcpLink {
                    client: Client::new(
                        info.mac.unwrap_or_default(),
                        self.hostname.clone(),
                        self.seed,
                        now,
                    ),
                    socket: None,
                    applied: false,
                }
            });
            let name = info.name.clone();
            self.links.insert(
                name,
                Link {
                    info,
                    file,
                    configured: false,
                    dhcp,
                    last_state: None,
                },
            );
        }
        // Retry what is not done yet.
        let names: Vec<String> = self.links.keys().cloned().collect();
        for name in names {
            self.retry_link(&name, now);
        }
    }

    fn setup_loopback(&mut self) -> bool {
        let Ok(index) = std::fs::read_to_string(self.opts.class_net.join("lo/ifindex")) else {
            log("link lo: not found");
            return false;
        };
        let index = index.trim().parse().unwrap_or(1);
        if let Err(e) = self.nl.link_up(index) {
            log(&format!("link lo: cannot bring up: {e}"));
            return false;
        }
        let lo = Cidr {
            addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            prefix: 8,
        };
        match self.nl.add_address_if_missing(index, lo) {
            Ok(false) => log("link lo: up, 127.0.0.1/8"),
            Ok(true) => log("link lo: up, 127.0.0.1/8 was missing, added"),
            Err(e) => {
                log(&format!("link lo: up, cannot add 127.0.0.1/8: {e}"));
                return false;
            }
        }
        true
    }

    /// Link up + static configuration, DHCP socket, re-applying a lease.
    fn retry_link(&mut self, name: &str, now: Instant) {
        let Some(link) = self.links.get_mut(name) else {
            return;
        };
        let nl = &mut self.nl;
        if !link.configured {
            link.configured = configure_static(nl, link);
        }
        let prefix = link.prefix();
        let index = link.info.index;
        let Some(d) = link.dhcp.as_mut() else {
            return;
        };
        if d.socket.is_none() {
            match udp::open(name) {
                Ok(sock) => {
                    d.socket = Some(sock);
                    let actions = d.client.start(now);
                    perform(nl, link, actions);
                }
                Err(e) => log(&format!("{prefix} cannot open DHCP socket: {e}, retrying")),
            }
            return;
        }
        if !d.applied {
            if let Some(lease) = d.client.lease().cloned() {
                d.applied = apply_lease(nl, index, &prefix, &lease, None);
            }
        }
    }

    /// Reads the link's socket and runs its DHCP timer.
    fn service_link(&mut self, name: &str, readable: bool, now: Instant) {
        let Some(link) = self.links.get_mut(name) else {
            return;
        };
        let nl = &mut self.nl;
        let Some(d) = link.dhcp.as_mut() else {
            return;
        };
        let mut actions = Vec::new();
        if readable {
            if let Some(sock) = &d.socket {
                let mut buf = [0u8; 1500];
                // Drain the socket; it is non-blocking.
                for _ in 0..16 {
                    match sock.recv_from(&mut buf) {
                        Ok((n, _)) => {
                            let packet = buf.get(..n).unwrap_or_default();
                            actions.extend(d.client.on_packet(packet, now));
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            log(&format!("link {name}: DHCP socket: {e}, reopening"));
                            d.socket = None;
                            break;
                        }
                    }
                }
            }
        }
        if d.socket.is_some() && now >= d.client.deadline() {
            actions.extend(d.client.on_timeout(now));
        }
        perform(nl, link, actions);
    }

    /// Writes resolv.conf and the state files that changed.
    fn publish(&mut self) {
        let mut servers = Vec::new();
        let mut domains = Vec::new();
        for link in self.links.values_mut() {
            let state = link_state(link);
            servers.extend(state.dns.iter().copied());
            domains.extend(state.domains.iter().cloned());
            if link.last_state.as_ref() != Some(&state) {
                let path = self
                    .opts
                    .state_dir()
                    .join(format!("{}.json", link.info.name));
                let text = state.to_json(SystemTime::now()).to_string() + "\n";
                match resolv::write_atomic(&path, &text) {
                    Ok(()) => link.last_state = Some(state),
                    Err(e) => log(&format!(
                        "link {}: cannot write {}: {e}",
                        link.info.name,
                        path.display()
                    )),
                }
            }
        }
        let text = resolv::render(&servers, &domains);
        let unmanaged = self.last_resolv.is_none() && servers.is_empty() && domains.is_empty();
        if unmanaged || self.last_resolv.as_deref() == Some(text.as_str()) {
            return;
        }
        let path = self.opts.resolv_conf();
        match resolv::write_atomic(&path, &text) {
            Ok(()) => {
                let mut shown: Vec<String> = servers.iter().map(|s| s.to_string()).collect();
                if shown.is_empty() {
                    shown.push("none".to_string());
                }
                log(&format!(
                    "dns: wrote {} (nameservers: {})",
                    path.display(),
                    shown.join(" ")
                ));
                self.last_resolv = Some(text);
            }
            Err(e) => log(&format!("dns: cannot write {}: {e}", path.display())),
        }
    }
}

/// Brings the link up and installs the file's static addresses and gateways.
fn configure_static(nl: &mut Netlink, link: &Link) -> bool {
    let prefix = link.prefix();
    let index = link.info.index;
    if let Err(e) = nl.link_up(index) {
        log(&format!("{prefix} cannot bring up: {e}, retrying"));
        return false;
    }
    let Some(file) = &link.file else {
        log(&format!("{prefix} up"));
        return true;
    };
    let mut ok = true;
    for addr in &file.addresses {
        if let Err(e) = nl.replace_address(index, *addr, None) {
            log(&format!(
                "{prefix} cannot add address {addr}: {e}, retrying"
            ));
            ok = false;
        }
    }
    for gw in &file.gateways {
        if let Err(e) =
            nl.replace_default_route(index, *gw, STATIC_METRIC_BASE + index, Origin::Static)
        {
            log(&format!(
                "{prefix} cannot add default route via {gw}: {e}, retrying"
            ));
            ok = false;
        }
    }
    if ok {
        let addrs: Vec<String> = file.addresses.iter().map(|a| a.to_string()).collect();
        let gws: Vec<String> = file.gateways.iter().map(|a| a.to_string()).collect();
        let dns: Vec<String> = file.dns.iter().map(|a| a.to_string()).collect();
        if addrs.is_empty() && gws.is_empty() && dns.is_empty() {
            log(&format!("{prefix} up ({})", file.name));
            return true;
        }
        let mut line = format!("{prefix} up, static");
        if !addrs.is_empty() {
            line.push_str(&format!(" {}", addrs.join(",")));
        }
        if !gws.is_empty() {
            line.push_str(&format!(" gw {}", gws.join(",")));
        }
        if !dns.is_empty() {
            line.push_str(&format!(" dns {}", dns.join(",")));
        }
        line.push_str(&format!(" ({})", file.name));
        log(&line);
    }
    ok
}

/// Carries out what the DHCP client asked for.
fn perform(nl: &mut Netlink, link: &mut Link, actions: Vec<Action>) {
    let prefix = link.prefix();
    let index = link.info.index;
    let Some(d) = link.dhcp.as_mut() else {
        return;
    };
    for action in actions {
        match action {
            Action::Send { packet, dest } => {
                let to = match dest {
                    Dest::Broadcast => Ipv4Addr::BROADCAST,
                    Dest::Unicast(ip) => ip,
                };
                if let Some(sock) = &d.socket {
                    if let Err(e) = sock.send_to(&packet, SocketAddrV4::new(to, udp::SERVER_PORT)) {
                        log(&format!("{prefix} cannot send DHCP message to {to}: {e}"));
                    }
                }
            }
            Action::Configure { lease, previous } => {
                d.applied = apply_lease(nl, index, &prefix, &lease, previous.as_ref());
            }
            Action::Deconfigure { lease, .. } => {
                remove_lease(nl, index, &prefix, &lease);
                d.applied = false;
            }
            Action::Log(line) => log(&format!("{prefix} {line}")),
        }
    }
}

fn lease_cidr(lease: &Lease) -> Cidr {
    Cidr {
        addr: IpAddr::V4(lease.address),
        prefix: lease.prefix,
    }
}

/// Installs a lease: address with the lease's lifetime, default route.
fn apply_lease(
    nl: &mut Netlink,
    index: u32,
    prefix: &str,
    lease: &Lease,
    previous: Option<&Lease>,
) -> bool {
    let lifetime = (!lease.infinite()).then(|| {
        let left = lease
            .expiry()
            .saturating_duration_since(Instant::now())
            .as_secs();
        u32::try_from(left).unwrap_or(u32::MAX).max(1)
    });
    if let Err(e) = nl.replace_address(index, lease_cidr(lease), lifetime) {
        log(&format!(
            "{prefix} cannot add DHCPv4 address {}/{}: {e}, retrying",
            lease.address, lease.prefix
        ));
        return false;
    }
    let metric = DHCP_METRIC_BASE + index;
    if let Some(old_gw) = previous.and_then(|p| p.router) {
        if Some(old_gw) != lease.router {
            let _ = nl.delete_default_route(index, IpAddr::V4(old_gw), metric, Origin::Dhcp);
        }
    }
    if let Some(gw) = lease.router {
        if let Err(e) = nl.replace_default_route(index, IpAddr::V4(gw), metric, Origin::Dhcp) {
            log(&format!(
                "{prefix} cannot add default route via {gw}: {e}, retrying"
            ));
            return false;
        }
    }
    match previous {
        Some(_) => log(&format!("{prefix} DHCPv4 lease renewed {lease}")),
        None => log(&format!("{prefix} DHCPv4 lease {lease}")),
    }
    true
}

fn remove_lease(nl: &mut Netlink, index: u32, prefix: &str, lease: &Lease) {
    if let Some(gw) = lease.router {
        // The kernel may have removed the route with the address already.
        let _ = nl.delete_default_route(
            index,
            IpAddr::V4(gw),
            DHCP_METRIC_BASE + index,
            Origin::Dhcp,
        );
    }
    match nl.delete_address(index, lease_cidr(lease)) {
        Ok(()) => log(&format!(
            "{prefix} removed {}/{}",
            lease.address, lease.prefix
        )),
        Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => {}
        Err(e) => log(&format!(
            "{prefix} cannot remove {}/{}: {e}",
            lease.address, lease.prefix
        )),
    }
}

/// What the state file of a link says now.
fn link_state(link: &Link) -> LinkState {
    let mut s = LinkState {
        ifname: link.info.name.clone(),
        index: link.info.index,
        network_file: link.file.as_ref().map(|f| f.path.display().to_string()),
        ..LinkState::default()
    };
    let has_static = link.file.as_ref().is_some_and(|f| !f.addresses.is_empty());
    s.source = match (has_static, link.dhcp.is_some()) {
        (true, true) => "static+dhcp4",
        (true, false) => "static",
        (false, true) => "dhcp4",
        (false, false) => "unmanaged",
    }
    .to_string();
    if let Some(f) = &link.file {
        if link.configured {
            s.addresses
                .extend(f.addresses.iter().map(|a| a.to_string()));
            s.gateway = f.gateways.first().copied();
        }
        s.dns.extend(f.dns.iter().copied());
        s.domains.extend(f.domains.iter().cloned());
    }
    s.state = if link.configured {
        "configured"
    } else {
        "failed"
    }
    .to_string();
    if let Some(d) = &link.dhcp {
        s.state = d.client.state().name().to_string();
        if let Some(lease) = d.client.lease() {
            s.addresses
                .push(format!("{}/{}", lease.address, lease.prefix));
            s.gateway = s.gateway.or(lease.router.map(IpAddr::V4));
            s.dns.extend(lease.dns.iter().map(|d| IpAddr::V4(*d)));
            s.domains.extend(lease.domains.iter().cloned());
            s.dhcp_server = Some(IpAddr::V4(lease.server));
            s.lease_seconds = Some(lease.lease_secs);
            // Rounded to whole minutes so the file is not rewritten every loop.
            let left = lease
                .expiry()
                .saturating_duration_since(Instant::now())
                .as_secs();
            s.lease_remaining = (!lease.infinite()).then(|| Duration::from_secs(left / 60 * 60));
        }
    }
    s
}

/// A seed for transaction IDs and jitter.
fn random_seed() -> u64 {
    use std::io::Read;
    let mut buf = [0u8; 8];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf));
    if read.is_ok() {
        return u64::from_ne_bytes(buf);
    }
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x9e37_79b9_7f4a_7c15)
        ^ u64::from(std::process::id())
}

/// For `--root`: `/` unless given.
pub fn default_root() -> &'static Path {
    Path::new("/")
}

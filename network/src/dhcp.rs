//! The DHCPv4 client state machine (RFC 2131), pure: it is driven by
//! received packets and by the clock, and answers with [`Action`]s (send a
//! packet, configure or remove a lease, log a line). The daemon owns the
//! socket and the netlink calls; tests drive it with `dhcproto`-built
//! OFFER/ACK/NAK packets and a fake clock.
//!
//! States: `Selecting` (DISCOVER, broadcast) → `Requesting` (REQUEST,
//! broadcast) → `Bound` → at T1 `Renewing` (REQUEST unicast to the server)
//! → at T2 `Rebinding` (REQUEST broadcast) → at expiry the address is removed
//! and discovery starts again. A NAK restarts discovery. Every request sets
//! the BROADCAST flag so answers reach a socket bound to 0.0.0.0:68 on a link
//! without an address.

use std::fmt;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Encodable};

/// The longest retransmission interval while selecting/requesting.
const MAX_BACKOFF_SECS: u64 = 32;
/// REQUESTs sent while `Requesting` before going back to DISCOVER.
const MAX_REQUESTS: u32 = 4;
/// Renewing/rebinding retransmissions wait at least this long (RFC 2131 4.4.5).
const MIN_RENEW_RETRY_SECS: u64 = 60;
/// Stand-in for "infinite": deadlines are capped so `Instant` never overflows.
const FOREVER_SECS: u64 = 10 * 365 * 24 * 3600;

/// Where a packet goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    Broadcast,
    Unicast(Ipv4Addr),
}

/// A lease as granted by an ACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    /// Domain name (option 15) first, then the domain search list (option 119).
    pub domains: Vec<String>,
    pub server: Ipv4Addr,
    /// Lease time in seconds; `u32::MAX` is infinite.
    pub lease_secs: u32,
    pub t1_secs: u32,
    pub t2_secs: u32,
    /// When the REQUEST that got this lease was sent (RFC 2131 4.4.1).
    pub acquired: Instant,
}

impl Lease {
    pub fn infinite(&self) -> bool {
        self.lease_secs == u32::MAX
    }
    pub fn t1(&self) -> Instant {
        after(self.acquired, u64::from(self.t1_secs))
    }
    pub fn t2(&self) -> Instant {
        after(self.acquired, u64::from(self.t2_secs))
    }
    pub fn expiry(&self) -> Instant {
        if self.infinite() {
            after(self.acquired, FOREVER_SECS)
        } else {
            after(self.acquired, u64::from(self.lease_secs))
        }
    }
}

impl fmt::Display for Lease {
    /// `10.0.2.15/24 gw 10.0.2.2 dns 10.0.2.3 (lease 86400 s)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)?;
        if let Some(r) = self.router {
            write!(f, " gw {r}")?;
        }
        if !self.dns.is_empty() {
            let dns: Vec<String> = self.dns.iter().map(|d| d.to_string()).collect();
            write!(f, " dns {}", dns.join(","))?;
        }
        if !self.domains.is_empty() {
            write!(f, " search {}", self.domains.join(","))?;
        }
        if self.infinite() {
            write!(f, " (lease infinite)")
        } else {
            write!(f, " (lease {} s)", self.lease_secs)
        }
    }
}

/// Why a lease was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossReason {
    Expired,
    Nak,
}

/// What the daemon has to do after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Send {
        packet: Vec<u8>,
        dest: Dest,
    },
    /// Configure this lease; `previous` is the lease it replaces (a renewal
    /// or a new address after rebinding), if any.
    Configure {
        lease: Lease,
        previous: Option<Lease>,
    },
    /// Remove the address, route and DNS of this lease.
    Deconfigure {
        lease: Lease,
        reason: LossReason,
    },
    /// A line for the log, without the `link IF: ` prefix.
    Log(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Selecting,
    Requesting,
    Bound,
    Renewing,
    Rebinding,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Selecting => "selecting",
            State::Requesting => "requesting",
            State::Bound => "bound",
            State::Renewing => "renewing",
            State::Rebinding => "rebinding",
        }
    }
}

/// The offer being requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Offer {
    address: Ipv4Addr,
    server: Ipv4Addr,
}

/// One link's DHCPv4 client.
#[derive(Debug)]
pub struct Client {
    mac: [u8; 6],
    hostname: Option<String>,
    rng: u64,
    xid: u32,
    state: State,
    /// When the current exchange started (the `secs` field, the "no offer" log).
    started: Instant,
    /// When the last packet of the current exchange was sent.
    sent_at: Instant,
    /// Retransmissions so far in this state.
    attempt: u32,
    deadline: Instant,
    /// Next "no offer after N s" log, in seconds since `started`.
    next_silence_log: u64,
    offer: Option<Offer>,
    lease: Option<Lease>,
}

impl Client {
    /// A client for the link with this MAC address. `seed` feeds the
    /// transaction IDs and the jitter (the daemon takes it from getrandom).
    /// Call [`Client::start`] next.
    pub fn new(mac: [u8; 6], hostname: Option<String>, seed: u64, now: Instant) -> Client {
        Client {
            mac,
            hostname,
            rng: seed | 1,
            xid: 0,
            state: State::Selecting,
            started: now,
            sent_at: now,
            attempt: 0,
            deadline: now,
            next_silence_log: 10,
            offer: None,
            lease: None,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn lease(&self) -> Option<&Lease> {
        self.lease.as_ref()
    }

    /// When [`Client::on_timeout`] must be called next.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Starts discovery: sends the first DISCOVER.
    pub fn start(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        self.discover(now, &mut actions);
        actions
    }

    /// The deadline passed: retransmit, or move to the next state.
    pub fn on_timeout(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        if now < self.deadline {
            return actions;
        }
        match self.state {
            State::Selecting => {
                let waited = now.saturating_duration_since(self.started).as_secs();
                if waited >= self.next_silence_log {
                    actions.push(Action::Log(format!(
                        "no DHCPv4 offer after {waited} s, still trying"
                    )));
                    self.next_silence_log = (waited * 2).min(waited + 300);
                }
                self.attempt += 1;
                self.send_discover(now, &mut actions);
            }
            State::Requesting => {
                self.attempt += 1;
                if self.attempt >= MAX_REQUESTS {
                    actions.push(Action::Log(
                        "no answer to DHCPv4 REQUEST, restarting discovery".to_string(),
                    ));
                    self.discover(now, &mut actions);
                } else {
                    self.send_request(now, &mut actions);
                }
            }
            State::Bound => {
                self.state = State::Renewing;
                self.new_exchange(now);
                self.send_request(now, &mut actions);
            }
            State::Renewing | State::Rebinding => {
                let Some(lease) = self.lease.clone() else {
                    self.discover(now, &mut actions);
                    return actions;
                };
                if now >= lease.expiry() {
                    actions.push(Action::Log(format!(
                        "DHCPv4 lease {}/{} expired, address removed",
                        lease.address, lease.prefix
                    )));
                    self.lease = None;
                    actions.push(Action::Deconfigure {
                        lease,
                        reason: LossReason::Expired,
                    });
                    self.discover(now, &mut actions);
                    return actions;
                }
                if self.state == State::Renewing && now >= lease.t2() {
                    actions.push(Action::Log(format!(
                        "no answer from DHCPv4 server {} to renew, rebinding",
                        lease.server
                    )));
                    self.state = State::Rebinding;
                    self.new_exchange(now);
                } else {
                    self.attempt += 1;
                }
                self.send_request(now, &mut actions);
            }
        }
        actions
    }

    /// A datagram arrived on the link's port 68.
    pub fn on_packet(&mut self, bytes: &[u8], now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        if !option_lengths_valid(bytes) {
            return actions;
        }
        let Ok(msg) = Message::from_bytes(bytes) else {
            return actions;
        };
        if msg.opcode() != Opcode::BootReply || msg.xid() != self.xid {
            return actions;
        }
        let Some(kind) = msg.opts().msg_type() else {
            return actions;
        };
        match (self.state, kind) {
            (State::Selecting, MessageType::Offer) => {
                let server = server_id(&msg);
                let address = msg.yiaddr();
                if let (Some(server), false) = (server, address.is_unspecified()) {
                    self.offer = Some(Offer { address, server });
                    self.state = State::Requesting;
                    self.attempt = 0;
                    self.send_request(now, &mut actions);
                }
            }
            (State::Requesting | State::Renewing | State::Rebinding, MessageType::Ack) => {
                let Some(lease) = lease_from_ack(&msg, self.sent_at) else {
                    actions.push(Action::Log(
                        "DHCPv4 ACK without a usable address, ignored".to_string(),
                    ));
                    return actions;
                };
                let previous = self.lease.take();
                if let Some(old) = &previous {
                    if old.address != lease.address || old.prefix != lease.prefix {
                        actions.push(Action::Deconfigure {
                            lease: old.clone(),
                            reason: LossReason::Expired,
                        });
                    }
                }
                let previous = previous
                    .filter(|old| old.address == lease.address && old.prefix == lease.prefix);
                self.lease = Some(lease.clone());
                self.offer = None;
                self.state = State::Bound;
                self.attempt = 0;
                self.deadline = if lease.infinite() {
                    lease.expiry()
                } else {
                    lease.t1()
                };
                actions.push(Action::Configure { lease, previous });
            }
            (State::Requesting | State::Renewing | State::Rebinding, MessageType::Nak) => {
                let from = server_id(&msg).map_or_else(|| "?".to_string(), |s| s.to_string());
                actions.push(Action::Log(format!(
                    "DHCPv4 NAK from {from} while {}, restarting discovery",
                    self.state.name()
                )));
                if let Some(lease) = self.lease.take() {
                    actions.push(Action::Deconfigure {
                        lease,
                        reason: LossReason::Nak,
                    });
                }
                self.discover(now, &mut actions);
            }
            _ => {}
        }
        actions
    }

    fn discover(&mut self, now: Instant, actions: &mut Vec<Action>) {
        self.state = State::Selecting;
        self.offer = None;
        self.new_exchange(now);
        self.next_silence_log = 10;
        self.send_discover(now, actions);
    }

    fn new_exchange(&mut self, now: Instant) {
        self.xid = self.next_random() as u32;
        self.started = now;
        self.attempt = 0;
    }

    fn send_discover(&mut self, now: Instant, actions: &mut Vec<Action>) {
        let mut msg = self.message(now);
        msg.opts_mut()
            .insert(DhcpOption::MessageType(MessageType::Discover));
        self.push_send(msg, Dest::Broadcast, actions);
        self.sent_at = now;
        self.deadline = self.backoff_deadline(now);
    }

    fn send_request(&mut self, now: Instant, actions: &mut Vec<Action>) {
        let mut msg = self.message(now);
        msg.opts_mut()
            .insert(DhcpOption::MessageType(MessageType::Request));
        let dest = match (self.state, &self.offer, &self.lease) {
            (State::Requesting, Some(offer), _) => {
                msg.opts_mut()
                    .insert(DhcpOption::RequestedIpAddress(offer.address));
                msg.opts_mut()
                    .insert(DhcpOption::ServerIdentifier(offer.server));
                Dest::Broadcast
            }
            (State::Renewing, _, Some(lease)) => {
                msg.set_ciaddr(lease.address);
                Dest::Unicast(lease.server)
            }
            (State::Rebinding, _, Some(lease)) => {
                msg.set_ciaddr(lease.address);
                Dest::Broadcast
            }
            // Not reachable through the transitions above; start over.
            _ => {
                self.discover(now, actions);
                return;
            }
        };
        self.push_send(msg, dest, actions);
        self.sent_at = now;
        self.deadline = match (self.state, &self.lease) {
            (State::Renewing, Some(lease)) => renew_retry(now, lease.t2()),
            (State::Rebinding, Some(lease)) => renew_retry(now, lease.expiry()),
            _ => self.backoff_deadline(now),
        };
    }

    /// The common part of every client message.
    fn message(&self, now: Instant) -> Message {
        let unspecified = Ipv4Addr::UNSPECIFIED;
        let mut msg = Message::new_with_id(
            self.xid,
            unspecified,
            unspecified,
            unspecified,
            unspecified,
            &self.mac,
        );
        msg.set_flags(Flags::default().set_broadcast());
        let secs = now.saturating_duration_since(self.started).as_secs();
        msg.set_secs(u16::try_from(secs).unwrap_or(u16::MAX));
        let opts = msg.opts_mut();
        let mut client_id = vec![1u8];
        client_id.extend_from_slice(&self.mac);
        opts.insert(DhcpOption::ClientIdentifier(client_id));
        opts.insert(DhcpOption::MaxMessageSize(1500));
        opts.insert(DhcpOption::ParameterRequestList(vec![
            OptionCode::SubnetMask,
            OptionCode::Router,
            OptionCode::DomainNameServer,
            OptionCode::DomainName,
            OptionCode::DomainSearch,
            OptionCode::AddressLeaseTime,
            OptionCode::Renewal,
            OptionCode::Rebinding,
        ]));
        if let Some(name) = &self.hostname {
            opts.insert(DhcpOption::Hostname(name.clone()));
        }
        msg
    }

    fn push_send(&self, msg: Message, dest: Dest, actions: &mut Vec<Action>) {
        match msg.to_vec() {
            Ok(packet) => actions.push(Action::Send { packet, dest }),
            Err(e) => actions.push(Action::Log(format!("cannot encode DHCPv4 message: {e}"))),
        }
    }

    /// 1, 2, 4 … 32 s after `now`, ± up to half a second.
    fn backoff_deadline(&mut self, now: Instant) -> Instant {
        let base_ms = (1u64 << self.attempt.min(5)).min(MAX_BACKOFF_SECS) * 1000;
        let jitter = self.next_random() % 1000;
        let ms = (base_ms + jitter).saturating_sub(500);
        now.checked_add(Duration::from_millis(ms)).unwrap_or(now)
    }

    /// xorshift64*: enough for transaction IDs and jitter.
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Half the time left until `limit`, at least 60 s, never past `limit`.
fn renew_retry(now: Instant, limit: Instant) -> Instant {
    let left = limit.saturating_duration_since(now);
    let wait = (left / 2).max(Duration::from_secs(MIN_RENEW_RETRY_SECS));
    now.checked_add(wait).unwrap_or(limit).min(limit)
}

fn after(t: Instant, secs: u64) -> Instant {
    t.checked_add(Duration::from_secs(secs.min(FOREVER_SECS)))
        .unwrap_or(t)
}

/// Whether the options whose length `dhcproto` only checks with
/// `debug_assert!` have the length their RFC gives: Rapid Commit (80,
/// empty), Client FQDN (81, 3 or more), Client Network Interface (94, 3),
/// the bulk leasequery times (152–155, 4). A debug build would panic on a
/// server's packet otherwise (found by the `dhcp` fuzz target); a
/// packet that gets them wrong is refused. Options repeated back to back
/// count as one (RFC 3396), as `dhcproto` joins them.
fn option_lengths_valid(bytes: &[u8]) -> bool {
    let mut options = bytes.get(240..).unwrap_or_default();
    let mut run: Option<(u8, usize)> = None;
    let valid = |(code, len): (u8, usize)| match code {
        80 => len == 0,
        81 => len >= 3,
        94 => len == 3,
        152..=155 => len == 4,
        _ => true,
    };
    while let [code, rest @ ..] = options {
        match code {
            255 => break,
            // Pad ends a run too.
            0 => {
                if run.take().is_some_and(|done| !valid(done)) {
                    return false;
                }
                options = rest;
                continue;
            }
            _ => {}
        }
        let [len, rest @ ..] = rest else { break };
        let len = usize::from(*len);
        run = match run {
            Some((c, total)) if c == *code => Some((c, total + len)),
            Some(done) if !valid(done) => return false,
            _ => Some((*code, len)),
        };
        options = rest.get(len..).unwrap_or_default();
    }
    run.is_none_or(valid)
}

fn server_id(msg: &Message) -> Option<Ipv4Addr> {
    match msg.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(ip)) => Some(*ip),
        _ => None,
    }
}

/// Builds the lease an ACK grants, `acquired` being when the request went out.
fn lease_from_ack(msg: &Message, acquired: Instant) -> Option<Lease> {
    let address = msg.yiaddr();
    if address.is_unspecified() || address.is_broadcast() || address.is_multicast() {
        return None;
    }
    let opts = msg.opts();
    let prefix = match opts.get(OptionCode::SubnetMask) {
        Some(DhcpOption::SubnetMask(mask)) => mask_to_prefix(*mask),
        _ => None,
    }
    .unwrap_or_else(|| classful_prefix(address));
    let router = match opts.get(OptionCode::Router) {
        Some(DhcpOption::Router(list)) => list.iter().copied().find(|r| !r.is_unspecified()),
        _ => None,
    };
    let dns = match opts.get(OptionCode::DomainNameServer) {
        Some(DhcpOption::DomainNameServer(list)) => list.clone(),
        _ => Vec::new(),
    };
    let mut domains = Vec::new();
    if let Some(DhcpOption::DomainName(name)) = opts.get(OptionCode::DomainName) {
        push_domain(&mut domains, name);
    }
    if let Some(DhcpOption::DomainSearch(names)) = opts.get(OptionCode::DomainSearch) {
        for name in names {
            push_domain(&mut domains, &name.to_string());
        }
    }
    let lease_secs = match opts.get(OptionCode::AddressLeaseTime) {
        Some(DhcpOption::AddressLeaseTime(secs)) => (*secs).max(1),
        // An ACK must carry a lease time; be lenient with one that does not.
        _ => 3600,
    };
    let server = server_id(msg).unwrap_or(msg.siaddr());
    let (default_t1, default_t2) = if lease_secs == u32::MAX {
        (u32::MAX, u32::MAX)
    } else {
        (lease_secs / 2, (u64::from(lease_secs) * 7 / 8) as u32)
    };
    let mut t2 = match opts.get(OptionCode::Rebinding) {
        Some(DhcpOption::Rebinding(t)) if *t <= lease_secs => *t,
        _ => default_t2,
    };
    let mut t1 = match opts.get(OptionCode::Renewal) {
        Some(DhcpOption::Renewal(t)) if *t <= t2 => *t,
        _ => default_t1.min(t2),
    };
    if t1 > t2 {
        t1 = t2;
    }
    if t2 > lease_secs {
        t2 = lease_secs;
    }
    Some(Lease {
        address,
        prefix,
        router,
        dns,
        domains,
        server,
        lease_secs,
        t1_secs: t1,
        t2_secs: t2,
        acquired,
    })
}

fn push_domain(domains: &mut Vec<String>, name: &str) {
    let name = name.trim().trim_end_matches('.');
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
    if ok && !domains.iter().any(|d| d == name) {
        domains.push(name.to_string());
    }
}

/// The prefix length of a contiguous netmask.
pub fn mask_to_prefix(mask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(mask);
    let ones = bits.leading_ones();
    (bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

fn classful_prefix(addr: Ipv4Addr) -> u8 {
    match addr.octets().first() {
        Some(0..=127) => 8,
        Some(128..=191) => 16,
        _ => 24,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
    const ME: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn sent(actions: &[Action]) -> Vec<(Message, Dest)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send { packet, dest } => {
                    Some((Message::from_bytes(packet).unwrap(), *dest))
                }
                _ => None,
            })
            .collect()
    }

    fn only_sent(actions: &[Action]) -> (Message, Dest) {
        let s = sent(actions);
        assert_eq!(s.len(), 1, "{actions:?}");
        s.into_iter().next().unwrap()
    }

    fn reply(to: &Message, kind: MessageType, yiaddr: Ipv4Addr, lease: Option<u32>) -> Vec<u8> {
        let mut m = Message::new_with_id(
            to.xid(),
            Ipv4Addr::UNSPECIFIED,
            yiaddr,
            SERVER,
            Ipv4Addr::UNSPECIFIED,
            &MAC,
        );
        m.set_opcode(Opcode::BootReply);
        let o = m.opts_mut();
        o.insert(DhcpOption::MessageType(kind));
        o.insert(DhcpOption::ServerIdentifier(SERVER));
        if kind != MessageType::Nak {
            o.insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)));
            o.insert(DhcpOption::Router(vec![SERVER]));
            o.insert(DhcpOption::DomainNameServer(vec![Ipv4Addr::new(
                10, 0, 2, 3,
            )]));
            o.insert(DhcpOption::DomainName("example.internal".to_string()));
            if let Some(l) = lease {
                o.insert(DhcpOption::AddressLeaseTime(l));
            }
        }
        m.to_vec().unwrap()
    }

    fn opt_type(m: &Message) -> MessageType {
        m.opts().msg_type().unwrap()
    }

    /// Runs DISCOVER/OFFER/REQUEST/ACK and returns the client, bound.
    fn bound(t0: Instant, lease_secs: u32) -> (Client, Lease) {
        let mut c = Client::new(MAC, Some("node1".into()), 42, t0);
        let (discover, dest) = only_sent(&c.start(t0));
        assert_eq!(dest, Dest::Broadcast);
        let offer = reply(&discover, MessageType::Offer, ME, Some(lease_secs));
        let (request, _) = only_sent(&c.on_packet(&offer, t0));
        let ack = reply(&request, MessageType::Ack, ME, Some(lease_secs));
        let actions = c.on_packet(&ack, t0);
        let lease = match actions.as_slice() {
            [Action::Configure {
                lease,
                previous: None,
            }] => lease.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(c.state(), State::Bound);
        (c, lease)
    }

    #[test]
    fn full_exchange() {
        let t0 = Instant::now();
        let mut c = Client::new(MAC, Some("node1".into()), 42, t0);
        let (discover, dest) = only_sent(&c.start(t0));
        assert_eq!(dest, Dest::Broadcast);
        assert_eq!(opt_type(&discover), MessageType::Discover);
        assert!(discover.flags().broadcast());
        assert_eq!(discover.chaddr(), &MAC);
        assert!(matches!(
            discover.opts().get(OptionCode::Hostname),
            Some(DhcpOption::Hostname(h)) if h == "node1"
        ));
        assert_eq!(c.state(), State::Selecting);

        // A reply to another transaction is ignored.
        let mut other = discover.clone();
        other.set_xid(discover.xid().wrapping_add(1));
        assert!(c
            .on_packet(&reply(&other, MessageType::Offer, ME, Some(86400)), t0)
            .is_empty());
        // Garbage is ignored.
        assert!(c.on_packet(&[1, 2, 3], t0).is_empty());

        let offer = reply(&discover, MessageType::Offer, ME, Some(86400));
        let (request, dest) = only_sent(&c.on_packet(&offer, t0 + secs(1)));
        assert_eq!(dest, Dest::Broadcast);
        assert_eq!(opt_type(&request), MessageType::Request);
        assert!(request.flags().broadcast());
        assert_eq!(request.xid(), discover.xid());
        assert_eq!(
            request.opts().get(OptionCode::RequestedIpAddress),
            Some(&DhcpOption::RequestedIpAddress(ME))
        );
        assert_eq!(
            request.opts().get(OptionCode::ServerIdentifier),
            Some(&DhcpOption::ServerIdentifier(SERVER))
        );
        assert_eq!(request.secs(), 1);
        assert_eq!(c.state(), State::Requesting);

        let ack = reply(&request, MessageType::Ack, ME, Some(86400));
        let actions = c.on_packet(&ack, t0 + secs(2));
        let [Action::Configure {
            lease,
            previous: None,
        }] = actions.as_slice()
        else {
            panic!("{actions:?}");
        };
        assert_eq!(lease.address, ME);
        assert_eq!(lease.prefix, 24);
        assert_eq!(lease.router, Some(SERVER));
        assert_eq!(lease.dns, vec![Ipv4Addr::new(10, 0, 2, 3)]);
        assert_eq!(lease.domains, vec!["example.internal"]);
        assert_eq!((lease.t1_secs, lease.t2_secs), (43200, 75600));
        assert_eq!(lease.acquired, t0 + secs(1));
        assert_eq!(
            lease.to_string(),
            "10.0.2.15/24 gw 10.0.2.2 dns 10.0.2.3 search example.internal (lease 86400 s)"
        );
        assert_eq!(c.deadline(), t0 + secs(1) + secs(43200));
        // Nothing happens before T1.
        assert!(c.on_timeout(t0 + secs(100)).is_empty());
    }

    #[test]
    fn discover_backoff_and_silence_log() {
        let t0 = Instant::now();
        let mut c = Client::new(MAC, None, 7, t0);
        let first = only_sent(&c.start(t0)).0;
        let mut now = t0;
        let mut gaps = Vec::new();
        let mut logs = Vec::new();
        let mut xids = vec![first.xid()];
        for _ in 0..10 {
            let next = c.deadline();
            gaps.push(next.duration_since(now).as_millis());
            now = next;
            let actions = c.on_timeout(now);
            let (m, d) = only_sent(&actions);
            assert_eq!(d, Dest::Broadcast);
            assert_eq!(opt_type(&m), MessageType::Discover);
            xids.push(m.xid());
            logs.extend(actions.iter().filter_map(|a| match a {
                Action::Log(l) => Some(l.clone()),
                _ => None,
            }));
        }
        // 1, 2, 4, 8, 16, 32, 32 … seconds, each within ±0.5 s.
        let want: [u32; 10] = [1, 2, 4, 8, 16, 32, 32, 32, 32, 32];
        for (gap, w) in gaps.iter().zip(want) {
            let w = u128::from(w) * 1000;
            assert!(*gap + 500 >= w && *gap < w + 500, "{gaps:?}");
        }
        // The transaction ID stays the same while selecting.
        assert!(xids.iter().all(|x| *x == first.xid()));
        assert!(!logs.is_empty());
        assert!(logs[0].starts_with("no DHCPv4 offer after "), "{logs:?}");
        assert!(logs[0].ends_with(" s, still trying"));
        // Rate-limited: not one per retransmission.
        assert!(logs.len() < 5, "{logs:?}");
    }

    #[test]
    fn unanswered_request_restarts_discovery() {
        let t0 = Instant::now();
        let mut c = Client::new(MAC, None, 3, t0);
        let discover = only_sent(&c.start(t0)).0;
        c.on_packet(&reply(&discover, MessageType::Offer, ME, Some(600)), t0);
        let mut last = Vec::new();
        for _ in 0..MAX_REQUESTS {
            let now = c.deadline();
            last = c.on_timeout(now);
        }
        assert_eq!(c.state(), State::Selecting);
        let (m, _) = only_sent(&last);
        assert_eq!(opt_type(&m), MessageType::Discover);
        assert_ne!(m.xid(), discover.xid());
    }

    #[test]
    fn renewal_at_t1_is_unicast() {
        let t0 = Instant::now();
        let (mut c, lease) = bound(t0, 1000);
        assert_eq!(c.deadline(), t0 + secs(500));
        let actions = c.on_timeout(t0 + secs(500));
        let (req, dest) = only_sent(&actions);
        assert_eq!(dest, Dest::Unicast(SERVER));
        assert_eq!(opt_type(&req), MessageType::Request);
        assert_eq!(req.ciaddr(), ME);
        assert!(req.opts().get(OptionCode::RequestedIpAddress).is_none());
        assert!(req.opts().get(OptionCode::ServerIdentifier).is_none());
        assert_eq!(c.state(), State::Renewing);
        // Retry: half of the time to T2 (875 - 500 = 375 / 2), at least 60 s.
        assert_eq!(
            c.deadline(),
            t0 + secs(500) + Duration::from_millis(187_500)
        );

        let ack = reply(&req, MessageType::Ack, ME, Some(1000));
        let actions = c.on_packet(&ack, t0 + secs(501));
        let [Action::Configure {
            lease: new,
            previous: Some(prev),
        }] = actions.as_slice()
        else {
            panic!("{actions:?}");
        };
        assert_eq!(prev, &lease);
        assert_eq!(new.acquired, t0 + secs(500));
        assert_eq!(c.state(), State::Bound);
        assert_eq!(c.deadline(), t0 + secs(1000));
    }

    #[test]
    fn rebinding_at_t2_then_expiry() {
        let t0 = Instant::now();
        let (mut c, lease) = bound(t0, 1000);
        c.on_timeout(t0 + secs(500));
        // Renewal retransmissions until T2 (875 s).
        let mut now = t0 + secs(500);
        let mut req = None;
        while c.state() == State::Renewing {
            now = c.deadline();
            let actions = c.on_timeout(now);
            let (m, dest) = only_sent(&actions);
            if c.state() == State::Rebinding {
                assert_eq!(dest, Dest::Broadcast);
                assert!(actions
                    .iter()
                    .any(|a| matches!(a, Action::Log(l) if l.contains("rebinding"))));
                req = Some(m);
            } else {
                assert_eq!(dest, Dest::Unicast(SERVER));
            }
        }
        assert_eq!(now, t0 + secs(875));
        assert_eq!(req.unwrap().ciaddr(), ME);
        // Retransmit until expiry; then the address goes and discovery restarts.
        let mut actions = Vec::new();
        while c.state() == State::Rebinding {
            now = c.deadline();
            assert!(now <= t0 + secs(1000));
            actions = c.on_timeout(now);
        }
        assert_eq!(now, t0 + secs(1000));
        assert!(actions.contains(&Action::Deconfigure {
            lease,
            reason: LossReason::Expired
        }));
        assert_eq!(c.state(), State::Selecting);
        assert!(c.lease().is_none());
        let (m, _) = only_sent(&actions);
        assert_eq!(opt_type(&m), MessageType::Discover);
    }

    #[test]
    fn rebinding_ack_with_a_new_address() {
        let t0 = Instant::now();
        let (mut c, lease) = bound(t0, 1000);
        c.on_timeout(t0 + secs(500));
        let mut now = t0 + secs(500);
        let mut actions = Vec::new();
        while c.state() != State::Rebinding {
            now = c.deadline();
            actions = c.on_timeout(now);
        }
        let (req, _) = only_sent(&actions);
        let other = Ipv4Addr::new(10, 0, 2, 16);
        let actions = c.on_packet(&reply(&req, MessageType::Ack, other, Some(1000)), now);
        assert_eq!(actions.len(), 2, "{actions:?}");
        assert_eq!(
            actions[0],
            Action::Deconfigure {
                lease,
                reason: LossReason::Expired
            }
        );
        assert!(
            matches!(&actions[1], Action::Configure { lease, previous: None } if lease.address == other)
        );
    }

    #[test]
    fn nak_while_requesting_restarts() {
        let t0 = Instant::now();
        let mut c = Client::new(MAC, None, 9, t0);
        let discover = only_sent(&c.start(t0)).0;
        let (req, _) =
            only_sent(&c.on_packet(&reply(&discover, MessageType::Offer, ME, Some(60)), t0));
        let actions = c.on_packet(
            &reply(&req, MessageType::Nak, Ipv4Addr::UNSPECIFIED, None),
            t0,
        );
        assert!(matches!(&actions[0], Action::Log(l) if l.starts_with("DHCPv4 NAK from 10.0.2.2")));
        assert!(!actions
            .iter()
            .any(|a| matches!(a, Action::Deconfigure { .. })));
        let (m, _) = only_sent(&actions);
        assert_eq!(opt_type(&m), MessageType::Discover);
        assert_eq!(c.state(), State::Selecting);
    }

    #[test]
    fn nak_while_renewing_removes_the_lease() {
        let t0 = Instant::now();
        let (mut c, lease) = bound(t0, 1000);
        let (req, _) = only_sent(&c.on_timeout(t0 + secs(500)));
        let actions = c.on_packet(
            &reply(&req, MessageType::Nak, Ipv4Addr::UNSPECIFIED, None),
            t0 + secs(501),
        );
        assert!(actions.contains(&Action::Deconfigure {
            lease,
            reason: LossReason::Nak
        }));
        assert_eq!(c.state(), State::Selecting);
        assert!(c.lease().is_none());
    }

    #[test]
    fn infinite_lease_never_renews() {
        let t0 = Instant::now();
        let (c, lease) = bound(t0, u32::MAX);
        assert!(lease.infinite());
        assert!(lease.to_string().ends_with("(lease infinite)"));
        assert!(c.deadline() > t0 + secs(365 * 24 * 3600));
    }

    #[test]
    fn ack_options() {
        let t0 = Instant::now();
        let mut m = Message::new_with_id(
            1,
            Ipv4Addr::UNSPECIFIED,
            ME,
            SERVER,
            Ipv4Addr::UNSPECIFIED,
            &MAC,
        );
        m.set_opcode(Opcode::BootReply);
        m.opts_mut()
            .insert(DhcpOption::MessageType(MessageType::Ack));
        m.opts_mut().insert(DhcpOption::AddressLeaseTime(100));
        m.opts_mut().insert(DhcpOption::Renewal(90));
        m.opts_mut().insert(DhcpOption::Rebinding(80));
        let lease = lease_from_ack(&m, t0).unwrap();
        // No mask: classful; no server ID: siaddr; T1 > T2: the default T1.
        assert_eq!(lease.prefix, 8);
        assert_eq!(lease.server, SERVER);
        assert_eq!((lease.t1_secs, lease.t2_secs), (50, 80));
        assert_eq!(lease.to_string(), "10.0.2.15/8 (lease 100 s)");
        m.set_yiaddr(Ipv4Addr::UNSPECIFIED);
        assert!(lease_from_ack(&m, t0).is_none());
    }

    #[test]
    fn masks() {
        assert_eq!(mask_to_prefix(Ipv4Addr::new(255, 255, 255, 0)), Some(24));
        assert_eq!(mask_to_prefix(Ipv4Addr::new(255, 255, 255, 255)), Some(32));
        assert_eq!(mask_to_prefix(Ipv4Addr::new(0, 0, 0, 0)), Some(0));
        assert_eq!(mask_to_prefix(Ipv4Addr::new(255, 240, 0, 0)), Some(12));
        assert_eq!(mask_to_prefix(Ipv4Addr::new(255, 0, 255, 0)), None);
    }
}

//! rtnetlink requests: link up, addresses, default routes.
//!
//! Messages are built with `netlink-packet-route` (pure functions, unit
//! tested below) and sent over a blocking `netlink_sys::Socket`; every
//! request asks for an ACK, so a failure comes back as an `io::Error`
//! carrying the kernel's errno.

use std::io;
use std::net::IpAddr;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL,
    NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope, CacheInfo};
use netlink_packet_route::link::{LinkFlags, LinkMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::config::Cidr;

/// Who installed a route (shown by `ip route` as `proto dhcp`/`proto static`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Dhcp,
    Static,
}

/// A blocking rtnetlink socket.
pub struct Netlink {
    socket: Socket,
    seq: u32,
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netlink").field("seq", &self.seq).finish()
    }
}

impl Netlink {
    pub fn open() -> io::Result<Netlink> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Netlink { socket, seq: 0 })
    }

    /// Sets IFF_UP on the link.
    pub fn link_up(&mut self, index: u32) -> io::Result<()> {
        self.request(RouteNetlinkMessage::SetLink(link_up_message(index)), 0)
    }

    /// Adds (or replaces: new lifetimes on renewal) an address.
    /// `lifetime` is the valid and preferred lifetime in seconds, `None`
    /// for a permanent address; the kernel removes an expired address itself.
    pub fn replace_address(
        &mut self,
        index: u32,
        cidr: Cidr,
        lifetime: Option<u32>,
    ) -> io::Result<()> {
        let msg = address_message(index, cidr, lifetime);
        self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
    }

    /// Adds an address unless it exists: `Ok(false)` if it was already there.
    pub fn add_address_if_missing(&mut self, index: u32, cidr: Cidr) -> io::Result<bool> {
        let msg = address_message(index, cidr, None);
        match self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub fn delete_address(&mut self, index: u32, cidr: Cidr) -> io::Result<()> {
        let msg = address_message(index, cidr, None);
        self.request(RouteNetlinkMessage::DelAddress(msg), 0)
    }

    /// Adds or replaces the default route via `gateway` on the link.
    pub fn replace_default_route(
        &mut self,
        index: u32,
        gateway: IpAddr,
        metric: u32,
        origin: Origin,
    ) -> io::Result<()> {
        let msg = default_route_message(index, gateway, metric, origin);
        self.request(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
    }

    pub fn delete_default_route(
        &mut self,
        index: u32,
        gateway: IpAddr,
        metric: u32,
        origin: Origin,
    ) -> io::Result<()> {
        let msg = default_route_message(index, gateway, metric, origin);
        self.request(RouteNetlinkMessage::DelRoute(msg), 0)
    }

    /// Sends one request with NLM_F_ACK and waits for its answer.
    fn request(&mut self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let buf = encode(msg, NLM_F_REQUEST | NLM_F_ACK | flags, seq);
        self.socket.send(&buf, 0)?;
        loop {
            let (reply, _) = self.socket.recv_from_full()?;
            if let Some(answer) = answer_in(&reply, seq)? {
                return answer;
            }
        }
    }
}

/// The kernel's answer to request `seq` in one datagram of replies: `Some`
/// with the ACK (`Ok`) or the error it carries, `None` if the datagram
/// does not hold it; `Err` if the datagram cannot be read.
#[doc(hidden)] // public for the fuzz targets
pub fn answer_in(reply: &[u8], seq: u32) -> io::Result<Option<io::Result<()>>> {
    let mut offset = 0;
    while let Some(rest) = reply.get(offset..).filter(|r| !r.is_empty()) {
        let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(rest)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        let len = msg.header.length as usize;
        if msg.header.sequence_number == seq {
            if let NetlinkPayload::Error(err) = msg.payload {
                // A negative errno; not `ErrorMessage::to_io`, whose `abs`
                // overflows on i32::MIN (found by the `netlink_reply` fuzz
                // target).
                return Ok(Some(match err.code {
                    None => Ok(()),
                    Some(code) => Err(io::Error::from_raw_os_error(code.get().saturating_abs())),
                }));
            }
        }
        if len == 0 {
            break;
        }
        // Messages are 4-byte aligned.
        offset += (len + 3) & !3;
    }
    Ok(None)
}

/// Serializes a request with the given flags and sequence number.
pub fn encode(msg: RouteNetlinkMessage, flags: u16, seq: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
    packet.finalize();
    let mut buf = vec![0u8; packet.buffer_len()];
    packet.serialize(&mut buf);
    buf
}

pub fn link_up_message(index: u32) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg.header.flags = LinkFlags::Up;
    msg.header.change_mask = LinkFlags::Up;
    msg
}

pub fn address_message(index: u32, cidr: Cidr, lifetime: Option<u32>) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.index = index;
    msg.header.prefix_len = cidr.prefix;
    msg.header.scope = if cidr.addr.is_loopback() {
        AddressScope::Host
    } else {
        AddressScope::Universe
    };
    msg.header.family = match cidr.addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    msg.attributes.push(AddressAttribute::Local(cidr.addr));
    msg.attributes.push(AddressAttribute::Address(cidr.addr));
    if let IpAddr::V4(v4) = cidr.addr {
        if cidr.prefix < 31 {
            let host_bits = u32::MAX.checked_shr(u32::from(cidr.prefix)).unwrap_or(0);
            let broadcast = u32::from(v4) | host_bits;
            msg.attributes
                .push(AddressAttribute::Broadcast(broadcast.into()));
        }
    }
    if let Some(secs) = lifetime {
        let mut info = CacheInfo::default();
        info.ifa_valid = secs;
        info.ifa_preferred = secs;
        msg.attributes.push(AddressAttribute::CacheInfo(info));
    }
    msg
}

pub fn default_route_message(
    index: u32,
    gateway: IpAddr,
    metric: u32,
    origin: Origin,
) -> RouteMessage {
    let (address_family, gw) = match gateway {
        IpAddr::V4(v4) => (AddressFamily::Inet, RouteAddress::Inet(v4)),
        IpAddr::V6(v6) => (AddressFamily::Inet6, RouteAddress::Inet6(v6)),
    };
    let header = RouteHeader {
        address_family,
        table: RouteHeader::RT_TABLE_MAIN,
        protocol: match origin {
            Origin::Dhcp => RouteProtocol::Dhcp,
            Origin::Static => RouteProtocol::Static,
        },
        scope: RouteScope::Universe,
        kind: RouteType::Unicast,
        ..RouteHeader::default()
    };
    let mut msg = RouteMessage::default();
    msg.header = header;
    msg.attributes.push(RouteAttribute::Gateway(gw));
    msg.attributes.push(RouteAttribute::Oif(index));
    msg.attributes.push(RouteAttribute::Priority(metric));
    msg
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn roundtrip(msg: RouteNetlinkMessage, flags: u16) -> RouteNetlinkMessage {
        let buf = encode(msg, flags, 7);
        let back = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf).unwrap();
        assert_eq!(back.header.sequence_number, 7);
        assert_eq!(back.header.flags, flags);
        assert_eq!(back.header.length as usize, buf.len());
        match back.payload {
            NetlinkPayload::InnerMessage(m) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn link_up() {
        let m = roundtrip(
            RouteNetlinkMessage::SetLink(link_up_message(3)),
            NLM_F_REQUEST | NLM_F_ACK,
        );
        let RouteNetlinkMessage::SetLink(l) = m else {
            panic!()
        };
        assert_eq!(l.header.index, 3);
        assert!(l.header.flags.contains(LinkFlags::Up));
        assert!(l.header.change_mask.contains(LinkFlags::Up));
    }

    #[test]
    fn dhcp_address_has_broadcast_and_lifetime() {
        let cidr = Cidr::parse("10.0.2.15/24").unwrap();
        let m = roundtrip(
            RouteNetlinkMessage::NewAddress(address_message(2, cidr, Some(600))),
            NLM_F_REQUEST,
        );
        let RouteNetlinkMessage::NewAddress(a) = m else {
            panic!()
        };
        assert_eq!(a.header.index, 2);
        assert_eq!(a.header.prefix_len, 24);
        assert_eq!(a.header.family, AddressFamily::Inet);
        assert!(a
            .attributes
            .contains(&AddressAttribute::Broadcast(Ipv4Addr::new(10, 0, 2, 255))));
        assert!(a.attributes.contains(&AddressAttribute::Local(cidr.addr)));
        assert!(a.attributes.iter().any(
            |x| matches!(x, AddressAttribute::CacheInfo(c) if c.ifa_valid == 600 && c.ifa_preferred == 600)
        ));
    }

    #[test]
    fn loopback_and_v6_addresses() {
        let a = address_message(1, Cidr::parse("127.0.0.1/8").unwrap(), None);
        assert_eq!(a.header.scope, AddressScope::Host);
        assert!(a
            .attributes
            .contains(&AddressAttribute::Broadcast(Ipv4Addr::new(
                127, 255, 255, 255
            ))));
        let a = address_message(2, Cidr::parse("fd00::2/64").unwrap(), None);
        assert_eq!(a.header.family, AddressFamily::Inet6);
        assert!(!a.attributes.iter().any(|x| matches!(
            x,
            AddressAttribute::Broadcast(_) | AddressAttribute::CacheInfo(_)
        )));
        let a = address_message(2, Cidr::parse("10.0.0.1/32").unwrap(), None);
        assert!(!a
            .attributes
            .iter()
            .any(|x| matches!(x, AddressAttribute::Broadcast(_))));
    }

    #[test]
    fn default_route() {
        let gw = IpAddr::V4(Ipv4Addr::new(10, 0, 2, 2));
        let m = roundtrip(
            RouteNetlinkMessage::NewRoute(default_route_message(2, gw, 1026, Origin::Dhcp)),
            NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE,
        );
        let RouteNetlinkMessage::NewRoute(r) = m else {
            panic!()
        };
        assert_eq!(r.header.destination_prefix_length, 0);
        assert_eq!(r.header.table, RouteHeader::RT_TABLE_MAIN);
        assert_eq!(r.header.protocol, RouteProtocol::Dhcp);
        assert!(r
            .attributes
            .contains(&RouteAttribute::Gateway(RouteAddress::Inet(Ipv4Addr::new(
                10, 0, 2, 2
            )))));
        assert!(r.attributes.contains(&RouteAttribute::Oif(2)));
        assert!(r.attributes.contains(&RouteAttribute::Priority(1026)));
    }
}

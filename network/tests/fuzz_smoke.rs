//! The network daemon's fuzz targets' bodies (`fuzz_bodies/`, shared with
//! `../fuzz/`) over their regression inputs, valid seeds and a few
//! thousand mutations of them (see `boot-contract/tests/fuzz_support/smoke.rs`).

mod fuzz_bodies;
#[path = "../../boot-contract/tests/fuzz_support/smoke.rs"]
mod smoke;

use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode};
use dhcproto::Encodable;
use slipway_network::netlink;
use slipway_network::netlink::{address_message, encode};

const CRATE: &str = env!("CARGO_MANIFEST_DIR");
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);

/// A server's answer of `kind`; the transaction ID is left to the body.
fn reply(kind: MessageType, lease: Option<u32>, t1: Option<u32>) -> Vec<u8> {
    let mut m = Message::new_with_id(
        0,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::new(10, 0, 2, 15),
        SERVER,
        Ipv4Addr::UNSPECIFIED,
        &fuzz_bodies::MAC,
    );
    m.set_opcode(Opcode::BootReply);
    let o = m.opts_mut();
    o.insert(DhcpOption::MessageType(kind));
    o.insert(DhcpOption::ServerIdentifier(SERVER));
    o.insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)));
    o.insert(DhcpOption::Router(vec![SERVER]));
    o.insert(DhcpOption::DomainNameServer(vec![Ipv4Addr::new(
        10, 0, 2, 3,
    )]));
    o.insert(DhcpOption::DomainName("example.internal".into()));
    if let Some(l) = lease {
        o.insert(DhcpOption::AddressLeaseTime(l));
    }
    if let Some(t) = t1 {
        o.insert(DhcpOption::Renewal(t));
    }
    m.to_vec().unwrap()
}

/// A packet event (with the transaction ID written in by the body).
fn packet(bytes: &[u8]) -> Vec<u8> {
    let mut e = vec![2u8];
    e.extend((bytes.len() as u16).to_be_bytes());
    e.extend(bytes);
    e
}

fn wait(secs: u16) -> Vec<u8> {
    let mut e = vec![1u8];
    e.extend(secs.to_be_bytes());
    e
}

#[test]
fn dhcp() {
    let offer = reply(MessageType::Offer, Some(600), None);
    let ack = reply(MessageType::Ack, Some(600), Some(100));
    let nak = reply(MessageType::Nak, None, None);
    let seeds = vec![
        // Bound, renewed at T1, then the server goes quiet: rebinding,
        // expiry, discovery again.
        [
            packet(&offer),
            packet(&ack),
            wait(100),
            packet(&ack),
            wait(700),
            wait(700),
        ]
        .concat(),
        // Refused, retried.
        [
            packet(&offer),
            packet(&nak),
            wait(5),
            packet(&offer),
            packet(&ack),
        ]
        .concat(),
        // No lease time, an infinite one.
        [
            packet(&offer),
            packet(&reply(MessageType::Ack, None, None)),
            wait(4000),
            packet(&reply(MessageType::Ack, Some(u32::MAX), None)),
        ]
        .concat(),
    ];
    smoke::smoke(CRATE, "dhcp", &seeds, fuzz_bodies::dhcp, 2000);
}

#[test]
fn netlink_reply() {
    use slipway_network::config::Cidr;
    let seq = 7u32;
    let mut ack = vec![36, 0, 0, 0, 2, 0, 0, 0];
    ack.extend(seq.to_le_bytes());
    ack.extend([0u8; 24]);
    let mut refused = ack.clone();
    refused[16..20].copy_from_slice(&(-17i32).to_le_bytes());
    let cidr = Cidr::parse("10.0.2.15/24").unwrap();
    let other = encode(
        netlink_packet_route::RouteNetlinkMessage::NewAddress(address_message(2, cidr, Some(600))),
        0,
        seq,
    );
    let seeds: Vec<Vec<u8>> = [
        vec![],
        other.clone(),
        [other, ack.clone()].concat(),
        refused,
    ]
    .into_iter()
    .map(|d| [&seq.to_le_bytes()[..], &d].concat())
    .collect();
    let seeds = [seeds, vec![[&8u32.to_le_bytes()[..], &ack].concat()]].concat();
    smoke::smoke(
        CRATE,
        "netlink_reply",
        &seeds,
        fuzz_bodies::netlink_reply,
        3000,
    );
    assert!(matches!(netlink::answer_in(&ack, seq), Ok(Some(Ok(())))));
}

#[test]
fn network_file() {
    let seeds: Vec<Vec<u8>> = [
        "[Match]\nName=eth* en*\nMACAddress=52:54:00:12:34:56\n\n[Network]\nDHCP=ipv4\n",
        "[Match]\nName=!lo\n[Network]\nAddress=192.168.7.10/24\nAddress=fd00::5/64\n\
         Gateway=192.168.7.1\nDNS=1.1.1.1 9.9.9.9\nDomains=example.org\n",
        "# comment\n[Match]\nName=eth1\n[Network]\nDHCP=no\nAddress=10.1.0.1/16\n",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    smoke::smoke(
        CRATE,
        "network_file",
        &seeds,
        fuzz_bodies::network_file,
        4000,
    );
}

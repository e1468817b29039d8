//! The bodies of the network daemon's fuzz targets, shared by `../../fuzz/`
//! (cargo-fuzz, its own workspace, includes this file with `#[path]`) and
//! `../fuzz_smoke.rs` (regression inputs, seeds and their mutations in the
//! ordinary test suite). Each takes arbitrary bytes, must never panic,
//! checks a property a wrong parser would break, and returns whether the
//! input was accepted. Dependencies: `slipway_network` only.

use std::path::Path;
use std::time::{Duration, Instant};

use slipway_network::config::{self, Cidr};
use slipway_network::dhcp::{Action, Client, State};
use slipway_network::netlink;

pub const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

/// The transaction ID of a packet the client sent.
fn xid_of(packet: &[u8]) -> u32 {
    u32::from_be_bytes(packet[4..8].try_into().unwrap())
}

/// A DHCP client fed a sequence of events. Each starts with a byte: even,
/// a packet follows (2 bytes of length, big-endian, then the bytes; with
/// bit 1 set the body writes the client's transaction ID into it, so
/// mutated packets get past that check); odd, time passes (2 bytes of
/// seconds) and the client's timeout runs if due. Every packet sent is a
/// BOOTREQUEST with the current transaction ID; a lease configured is
/// sane (prefix, T1 ≤ T2 ≤ lease) and is the client's lease while bound;
/// only a configured lease is removed; after a timeout the next deadline
/// is later after a few timeouts at most (no busy loop). Returns whether a lease was configured.
pub fn dhcp(data: &[u8]) -> bool {
    let t0 = Instant::now();
    let mut now = t0;
    let mut client = Client::new(MAC, Some("node1".into()), 7, now);
    let mut xid = 0;
    let mut configured = None;
    let mut bound = false;
    let mut check = |client: &Client, actions: Vec<Action>, xid: &mut u32| {
        for action in actions {
            match action {
                Action::Send { packet, .. } => {
                    assert!(packet.len() >= 240 && packet[0] == 1, "not a BOOTREQUEST");
                    assert_eq!(&packet[236..240], &[99, 130, 83, 99], "no magic cookie");
                    assert_eq!(&packet[28..34], &MAC);
                    *xid = xid_of(&packet);
                }
                Action::Configure { lease, previous } => {
                    assert!(lease.prefix <= 32, "{lease}");
                    assert!(!lease.address.is_unspecified(), "{lease}");
                    assert!(
                        lease.t1_secs <= lease.t2_secs && lease.t2_secs <= lease.lease_secs,
                        "{lease:?}"
                    );
                    assert_eq!(previous, configured, "replaces another lease");
                    assert_eq!(client.lease(), Some(&lease));
                    configured = Some(lease);
                    bound = true;
                }
                Action::Deconfigure { lease, .. } => {
                    assert_eq!(Some(&lease), configured.as_ref(), "removes another lease");
                    configured = None;
                }
                Action::Log(line) => assert!(!line.contains('\n'), "{line:?}"),
            }
        }
        if client.state() == State::Bound {
            assert!(client.lease().is_some());
        }
    };
    let started = client.start(now);
    check(&client, started, &mut xid);
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        let Some(word) = tail.get(..2) else { break };
        let n = usize::from(u16::from_be_bytes([word[0], word[1]]));
        rest = &tail[2..];
        if op % 2 == 0 {
            let n = n.min(rest.len());
            let mut packet = rest[..n].to_vec();
            rest = &rest[n..];
            if op & 2 != 0 && packet.len() >= 8 {
                packet[4..8].copy_from_slice(&xid.to_be_bytes());
            }
            let actions = client.on_packet(&packet, now);
            check(&client, actions, &mut xid);
        } else {
            now += Duration::from_secs(n as u64);
            // Time may jump past several deadlines (renew, rebind,
            // expiry); each call must move on, so a few calls settle it.
            for _ in 0..8 {
                if now < client.deadline() {
                    break;
                }
                let actions = client.on_timeout(now);
                check(&client, actions, &mut xid);
            }
            assert!(client.deadline() > now, "the deadline does not move on");
        }
    }
    bound
}

/// A datagram of netlink replies, as the kernel answers a request: the
/// first four bytes are the request's sequence number, the rest the
/// datagram. Reading it twice gives the same answer, and an ACK for the
/// request appended to a datagram read through without an answer is
/// found.
pub fn netlink_reply(data: &[u8]) -> bool {
    let Some((seq, reply)) = data.split_at_checked(4) else {
        return false;
    };
    let seq = u32::from_le_bytes(seq.try_into().unwrap());
    let answer = netlink::answer_in(reply, seq);
    let again = netlink::answer_in(reply, seq);
    let same = match (&answer, &again) {
        (Ok(Some(Ok(()))), Ok(Some(Ok(())))) | (Ok(None), Ok(None)) => true,
        (Ok(Some(Err(a))), Ok(Some(Err(b)))) | (Err(a), Err(b)) => a.kind() == b.kind(),
        _ => false,
    };
    assert!(same, "{answer:?} then {again:?}");
    // NLMSG_ERROR with error 0, echoing a 16-byte header.
    let mut ack = Vec::new();
    ack.extend(36u32.to_le_bytes());
    ack.extend(2u16.to_le_bytes());
    ack.extend(0u16.to_le_bytes());
    ack.extend(seq.to_le_bytes());
    ack.extend(0u32.to_le_bytes());
    ack.extend(0i32.to_le_bytes());
    ack.extend([0u8; 16]);
    assert!(matches!(netlink::answer_in(&ack, seq), Ok(Some(Ok(())))));
    if matches!(answer, Ok(None)) && reply.len() % 4 == 0 && reads_through(reply) {
        let joined = [reply, &ack].concat();
        assert!(
            matches!(netlink::answer_in(&joined, seq), Ok(Some(Ok(())))),
            "the ACK after the datagram is lost"
        );
    }
    answer.is_ok()
}

/// Whether the messages' lengths lead exactly to the end of `reply`.
fn reads_through(reply: &[u8]) -> bool {
    let mut offset = 0usize;
    while offset < reply.len() {
        let Some(len) = reply.get(offset..offset + 4) else {
            return false;
        };
        let len = u32::from_le_bytes(len.try_into().unwrap()) as usize;
        if len < 16 {
            return false;
        }
        offset += (len + 3) & !3;
    }
    offset == reply.len()
}

/// A `.network` file: warnings name a line of it, reading is
/// deterministic, addresses written back read back the same, and matching
/// link names against the file's patterns (fuzzed globs) ends.
pub fn network_file(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    let path = Path::new("/etc/systemd/network/10-fuzz.network");
    let (file, warnings) = config::parse(path, &text);
    let lines = text.lines().count();
    for w in &warnings {
        assert!(w.line <= lines.max(1), "{w}");
    }
    assert_eq!(config::parse(path, &text), (file.clone(), warnings.clone()));
    for cidr in &file.addresses {
        assert_eq!(Cidr::parse(&cidr.to_string()), Ok(*cidr));
    }
    for name in [
        "eth0",
        "enp0s3",
        "",
        "*",
        "a-very-long-interface-name-0123456789",
    ] {
        let _ = file.matches(name, Some(MAC));
    }
    for pattern in &file.match_names {
        let _ = file.matches(pattern, None);
    }
    warnings.is_empty()
}

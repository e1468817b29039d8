//! The per-link DHCP socket: plain UDP on 0.0.0.0:68, bound to the device.
//! Requests set the BROADCAST flag, so servers broadcast their answers and
//! the socket receives them before the link has an address; no AF_PACKET.

use std::io;
use std::net::{SocketAddrV4, UdpSocket};

use nix::sys::socket::{
    bind, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
};

pub const CLIENT_PORT: u16 = 68;
pub const SERVER_PORT: u16 = 67;

/// Opens the non-blocking DHCP client socket for `ifname`.
pub fn open(ifname: &str) -> io::Result<UdpSocket> {
    let fd = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    setsockopt(&fd, sockopt::Broadcast, &true)?;
    setsockopt(
        &fd,
        sockopt::BindToDevice,
        &std::ffi::OsString::from(ifname),
    )?;
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(SocketAddrV4::new(
            std::net::Ipv4Addr::UNSPECIFIED,
            CLIENT_PORT,
        )),
    )?;
    Ok(UdpSocket::from(fd))
}

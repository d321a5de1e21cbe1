//! ICMP and ICMPv6 echo through one link: a raw socket per family, bound
//! to the link (SO_BINDTODEVICE), so that probes leave through it and its
//! routes whatever the main table prefers, from the link's own address.
//! Replies are told apart by the socket's identifier and the sequence
//! number, which names the round.

use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;
/// Bytes after the 8-byte header: enough to be an ordinary ping.
const PAYLOAD: usize = 24;

/// The echo sockets of one link.
pub struct Echo {
    v4: Option<AsyncFd<Socket>>,
    v6: Option<AsyncFd<Socket>>,
    identifier: u16,
}

/// A reply: from whom, to which round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    pub from: IpAddr,
    pub seq: u16,
}

impl Echo {
    /// Sockets bound to `link` for the families `families` holds.
    pub fn open(link: &str, v4: bool, v6: bool, identifier: u16) -> io::Result<Echo> {
        let open = |domain, protocol| -> io::Result<AsyncFd<Socket>> {
            let socket = Socket::new(domain, Type::RAW, Some(protocol))?;
            socket.bind_device(Some(link.as_bytes()))?;
            socket.set_nonblocking(true)?;
            // SAFETY: the Socket stays open, and the same descriptor, for
            // as long as the AsyncFd owns it.
            unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }
                .map_err(io::Error::from)
        };
        Ok(Echo {
            v4: v4
                .then(|| open(Domain::IPV4, Protocol::ICMPV4))
                .transpose()?,
            v6: v6
                .then(|| open(Domain::IPV6, Protocol::ICMPV6))
                .transpose()?,
            identifier,
        })
    }

    /// Sends one echo request to `target` for round `seq`.
    pub fn send(&self, target: IpAddr, seq: u16) -> io::Result<()> {
        let (socket, kind) = match target {
            IpAddr::V4(_) => (&self.v4, ECHO_REQUEST_V4),
            IpAddr::V6(_) => (&self.v6, ECHO_REQUEST_V6),
        };
        let socket = socket
            .as_ref()
            .ok_or_else(|| io::Error::other("no socket for the family"))?;
        let mut packet = [0u8; 8 + PAYLOAD];
        packet[0] = kind;
        packet[4..6].copy_from_slice(&self.identifier.to_be_bytes());
        packet[6..8].copy_from_slice(&seq.to_be_bytes());
        packet[8..].copy_from_slice(b"ddm path health probe..!");
        if kind == ECHO_REQUEST_V4 {
            // ICMPv6's checksum is the kernel's (it covers a pseudo-header).
            let sum = checksum(&packet);
            packet[2..4].copy_from_slice(&sum.to_be_bytes());
        }
        socket
            .get_ref()
            .send_to(&packet, &SocketAddr::new(target, 0).into())
            .map(drop)
    }

    /// The next reply to one of this socket's requests.
    pub async fn receive(&self) -> io::Result<Reply> {
        loop {
            let reply = tokio::select! {
                reply = read(self.v4.as_ref(), true, self.identifier) => reply?,
                reply = read(self.v6.as_ref(), false, self.identifier) => reply?,
            };
            if let Some(reply) = reply {
                return Ok(reply);
            }
        }
    }
}

/// One datagram from `socket`, if it is a reply to us (`None` otherwise);
/// pending forever without a socket.
async fn read(
    socket: Option<&AsyncFd<Socket>>,
    v4: bool,
    identifier: u16,
) -> io::Result<Option<Reply>> {
    let Some(socket) = socket else {
        return std::future::pending().await;
    };
    let mut buffer = [MaybeUninit::<u8>::uninit(); 1500];
    let (length, from) = loop {
        let mut ready = socket.readable().await?;
        match ready.try_io(|s| s.get_ref().recv_from(&mut buffer)) {
            Ok(result) => break result?,
            Err(_would_block) => continue,
        }
    };
    // SAFETY: recv_from initialised the first `length` bytes.
    let data: &[u8] = unsafe { std::slice::from_raw_parts(buffer.as_ptr().cast(), length) };
    // An IPv4 raw socket hands over the IP header too; an IPv6 one not.
    let icmp = if v4 {
        let header = usize::from(data.first().map_or(0, |b| b & 0x0f)) * 4;
        data.get(header..).unwrap_or_default()
    } else {
        data
    };
    let expected = if v4 { ECHO_REPLY_V4 } else { ECHO_REPLY_V6 };
    if icmp.len() < 8 || icmp[0] != expected || icmp[4..6] != identifier.to_be_bytes() {
        return Ok(None);
    }
    let Some(from) = from.as_socket().map(|a| a.ip()) else {
        return Ok(None);
    };
    Ok(Some(Reply {
        from,
        seq: u16::from_be_bytes([icmp[6], icmp[7]]),
    }))
}

/// The Internet checksum (RFC 1071).
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_of_a_packet_with_its_checksum_is_zero() {
        let mut packet = [8u8, 0, 0, 0, 0x12, 0x34, 0, 1, 0xab, 0xcd, 0xef];
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(checksum(&packet), 0);
    }
}

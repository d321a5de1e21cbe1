//! The trigger device of a demand interface: a tun the service owns,
//! holding the interface's routes while it is disconnected.
//!
//! The first packet routed to it dials. Packets that arrive while dialing
//! are held (up to `hold_packets`; the rest are dropped and counted) and,
//! once the routes point at the link, sent again through a raw socket with
//! their own IP header, so the kernel routes them anew: the first ping and
//! the first TCP SYN are not lost. The tun is not persistent: it and its
//! routes vanish with the service's descriptor, even after a SIGKILL.

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use std::collections::VecDeque;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

const MAX_PACKET: usize = 65_535;

thread_local! {
    /// Where packets are read: one buffer for every trigger of the thread,
    /// so a demand interface holds no 64 KiB of its own.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; MAX_PACKET]);
}

pub struct Trigger {
    tun: AsyncFd<OwnedFd>,
    held: VecDeque<Vec<u8>>,
    /// The source the kernel gave the host's own packets to the routes
    /// while they pointed here: the trigger's address, or, while it has
    /// none, one of the host's others (found with the first packet held).
    picked: Option<Ipv4Addr>,
    limit: usize,
    /// Packets dropped since the service started: over the limit, or held
    /// for a dial that failed.
    pub dropped: u64,
}

impl Trigger {
    /// Creates the tun `name` (IFF_TUN, no packet information). What the
    /// kernel routes into it dials: the interface's own routes and the
    /// routes of a group it carries go there.
    pub fn create(name: &str, limit: usize) -> io::Result<Trigger> {
        let fd = open(
            "/dev/net/tun",
            OFlag::O_RDWR | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        // SAFETY: an all-zero ifreq is valid; the name fits (checked by
        // the configuration: at most 15 bytes) and stays NUL-terminated.
        let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
        for (slot, byte) in request.ifr_name.iter_mut().zip(name.bytes()) {
            *slot = byte as libc::c_char;
        }
        request.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes the ifreq it is given.
        if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut request) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the OwnedFd stays open, and the same descriptor, for as
        // long as the AsyncFd owns it.
        let tun = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(Trigger {
            tun,
            held: VecDeque::new(),
            picked: None,
            limit,
            dropped: 0,
        })
    }

    /// Waits for the next packet to the routes and holds it (or counts it
    /// dropped); other packets are ignored.
    pub async fn catch(&mut self) -> io::Result<()> {
        let packet = loop {
            let mut ready = self.tun.readable().await?;
            let read = ready.try_io(|fd| {
                SCRATCH.with_borrow_mut(|scratch| {
                    let n = nix::unistd::read(fd.get_ref(), scratch).map_err(io::Error::from)?;
                    let packet = &scratch[..n];
                    // The kernel also sends the tun its own packets (IPv6
                    // router solicitations, multicast): those dial nothing.
                    let ours = ipv4_destination(packet).is_some_and(is_routed);
                    Ok(ours.then(|| packet.to_vec()))
                })
            });
            match read {
                Ok(Ok(Some(packet))) => break packet,
                Ok(Ok(None)) => {}
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        };
        if self.held.is_empty() {
            self.picked = ipv4_destination(&packet).and_then(kernel_source);
        }
        if self.held.len() < self.limit {
            self.held.push_back(packet);
        } else {
            self.dropped += 1;
        }
        Ok(())
    }

    pub fn held_count(&self) -> usize {
        self.held.len()
    }

    /// Drops what it holds (the dial will not happen, or failed).
    pub fn discard(&mut self) {
        self.dropped += self.held.len() as u64;
        self.held.clear();
        self.picked = None;
    }

    /// Sends every held IPv4 packet again through `link` (the socket is
    /// bound to it: routes that still point at the trigger, such as a
    /// group's the router has yet to move, cannot send them back here);
    /// returns how many went out. Every packet keeps its source but one
    /// kind: with `icmp_from` (the link's address), an ICMP packet of the
    /// host's own whose source is the one the kernel picked because the
    /// trigger had no address of its own leaves from `icmp_from` instead,
    /// since the far end may not route that address back (an unbound
    /// ping's reply reaches it at any local address; a TCP or UDP socket
    /// cares, so those keep theirs). Packets forwarded from the hosts
    /// behind the router, and a ping bound to another address (`ping -I`),
    /// leave as they came.
    pub fn release(&mut self, link: &str, icmp_from: Option<Ipv4Addr>) -> io::Result<usize> {
        if self.held.is_empty() {
            return Ok(0);
        }
        let raw = raw_socket()?;
        nix::sys::socket::setsockopt(
            &raw,
            nix::sys::socket::sockopt::BindToDevice,
            &std::ffi::OsString::from(link),
        )?;
        let mut sent = 0;
        let picked = self.picked.take();
        for mut packet in self.held.drain(..) {
            if let Some(from) = new_source(&packet, picked, icmp_from) {
                set_icmp_source(&mut packet, from);
            }
            let Some(destination) = ipv4_destination(&packet) else {
                self.dropped += 1;
                continue;
            };
            match send_to(&raw, &packet, destination) {
                Ok(()) => sent += 1,
                Err(e) => {
                    self.dropped += 1;
                    tracing::debug!("re-sending a held packet failed: {e}");
                }
            }
        }
        Ok(sent)
    }
}

/// A destination traffic is routed to: not multicast, broadcast, "this
/// network" or link-local.
fn is_routed(to: Ipv4Addr) -> bool {
    !(to.is_multicast() || to.is_broadcast() || to.is_unspecified() || to.is_link_local())
        && to.octets()[0] != 0
}

/// The source the kernel gives an unbound socket's packets to `to` now
/// (a UDP socket connected there: a route lookup, nothing sent).
fn kernel_source(to: Ipv4Addr) -> Option<Ipv4Addr> {
    let socket = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    socket.connect((to, 9)).ok()?;
    match socket.local_addr().ok()? {
        std::net::SocketAddr::V4(local) => Some(*local.ip()),
        std::net::SocketAddr::V6(_) => None,
    }
}

/// AF_INET/SOCK_RAW/IPPROTO_RAW: the packet carries its own header.
fn raw_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) returns a new descriptor or -1.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_RAW,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// sendto(2) of a whole IPv4 packet to `destination`.
fn send_to(raw: &OwnedFd, packet: &[u8], destination: Ipv4Addr) -> io::Result<()> {
    let to = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(destination).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: the buffer and the address are valid for the lengths given.
    let sent = unsafe {
        libc::sendto(
            raw.as_raw_fd(),
            packet.as_ptr().cast(),
            packet.len(),
            libc::MSG_DONTWAIT,
            std::ptr::from_ref(&to).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Gives an IPv4 ICMP packet the source `from` (and its header a new
/// checksum; the ICMP checksum does not cover addresses).
fn set_icmp_source(packet: &mut [u8], from: Ipv4Addr) {
    let header_len = usize::from(packet.first().map_or(0, |b| b & 0x0f)) * 4;
    if packet.len() < 20 || header_len < 20 || packet.len() < header_len {
        return;
    }
    if packet[0] >> 4 != 4 || packet[9] != libc::IPPROTO_ICMP as u8 {
        return;
    }
    packet[12..16].copy_from_slice(&from.octets());
    packet[10..12].copy_from_slice(&[0, 0]);
    let sum = packet[..header_len]
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let folded = (sum & 0xffff) + (sum >> 16);
    let folded = (folded & 0xffff) + (folded >> 16);
    packet[10..12].copy_from_slice(&(!(folded as u16)).to_be_bytes());
}

/// The source a held packet leaves with when it is not its own (see
/// [`Trigger::release`]): `link_address`, for a packet whose source is
/// the one the kernel `picked`.
fn new_source(
    packet: &[u8],
    picked: Option<Ipv4Addr>,
    link_address: Option<Ipv4Addr>,
) -> Option<Ipv4Addr> {
    let picked = picked?;
    (ipv4_source(packet) == Some(picked)).then_some(link_address?)
}

/// The destination of an IPv4 packet; None for anything else.
pub fn ipv4_destination(packet: &[u8]) -> Option<Ipv4Addr> {
    ipv4_address_at(packet, 16)
}

/// The source of an IPv4 packet; None for anything else.
fn ipv4_source(packet: &[u8]) -> Option<Ipv4Addr> {
    ipv4_address_at(packet, 12)
}

/// The address at `offset` of an IPv4 header.
fn ipv4_address_at(packet: &[u8], offset: usize) -> Option<Ipv4Addr> {
    let header = packet.get(..20)?;
    (header[0] >> 4 == 4).then(|| {
        Ipv4Addr::new(
            header[offset],
            header[offset + 1],
            header[offset + 2],
            header[offset + 3],
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_icmp_packet_gets_a_new_source_and_a_valid_checksum() {
        // An echo request from 10.1.0.1 to 192.168.20.1 (checksum 0x...).
        let mut packet = vec![
            0x45, 0, 0, 28, 0x12, 0x34, 0x40, 0, 64, 1, 0, 0, 10, 1, 0, 1, 192, 168, 20, 1, 8, 0,
            0xf7, 0xff, 0, 0, 0, 0,
        ];
        set_icmp_source(&mut packet, Ipv4Addr::new(10, 9, 0, 1));
        assert_eq!(&packet[12..16], &[10, 9, 0, 1]);
        let sum: u32 = packet[..20]
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        let folded = (sum & 0xffff) + (sum >> 16);
        assert_eq!(
            (folded + (folded >> 16)) & 0xffff,
            0xffff,
            "the header checksums to all ones"
        );
        let mut udp = packet.clone();
        udp[9] = libc::IPPROTO_UDP as u8;
        let before = udp.clone();
        set_icmp_source(&mut udp, Ipv4Addr::new(1, 2, 3, 4));
        assert_eq!(udp, before, "other protocols keep their source");
    }

    #[test]
    fn only_the_host_s_own_packets_from_the_kernel_s_pick_change_source() {
        let from = |source: [u8; 4]| {
            let mut packet = [0u8; 20];
            packet[0] = 0x45;
            packet[12..16].copy_from_slice(&source);
            packet[16..20].copy_from_slice(&[192, 168, 20, 1]);
            packet
        };
        let picked = Some(Ipv4Addr::new(10, 77, 0, 1));
        let link = Some(Ipv4Addr::new(10, 9, 0, 1));
        // An unbound ping: the kernel's pick, which the far end may not know.
        assert_eq!(new_source(&from([10, 77, 0, 1]), picked, link), link);
        // A ping bound to the router's LAN address, and a LAN host's packet.
        assert_eq!(new_source(&from([192, 168, 76, 1]), picked, link), None);
        assert_eq!(new_source(&from([192, 168, 76, 50]), picked, link), None);
        // trigger_src (no link address given), or no pick known.
        assert_eq!(new_source(&from([10, 77, 0, 1]), picked, None), None);
        assert_eq!(new_source(&from([10, 77, 0, 1]), None, link), None);
    }

    #[test]
    fn only_ipv4_packets_have_a_destination() {
        let mut packet = [0u8; 20];
        packet[0] = 0x45;
        packet[16..20].copy_from_slice(&[192, 168, 20, 1]);
        assert_eq!(
            ipv4_destination(&packet),
            Some(Ipv4Addr::new(192, 168, 20, 1))
        );
        packet[0] = 0x60;
        assert_eq!(ipv4_destination(&packet), None);
        assert_eq!(ipv4_destination(&[0x45; 10]), None);
    }
}

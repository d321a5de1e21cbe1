//! The trigger device of a demand interface: a tun the service owns,
//! holding the interface's routes while it is disconnected.
//!
//! The first packet routed to it dials, IPv4 or IPv6. Packets that arrive
//! while dialing are held (up to `hold_packets`; the rest are dropped and
//! counted) and, once the routes point at the link, sent again through a
//! raw socket of their family with their own IP header, so the kernel
//! routes them anew: the first ping and the first TCP SYN are not lost. The tun is not persistent: it and its
//! routes vanish with the service's descriptor, even after a SIGKILL.

use super::filter::{DialFilter, Seen};
use super::packet;
use super::sources::Sources;
use nix::fcntl::{open, OFlag};
use nix::sys::socket::{MsgFlags, SockaddrStorage};
use nix::sys::stat::Mode;
use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
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
    /// The sources the kernel gave the host's own packets to the routes
    /// while they pointed here: the trigger's addresses, or, while it has
    /// none of a family, one of the host's others (found with the first
    /// packet of that family held).
    picked: Sources,
    /// Which traffic may dial (`dial_on`, `dial_except`); None: all.
    filter: Option<Arc<DialFilter>>,
    limit: usize,
    /// Packets dropped since the service started: over the limit, or held
    /// for a dial that failed.
    pub dropped: u64,
}

/// Opens the tun device `name` (IFF_TUN, no packet information), made
/// if it is not there.
fn make_tun(name: &str) -> io::Result<OwnedFd> {
    let fd = open(
        "/dev/net/tun",
        OFlag::O_RDWR | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: an all-zero ifreq is valid; the name fits (checked by the
    // configuration: at most 15 bytes) and stays NUL-terminated.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(name.bytes()) {
        *slot = byte as libc::c_char;
    }
    request.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes the ifreq it is given.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut request) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

impl Trigger {
    /// Creates the tun `name` (IFF_TUN, no packet information). What the
    /// kernel routes into it dials: the interface's own routes and the
    /// routes of a group it carries go there.
    pub async fn create(
        name: &str,
        limit: usize,
        filter: Option<Arc<DialFilter>>,
    ) -> io::Result<Trigger> {
        // The kernel makes the device under its RTNL lock, which every
        // process changing links takes: not on the service's thread.
        let name = name.to_owned();
        let fd = tokio::task::spawn_blocking(move || make_tun(&name))
            .await
            .map_err(io::Error::other)??;
        // SAFETY: the OwnedFd stays open, and the same descriptor, for as
        // long as the AsyncFd owns it.
        let tun = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(Trigger {
            tun,
            held: VecDeque::new(),
            picked: Sources::default(),
            filter,
            limit,
            dropped: 0,
        })
    }

    /// Takes the device down. The kernel unregisters a tun when its last
    /// descriptor closes, and waits for RCU grace periods there (tens of
    /// milliseconds): closed on the blocking pool, so that the service's
    /// thread never waits for it, and a stop of many triggers waits for
    /// them side by side, not one after another.
    pub async fn close(self) {
        let fd = self.tun.into_inner();
        let _ = tokio::task::spawn_blocking(move || drop(fd)).await;
    }

    /// Waits for the next packet to the routes that may dial and holds it
    /// (or counts it dropped); other packets are ignored, and those the
    /// filter refuses are answered "administratively prohibited".
    pub async fn catch(&mut self) -> io::Result<()> {
        let filter = self.filter.clone();
        let (packet, to) = loop {
            let mut ready = self.tun.readable().await?;
            let read = ready.try_io(|fd| {
                SCRATCH.with_borrow_mut(|scratch| {
                    let n = nix::unistd::read(fd.get_ref(), scratch).map_err(io::Error::from)?;
                    let packet = &scratch[..n];
                    // The kernel also sends the tun its own packets (IPv6
                    // router solicitations, MLD reports): those dial nothing.
                    let Some(to) = packet::destination(packet).filter(|to| packet::is_routed(*to))
                    else {
                        return Ok(None);
                    };
                    if filter.as_ref().is_some_and(|f| !may_dial(f, packet, to)) {
                        if let Some(answer) = packet::prohibited(packet) {
                            // Into the tun: the kernel takes it as arrived
                            // from the far side and routes it to the sender.
                            let _ = nix::unistd::write(fd.get_ref(), &answer);
                        }
                        return Ok(None);
                    }
                    Ok(Some((packet.to_vec(), to)))
                })
            });
            match read {
                Ok(Ok(Some(caught))) => break caught,
                Ok(Ok(None)) => {}
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        };
        if self.picked.of_family(to).is_none() {
            if let Some(picked) = kernel_source(to) {
                self.picked.set(picked);
            }
        }
        if self.held.len() < self.limit {
            self.held.push_back(packet);
        } else {
            self.dropped += 1;
        }
        Ok(())
    }

    /// Applies `filter` from the next packet on.
    pub fn set_filter(&mut self, filter: Option<Arc<DialFilter>>) {
        self.filter = filter;
    }

    pub fn held_count(&self) -> usize {
        self.held.len()
    }

    /// Drops what it holds (the dial will not happen, or failed).
    pub fn discard(&mut self) {
        self.dropped += self.held.len() as u64;
        self.held.clear();
        self.picked = Sources::default();
    }

    /// Sends every held packet again through `link` (the sockets are bound
    /// to it: routes that still point at the trigger, such as a group's
    /// the router has yet to move, cannot send them back here); returns
    /// how many went out. Every packet keeps its source but one kind: an
    /// ICMP or ICMPv6 packet of the host's own whose source is the one the
    /// kernel picked because the trigger had no address of that family
    /// leaves from the link's address of that family in `link_addresses`
    /// (ddm's learned ones: none where `trigger_src`/`trigger_src6` is
    /// set), since the far end may not route the picked one back (an
    /// unbound ping's reply reaches it at any local address; a TCP or UDP
    /// socket cares, so those keep theirs). Packets forwarded from the
    /// hosts behind the router, and a ping bound to another address
    /// (`ping -I`), leave as they came.
    pub fn release(&mut self, link: &str, link_addresses: Sources) -> io::Result<usize> {
        if self.held.is_empty() {
            return Ok(0);
        }
        let mut sockets = RawSockets::bound_to(link);
        let mut sent = 0;
        let picked = std::mem::take(&mut self.picked);
        for mut packet in self.held.drain(..) {
            if let Some(from) = new_source(&packet, picked, link_addresses) {
                packet::set_icmp_source(&mut packet, from);
            }
            let Some(to) = packet::destination(&packet) else {
                self.dropped += 1;
                continue;
            };
            match sockets.send(&packet, to) {
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

/// Whether `filter` lets the packet to `to` dial.
fn may_dial(filter: &DialFilter, packet: &[u8], to: std::net::IpAddr) -> bool {
    let (Some(source), Some((protocol, port))) =
        (packet::source(packet), packet::protocol_and_port(packet))
    else {
        return false;
    };
    filter.allows(&Seen {
        protocol,
        source,
        destination: to,
        port,
    })
}

/// The source a held packet leaves with when it is not its own (see
/// [`Trigger::release`]): the link's address of its family, for a packet
/// whose source is the one the kernel `picked`.
fn new_source(packet: &[u8], picked: Sources, link_addresses: Sources) -> Option<IpAddr> {
    let from = packet::source(packet)?;
    let picked = picked.of_family(from)?;
    (from == picked).then_some(link_addresses.of_family(from)?)
}

/// The source the kernel gives an unbound socket's packets to `to` now
/// (a UDP socket connected there: a route lookup, nothing sent).
fn kernel_source(to: IpAddr) -> Option<IpAddr> {
    let any: IpAddr = match to {
        IpAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = std::net::UdpSocket::bind((any, 0)).ok()?;
    socket.connect((to, 9)).ok()?;
    Some(socket.local_addr().ok()?.ip())
}

/// A raw socket of each family, made when a packet of it is sent, bound
/// to one link.
struct RawSockets<'a> {
    link: &'a str,
    v4: Option<OwnedFd>,
    v6: Option<OwnedFd>,
}

impl<'a> RawSockets<'a> {
    fn bound_to(link: &'a str) -> Self {
        RawSockets {
            link,
            v4: None,
            v6: None,
        }
    }

    /// sendto(2) of a whole packet, its own header first, to `to`.
    fn send(&mut self, packet: &[u8], to: IpAddr) -> io::Result<()> {
        let (slot, family) = match to {
            IpAddr::V4(_) => (&mut self.v4, libc::AF_INET),
            IpAddr::V6(_) => (&mut self.v6, libc::AF_INET6),
        };
        let raw = match slot {
            Some(raw) => raw,
            None => slot.insert(raw_socket(family, self.link)?),
        };
        let address = SockaddrStorage::from(SocketAddr::new(to, 0));
        nix::sys::socket::sendto(raw.as_raw_fd(), packet, &address, MsgFlags::MSG_DONTWAIT)?;
        Ok(())
    }
}

/// SOCK_RAW/IPPROTO_RAW of `family`, bound to `link`: the packet carries
/// its own header (for IPv6, IPPROTO_RAW implies IPV6_HDRINCL).
fn raw_socket(family: libc::c_int, link: &str) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) returns a new descriptor or -1.
    let fd = unsafe {
        libc::socket(
            family,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_RAW,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a new descriptor nobody else owns.
    let raw = unsafe { OwnedFd::from_raw_fd(fd) };
    nix::sys::socket::setsockopt(
        &raw,
        nix::sys::socket::sockopt::BindToDevice,
        &std::ffi::OsString::from(link),
    )?;
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_hosts_own_packets_from_the_kernels_pick_change_source() {
        let from = |source: &str| {
            let mut packet = [0u8; 20];
            packet[0] = 0x45;
            let source: std::net::Ipv4Addr = source.parse().unwrap();
            packet[12..16].copy_from_slice(&source.octets());
            packet[16..20].copy_from_slice(&[192, 168, 20, 1]);
            packet
        };
        let picked = Sources {
            v4: Some("10.77.0.1".parse().unwrap()),
            v6: None,
        };
        let link = Sources {
            v4: Some("10.9.0.1".parse().unwrap()),
            v6: Some("fd09::1".parse().unwrap()),
        };
        let linked = Some("10.9.0.1".parse().unwrap());
        // An unbound ping: the kernel's pick, which the far end may not know.
        assert_eq!(new_source(&from("10.77.0.1"), picked, link), linked);
        // A ping bound to the router's LAN address, and a LAN host's packet.
        assert_eq!(new_source(&from("192.168.76.1"), picked, link), None);
        assert_eq!(new_source(&from("192.168.76.50"), picked, link), None);
        // trigger_src (no link address of the family), or no pick known.
        let v6_only = Sources { v4: None, ..link };
        assert_eq!(new_source(&from("10.77.0.1"), picked, v6_only), None);
        assert_eq!(
            new_source(&from("10.77.0.1"), Sources::default(), link),
            None
        );
    }
}

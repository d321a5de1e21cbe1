//! The few facts about an IP packet that demand dialing reads and writes:
//! its family, source and destination, protocol and destination port,
//! whether its destination is one traffic is routed to, a new source for
//! an ICMP or ICMPv6 packet (with the checksums that cover it), and the
//! "administratively prohibited" answer to a packet a filter refuses.
//! Pure, on byte slices.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The IPv4 header's length without options, and the IPv6 header's.
const IPV4_HEADER: usize = 20;
const IPV6_HEADER: usize = 40;
/// ICMPv6's next-header number.
const ICMPV6: u8 = 58;

/// The destination of an IPv4 or IPv6 packet; None for anything else.
pub fn destination(packet: &[u8]) -> Option<IpAddr> {
    match version(packet)? {
        4 => Some(IpAddr::V4(v4_at(packet, 16)?)),
        _ => Some(IpAddr::V6(v6_at(packet, 24)?)),
    }
}

/// The source of an IPv4 or IPv6 packet; None for anything else.
pub fn source(packet: &[u8]) -> Option<IpAddr> {
    match version(packet)? {
        4 => Some(IpAddr::V4(v4_at(packet, 12)?)),
        _ => Some(IpAddr::V6(v6_at(packet, 8)?)),
    }
}

/// The protocol (IPv6: the next header after the fixed one) and, for TCP
/// and UDP, the destination port (not in a later fragment).
pub fn protocol_and_port(packet: &[u8]) -> Option<(u8, Option<u16>)> {
    let (protocol, transport) = match version(packet)? {
        4 => {
            let header_len = usize::from(packet[0] & 0x0f) * 4;
            let later_fragment = u16::from_be_bytes([packet[6], packet[7]]) & 0x1fff != 0;
            (packet[9], (!later_fragment).then_some(header_len))
        }
        _ => (packet[6], Some(IPV6_HEADER)),
    };
    let port = match protocol {
        6 | 17 => transport
            .and_then(|at| packet.get(at + 2..at + 4))
            .map(|p| u16::from_be_bytes([p[0], p[1]])),
        _ => None,
    };
    Some((protocol, port))
}

/// The answer to a packet refused by a demand-dial filter: ICMP
/// "communication administratively prohibited" (type 3, code 13), or
/// ICMPv6's (type 1, code 1), from the packet's destination back to its
/// source, carrying the start of the packet so that the sender's socket
/// fails at once. None for a packet that gets no answer: an ICMP error,
/// or one whose source is no one's.
pub fn prohibited(packet: &[u8]) -> Option<Vec<u8>> {
    let (from, to) = (destination(packet)?, source(packet)?);
    if !is_routed(to) {
        return None;
    }
    let (protocol, _) = protocol_and_port(packet)?;
    match (from, to) {
        (IpAddr::V4(from), IpAddr::V4(to)) => {
            let header_len = usize::from(packet[0] & 0x0f) * 4;
            let error = protocol == libc::IPPROTO_ICMP as u8
                && packet
                    .get(header_len)
                    .is_some_and(|t| matches!(t, 3 | 4 | 5 | 11 | 12));
            if error {
                return None;
            }
            let quoted = &packet[..(header_len + 8).min(packet.len())];
            let mut reply = vec![0u8; IPV4_HEADER + 8 + quoted.len()];
            reply[0] = 0x45;
            let total = reply.len() as u16;
            reply[2..4].copy_from_slice(&total.to_be_bytes());
            reply[8] = 64;
            reply[9] = libc::IPPROTO_ICMP as u8;
            reply[12..16].copy_from_slice(&from.octets());
            reply[16..20].copy_from_slice(&to.octets());
            let header_sum = ones_complement_sum(&reply[..IPV4_HEADER], 0);
            reply[10..12].copy_from_slice(&(!header_sum).to_be_bytes());
            reply[IPV4_HEADER] = 3;
            reply[IPV4_HEADER + 1] = 13;
            reply[IPV4_HEADER + 8..].copy_from_slice(quoted);
            let sum = ones_complement_sum(&reply[IPV4_HEADER..], 0);
            reply[IPV4_HEADER + 2..IPV4_HEADER + 4].copy_from_slice(&(!sum).to_be_bytes());
            Some(reply)
        }
        (IpAddr::V6(from), IpAddr::V6(to)) => {
            let error = protocol == ICMPV6 && packet.get(IPV6_HEADER).is_some_and(|t| *t < 128);
            if error {
                return None;
            }
            // The whole answer within IPv6's minimum MTU.
            let quoted = &packet[..packet.len().min(1280 - IPV6_HEADER - 8)];
            let mut reply = vec![0u8; IPV6_HEADER + 8 + quoted.len()];
            reply[0] = 0x60;
            reply[4..6].copy_from_slice(&((8 + quoted.len()) as u16).to_be_bytes());
            reply[6] = ICMPV6;
            reply[7] = 64;
            reply[24..40].copy_from_slice(&to.octets());
            reply[IPV6_HEADER] = 1;
            reply[IPV6_HEADER + 1] = 1;
            reply[IPV6_HEADER + 8..].copy_from_slice(quoted);
            // The checksum, with the source set as ICMPv6 wants it.
            set_icmpv6_source(&mut reply, from);
            Some(reply)
        }
        _ => None,
    }
}

/// 4 or 6, from the first nibble of a long enough packet.
fn version(packet: &[u8]) -> Option<u8> {
    match packet.first()? >> 4 {
        4 if packet.len() >= IPV4_HEADER => Some(4),
        6 if packet.len() >= IPV6_HEADER => Some(6),
        _ => None,
    }
}

fn v4_at(packet: &[u8], offset: usize) -> Option<Ipv4Addr> {
    let bytes: [u8; 4] = packet.get(offset..offset + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(bytes))
}

fn v6_at(packet: &[u8], offset: usize) -> Option<Ipv6Addr> {
    let bytes: [u8; 16] = packet.get(offset..offset + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(bytes))
}

/// A destination traffic is routed to: not multicast, broadcast, "this
/// network", loopback or link-local. (The kernel's own packets on a link,
/// router and neighbour solicitations, MLD reports, are multicast.)
pub fn is_routed(to: IpAddr) -> bool {
    match to {
        IpAddr::V4(to) => {
            !(to.is_multicast()
                || to.is_broadcast()
                || to.is_unspecified()
                || to.is_link_local()
                || to.is_loopback())
                && to.octets()[0] != 0
        }
        IpAddr::V6(to) => {
            !(to.is_multicast()
                || to.is_unspecified()
                || to.is_loopback()
                || to.is_unicast_link_local())
        }
    }
}

/// Gives an ICMP (IPv4) or ICMPv6 packet the source `from`, of its own
/// family, with the checksums that cover it made again: the IPv4 header's
/// (ICMP's does not cover addresses), or ICMPv6's (it covers them). Any
/// other packet is left alone.
pub fn set_icmp_source(packet: &mut [u8], from: IpAddr) {
    match (version(packet), from) {
        (Some(4), IpAddr::V4(from)) => set_icmpv4_source(packet, from),
        (Some(6), IpAddr::V6(from)) => set_icmpv6_source(packet, from),
        _ => {}
    }
}

fn set_icmpv4_source(packet: &mut [u8], from: Ipv4Addr) {
    let header_len = usize::from(packet[0] & 0x0f) * 4;
    if header_len < IPV4_HEADER || packet.len() < header_len {
        return;
    }
    if packet[9] != libc::IPPROTO_ICMP as u8 {
        return;
    }
    packet[12..16].copy_from_slice(&from.octets());
    packet[10..12].copy_from_slice(&[0, 0]);
    let sum = ones_complement_sum(&packet[..header_len], 0);
    packet[10..12].copy_from_slice(&(!sum).to_be_bytes());
}

fn set_icmpv6_source(packet: &mut [u8], from: Ipv6Addr) {
    // ICMPv6 right after the fixed header (no extension headers).
    if packet[6] != ICMPV6 || packet.len() < IPV6_HEADER + 4 {
        return;
    }
    let payload = usize::from(u16::from_be_bytes([packet[4], packet[5]]));
    let end = (IPV6_HEADER + payload).min(packet.len());
    packet[8..24].copy_from_slice(&from.octets());
    packet[IPV6_HEADER + 2..IPV6_HEADER + 4].copy_from_slice(&[0, 0]);
    // The pseudo-header: source, destination, length, next header.
    let length = (end - IPV6_HEADER) as u32;
    let mut pseudo = [0u8; 40];
    pseudo[..32].copy_from_slice(&packet[8..40]);
    pseudo[32..36].copy_from_slice(&length.to_be_bytes());
    pseudo[39] = ICMPV6;
    let sum = ones_complement_sum(&packet[IPV6_HEADER..end], ones_complement_sum(&pseudo, 0));
    packet[IPV6_HEADER + 2..IPV6_HEADER + 4].copy_from_slice(&(!sum).to_be_bytes());
}

/// The 16-bit one's complement sum of `bytes` (an odd last byte padded
/// with zero), added to `start`.
fn ones_complement_sum(bytes: &[u8], start: u16) -> u16 {
    let mut sum = u32::from(start);
    for pair in bytes.chunks(2) {
        let word = u16::from_be_bytes([pair[0], pair.get(1).copied().unwrap_or(0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo request from 10.1.0.1 to 192.168.20.1.
    fn echo_v4() -> Vec<u8> {
        vec![
            0x45, 0, 0, 28, 0x12, 0x34, 0x40, 0, 64, 1, 0, 0, 10, 1, 0, 1, 192, 168, 20, 1, 8, 0,
            0xf7, 0xff, 0, 0, 0, 0,
        ]
    }

    /// An ICMPv6 echo request from fd09::99 to 2001:db8:20::1, with a
    /// payload of 4 bytes and a right checksum.
    fn echo_v6() -> Vec<u8> {
        let mut packet = vec![0u8; IPV6_HEADER + 12];
        packet[0] = 0x60;
        packet[4..6].copy_from_slice(&12u16.to_be_bytes());
        packet[6] = ICMPV6;
        packet[7] = 64;
        let from: Ipv6Addr = "fd09::99".parse().unwrap();
        let to: Ipv6Addr = "2001:db8:20::1".parse().unwrap();
        packet[8..24].copy_from_slice(&from.octets());
        packet[24..40].copy_from_slice(&to.octets());
        packet[40] = 128;
        packet[44..52].copy_from_slice(&[0, 7, 0, 1, 1, 2, 3, 4]);
        set_icmpv6_source(&mut packet, from);
        packet
    }

    /// Whether the ICMPv6 checksum checks: the sum over the pseudo-header
    /// and the message, checksum included, is all ones.
    fn icmpv6_checks(packet: &[u8]) -> bool {
        let mut pseudo = [0u8; 40];
        pseudo[..32].copy_from_slice(&packet[8..40]);
        pseudo[32..36].copy_from_slice(&((packet.len() - IPV6_HEADER) as u32).to_be_bytes());
        pseudo[39] = ICMPV6;
        ones_complement_sum(&packet[IPV6_HEADER..], ones_complement_sum(&pseudo, 0)) == 0xffff
    }

    #[test]
    fn an_icmp_packet_gets_a_new_source_and_a_valid_header_checksum() {
        let mut packet = echo_v4();
        set_icmp_source(&mut packet, "10.9.0.1".parse().unwrap());
        assert_eq!(&packet[12..16], &[10, 9, 0, 1]);
        assert_eq!(ones_complement_sum(&packet[..20], 0), 0xffff);
        let mut udp = echo_v4();
        udp[9] = libc::IPPROTO_UDP as u8;
        let before = udp.clone();
        set_icmp_source(&mut udp, "1.2.3.4".parse().unwrap());
        assert_eq!(udp, before, "other protocols keep their source");
        let mut v4 = echo_v4();
        set_icmp_source(&mut v4, "fd09::1".parse().unwrap());
        assert_eq!(
            v4,
            echo_v4(),
            "an address of the other family changes nothing"
        );
    }

    #[test]
    fn an_icmpv6_packet_gets_a_new_source_and_a_valid_checksum() {
        let mut packet = echo_v6();
        assert!(icmpv6_checks(&packet), "the example's checksum");
        let before = packet[42..44].to_vec();
        set_icmp_source(&mut packet, "fd09::1".parse().unwrap());
        assert_eq!(source(&packet), Some("fd09::1".parse().unwrap()));
        assert!(icmpv6_checks(&packet), "the checksum covers the new source");
        assert_ne!(packet[42..44].to_vec(), before);
        let mut tcp = echo_v6();
        tcp[6] = libc::IPPROTO_TCP as u8;
        let unchanged = tcp.clone();
        set_icmp_source(&mut tcp, "fd09::1".parse().unwrap());
        assert_eq!(tcp, unchanged);
    }

    #[test]
    fn addresses_of_both_families_and_nothing_else() {
        assert_eq!(
            destination(&echo_v4()),
            Some("192.168.20.1".parse().unwrap())
        );
        assert_eq!(source(&echo_v4()), Some("10.1.0.1".parse().unwrap()));
        assert_eq!(
            destination(&echo_v6()),
            Some("2001:db8:20::1".parse().unwrap())
        );
        assert_eq!(destination(&[0x45; 10]), None);
        assert_eq!(destination(&[0x60; 30]), None);
        assert_eq!(destination(&[0x20; 60]), None);
        assert_eq!(destination(&[]), None);
    }

    #[test]
    fn protocols_and_ports_of_both_families() {
        assert_eq!(protocol_and_port(&echo_v4()), Some((1, None)));
        let mut udp = echo_v4();
        udp[9] = 17;
        udp[22..24].copy_from_slice(&53u16.to_be_bytes());
        assert_eq!(protocol_and_port(&udp), Some((17, Some(53))));
        udp[6..8].copy_from_slice(&[0, 8]);
        assert_eq!(
            protocol_and_port(&udp),
            Some((17, None)),
            "a later fragment has no port"
        );
        let mut tcp6 = echo_v6();
        tcp6[6] = 6;
        tcp6[42..44].copy_from_slice(&443u16.to_be_bytes());
        assert_eq!(protocol_and_port(&tcp6), Some((6, Some(443))));
    }

    #[test]
    fn a_refused_packet_is_answered_administratively_prohibited() {
        let mut udp = echo_v4();
        udp[9] = 17;
        let reply = prohibited(&udp).unwrap();
        assert_eq!(source(&reply), Some("192.168.20.1".parse().unwrap()));
        assert_eq!(destination(&reply), Some("10.1.0.1".parse().unwrap()));
        assert_eq!((reply[20], reply[21]), (3, 13));
        assert_eq!(
            ones_complement_sum(&reply[..20], 0),
            0xffff,
            "the header checksum"
        );
        assert_eq!(
            ones_complement_sum(&reply[20..], 0),
            0xffff,
            "the ICMP checksum"
        );
        assert_eq!(&reply[28..], &udp[..28], "the start of the refused packet");
        let reply6 = prohibited(&echo_v6()).unwrap();
        assert_eq!(source(&reply6), Some("2001:db8:20::1".parse().unwrap()));
        assert_eq!(destination(&reply6), Some("fd09::99".parse().unwrap()));
        assert_eq!((reply6[40], reply6[41]), (1, 1));
        assert!(icmpv6_checks(&reply6));
        // No answer to an ICMP error, nor to no one.
        assert_eq!(prohibited(&reply), None);
        assert_eq!(prohibited(&reply6), None);
        let mut from_nobody = echo_v4();
        from_nobody[12..16].copy_from_slice(&[0, 0, 0, 0]);
        assert_eq!(prohibited(&from_nobody), None);
    }

    #[test]
    fn the_kernels_own_chatter_is_not_routed_traffic() {
        for chatter in [
            "ff02::2",
            "ff02::16",
            "ff02::1:ff00:1",
            "fe80::1",
            "::",
            "224.0.0.22",
            "255.255.255.255",
            "169.254.1.1",
            "0.1.2.3",
        ] {
            assert!(!is_routed(chatter.parse().unwrap()), "{chatter}");
        }
        for traffic in ["192.168.20.1", "2001:db8:20::1", "fd20::1", "8.8.8.8"] {
            assert!(is_routed(traffic.parse().unwrap()), "{traffic}");
        }
    }
}

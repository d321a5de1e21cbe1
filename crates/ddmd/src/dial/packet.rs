//! The few facts about an IP packet that demand dialing reads and writes:
//! its family, source and destination, whether its destination is one
//! traffic is routed to, and a new source for an ICMP or ICMPv6 packet
//! (with the checksums that cover it). Pure, on byte slices.

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

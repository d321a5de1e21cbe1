//! Idle time: what counts as traffic on a connected interface.
//!
//! A link's packet counters also count what the kernel sends by itself
//! (IPv6 router solicitations and listener reports after a link comes up),
//! which is no one's traffic. On a WireGuard link such packets go nowhere:
//! no peer's allowed IPs hold a multicast address, so the tunnel never
//! carries them. So a packet received counts; a packet sent counts on a
//! plain link, and on a WireGuard link only when the peers' bytes sent grew
//! too. WireGuard's own keepalives and handshakes are not packets on the
//! link, so they never count.

/// What the counters said at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// The WireGuard peers' bytes sent, on a WireGuard link.
    pub tunnel_tx_bytes: Option<u64>,
}

impl Counters {
    /// True when these counters, read after `before`, show traffic.
    pub fn active_since(&self, before: &Counters) -> bool {
        if self.rx_packets != before.rx_packets {
            return true;
        }
        if self.tx_packets == before.tx_packets {
            return false;
        }
        match (self.tunnel_tx_bytes, before.tunnel_tx_bytes) {
            (Some(now), Some(then)) => now != then,
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rx: u64, tx: u64, tunnel: Option<u64>) -> Counters {
        Counters {
            rx_packets: rx,
            tx_packets: tx,
            tunnel_tx_bytes: tunnel,
            ..Counters::default()
        }
    }

    #[test]
    fn received_packets_are_traffic() {
        assert!(at(2, 1, Some(10)).active_since(&at(1, 1, Some(10))));
        assert!(!at(1, 1, Some(10)).active_since(&at(1, 1, Some(10))));
    }

    #[test]
    fn a_plain_link_counts_every_packet_sent() {
        assert!(at(1, 2, None).active_since(&at(1, 1, None)));
    }

    #[test]
    fn a_wireguard_link_counts_only_what_the_tunnel_carried() {
        // The kernel's router solicitation: sent on the link, not tunneled.
        assert!(!at(1, 2, Some(10)).active_since(&at(1, 1, Some(10))));
        // A keepalive: tunnel bytes, no packet on the link.
        assert!(!at(1, 1, Some(42)).active_since(&at(1, 1, Some(10))));
        // A packet sent through the tunnel.
        assert!(at(1, 2, Some(90)).active_since(&at(1, 1, Some(10))));
    }
}

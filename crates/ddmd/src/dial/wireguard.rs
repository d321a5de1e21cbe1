//! WireGuard readiness: the newest handshake of a link's peers, read
//! through wireguard-uapi: the userspace API socket of wireguard-go
//! (`/var/run/wireguard/LINK.sock`) where there is one, the kernel's
//! generic netlink otherwise. Blocking calls, made off the runtime's
//! threads by the supervisor.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wireguard_uapi::get::Device;
use wireguard_uapi::{DeviceInterface, WgSocket};

/// What readiness needs to know of a WireGuard link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peers {
    /// The newest handshake with any peer, if there was one.
    pub last_handshake: Option<SystemTime>,
    /// An address inside the first peer's allowed IPs, to send a datagram
    /// to when nothing else would start a handshake.
    pub probe: Option<Ipv4Addr>,
    /// Bytes sent to all peers.
    pub tx_bytes: u64,
}

fn userspace_socket(link: &str) -> PathBuf {
    PathBuf::from(format!("/var/run/wireguard/{link}.sock"))
}

/// Waits, up to `limit`, until no wireguard-go serves `link` any more (its
/// API socket is gone): one whose tunnel was just deleted takes a moment to
/// exit, and a new one for the same link cannot start before.
pub async fn wait_released(link: &str, limit: Duration) {
    let socket = userspace_socket(link);
    let deadline = tokio::time::Instant::now() + limit;
    while socket.exists() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reads the link's peers.
pub fn peers(link: &str) -> io::Result<Peers> {
    let socket = userspace_socket(link);
    let device = if socket.exists() {
        wireguard_uapi::xplatform::Client::create(socket)
            .get()
            .map_err(|e| io::Error::other(e.to_string()))?
    } else {
        WgSocket::connect()
            .map_err(|e| io::Error::other(e.to_string()))?
            .get_device(DeviceInterface::from_name(link))
            .map_err(|e| io::Error::other(e.to_string()))?
    };
    Ok(read(&device))
}

fn read(device: &Device) -> Peers {
    let last_handshake = device
        .peers
        .iter()
        .map(|p| p.last_handshake_time)
        .filter(|t| !t.is_zero())
        .max()
        .map(|since_epoch| UNIX_EPOCH + since_epoch);
    let probe = device
        .peers
        .iter()
        .flat_map(|p| &p.allowed_ips)
        .find_map(|ip| match ip.ipaddr {
            IpAddr::V4(address) => Some(inside(address, ip.cidr_mask)),
            IpAddr::V6(_) => None,
        });
    Peers {
        last_handshake,
        probe,
        tx_bytes: device.peers.iter().map(|p| p.tx_bytes).sum(),
    }
}

/// A host address inside a prefix: the address itself for a /31 or /32,
/// else the first host.
fn inside(network: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    if prefix >= 31 {
        network
    } else {
        Ipv4Addr::from(u32::from(network) + 1)
    }
}

/// Sends one empty UDP datagram through `link` to port 9 (discard) of
/// `to`: WireGuard starts a handshake to carry it.
pub fn provoke_handshake(link: &str, to: Ipv4Addr) -> io::Result<()> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0")?;
    nix::sys::socket::setsockopt(
        &socket,
        nix::sys::socket::sockopt::BindToDevice,
        &std::ffi::OsString::from(link),
    )?;
    socket.send_to(&[], (to, 9))?;
    Ok(())
}

/// True when a handshake happened after `since`, give or take a second:
/// the userspace API may report whole seconds.
pub fn handshake_since(peers: &Peers, since: SystemTime) -> bool {
    peers
        .last_handshake
        .is_some_and(|t| t + Duration::from_secs(1) > since)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_address_is_inside_the_allowed_prefix() {
        assert_eq!(
            inside(Ipv4Addr::new(10, 9, 0, 2), 32),
            Ipv4Addr::new(10, 9, 0, 2)
        );
        assert_eq!(
            inside(Ipv4Addr::new(192, 168, 20, 0), 24),
            Ipv4Addr::new(192, 168, 20, 1)
        );
    }
}

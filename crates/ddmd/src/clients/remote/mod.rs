//! Remote administration: the same protocol as the Unix socket, over TLS
//! 1.3 with client certificates.
//!
//! `tls` builds the server's TLS settings from files (certificate, key, the
//! CA that signs clients, revocation lists) and checks a live session's
//! certificate again after a reload; `identity` names a client from its
//! certificate; `endpoint` accepts connections, bounds the handshakes,
//! admits sessions and closes those whose certificate a reload revoked.
//! Sessions are ordinary sessions over `transport::TlsTransport`: a remote
//! Register has no descriptor, so the service signals it with a frame.

mod endpoint;
pub mod identity;
pub mod tls;

pub use endpoint::{Reloadable, RemoteEndpoint};

use crate::bounds::within;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The default port of the TLS listener.
pub const DEFAULT_PORT: u16 = 4850;

/// The `[remote]` table.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RemoteConfig {
    /// Where to listen; default `[::]:4850` (every address, IPv4 too).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The service's certificate chain and key (PEM).
    pub certificate: PathBuf,
    pub key: PathBuf,
    /// The CA that signs client certificates (PEM); a client must present
    /// one it signed.
    pub client_ca: PathBuf,
    /// Certificate revocation lists (PEM), checked for every client.
    #[serde(default)]
    pub crl: Vec<PathBuf>,
    /// TLS handshakes under way at once; more connections are closed at
    /// once.
    #[serde(default = "default_pending")]
    pub max_pending_handshakes: usize,
    /// A write to a client that does not read fails after this long, and
    /// the session is closed.
    #[serde(default = "default_write_timeout")]
    pub write_timeout_ms: u64,
    /// A silent connection is probed after this long (TCP keepalive, three
    /// probes a third of it apart) and closed when they go unanswered, so
    /// a cut link ends its session and registrations.
    #[serde(default = "default_keepalive")]
    pub keepalive_secs: u32,
}

fn default_keepalive() -> u32 {
    30
}

fn default_listen() -> SocketAddr {
    SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, DEFAULT_PORT))
}

fn default_pending() -> usize {
    4096
}

fn default_write_timeout() -> u64 {
    10_000
}

impl RemoteConfig {
    /// Checks that the files exist and make a TLS configuration.
    pub fn check(&self) -> Result<(), String> {
        within(
            "remote.max_pending_handshakes",
            self.max_pending_handshakes,
            1..=65_536,
        )?;
        within(
            "remote.write_timeout_ms",
            self.write_timeout_ms,
            1..=600_000,
        )?;
        within("remote.keepalive_secs", self.keepalive_secs, 1..=86_400)?;
        tls::server_config(self)
            .map(drop)
            .map_err(|e| format!("remote: {e}"))
    }

    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms)
    }
}

//! A remote router, reached over TLS 1.3.
//!
//! [`connect`] resolves the name, opens TCP (a router that is not there is
//! RPC_S_SERVER_UNAVAILABLE, one where nothing listens RPC_S_UNKNOWN_IF),
//! and completes the TLS handshake with the client's certificate (see
//! `client_config`); the connection then reads and writes it as it does a
//! local socket (`channel`). Descriptors cannot travel: the eventfd of a
//! Register (or of a Connect with an event) stays here, in [`Events`], and
//! the service's Signal frame for that event becomes a write to it as the
//! frame is read. A Deregister's eventfd is closed as its reply is read,
//! before the caller has it, so nothing signals it afterwards (G2).

use crate::channel::Channel;
use crate::client_config::{split_server_name, ClientConfig};
use ddm_proto::message::{Reply, Request};
use ddm_proto::WinError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Connects to `name`: TCP, then the TLS handshake, within `timeout`.
pub(crate) fn connect(
    name: &str,
    config: &ClientConfig,
    timeout: Duration,
) -> Result<Channel, WinError> {
    let (host, port) =
        split_server_name(name, config.port()).ok_or(WinError::RPC_S_INVALID_BINDING)?;
    let deadline = Instant::now() + timeout;
    let addresses: Vec<SocketAddr> = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|_| WinError::RPC_S_SERVER_UNAVAILABLE)?
        .collect();
    // Reachable first: a router that is not there is RPC_S_SERVER_UNAVAILABLE
    // whatever the certificates.
    let tcp = connect_any(&addresses, deadline)?;
    let tls = tls_config(config)?;
    let server_name = ServerName::try_from(host).map_err(|_| WinError::RPC_S_INVALID_BINDING)?;
    let mut connection = rustls::ClientConnection::new(tls, server_name)
        .map_err(|_| WinError::ERROR_NOT_ENOUGH_MEMORY)?;
    let _ = tcp.set_nodelay(true);
    let left = deadline.saturating_duration_since(Instant::now());
    let unavailable = |_| WinError::RPC_S_SERVER_UNAVAILABLE;
    tcp.set_read_timeout(Some(left.max(Duration::from_millis(1))))
        .map_err(unavailable)?;
    tcp.set_write_timeout(Some(left.max(Duration::from_millis(1))))
        .map_err(unavailable)?;
    while connection.is_handshaking() {
        connection
            .complete_io(&mut crate::channel::NoSignal(&tcp))
            .map_err(|e| refused(&e).unwrap_or(WinError::RPC_S_SERVER_UNAVAILABLE))?;
    }
    tcp.set_nonblocking(true).map_err(unavailable)?;
    Ok(Channel::Remote {
        tcp,
        tls: Box::new(Mutex::new(connection)),
    })
}

/// TCP to the first address that answers before `deadline`: nothing
/// listening is RPC_S_UNKNOWN_IF, no answer RPC_S_SERVER_UNAVAILABLE.
fn connect_any(addresses: &[SocketAddr], deadline: Instant) -> Result<TcpStream, WinError> {
    let mut error = WinError::RPC_S_SERVER_UNAVAILABLE;
    for address in addresses {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(address, left) {
            Ok(stream) => return Ok(stream),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                error = WinError::RPC_S_UNKNOWN_IF;
            }
            Err(_) => {}
        }
    }
    Err(error)
}

/// The client's TLS settings: TLS 1.3, its certificate, the CA it trusts.
fn tls_config(config: &ClientConfig) -> Result<Arc<rustls::ClientConfig>, WinError> {
    let fail = |what: String| {
        eprintln!("mprapi: {what}");
        WinError::ERROR_ACCESS_DENIED
    };
    let (Some(ca), Some(certificate), Some(key)) = (&config.ca, &config.certificate, &config.key)
    else {
        return Err(fail(
            "a remote server needs a client certificate, key and CA (see client.toml)".into(),
        ));
    };
    let mut roots = rustls::RootCertStore::empty();
    let cas = CertificateDer::pem_file_iter(ca)
        .and_then(|all| all.collect::<Result<Vec<_>, _>>())
        .map_err(|e| fail(format!("{}: {e}", ca.display())))?;
    for cert in cas {
        roots
            .add(cert)
            .map_err(|e| fail(format!("{}: {e}", ca.display())))?;
    }
    let chain = CertificateDer::pem_file_iter(certificate)
        .and_then(|all| all.collect::<Result<Vec<_>, _>>())
        .map_err(|e| fail(format!("{}: {e}", certificate.display())))?;
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| fail(format!("{}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| fail(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| fail(e.to_string()))?;
    config.alpn_protocols = vec![ddm_proto::frame::ALPN.to_vec()];
    Ok(Arc::new(config))
}

/// ERROR_ACCESS_DENIED when TLS refused a certificate (either side's).
pub(crate) fn refused(error: &io::Error) -> Option<WinError> {
    let tls = error.get_ref()?.downcast_ref::<rustls::Error>()?;
    matches!(
        tls,
        rustls::Error::AlertReceived(_)
            | rustls::Error::InvalidCertificate(_)
            | rustls::Error::NoCertificatesPresented
    )
    .then_some(WinError::ERROR_ACCESS_DENIED)
}

/// The eventfds a remote connection holds for its service.
#[derive(Default)]
pub(crate) struct Events {
    /// Registered events, until their Deregister is answered.
    registered: HashMap<u64, OwnedFd>,
    /// Events of Connect calls, each signaled once.
    connects: HashMap<u64, VecDeque<OwnedFd>>,
    /// Deregister requests in flight: request id -> event.
    deregistering: HashMap<u64, u64>,
}

impl Events {
    /// `request` carries `fd` (a Register's, or a Connect's event).
    pub(crate) fn keep(&mut self, request: &Request, fd: BorrowedFd<'_>) {
        let Ok(fd) = fd.try_clone_to_owned() else {
            return;
        };
        let Some(event) = request.event_carried() else {
            return;
        };
        // A registration's event is set at every change, until it is
        // deregistered; a Connect's once.
        if matches!(request, Request::Register(_)) {
            self.registered.insert(event, fd);
        } else {
            self.connects.entry(event).or_default().push_back(fd);
        }
    }

    /// Request `id` deregisters `event`.
    pub(crate) fn deregistering(&mut self, id: u64, event: u64) {
        self.deregistering.insert(id, event);
    }

    /// A reply: a Deregister's closes its eventfd.
    pub(crate) fn answered(&mut self, reply: &Reply) {
        if let Some(event) = self.deregistering.remove(&reply.id) {
            if reply.error == 0 {
                self.registered.remove(&event);
            }
        }
    }

    /// The service's Signal for `event`.
    pub(crate) fn signal(&mut self, event: u64) {
        let once = self.connects.get_mut(&event).and_then(VecDeque::pop_front);
        if let Some(fd) = once.as_ref().or(self.registered.get(&event)) {
            let _ = nix::unistd::write(fd, &1u64.to_ne_bytes());
        }
        if self.connects.get(&event).is_some_and(VecDeque::is_empty) {
            self.connects.remove(&event);
        }
    }
}

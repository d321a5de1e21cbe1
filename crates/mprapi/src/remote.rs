//! A remote service, reached over TLS 1.3, made to look local.
//!
//! [`connect`] resolves the name, opens TCP and TLS (with the client's
//! certificate, see `client_config`), and returns one end of a socket pair
//! that [`Connection`](crate::connection) uses exactly as it uses a local
//! service's socket. On the process's I/O thread a bridge carries frames
//! between the pair and the TLS stream, and plays the part the local
//! service plays for descriptors: an eventfd that rides on a Register (or
//! a Connect with an event) stays here, and the service's Signal frame for
//! that event is turned into a write to it, on arrival. A Deregister's
//! eventfd is closed as its reply passes, before the caller sees it, so
//! nothing signals it afterwards (G2).

use crate::client_config::{split_server_name, ClientConfig};
use ddm_proto::frame::{encode_frame, FrameDecoder};
use ddm_proto::message::*;
use ddm_proto::WinError;
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest, ReadHalf, WriteHalf};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Frames the bridge accepts from its own library: any size it sends.
const LOCAL_FRAME_LIMIT: usize = 16 << 20;
const READ_CHUNK: usize = 16 * 1024;

/// Why a remote connection ended, when TLS said so: a refused certificate
/// is ERROR_ACCESS_DENIED, not a vanished service.
pub(crate) type Refusal = Arc<OnceLock<WinError>>;

/// Connects to `name` and returns the local end of the bridge, and where
/// the bridge puts a TLS refusal.
pub(crate) fn connect(
    name: &str,
    config: &ClientConfig,
    timeout: Duration,
) -> Result<(UnixStream, Refusal), WinError> {
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
    let server_name =
        ServerName::try_from(host.clone()).map_err(|_| WinError::RPC_S_INVALID_BINDING)?;
    let (local, far) = UnixStream::pair().map_err(|_| WinError::ERROR_NOT_ENOUGH_MEMORY)?;
    let refusal: Refusal = Arc::new(OnceLock::new());
    let runtime = crate::connection::io_runtime();
    let (started, handshake) = std::sync::mpsc::channel();
    let bridge_refusal = refusal.clone();
    runtime.spawn(async move {
        let opened = async {
            tcp.set_nonblocking(true)?;
            let tcp = tokio::net::TcpStream::from_std(tcp)?;
            let _ = tcp.set_nodelay(true);
            far.set_nonblocking(true)?;
            let far = tokio::net::UnixStream::from_std(far)?;
            let tls = TlsConnector::from(tls).connect(server_name, tcp).await?;
            Ok::<_, io::Error>((far, tls))
        };
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, opened).await {
            Ok(Ok((far, tls))) => {
                let _ = started.send(Ok(()));
                bridge(far, tls, bridge_refusal).await;
            }
            Ok(Err(e)) => {
                let _ = started.send(Err(
                    refused(&e).unwrap_or(WinError::RPC_S_SERVER_UNAVAILABLE)
                ));
            }
            Err(_) => {
                let _ = started.send(Err(WinError::RPC_S_SERVER_UNAVAILABLE));
            }
        }
    });
    handshake
        .recv()
        .unwrap_or(Err(WinError::RPC_S_SERVER_UNAVAILABLE))?;
    Ok((local, refusal))
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
    for cert in
        CertificateDer::pem_file_iter(ca).map_err(|e| fail(format!("{}: {e}", ca.display())))?
    {
        let cert = cert.map_err(|e| fail(format!("{}: {e}", ca.display())))?;
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
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| fail(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| fail(e.to_string()))?;
    Ok(Arc::new(config))
}

/// ERROR_ACCESS_DENIED when TLS refused a certificate (either side's).
fn refused(error: &io::Error) -> Option<WinError> {
    let tls = error.get_ref()?.downcast_ref::<rustls::Error>()?;
    matches!(
        tls,
        rustls::Error::AlertReceived(_)
            | rustls::Error::InvalidCertificate(_)
            | rustls::Error::NoCertificatesPresented
    )
    .then_some(WinError::ERROR_ACCESS_DENIED)
}

/// The eventfds the bridge holds for the remote service.
#[derive(Default)]
struct Events {
    /// Registered events, until their Deregister is answered.
    registered: HashMap<u64, OwnedFd>,
    /// Events of Connect calls, each signaled once.
    connects: HashMap<u64, VecDeque<OwnedFd>>,
    /// Deregister requests in flight: request id -> event.
    deregistering: HashMap<u64, u64>,
}

impl Events {
    fn signal(&mut self, event: u64) {
        let once = self.connects.get_mut(&event).and_then(VecDeque::pop_front);
        if let Some(fd) = once.as_ref().or(self.registered.get(&event)) {
            let _ = nix::unistd::write(fd, &1u64.to_ne_bytes());
        }
        if self.connects.get(&event).is_some_and(VecDeque::is_empty) {
            self.connects.remove(&event);
        }
    }
}

async fn bridge(
    local: tokio::net::UnixStream,
    tls: TlsStream<tokio::net::TcpStream>,
    refusal: Refusal,
) {
    let events = std::sync::Mutex::new(Events::default());
    let (tls_read, tls_write) = tokio::io::split(tls);
    tokio::select! {
        () = outward(&local, tls_write, &events) => {}
        () = inward(&local, tls_read, &events, &refusal) => {}
    }
    let _ = nix::sys::socket::shutdown(local.as_raw_fd(), nix::sys::socket::Shutdown::Both);
}

/// The library's frames to the service; the eventfds on them kept here.
async fn outward(
    local: &tokio::net::UnixStream,
    mut tls: WriteHalf<TlsStream<tokio::net::TcpStream>>,
    events: &std::sync::Mutex<Events>,
) {
    let mut decoder = FrameDecoder::new(LOCAL_FRAME_LIMIT);
    let mut fds: VecDeque<OwnedFd> = VecDeque::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        let read = loop {
            if local.readable().await.is_err() {
                return;
            }
            match local.try_io(Interest::READABLE, || {
                receive(local.as_raw_fd(), &mut chunk, &mut fds)
            }) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => break other,
            }
        };
        match read {
            Ok(0) | Err(_) => {
                let _ = tls.shutdown().await;
                return;
            }
            Ok(n) => decoder.extend(&chunk[..n]),
        }
        while let Ok(Some(message)) = decoder.next_message::<ClientMessage>() {
            {
                let mut events = events.lock().unwrap_or_else(|p| p.into_inner());
                match &message.body {
                    Some(Request::Register(Register { event })) => {
                        if let Some(fd) = fds.pop_front() {
                            events.registered.insert(*event, fd);
                        }
                    }
                    Some(Request::InterfaceConnect(c)) if c.event != 0 => {
                        if let Some(fd) = fds.pop_front() {
                            events.connects.entry(c.event).or_default().push_back(fd);
                        }
                    }
                    Some(Request::Deregister(Deregister { event })) => {
                        events.deregistering.insert(message.id, *event);
                    }
                    _ => {}
                }
            }
            let Ok(frame) = encode_frame(&message, LOCAL_FRAME_LIMIT) else {
                return;
            };
            if tls.write_all(&frame).await.is_err() || tls.flush().await.is_err() {
                return;
            }
        }
    }
}

/// recvmsg: bytes into `chunk`, descriptors into `fds`.
fn receive(socket: i32, chunk: &mut [u8], fds: &mut VecDeque<OwnedFd>) -> io::Result<usize> {
    let mut space = nix::cmsg_space!([i32; 4]);
    let mut iov = [IoSliceMut::new(chunk)];
    let message = recvmsg::<()>(
        socket,
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    for cmsg in message.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(received) = cmsg {
            // SAFETY: the kernel just gave us these descriptors; we own them.
            fds.extend(
                received
                    .into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    Ok(message.bytes)
}

/// The service's frames to the library; its Signals become eventfd
/// writes here.
async fn inward(
    local: &tokio::net::UnixStream,
    mut tls: ReadHalf<TlsStream<tokio::net::TcpStream>>,
    events: &std::sync::Mutex<Events>,
    refusal: &Refusal,
) {
    let mut decoder = FrameDecoder::new(LOCAL_FRAME_LIMIT);
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        match tls.read(&mut chunk).await {
            Ok(0) => return,
            Ok(n) => decoder.extend(&chunk[..n]),
            Err(e) => {
                if let Some(error) = refused(&e) {
                    let _ = refusal.set(error);
                }
                return;
            }
        }
        let mut out = Vec::new();
        while let Ok(Some(message)) = decoder.next_message::<ServiceMessage>() {
            let mut events = events.lock().unwrap_or_else(|p| p.into_inner());
            match &message.body {
                Some(Push::Signal(Signal { event })) => {
                    events.signal(*event);
                    continue;
                }
                Some(Push::Reply(reply)) => {
                    if let Some(event) = events.deregistering.remove(&reply.id) {
                        if reply.error == 0 {
                            events.registered.remove(&event);
                        }
                    }
                }
                _ => {}
            }
            drop(events);
            match encode_frame(&message, LOCAL_FRAME_LIMIT) {
                Ok(frame) => out.extend_from_slice(&frame),
                Err(_) => return,
            }
        }
        if !out.is_empty() && write_all(local, &out).await.is_err() {
            return;
        }
    }
}

async fn write_all(local: &tokio::net::UnixStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        local.writable().await?;
        match local.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

//! The TLS listener: accept, handshake (bounded in number and time), name
//! the client from its certificate, give it a role, admit it, and run its
//! session. A reload swaps the TLS settings for new connections and closes
//! the sessions whose certificate the new settings refuse (revoked, or
//! signed by a CA no longer trusted); the others go on.

use super::tls::{self, Tls};
use super::{identity, RemoteConfig};
use crate::clients::admission::Who;
use crate::clients::session::{self, refusal_frame, SessionContext};
use crate::clients::transport::TlsTransport;
use crate::core::peer::{Identity, Peer};
use crate::ops::metrics::TlsRefusal;
use crate::ops::throttle::Throttle;
use ddm_proto::WinError;
use rustls::pki_types::CertificateDer;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A remote session, as a reload sees it.
struct Live {
    chain: Vec<CertificateDer<'static>>,
    identity: String,
    end: CancellationToken,
}

/// What the listener and the reloader share.
struct Shared {
    tls: RwLock<Tls>,
    sessions: Mutex<HashMap<u64, Live>>,
    last_id: AtomicU64,
    pending: AtomicUsize,
    refusals: Mutex<Throttle>,
}

pub struct RemoteEndpoint {
    listener: TcpListener,
    config: RemoteConfig,
    shared: Arc<Shared>,
}

/// The reloader's handle on the listener's TLS settings.
#[derive(Clone)]
pub struct Reloadable {
    shared: Arc<Shared>,
}

impl RemoteEndpoint {
    /// Reads the TLS settings and binds the address.
    pub async fn bind(config: &RemoteConfig) -> Result<(RemoteEndpoint, Reloadable), String> {
        let tls = tls::server_config(config)?;
        let listener = match TcpListener::bind(config.listen).await {
            // The default, [::], on a machine without IPv6: every IPv4
            // address instead.
            Err(e)
                if e.raw_os_error() == Some(libc::EAFNOSUPPORT)
                    && config.listen.ip().is_unspecified() =>
            {
                let v4 = SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, config.listen.port()));
                TcpListener::bind(v4).await
            }
            bound => bound,
        }
        .map_err(|e| format!("{}: {e}", config.listen))?;
        let shared = Arc::new(Shared {
            tls: RwLock::new(tls),
            sessions: Mutex::new(HashMap::new()),
            last_id: AtomicU64::new(0),
            pending: AtomicUsize::new(0),
            refusals: Mutex::new(Throttle::default()),
        });
        Ok((
            RemoteEndpoint {
                listener,
                config: config.clone(),
                shared: shared.clone(),
            },
            Reloadable { shared },
        ))
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts connections until dropped; each session is tracked by
    /// `sessions`.
    pub async fn serve(&self, context: &Arc<SessionContext>, sessions: &TaskTracker) {
        loop {
            let (stream, address) = match self.listener.accept().await {
                // An IPv4 client of the IPv6 socket is shown as IPv4.
                Ok((stream, address)) => (
                    stream,
                    SocketAddr::new(address.ip().to_canonical(), address.port()),
                ),
                Err(e) => {
                    tracing::warn!("remote accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let pending = self.shared.pending.fetch_add(1, Ordering::Relaxed);
            if pending >= self.config.max_pending_handshakes {
                self.shared.pending.fetch_sub(1, Ordering::Relaxed);
                context.counters.tls_refused(TlsRefusal::Busy);
                self.shared
                    .refuse(address, "too many TLS handshakes under way");
                continue;
            }
            let _ = stream.set_nodelay(true);
            keep_alive(&stream, self.config.keepalive_secs);
            let acceptor = TlsAcceptor::from(self.shared.tls().config);
            let (shared, context, write_timeout) = (
                self.shared.clone(),
                context.clone(),
                self.config.write_timeout(),
            );
            sessions.spawn(async move {
                let handshake = tokio::time::timeout(
                    context.limits.handshake_timeout(),
                    acceptor.accept(stream),
                )
                .await;
                shared.pending.fetch_sub(1, Ordering::Relaxed);
                let stream = match handshake {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        context.counters.tls_refused(tls::refusal(&e));
                        return shared.refuse(address, &format!("TLS: {e}"));
                    }
                    Err(_) => {
                        context.counters.tls_refused(TlsRefusal::Timeout);
                        return shared.refuse(address, "TLS handshake not finished in time");
                    }
                };
                shared
                    .run_session(stream, address, context, write_timeout)
                    .await;
            });
        }
    }
}

impl Shared {
    fn tls(&self) -> Tls {
        self.tls.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn refuse(&self, address: SocketAddr, why: &str) {
        let allowed = self
            .refusals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .allow(Instant::now());
        if let Some(suppressed) = allowed {
            tracing::warn!(%address, suppressed, "refused a remote client: {why}");
        }
    }

    async fn run_session(
        self: Arc<Self>,
        mut stream: tokio_rustls::server::TlsStream<TcpStream>,
        address: SocketAddr,
        context: Arc<SessionContext>,
        write_timeout: Duration,
    ) {
        let chain: Vec<CertificateDer<'static>> = stream
            .get_ref()
            .1
            .peer_certificates()
            .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
            .unwrap_or_default();
        let Some(name) = chain.first().and_then(|c| identity::of_certificate(c)) else {
            context.counters.tls_refused(TlsRefusal::Identity);
            return self.refuse(address, "its certificate names no one");
        };
        let role = context.policy.role_of_identity(&name);
        let ticket = match context.admission.admit(Who::Remote(name.clone()), role) {
            Ok(ticket) => ticket,
            Err(refusal) => {
                self.refuse(address, refusal.reason());
                let frame = refusal_frame(0, WinError::RPC_S_SERVER_TOO_BUSY);
                let _ = tokio::time::timeout(write_timeout, stream.write_all(&frame)).await;
                return;
            }
        };
        tracing::info!(%address, identity = ?name, role = role.name(), "remote client");
        let id = self.last_id.fetch_add(1, Ordering::Relaxed);
        let end = CancellationToken::new();
        self.lock_sessions().insert(
            id,
            Live {
                chain,
                identity: name.clone(),
                end: end.clone(),
            },
        );
        let peer = Peer {
            identity: Identity::Remote { name, address },
            role,
        };
        let transport =
            TlsTransport::new(stream, context.limits.max_frame_bytes, end, write_timeout);
        session::run(transport, peer, ticket, context).await;
        self.lock_sessions().remove(&id);
    }

    fn lock_sessions(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Live>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Reloadable {
    /// New TLS settings from `config`'s files: new connections get them,
    /// and the sessions whose certificate they refuse are closed. On error
    /// the old settings stay.
    pub fn reload(&self, config: &RemoteConfig) -> Result<(), String> {
        let tls = tls::server_config(config)?;
        *self.shared.tls.write().unwrap_or_else(|p| p.into_inner()) = tls.clone();
        for live in self.shared.lock_sessions().values() {
            if !tls.still_accepts(&live.chain) {
                tracing::warn!(identity = %live.identity, "closing a remote session: its certificate is no longer accepted");
                live.end.cancel();
            }
        }
        tracing::info!("remote TLS settings reloaded");
        Ok(())
    }
}

/// TCP keepalive: probes after `idle` seconds of silence, three of them a
/// third of that apart; and the same bound on data left unacknowledged
/// (TCP_USER_TIMEOUT), which keepalive does not cover.
fn keep_alive(stream: &TcpStream, idle: u32) {
    use nix::sys::socket::{setsockopt, sockopt};
    let interval = (idle / 3).max(1);
    let give_up_ms = (idle + 3 * interval).saturating_mul(1000);
    let set = setsockopt(stream, sockopt::KeepAlive, &true)
        .and_then(|()| setsockopt(stream, sockopt::TcpKeepIdle, &idle))
        .and_then(|()| setsockopt(stream, sockopt::TcpKeepInterval, &interval))
        .and_then(|()| setsockopt(stream, sockopt::TcpKeepCount, &3))
        .and_then(|()| setsockopt(stream, sockopt::TcpUserTimeout, &give_up_ms));
    if let Err(e) = set {
        tracing::debug!("cannot set TCP keepalive: {e}");
    }
}

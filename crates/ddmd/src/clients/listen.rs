//! The local endpoint: a Unix socket that anyone may open.
//!
//! Mode 0666 on purpose: what a client may do is decided from its
//! credentials (see `access`), never from file modes. A socket file left by
//! a crashed service is replaced; a live service's is never taken over, and
//! the file is removed when the endpoint is dropped. A socket systemd passed
//! (socket activation) is systemd's: it is never removed, and connections
//! made while the service is down wait in it. Each accepted
//! connection is admitted or refused (see `admission`) before it costs the
//! service anything but a short write.

use crate::clients::admission::Who;
use crate::clients::session::{self, refusal_frame, SessionContext};
use crate::clients::transport::{send_now, UnixTransport};
use crate::core::peer::{Credentials, Identity, Peer};
use crate::ops::throttle::Throttle;
use crate::sockets::watched;
use ddm_proto::WinError;
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio_util::task::TaskTracker;

/// Why the socket could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("another ddm service is already listening on {0}")]
    AlreadyRunning(PathBuf),
    #[error("{0} exists and is not a socket; remove it or choose another --socket")]
    NotASocket(PathBuf),
    #[error("{0} belongs to another user; choose another --socket")]
    ForeignDirectory(PathBuf),
    #[error("socket {path}: {source}")]
    Socket {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub struct LocalEndpoint {
    /// Non-blocking. Accepted sockets are not registered with the runtime
    /// here: their transport registers them for reading only.
    listener: AsyncFd<UnixListener>,
    path: PathBuf,
    /// Whether the socket file is ours to remove (not systemd's).
    owns_file: bool,
}

impl LocalEndpoint {
    /// Binds `path`, replacing a stale socket, refusing to steal a live one.
    pub fn bind(path: &Path) -> Result<Self, ListenError> {
        let fail = |source| ListenError::Socket {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(fail)?;
            // A directory someone else owns (a pre-made /tmp/ddm-UID) could
            // hold their socket in place of ours.
            let owner = std::fs::metadata(dir).map_err(fail)?.uid();
            let euid = nix::unistd::Uid::effective().as_raw();
            if owner != euid && owner != 0 {
                return Err(ListenError::ForeignDirectory(dir.to_owned()));
            }
        }
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(ListenError::NotASocket(path.to_owned()));
            }
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(ListenError::AlreadyRunning(path.to_owned()));
            }
            tracing::info!(socket = %path.display(), "replacing a stale socket");
            std::fs::remove_file(path).map_err(fail)?;
        }
        let listener = UnixListener::bind(path).map_err(fail)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).map_err(fail)?;
        listener.set_nonblocking(true).map_err(fail)?;
        let listener = watched(listener, Interest::READABLE).map_err(fail)?;
        Ok(LocalEndpoint {
            listener,
            path: path.to_owned(),
            owns_file: true,
        })
    }

    /// Serves on a listening socket systemd passed; its file stays when
    /// the endpoint is dropped.
    pub fn adopt(listener: UnixListener) -> Result<Self, ListenError> {
        let path = listener
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(Path::to_owned))
            .unwrap_or_default();
        let fail = |source| ListenError::Socket {
            path: path.clone(),
            source,
        };
        listener.set_nonblocking(true).map_err(fail)?;
        let listener = watched(listener, Interest::READABLE).map_err(fail)?;
        Ok(LocalEndpoint {
            listener,
            path,
            owns_file: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next connection, non-blocking.
    async fn accept(&self) -> std::io::Result<UnixStream> {
        loop {
            let mut ready = self.listener.readable().await?;
            match ready.try_io(|listener| listener.get_ref().accept()) {
                Ok(accepted) => {
                    let (stream, _) = accepted?;
                    stream.set_nonblocking(true)?;
                    return Ok(stream);
                }
                Err(_would_block) => continue,
            }
        }
    }

    /// Accepts connections until dropped, one task a session, each tracked
    /// by `sessions`.
    pub async fn serve(&self, context: &Arc<SessionContext>, sessions: &TaskTracker) {
        let mut refusals = Throttle::default();
        loop {
            let stream = match self.accept().await {
                Ok(stream) => stream,
                Err(e) => {
                    // EMFILE and the like: back off rather than spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let credentials = match Credentials::of(stream.as_fd()) {
                Ok(credentials) => credentials,
                Err(e) => {
                    tracing::warn!("cannot read a peer's credentials: {e}");
                    continue;
                }
            };
            let role = context.policy.role_of(&credentials);
            match context.admission.admit(Who::User(credentials.uid), role) {
                Ok(ticket) => {
                    let peer = Peer {
                        identity: Identity::Local(credentials),
                        role,
                    };
                    match UnixTransport::new(stream, context.limits.max_frame_bytes) {
                        Ok(transport) => {
                            sessions.spawn(session::run(transport, peer, ticket, context.clone()));
                        }
                        Err(e) => tracing::warn!("cannot watch a session's socket: {e}"),
                    }
                }
                Err(refusal) => {
                    if let Some(suppressed) = refusals.allow(Instant::now()) {
                        tracing::warn!(
                            uid = credentials.uid,
                            pid = credentials.pid,
                            suppressed,
                            "refused a session: {}",
                            refusal.reason()
                        );
                    }
                    refuse_busy(&stream);
                }
            }
        }
    }
}

impl Drop for LocalEndpoint {
    fn drop(&mut self) {
        if self.owns_file {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Tells a refused connection why, without waiting: a fresh socket has
/// room for a few bytes, and a peer that does not read loses only the
/// explanation.
fn refuse_busy(stream: &UnixStream) {
    let _ = send_now(stream, &refusal_frame(0, WinError::RPC_S_SERVER_TOO_BUSY));
}

//! The local endpoint: a Unix socket that anyone may open.
//!
//! Mode 0666 on purpose: what a client may do is decided from its
//! credentials (see `access`), never from file modes. A socket file left by
//! a crashed service is replaced; a live service's is never taken over.
//! Sessions beyond the configured limit are told RPC_S_SERVER_TOO_BUSY and
//! closed, so the limit costs the service nothing but a short write.

use crate::session::{self, write_all, SessionContext};
use crate::ServeError;
use ddm_proto::frame::encode_frame;
use ddm_proto::message::{Push, Reply, ServiceMessage};
use ddm_proto::WinError;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;

pub struct LocalEndpoint {
    listener: UnixListener,
    path: PathBuf,
}

impl LocalEndpoint {
    /// Binds `path`, replacing a stale socket, refusing to steal a live one.
    pub fn bind(path: &Path) -> Result<Self, ServeError> {
        let fail = |source| ServeError::Socket {
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
                return Err(ServeError::ForeignDirectory(dir.to_owned()));
            }
        }
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(ServeError::NotASocket(path.to_owned()));
            }
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(ServeError::AlreadyRunning(path.to_owned()));
            }
            tracing::info!(socket = %path.display(), "replacing a stale socket");
            std::fs::remove_file(path).map_err(fail)?;
        }
        let listener = std::os::unix::net::UnixListener::bind(path).map_err(fail)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).map_err(fail)?;
        listener.set_nonblocking(true).map_err(fail)?;
        let listener = UnixListener::from_std(listener).map_err(fail)?;
        Ok(LocalEndpoint {
            listener,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts connections forever, one task a session.
    pub async fn serve(&self, context: Arc<SessionContext>) {
        let slots = Arc::new(Semaphore::new(context.limits.max_sessions));
        let mut next_id = 0u64;
        loop {
            let stream = match self.listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and the like: back off rather than spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            match slots.clone().try_acquire_owned() {
                Ok(slot) => {
                    next_id += 1;
                    let context = context.clone();
                    let id = next_id;
                    tokio::spawn(async move {
                        session::run(stream, id, context).await;
                        drop(slot);
                    });
                }
                Err(_) => {
                    tracing::warn!(
                        limit = context.limits.max_sessions,
                        "refused a session: too many sessions"
                    );
                    tokio::spawn(refuse_busy(stream));
                }
            }
        }
    }
}

impl Drop for LocalEndpoint {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn refuse_busy(stream: UnixStream) {
    let refusal = ServiceMessage {
        body: Some(Push::Reply(Reply {
            id: 0,
            error: WinError::RPC_S_SERVER_TOO_BUSY.0,
            result: None,
        })),
    };
    let frame = encode_frame(&refusal, usize::MAX).expect("an error reply always fits");
    let _ = tokio::time::timeout(Duration::from_secs(1), write_all(&stream, &frame)).await;
}

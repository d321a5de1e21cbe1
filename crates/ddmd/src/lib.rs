//! The ddm service (the DDM, demand-dial manager) as a library.
//!
//! [`run`] is `ddm serve`. The pieces, in the order a change travels:
//!
//! * [`links`]: kernel links over rtnetlink (dump, then the link group;
//!   dump again after an overrun);
//! * [`table`]: the interface table, which turns link states into
//!   connection transitions;
//! * [`router`]: the one task that owns all state, commits transitions with
//!   a sequence number and signals every registration;
//! * [`notify`]: registered eventfds, and how they are signaled;
//! * [`outbox`]: per-session bounded queue of typed events;
//! * [`memory`]: free memory given back after a crowd of clients leaves;
//! * [`session`]: one client connection: handshake, frames, replies;
//! * [`scm`]: bytes and descriptors from a socket, never leaking one;
//! * [`listen`]: the Unix socket and the session limit;
//! * [`access`]: peer credentials to roles; [`config`]: settings;
//! * [`daemon`]: `ddm serve` itself: logging, configuration, exit status.

pub mod access;
pub mod config;
pub mod daemon;
pub mod links;
pub mod listen;
pub mod memory;
pub mod notify;
pub mod outbox;
pub mod router;
pub mod scm;
pub mod session;
pub mod table;

use access::Policy;
use config::Config;
use listen::LocalEndpoint;
use router::Router;
use session::SessionContext;
use std::path::PathBuf;
use std::sync::Arc;
use table::{InterfaceTable, LinkFilter};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
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
    #[error("kernel link monitor: {0}")]
    Links(std::io::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Runs the service until SIGINT or SIGTERM, on the calling thread.
pub fn run(config: Config, socket: PathBuf) -> Result<(), ServeError> {
    raise_descriptor_limit();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve(config, socket))
}

async fn serve(config: Config, socket: PathBuf) -> Result<(), ServeError> {
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let endpoint = LocalEndpoint::bind(&socket)?;

    let (link_events, link_receiver) = mpsc::unbounded_channel();
    let (commands, command_receiver) = mpsc::unbounded_channel();
    let (ready, first_dump) = oneshot::channel();
    let filter = LinkFilter::new(&config.links.include, &config.links.exclude);
    let router = Router::new(InterfaceTable::new(filter), config.limits.clone(), ready);
    tokio::spawn(router.run(command_receiver, link_receiver));
    let links_config = config.links.clone();
    let mut monitor = tokio::spawn(async move { links::monitor(&links_config, link_events).await });

    let monitor_failed = |joined: Result<std::io::Result<()>, tokio::task::JoinError>| {
        ServeError::Links(match joined {
            Ok(Err(e)) => e,
            Ok(Ok(())) => std::io::Error::other("stopped"),
            Err(e) => std::io::Error::other(e),
        })
    };
    tokio::select! {
        _ = first_dump => {}
        joined = &mut monitor => return Err(monitor_failed(joined)),
    }

    let context = Arc::new(SessionContext {
        policy: Policy::resolve(&config.access),
        limits: config.limits,
        router: commands,
    });
    tracing::info!(socket = %endpoint.path().display(), "ddm serving");
    tokio::select! {
        () = endpoint.serve(context) => {}
        joined = &mut monitor => return Err(monitor_failed(joined)),
        _ = sigterm.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = sigint.recv() => tracing::info!("SIGINT: shutting down"),
    }
    Ok(())
}

/// Each session and registration holds a descriptor: use all we may. A
/// privileged process raises the hard limit to the kernel's ceiling
/// (`fs.nr_open`); any other takes its hard limit.
pub fn raise_descriptor_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(hard);
    let wanted = ceiling.max(hard);
    if setrlimit(Resource::RLIMIT_NOFILE, wanted, wanted).is_err() {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

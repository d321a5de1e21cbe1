//! The ddm service (the DDM, demand-dial manager) as a library.
//!
//! [`run`] is `ddm serve`; [`service::serve`] builds and runs the service,
//! for the daemon, the fuzz target and the tests alike. The pieces, in the
//! order a change travels:
//!
//! * [`links`]: kernel links over rtnetlink (dump, then the link group;
//!   dump again after an overrun);
//! * [`table`]: the interface table, which turns link states into
//!   connection transitions;
//! * [`dial`]: declared (demand-dial) interfaces: their state machines,
//!   kept by the router, and the supervisor tasks that dial, hang up, move
//!   routes and hold packets on a trigger device;
//! * [`router`]: the one task that owns all state, commits transitions with
//!   a sequence number and signals every registration;
//! * [`notify`]: registrations and their targets (an eventfd, or the
//!   session), and how they are signaled;
//! * [`outbox`]: per-session bounded queue of typed events and signals;
//! * [`session`]: one client session over any transport: handshake,
//!   requests, replies, shutdown;
//! * [`requests`]: the request table: each request's role, whether it
//!   needs the DDM, and its handler;
//! * [`transport`]: frames (and, on a Unix socket, descriptors) to and from
//!   the peer; [`scm`]: descriptors received without ever leaking one;
//! * [`peer`]: who the peer is and its role; [`access`]: the policy that
//!   gives the role;
//! * [`listen`]: the Unix socket; [`remote`]: the TLS 1.3 listener, with
//!   client certificates; [`admission`]: session limits, in all, per user
//!   (or remote identity) and in the handshake;
//! * [`service`]: everything above put together, and its shutdown;
//!   [`systemd`]: the socket systemd passes, and readiness, status and the
//!   watchdog told to it;
//!   [`in_process`]: the service in a thread, for tests;
//! * [`journal`]: every change kept in SQLite, written by a thread of its
//!   own, read back for history and uptime; [`export`]: the journal
//!   published to NATS JetStream, and a fleet's events read back;
//! * [`metrics`]: the router's figures for Prometheus, served over HTTP
//!   beside it;
//! * [`config`]: settings; [`memory`]: free memory given back after a crowd
//!   of clients leaves; [`throttle`]: rate-limited log lines;
//! * [`daemon`]: `ddm serve` itself: logging, configuration, exit status.

pub mod clients;
pub mod config;
pub mod core;
pub mod daemon;
pub mod dial;
pub mod in_process;
pub mod links;
pub mod ops;
pub mod record;
pub mod router;
pub mod service;

use clients::listen::LocalEndpoint;
use config::Config;
use service::LinkSource;
use std::path::PathBuf;
use tokio::signal::unix::{signal, SignalKind};

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
    #[error(transparent)]
    Journal(#[from] record::journal::JournalError),
    #[error("remote listener: {0}")]
    Remote(String),
    #[error("metrics endpoint {0}: {1}")]
    Metrics(std::net::SocketAddr, std::io::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Runs the service on the calling thread until SIGINT or SIGTERM, then
/// shuts it down cleanly.
pub fn run(config: Config, socket: PathBuf) -> Result<(), ServeError> {
    raise_descriptor_limit();
    unblock_stop_signals();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let mut sigterm = signal(SignalKind::terminate())?;
            let mut sigint = signal(SignalKind::interrupt())?;
            let termination = async move {
                tokio::select! {
                    _ = sigterm.recv() => tracing::info!("SIGTERM"),
                    _ = sigint.recv() => tracing::info!("SIGINT"),
                }
            };
            let endpoint = match ops::systemd::passed_listener()? {
                Some(passed) => LocalEndpoint::adopt(passed)?,
                None => LocalEndpoint::bind(&socket)?,
            };
            let notifier = ops::systemd::Notifier::from_environment()?;
            service::serve(config, endpoint, LinkSource::Kernel, notifier, termination).await
        })
}

/// A parent may start the service with signals blocked (the mask is
/// inherited): SIGTERM, SIGINT and SIGHUP must reach it.
fn unblock_stop_signals() {
    use nix::sys::signal::{SigSet, Signal};
    let mut signals = SigSet::empty();
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        signals.add(signal);
    }
    let _ = signals.thread_unblock();
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

//! The ddm service (the DDM, demand-dial manager) as a library.
//!
//! [`daemon::main`] is `ddm serve`; [`service::serve`] builds and runs the
//! service, for the daemon, the fuzz target and the tests alike. The
//! modules, in folders by layer, each importing only from those below it
//! (`tests/layers.rs` checks it; ARCHITECTURE.md has the list):
//!
//! * [`daemon`], [`in_process`]: `ddm serve`; the service in a thread of
//!   the caller's (the `in-process` feature, for tests and fuzzing);
//! * [`service`]: everything put together, the reloader, the shutdown;
//! * [`config`]: the file loaded, its sections (each defined by its owner)
//!   composed and checked;
//! * [`clients`]: listeners, transports, who the peer is and its role,
//!   admission, the session that speaks the protocol;
//! * [`router`]: the one task that owns the state ([`router::state`]), the
//!   request table and its handlers, and the loop that hands each commit
//!   to the journal, the metrics and systemd;
//! * [`dial`]: declared (demand-dial) interfaces: their machines, the
//!   supervisor tasks that dial, hang up, move routes and hold packets,
//!   and the launcher process that starts their commands;
//! * [`core`]: the interface table, registrations and how a target is
//!   signaled, the sessions' outboxes, outcomes, peers, limits;
//! * [`links`]: kernel links over rtnetlink;
//! * [`bounds`]: the range of every configured number, cut messages;
//!   [`sockets`]: descriptors received whole, sockets watched for what
//!   they need;
//! * [`record`]: the journal (SQLite, its own thread) and its export to
//!   NATS JetStream; [`ops`]: systemd, metrics, throttled logs, memory.

/// The source's git revision (`git describe`, or `$DDM_GIT_REVISION`
/// from a packager; "unknown" outside a checkout).
pub const REVISION: &str = env!("DDM_GIT_REVISION");

/// `ddm --version`: the version and the revision it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("DDM_GIT_REVISION"),
    ")"
);

pub mod bounds;
pub mod clients;
pub mod config;
pub mod core;
pub mod daemon;
pub mod dial;
pub mod groups;
pub mod health;
#[cfg(feature = "in-process")]
pub mod in_process;
pub mod links;
pub mod ops;
pub mod record;
pub mod router;
pub mod service;
pub mod sockets;

pub use daemon::raise_descriptor_limit;
pub use service::ServeError;

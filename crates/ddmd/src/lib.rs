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
#[cfg(feature = "in-process")]
pub mod in_process;
pub mod links;
pub mod ops;
pub mod record;
pub mod router;
pub mod service;

pub use daemon::raise_descriptor_limit;
pub use service::ServeError;

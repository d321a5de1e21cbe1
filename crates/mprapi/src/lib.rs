//! `mprapi`: the client library of ddm, after the Windows router
//! administration API (mprapi.h).
//!
//! Obtain a server handle with [`Server::connect`], register [`Event`]s
//! that the service signals whenever an interface connects or disconnects,
//! wait on them, re-enumerate, and deregister. Every call blocks, as in
//! Win32, and fails with the Win32 error number ([`WinError`]) that
//! mprapi.h documents. One background thread per process carries every
//! reply; no async runtime is imposed on the program.
//!
//! Locally, registering hands the event's eventfd to the service, which
//! signals it itself: a waiting thread wakes straight from the kernel.
//!
//! # The notification loop
//!
//! ```no_run
#![doc = include_str!("../examples/notify_loop.rs")]
//! ```
//!
//! # Beyond Windows: the typed stream
//!
//! [`Server::subscribe`] returns an [`EventStream`]: a snapshot of every
//! interface at sequence n, then each connection event after n with its
//! sequence number, interface, old and new state and time, or a
//! [`StreamItem::Missed`] marker where a slow reader lost some.
//!
//! # When the service goes away
//!
//! A call on a handle whose service has died returns
//! `ERROR_DDM_NOT_RUNNING` at once (the socket closes); a call the service
//! does not answer within [`CALL_TIMEOUT`] returns the same.
//! [`ReconnectingServer`] reconnects by itself, registers its events again
//! and signals each once, since changes may have been missed while away.

pub mod capi;
mod channel;
pub mod client_config;
mod connection;
pub mod event;
mod gate;
mod reconnect;
mod remote;
mod replay;
mod server;
mod stream;
mod subscriptions;
mod types;

pub use ddm_proto::message::{
    EntryKind, ExportStatus, GroupInfo, GroupMember, History, InterfaceHealth, InterfaceUptime,
    JournalEntry, JournalStatus, Role, TargetHealth, Uptime, UptimeReport,
};
pub use ddm_proto::model::{interface_type, unreachability, ConnectionState};
pub use ddm_proto::WinError;
pub use event::{wait_for_multiple, Event, MAXIMUM_WAIT_OBJECTS};
pub use reconnect::{ReconnectingServer, ResumingStream, RECONNECT_INTERVAL};
pub use server::{error_string, is_service_running, Result, Server, CALL_TIMEOUT};
pub use stream::{EventStream, Snapshot, STREAM_CAPACITY};
pub use types::{
    Connect, ConnectionEvent, GroupSwitch, InterfaceInfo, InterfacePage, ServerInfo, SessionInfo,
    StreamItem,
};

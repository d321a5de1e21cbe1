//! Demand-dial interfaces: declared in the configuration, dialed, watched,
//! hung up and redialed by the DDM.
//!
//! The router owns their state ([`machine`], one per interface, kept in
//! [`Dialed`]); one supervisor task per interface ([`supervisor`]) carries
//! out what it decides (run the [`command`]s, move the routes with [`net`],
//! hold packets on the [`trigger`], read [`wireguard`] handshakes and idle
//! counters) and reports back as inputs. Nothing here waits inside the
//! router.

pub mod activity;
pub mod command;
pub mod declaration;
mod dialed;
pub mod filter;
pub mod group_routes;
pub mod groups;
pub mod hours;
pub mod launcher;
pub mod leftovers;
mod link_ioctl;
mod lookup;
pub mod machine;
pub mod net;
mod packet;
pub mod sources;
pub mod supervisor;
pub mod trigger;
pub mod wireguard;

pub use dialed::{connected_already, Clock, Dialed, LocalClock, Spawner, Waiter};

/// Sleeps until `deadline`; forever when there is none.
pub(crate) async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

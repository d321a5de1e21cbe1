//! Metrics for Prometheus: an optional HTTP endpoint (`[metrics] listen`)
//! that serves the router's figures in the OpenMetrics text format.
//!
//! The router keeps its figures as plain numbers in its own task
//! ([`Accounts`]: no lock, no atomic on the path of a change). A scrape asks
//! it for a [`Snapshot`] by a [`Notify`] permit and reads the snapshot the
//! router publishes; the router builds one when it gets to the permit, at
//! most one per scrape however many ask at once, and a scrape that waits
//! more than a second takes the last one. So the HTTP side can cost the
//! router one snapshot per scrape (bounded by the endpoint's connection
//! limit and `min_interval_ms`), taken when no other input is waiting,
//! never a wait. Figures kept outside the router
//! (sessions refused, protocol faults, netlink overruns) are atomics read at
//! the scrape.

mod accounts;
mod exposition;
mod server;

pub use accounts::Accounts;
pub use server::{bind, spawn};

use crate::ops::systemd::Notifier;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

/// `[metrics]`: where the endpoint listens, and its limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address and port of the HTTP endpoint, e.g. `127.0.0.1:9731`.
    pub listen: SocketAddr,
    /// Scrapes served at once; more connections wait to be accepted.
    pub max_connections: usize,
    /// A scrape within this many milliseconds of the last snapshot reads
    /// that one instead of asking the router for another (0: every scrape
    /// asks; the router answers when it has nothing else to do).
    pub min_interval_ms: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9731)),
            max_connections: 8,
            min_interval_ms: 0,
        }
    }
}

impl MetricsConfig {
    /// Every figure in its range.
    pub fn check(&self) -> Result<(), String> {
        crate::bounds::within("metrics.max_connections", self.max_connections, 1..=1_024)?;
        crate::bounds::within(
            "metrics.min_interval_ms",
            self.min_interval_ms,
            0..=3_600_000,
        )
    }
}

/// The buckets of the router turn histogram, in seconds.
pub const TURN_BUCKETS: [f64; 10] = [
    0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 1.0,
];

/// One interface's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InterfaceFigures {
    pub name: String,
    /// ROUTER_CONNECTION_STATE: 0 unreachable, 1 disconnected, 2
    /// connecting, 3 connected.
    pub state: u32,
    pub connects: u64,
    pub disconnects: u64,
    pub dial_attempts: u64,
    pub dial_failures: u64,
    pub connected_seconds: f64,
}

/// What the router counts, as of one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub taken: Option<Instant>,
    pub running: bool,
    pub interfaces: Vec<InterfaceFigures>,
    /// The path health of the probed interfaces.
    pub health: Vec<ddm_proto::message::InterfaceHealth>,
    /// The groups of uplinks.
    pub groups: Vec<ddm_proto::message::GroupInfo>,
    /// By role name.
    pub sessions: BTreeMap<&'static str, u64>,
    pub registrations: BTreeMap<&'static str, u64>,
    pub streams: BTreeMap<&'static str, u64>,
    pub events_committed: u64,
    pub signals_written: u64,
    pub stream_events_missed: u64,
    pub netlink_resyncs: u64,
    /// Router turns by bucket (`TURN_BUCKETS`, then those above the last;
    /// not cumulative), their count and their total time.
    pub turn_buckets: [u64; TURN_BUCKETS.len() + 1],
    pub turns: u64,
    pub turn_seconds: f64,
}

/// Figures counted where they happen, outside the router, and read at
/// each scrape.
#[derive(Debug, Default)]
pub struct Counters {
    /// Connections refused by a session limit (admission).
    pub sessions_refused: AtomicU64,
    /// Sessions ended for a protocol fault.
    pub protocol_faults: AtomicU64,
    /// Kernel link notifications lost (ENOBUFS), each followed by a dump.
    pub netlink_overruns: AtomicU64,
    /// Health rounds that found the queue to the router full.
    pub health_rounds_dropped: AtomicU64,
}

/// Where the figures kept outside the router are, read at each scrape.
#[derive(Clone)]
pub struct Outside {
    pub counters: Arc<Counters>,
    /// systemd notices dropped.
    pub notifier: Notifier,
}

/// The router's side: it waits for `wanted` and publishes to `published`.
#[derive(Debug)]
pub struct Feed {
    pub wanted: Arc<Notify>,
    pub published: watch::Sender<Arc<Snapshot>>,
}

/// The endpoint's side: asks for a snapshot and reads it.
#[derive(Clone)]
pub struct Source {
    wanted: Arc<Notify>,
    published: watch::Receiver<Arc<Snapshot>>,
    outside: Outside,
    min_interval: Duration,
}

/// How long a scrape waits for the router before taking the last snapshot.
const ROUTER_PATIENCE: Duration = Duration::from_secs(1);

/// The router's feed and the endpoint's source, joined.
pub fn channel(outside: Outside, config: &MetricsConfig) -> (Feed, Source) {
    let (feed, published) = feed();
    let source = Source {
        wanted: feed.wanted.clone(),
        published,
        outside,
        min_interval: Duration::from_millis(config.min_interval_ms),
    };
    (feed, source)
}

/// A feed, and what it publishes.
fn feed() -> (Feed, watch::Receiver<Arc<Snapshot>>) {
    let (published, receiver) = watch::channel(Arc::new(Snapshot::default()));
    let feed = Feed {
        wanted: Arc::new(Notify::new()),
        published,
    };
    (feed, receiver)
}

impl Source {
    /// A recent snapshot: the last one if it is younger than
    /// `min_interval`, else a new one from the router (or, if the router
    /// does not answer within a second, the last one).
    pub async fn snapshot(&mut self) -> Arc<Snapshot> {
        let fresh = self
            .published
            .borrow_and_update()
            .taken
            .is_some_and(|t| t.elapsed() < self.min_interval);
        if !fresh {
            self.wanted.notify_one();
            let _ = tokio::time::timeout(ROUTER_PATIENCE, self.published.changed()).await;
        }
        self.published.borrow_and_update().clone()
    }

    /// The whole exposition, in the OpenMetrics text format; `None` while
    /// the router has never published a snapshot (it is starting, or too
    /// busy to take one): all zeros would say things that are not so.
    pub async fn render(&mut self) -> Option<String> {
        let snapshot = self.snapshot().await;
        snapshot.taken?;
        Some(exposition::render(&snapshot, &self.outside))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source_and_feed() -> (Feed, Source) {
        let outside = Outside {
            counters: Arc::default(),
            notifier: Notifier::default(),
        };
        channel(outside, &MetricsConfig::default())
    }

    #[tokio::test]
    async fn no_exposition_before_the_routers_first_snapshot() {
        let (_feed, mut source) = source_and_feed();
        assert_eq!(source.render().await, None);
    }

    #[tokio::test]
    async fn a_scrape_asks_the_router_and_writes_what_it_published() {
        let (feed, mut source) = source_and_feed();
        let wanted = feed.wanted.clone();
        let mut accounts = Accounts::new(feed);
        let router = tokio::spawn(async move {
            wanted.notified().await;
            let snapshot = Snapshot {
                running: true,
                ..Snapshot::default()
            };
            accounts.publish(snapshot, &[]);
        });
        let text = source.render().await.expect("an exposition");
        router.await.unwrap();
        assert!(text.contains("ddm_running 1\n"), "{text}");
        assert!(text.contains("ddm_sessions_refused_total 0\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}

//! Metrics for Prometheus: an optional HTTP endpoint (`[metrics] listen`)
//! that serves the router's figures in the OpenMetrics text format to a
//! scraper that asks for it (`Accept`), in Prometheus' text format 0.0.4
//! to any other (promtool, curl).
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
pub use exposition::Format;
pub use server::{bind, spawn};

use crate::ops::systemd::Notifier;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// Packets a demand-dial filter refused (since it was loaded).
    pub dial_refused: u64,
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
    /// The journal, when there is one.
    pub journal: Option<JournalFigures>,
    /// Its export to NATS JetStream, when there is one.
    pub export: Option<ExportFigures>,
}

/// The journal's figures.
#[derive(Debug, Clone, Default)]
pub struct JournalFigures {
    /// The file, whose size the scrape reads (with its write-ahead log).
    pub path: std::path::PathBuf,
    /// Entries lost since the service started (a full queue, failed writes).
    pub lost: u64,
    /// Writes that failed since the service started.
    pub write_errors: u64,
}

/// The export's figures.
#[derive(Debug, Clone, Default)]
pub struct ExportFigures {
    pub connected: bool,
    /// Journal entries not yet acknowledged by the broker.
    pub behind: u64,
    /// Times the export failed and started again.
    pub errors: u64,
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
    /// TLS connections refused before a session, by [`TlsRefusal`].
    pub tls_refused: [AtomicU64; TlsRefusal::ALL.len()],
}

/// Why the remote listener refused a TLS connection before its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsRefusal {
    /// Too many handshakes under way (`remote.max_pending_handshakes`).
    Busy,
    /// The handshake was not finished within the time limit.
    Timeout,
    /// The client's certificate: none, another CA's, expired, revoked.
    Certificate,
    /// The client did not offer the protocol's ALPN id, `ddm/1`.
    Alpn,
    /// The certificate names no identity.
    Identity,
    /// Any other failure of the handshake (not TLS, a protocol error).
    Handshake,
}

impl TlsRefusal {
    pub const ALL: [TlsRefusal; 6] = [
        TlsRefusal::Busy,
        TlsRefusal::Timeout,
        TlsRefusal::Certificate,
        TlsRefusal::Alpn,
        TlsRefusal::Identity,
        TlsRefusal::Handshake,
    ];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            TlsRefusal::Busy => "busy",
            TlsRefusal::Timeout => "timeout",
            TlsRefusal::Certificate => "certificate",
            TlsRefusal::Alpn => "alpn",
            TlsRefusal::Identity => "identity",
            TlsRefusal::Handshake => "handshake",
        }
    }
}

impl Counters {
    /// Counts one refusal.
    pub fn tls_refused(&self, why: TlsRefusal) {
        let index = TlsRefusal::ALL.iter().position(|r| *r == why).unwrap_or(0);
        self.tls_refused[index].fetch_add(1, Ordering::Relaxed);
    }
}

/// Where the figures kept outside the router are, read at each scrape.
#[derive(Clone)]
pub struct Outside {
    pub counters: Arc<Counters>,
    /// systemd notices dropped.
    pub notifier: Notifier,
    /// When the process started, in Unix seconds ([`process_start_time`]).
    pub started: Option<f64>,
}

/// When this process started, in Unix seconds: its start in clock ticks
/// after boot (`/proc/self/stat`) plus the boot time (`/proc/stat`).
pub fn process_start_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let system = std::fs::read_to_string("/proc/stat").ok()?;
    // SAFETY: sysconf reads a constant of the system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    start_time(&stat, &system, ticks)
}

/// [`process_start_time`] from the texts of the two files.
fn start_time(stat: &str, system: &str, ticks_per_second: i64) -> Option<f64> {
    // The command name, in parentheses, may hold spaces: count after it.
    let (_, after_name) = stat.rsplit_once(')')?;
    // Fields from the state (the 3rd); the start time is the 22nd.
    let ticks: f64 = after_name.split_whitespace().nth(19)?.parse().ok()?;
    let boot: f64 = system
        .lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    (ticks_per_second > 0).then(|| boot + ticks / ticks_per_second as f64)
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

    /// The whole exposition, in `format`; `None` while the router has
    /// never published a snapshot (it is starting, or too busy to take
    /// one): all zeros would say things that are not so.
    pub async fn render(&mut self, format: Format) -> Option<String> {
        let snapshot = self.snapshot().await;
        snapshot.taken?;
        Some(exposition::render(&snapshot, &self.outside, format))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source_and_feed() -> (Feed, Source) {
        let outside = Outside {
            counters: Arc::default(),
            notifier: Notifier::default(),
            started: Some(1_700_000_000.5),
        };
        channel(outside, &MetricsConfig::default())
    }

    #[tokio::test]
    async fn no_exposition_before_the_routers_first_snapshot() {
        let (_feed, mut source) = source_and_feed();
        assert_eq!(source.render(Format::OpenMetrics).await, None);
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
        let text = source
            .render(Format::OpenMetrics)
            .await
            .expect("an exposition");
        router.await.unwrap();
        assert!(text.contains("ddm_running 1\n"), "{text}");
        assert!(text.contains("ddm_sessions_refused_total 0\n"), "{text}");
        assert!(
            text.contains("process_start_time_seconds 1700000000.5\n"),
            "{text}"
        );
        assert!(
            text.contains("# UNIT ddm_router_turn_seconds seconds\n"),
            "{text}"
        );
        assert!(text.contains("ddm_build_info{version=\""), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        let (feed, mut source) = source_and_feed();
        Accounts::new(feed).publish(Snapshot::default(), &[]);
        let text = source.render(Format::Text).await.expect("an exposition");
        assert!(
            text.contains("# TYPE ddm_sessions_refused_total counter\n"),
            "{text}"
        );
        assert!(
            !text.contains("# EOF") && !text.contains("# UNIT"),
            "{text}"
        );
    }

    #[test]
    fn the_start_time_is_boot_plus_the_ticks_after_it() {
        let stat =
            "4242 (ddm (serve) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 250 1000";
        let system = "cpu  1 2 3\nbtime 1700000000\nprocesses 9\n";
        assert_eq!(start_time(stat, system, 100), Some(1_700_000_002.5));
        assert_eq!(start_time(stat, "cpu 1\n", 100), None);
        assert_eq!(start_time("garbage", system, 100), None);
        assert!(process_start_time().is_some_and(|t| t > 1.6e9));
    }
}

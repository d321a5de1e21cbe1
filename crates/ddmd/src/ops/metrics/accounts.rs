//! The router's own figures: plain numbers it updates as it commits and
//! turns, and the snapshot it publishes when a scrape asks.

use super::{Feed, InterfaceFigures, Snapshot, TURN_BUCKETS};
use ddm_proto::message::{ConnectionEvent, Interface};
use ddm_proto::model::ConnectionState;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One interface's counts, by name.
#[derive(Debug, Default)]
struct Counts {
    connects: u64,
    disconnects: u64,
    dial_attempts: u64,
    dial_failures: u64,
    connected_before: Duration,
    connected_since: Option<Instant>,
}

impl Counts {
    fn connected_seconds(&self, now: Instant) -> f64 {
        let current = self
            .connected_since
            .map_or(Duration::ZERO, |since| now - since);
        (self.connected_before + current).as_secs_f64()
    }
}

/// What the router counts for the metrics endpoint.
#[derive(Debug)]
pub struct Accounts {
    feed: Feed,
    interfaces: HashMap<String, Counts>,
    events_committed: u64,
    signals_written: u64,
    stream_events_missed: u64,
    netlink_resyncs: u64,
    turn_buckets: [u64; TURN_BUCKETS.len() + 1],
    turns: u64,
    turn_time: Duration,
}

impl Accounts {
    pub fn new(feed: Feed) -> Self {
        Accounts {
            feed,
            interfaces: HashMap::new(),
            events_committed: 0,
            signals_written: 0,
            stream_events_missed: 0,
            netlink_resyncs: 0,
            turn_buckets: [0; TURN_BUCKETS.len() + 1],
            turns: 0,
            turn_time: Duration::ZERO,
        }
    }

    /// The permit a scrape leaves when it wants a snapshot.
    pub fn wanted(&self) -> Arc<tokio::sync::Notify> {
        self.feed.wanted.clone()
    }

    /// A committed transition, with the signals it wrote and the streams
    /// that had to count it missed.
    pub fn committed(&mut self, event: &ConnectionEvent, signals: u64, missed: u64) {
        use ConnectionState::{Connected, Connecting};
        self.events_committed += 1;
        self.signals_written += signals;
        self.stream_events_missed += missed;
        let (from, to) = (
            ConnectionState::from_u32(event.from),
            ConnectionState::from_u32(event.to),
        );
        if !self.interfaces.contains_key(&event.name) {
            self.interfaces
                .insert(event.name.clone(), Counts::default());
        }
        let counts = self.interfaces.get_mut(&event.name).expect("inserted");
        let now = Instant::now();
        if to == Connecting {
            counts.dial_attempts += 1;
        }
        if from == Connecting && to != Connected && event.last_error != 0 {
            counts.dial_failures += 1;
        }
        if to == Connected && counts.connected_since.is_none() {
            counts.connects += 1;
            counts.connected_since = Some(now);
        }
        if from == Connected && to != Connected {
            counts.disconnects += 1;
            if let Some(since) = counts.connected_since.take() {
                counts.connected_before += now - since;
            }
        }
    }

    /// Signals written outside a commit (the DDM stopping).
    pub fn signaled(&mut self, signals: u64) {
        self.signals_written += signals;
    }

    /// The first dump is in: interfaces already connected (and not
    /// committed as such, as after a journaled restart) count as connected
    /// from now.
    pub fn started(&mut self, interfaces: &[Interface]) {
        let now = Instant::now();
        for interface in interfaces {
            if interface.connection_state == ConnectionState::Connected as u32 {
                let counts = self.interfaces.entry(interface.name.clone()).or_default();
                counts.connected_since.get_or_insert(now);
            }
        }
    }

    /// The link monitor dumped the links again (after an overrun).
    pub fn resynced(&mut self) {
        self.netlink_resyncs += 1;
    }

    /// One turn of the router took `took`.
    pub fn turned(&mut self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = TURN_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(TURN_BUCKETS.len());
        self.turn_buckets[bucket] += 1;
        self.turns += 1;
        self.turn_time += took;
    }

    /// Publishes a snapshot of the figures, with the interfaces and
    /// sessions as they are now; counts of interfaces that are gone are
    /// forgotten.
    pub fn publish(&mut self, mut snapshot: Snapshot, interfaces: &[Interface]) {
        let now = Instant::now();
        let present: HashMap<&str, &Interface> =
            interfaces.iter().map(|i| (i.name.as_str(), i)).collect();
        self.interfaces
            .retain(|name, _| present.contains_key(name.as_str()));
        snapshot.interfaces = interfaces
            .iter()
            .map(|i| {
                let counts = self.interfaces.get(&i.name);
                InterfaceFigures {
                    name: i.name.clone(),
                    state: i.connection_state,
                    connects: counts.map_or(0, |c| c.connects),
                    disconnects: counts.map_or(0, |c| c.disconnects),
                    dial_attempts: counts.map_or(0, |c| c.dial_attempts),
                    dial_failures: counts.map_or(0, |c| c.dial_failures),
                    connected_seconds: counts.map_or(0.0, |c| c.connected_seconds(now)),
                    dial_refused: i.dial_refused,
                }
            })
            .collect();
        snapshot.taken = Some(now);
        snapshot.events_committed = self.events_committed;
        snapshot.signals_written = self.signals_written;
        snapshot.stream_events_missed = self.stream_events_missed;
        snapshot.netlink_resyncs = self.netlink_resyncs;
        snapshot.turn_buckets = self.turn_buckets;
        snapshot.turns = self.turns;
        snapshot.turn_seconds = self.turn_time.as_secs_f64();
        self.feed.published.send_replace(Arc::new(snapshot));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::metrics::feed;

    fn t(
        name: &str,
        from: ConnectionState,
        to: ConnectionState,
        last_error: u32,
    ) -> ConnectionEvent {
        ConnectionEvent {
            name: name.into(),
            from: from as u32,
            to: to as u32,
            last_error,
            ..ConnectionEvent::default()
        }
    }

    fn interface(name: &str, state: ConnectionState) -> Interface {
        Interface {
            name: name.into(),
            connection_state: state as u32,
            ..Interface::default()
        }
    }

    #[test]
    fn transitions_count_connects_disconnects_attempts_and_failures() {
        use ConnectionState::*;
        let (feed, receiver) = feed();
        let mut accounts = Accounts::new(feed);
        accounts.committed(&t("wg0", Disconnected, Connecting, 0), 0, 0);
        accounts.committed(&t("wg0", Connecting, Disconnected, 1722), 0, 0);
        accounts.committed(&t("wg0", Disconnected, Connecting, 0), 0, 0);
        accounts.committed(&t("wg0", Connecting, Connected, 0), 3, 1);
        accounts.committed(&t("wg0", Connected, Disconnected, 926), 3, 0);
        accounts.committed(&t("gone", Unreachable, Connected, 0), 2, 0);
        accounts.turned(Duration::from_micros(30));
        accounts.turned(Duration::from_secs(5));
        accounts.publish(Snapshot::default(), &[interface("wg0", Disconnected)]);
        let snapshot = receiver.borrow().clone();
        assert_eq!(snapshot.interfaces.len(), 1, "gone is forgotten");
        let wg0 = &snapshot.interfaces[0];
        assert_eq!(
            (
                wg0.connects,
                wg0.disconnects,
                wg0.dial_attempts,
                wg0.dial_failures
            ),
            (1, 1, 2, 1)
        );
        assert_eq!(wg0.state, Disconnected as u32);
        assert_eq!(snapshot.events_committed, 6);
        assert_eq!(snapshot.signals_written, 8);
        assert_eq!(snapshot.stream_events_missed, 1);
        assert_eq!(snapshot.turns, 2);
        assert_eq!(snapshot.turn_buckets[1], 1, "30 µs is in the 50 µs bucket");
        assert_eq!(
            snapshot.turn_buckets[TURN_BUCKETS.len()],
            1,
            "5 s above the last"
        );
    }

    #[test]
    fn connected_time_runs_while_connected_and_counts_from_the_start() {
        use ConnectionState::*;
        let (feed, receiver) = feed();
        let mut accounts = Accounts::new(feed);
        let up = [interface("eth0", Connected)];
        accounts.started(&up);
        std::thread::sleep(Duration::from_millis(20));
        accounts.publish(Snapshot::default(), &up);
        let first = receiver.borrow().interfaces[0].connected_seconds;
        assert!(first >= 0.02, "{first}");
        assert_eq!(receiver.borrow().interfaces[0].connects, 0);
        accounts.committed(&t("eth0", Connected, Disconnected, 0), 0, 0);
        std::thread::sleep(Duration::from_millis(20));
        accounts.publish(Snapshot::default(), &[interface("eth0", Disconnected)]);
        let stopped = receiver.borrow().interfaces[0].connected_seconds;
        assert!(
            stopped >= first && stopped < first + 0.02,
            "{first} {stopped}"
        );
    }
}

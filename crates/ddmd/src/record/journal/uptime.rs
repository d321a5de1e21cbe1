//! Uptime and accounting from the journal: per interface, how long it was
//! connected, how often and how long it was not, and for declared
//! interfaces how often it dialed, failed, and what its connections
//! carried.
//!
//! [`Fold`] is pure: it is given each interface's state at the start of
//! the window, then the window's entries in order, then the window's end.
//! While the service is down the journal keeps an interface's last state;
//! the resynchronisation at the next start corrects it from then on.

use super::store::{self, COLUMNS};
use ddm_proto::message::{EntryKind, InterfaceUptime, JournalEntry, Uptime};
use ddm_proto::model::ConnectionState;
use rusqlite::{named_params, Connection};
use std::collections::{BTreeMap, HashMap};

const CONNECTED: u32 = ConnectionState::Connected as u32;
const CONNECTING: u32 = ConnectionState::Connecting as u32;

/// One interface's figures so far.
#[derive(Default)]
struct Figures {
    /// Its state since `at`, once known.
    state: Option<u32>,
    at: u64,
    /// When the current stretch of not being connected began.
    outage_since: Option<u64>,
    report: InterfaceUptime,
}

impl Figures {
    /// Time passes up to `t` in the current state.
    fn advance(&mut self, t: u64) {
        let Some(state) = self.state else {
            return;
        };
        let elapsed = t.saturating_sub(self.at);
        self.report.observed_ns += elapsed;
        if state == CONNECTED {
            self.report.connected_ns += elapsed;
        }
        if let Some(since) = self.outage_since {
            self.report.longest_outage_ns = self.report.longest_outage_ns.max(t - since.min(t));
        }
        self.at = t;
    }

    fn enter(&mut self, state: u32, t: u64) {
        self.state = Some(state);
        self.at = t;
        if state == CONNECTED {
            self.outage_since = None;
        } else if self.outage_since.is_none() {
            self.outage_since = Some(t);
        }
    }
}

/// Uptime over one window (see the module docs).
pub struct Fold {
    interfaces: BTreeMap<String, Figures>,
}

impl Fold {
    /// The window opens at `since` with these states (ROUTER_CONNECTION_STATE).
    pub fn new(since: u64, states: HashMap<String, u32>) -> Self {
        let mut interfaces = BTreeMap::new();
        for (name, state) in states {
            let mut figures = Figures::default();
            figures.enter(state, since);
            interfaces.insert(name, figures);
        }
        Fold { interfaces }
    }

    pub fn entry(&mut self, entry: &JournalEntry) {
        let t = entry.time_unix_ns;
        if let Some(event) = &entry.event {
            let figures = self.interfaces.entry(event.name.clone()).or_default();
            figures.advance(t);
            if event.from == CONNECTED && event.to != CONNECTED {
                figures.report.disconnects += 1;
            }
            if event.to == CONNECTING {
                figures.report.attempts += 1;
            }
            if event.from == CONNECTING && event.to != CONNECTED && event.last_error != 0 {
                figures.report.failures += 1;
            }
            figures.enter(event.to, t);
        } else if entry.kind == EntryKind::EntryAccounting as i32 {
            let figures = self.interfaces.entry(entry.interface.clone()).or_default();
            figures.report.connections += 1;
            figures.report.rx_bytes += entry.rx_bytes;
            figures.report.tx_bytes += entry.tx_bytes;
        }
    }

    /// The window closes at `until`.
    pub fn finish(self, until: u64) -> Vec<InterfaceUptime> {
        self.interfaces
            .into_iter()
            .map(|(name, mut figures)| {
                figures.advance(until);
                figures.report.connected_now = figures.state == Some(CONNECTED);
                figures.report.name = name;
                figures.report
            })
            .collect()
    }
}

/// The figures for `request`'s window, read from the journal; returns the
/// window's bounds too.
pub fn report(
    connection: &Connection,
    request: &Uptime,
    now: u64,
) -> rusqlite::Result<(u64, u64, Vec<InterfaceUptime>)> {
    let since = match request.since_unix_ns {
        0 => store::oldest_time(connection)?.unwrap_or(now),
        t => t,
    };
    let until = match request.until_unix_ns {
        0 => now,
        t => t,
    };
    let mut states = connection.prepare(
        "SELECT name, to_state FROM entry WHERE id IN
            (SELECT max(id) FROM entry WHERE kind = 0 AND time_ns < :since
             AND (:interface = '' OR name = :interface) GROUP BY name)",
    )?;
    let states = states
        .query_map(
            named_params! {":since": since as i64, ":interface": request.interface},
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?
        .collect::<rusqlite::Result<HashMap<String, u32>>>()?;
    let mut fold = Fold::new(since, states);
    let mut entries = connection.prepare(&format!(
        "SELECT {COLUMNS} FROM entry WHERE time_ns >= :since AND time_ns <= :until
         AND id >= {since_id} AND id <= {until_id}
         AND (:interface = '' OR name = :interface) AND kind IN (0, 7) ORDER BY id",
        since_id = store::first_id_at_or_after(":since"),
        until_id = store::last_id_at_or_before(":until"),
    ))?;
    let mut rows = entries.query(named_params! {
        ":since": since as i64,
        ":until": until as i64,
        ":interface": request.interface,
    })?;
    while let Some(row) = rows.next()? {
        fold.entry(&store::entry_of(row)?);
    }
    Ok((since, until, fold.finish(until)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ddm_proto::message::ConnectionEvent;

    const S: u64 = 1_000_000_000;

    fn transition(
        t: u64,
        name: &str,
        from: ConnectionState,
        to: ConnectionState,
        error: u32,
    ) -> JournalEntry {
        JournalEntry {
            time_unix_ns: t * S,
            kind: EntryKind::EntryTransition as i32,
            event: Some(ConnectionEvent {
                name: name.into(),
                from: from as u32,
                to: to as u32,
                last_error: error,
                ..ConnectionEvent::default()
            }),
            ..JournalEntry::default()
        }
    }

    use ConnectionState::{Connected as Up, Connecting, Disconnected as Down};

    #[test]
    fn a_night_of_drops_adds_up() {
        // eth1 is up at 0, drops at 100 for 20 s, and at 300 for 50 s.
        let mut fold = Fold::new(0, HashMap::from([("eth1".into(), Up as u32)]));
        for e in [
            transition(100, "eth1", Up, Down, 0),
            transition(120, "eth1", Down, Up, 0),
            transition(300, "eth1", Up, Down, 0),
            transition(350, "eth1", Down, Up, 0),
        ] {
            fold.entry(&e);
        }
        let report = fold.finish(1000 * S);
        let eth1 = &report[0];
        assert_eq!(eth1.name, "eth1");
        assert_eq!(eth1.observed_ns, 1000 * S);
        assert_eq!(eth1.connected_ns, 930 * S);
        assert_eq!(eth1.disconnects, 2);
        assert_eq!(eth1.longest_outage_ns, 50 * S);
        assert!(eth1.connected_now);
    }

    #[test]
    fn an_outage_still_open_at_the_end_counts_to_the_end() {
        let mut fold = Fold::new(0, HashMap::new());
        fold.entry(&transition(10, "wan", ConnectionState::Unreachable, Up, 0));
        fold.entry(&transition(40, "wan", Up, Down, 0));
        let wan = fold.finish(100 * S).remove(0);
        assert_eq!(wan.observed_ns, 90 * S, "unknown before its first entry");
        assert_eq!(wan.connected_ns, 30 * S);
        assert_eq!(wan.longest_outage_ns, 60 * S);
        assert!(!wan.connected_now);
    }

    #[test]
    fn dialing_counts_attempts_failures_and_bytes() {
        let mut fold = Fold::new(0, HashMap::from([("branch".into(), Down as u32)]));
        for e in [
            transition(1, "branch", Down, Connecting, 0),
            transition(2, "branch", Connecting, Down, 678),
            transition(5, "branch", Down, Connecting, 678),
            transition(6, "branch", Connecting, Up, 0),
            transition(16, "branch", Up, Down, 0),
            JournalEntry {
                time_unix_ns: 16 * S,
                kind: EntryKind::EntryAccounting as i32,
                interface: "branch".into(),
                rx_bytes: 1000,
                tx_bytes: 200,
                ..JournalEntry::default()
            },
        ] {
            fold.entry(&e);
        }
        let branch = fold.finish(20 * S).remove(0);
        assert_eq!((branch.attempts, branch.failures), (2, 1));
        assert_eq!(branch.connected_ns, 10 * S);
        assert_eq!(
            (branch.connections, branch.rx_bytes, branch.tx_bytes),
            (1, 1000, 200)
        );
        assert_eq!(
            branch.longest_outage_ns,
            6 * S,
            "from the window's start to 6"
        );
    }
}

//! The state the router owns, and the one way it changes: a commit.
//!
//! Interfaces (kernel links in the table, declared ones in `dialed`), the
//! DDM's running flag, the sequence number, every session's registrations
//! and streams. A commit numbers a transition, signals every registration
//! (for a connect or disconnect) and queues the typed event in every
//! stream, in one step, so a Deregister handled after it cannot miss it
//! (G1) and a change handled after a Deregister cannot reach it (G2). What
//! was committed is kept as [`Record`]s, in order, for the router's loop
//! to hand to the journal, the metrics and the log: the state itself
//! writes nowhere but to eventfds and outboxes, which never wait.

use crate::core::limits::Limits;
use crate::core::notify::Registrations;
use crate::core::outbox::Outbox;
use crate::core::peer::Peer;
use crate::core::signals::Signals;
use crate::core::table::{InterfaceTable, Transition};
use crate::dial::declaration::Declared;
use crate::dial::Dialed;
use crate::record::journal::reservation::Numbering;
use ddm_proto::message::{ConnectionEvent, EntryKind, GroupSwitch, Interface, JournalEntry};
use ddm_proto::model::{now_unix_ns, ConnectionState};
use ddm_proto::WinError;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

/// A session as the router knows it.
#[derive(Debug)]
pub struct Session {
    pub peer: Peer,
    pub outbox: Arc<Outbox>,
    pub registrations: Registrations,
    /// The session's open typed streams, by the client's ids.
    pub streams: HashSet<u64>,
}

/// One committed transition, as it went out.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    pub event: ConnectionEvent,
    /// Why, for the journal ("link", "dial failed", "resync", ...).
    pub reason: std::borrow::Cow<'static, str>,
    /// Registrations signaled.
    pub signals: u64,
    /// Sessions whose stream backlog was full (the event counts as missed
    /// there).
    pub missed: u64,
}

/// What the state did that the loop hands on, in the order it happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Committed(Committed),
    /// Something that happened to the service (a start, the DDM stopped,
    /// a resynchronisation of so many changes).
    Note(EntryKind, u64),
    /// A journal entry as it is (what a dialed connection carried).
    Entry(JournalEntry),
    /// Registrations signaled outside a commit (the DDM stopping).
    Signaled(u64),
    /// A group's switch, numbered and streamed like a transition.
    Switched(ConnectionEvent),
}

pub struct State {
    pub table: InterfaceTable,
    pub dialed: Dialed,
    pub running: bool,
    pub shutting_down: bool,
    pub started: Instant,
    pub seq: u64,
    /// Names the numbering (the journal's epoch, or this run's).
    pub epoch: u64,
    /// Keeps the numbering ahead on disk, with a journal.
    pub numbering: Option<Numbering>,
    pub sessions: HashMap<u64, Session>,
    pub limits: Limits,
    /// The eventfds a change signals, written together.
    signals: Signals,
    records: Vec<Record>,
    /// When each interface last changed state (committed), by handle; one
    /// that has not changed since the service started reports the start.
    since: HashMap<u32, u64>,
    started_unix_ns: u64,
}

impl State {
    pub fn new(table: InterfaceTable, dialed: Dialed, limits: Limits) -> Self {
        State {
            table,
            dialed,
            running: true,
            shutting_down: false,
            started: Instant::now(),
            seq: 0,
            epoch: now_unix_ns() >> 1,
            numbering: None,
            sessions: HashMap::new(),
            limits,
            signals: Signals::default(),
            records: Vec::new(),
            since: HashMap::new(),
            started_unix_ns: now_unix_ns(),
        }
    }

    /// Declares interfaces, with handles from the table's counter.
    pub fn declare(&mut self, declared: Declared) {
        let table = &mut self.table;
        self.dialed.declare(declared, || table.allocate_handle());
    }

    pub fn commit_all(&mut self, transitions: impl IntoIterator<Item = Transition>) {
        for transition in transitions {
            let committed = self.commit(transition);
            self.records.push(Record::Committed(committed));
        }
    }

    /// Commits a group's switch: a sequence number, and every stream told
    /// (no registered event: those are about interfaces).
    pub fn commit_switch(&mut self, group: String, switch: GroupSwitch) {
        let event = ConnectionEvent {
            seq: self.number(),
            name: group,
            time_unix_ns: now_unix_ns(),
            group_switch: Some(switch),
            ..ConnectionEvent::default()
        };
        for session in self.sessions.values() {
            if !session.streams.is_empty() {
                session.outbox.push_event(event.clone());
            }
        }
        self.records.push(Record::Switched(event));
    }

    /// The next sequence number, reserved ahead on disk.
    fn number(&mut self) -> u64 {
        self.seq += 1;
        if let Some(numbering) = &mut self.numbering {
            numbering.numbered(self.seq);
        }
        self.seq
    }

    /// Commits one change of state: a new sequence number and, for a
    /// connect or disconnect, every registered event signaled (first, and
    /// the CPU handed to the waiters woken: they are not kept waiting for
    /// the rest), then every stream told.
    fn commit(&mut self, t: Transition) -> Committed {
        let event = ConnectionEvent {
            seq: self.number(),
            handle: t.handle,
            name: t.name,
            from: t.from as u32,
            to: t.to as u32,
            time_unix_ns: now_unix_ns(),
            last_error: t.last_error,
            group_switch: None,
        };
        self.changed(t.handle, event.time_unix_ns);
        let signals = if t.from == ConnectionState::Connected || t.to == ConnectionState::Connected
        {
            self.signal_registrations()
        } else {
            0
        };
        let mut missed = 0;
        for session in self.sessions.values() {
            if !session.streams.is_empty() && !session.outbox.push_event(event.clone()) {
                missed += 1;
            }
        }
        Committed {
            event,
            reason: t.reason,
            signals,
            missed,
        }
    }

    /// Signals every session's registrations (their eventfds written
    /// together); how many.
    fn signal_registrations(&mut self) -> u64 {
        let mut signaled = 0;
        for session in self.sessions.values() {
            session
                .registrations
                .signal_all(&session.outbox, &mut self.signals);
            signaled += session.registrations.len() as u64;
        }
        self.signals.flush();
        signaled
    }

    /// Notes when `handle` changed state. Handles are never reused, so the
    /// times of interfaces that are gone are dropped once they could
    /// outnumber the living: the map stays within twice the table.
    fn changed(&mut self, handle: u32, time_unix_ns: u64) {
        self.since.insert(handle, time_unix_ns);
        if self.since.len() > 2 * self.interface_count() + 64 {
            let (table, dialed) = (&self.table, &self.dialed);
            self.since
                .retain(|handle, _| table.contains(*handle) || dialed.owns(*handle));
        }
    }

    /// `interface` with the time of its last change of state.
    fn dated(&self, mut interface: Interface) -> Interface {
        interface.since_unix_ns = self
            .since
            .get(&interface.handle)
            .copied()
            .unwrap_or(self.started_unix_ns);
        interface
    }

    /// Records something that happened to the service.
    pub fn note(&mut self, kind: EntryKind, count: u64) {
        self.records.push(Record::Note(kind, count));
    }

    /// Records a journal entry as it is.
    pub fn record_entry(&mut self, entry: JournalEntry) {
        self.records.push(Record::Entry(entry));
    }

    /// What was recorded since the last call, in order.
    pub fn take_records(&mut self) -> Vec<Record> {
        std::mem::take(&mut self.records)
    }

    /// Stopping the DDM signals every registered event once (what a waiter
    /// then calls returns ERROR_DDM_NOT_RUNNING), drops every registration
    /// and ends every stream. Starting it again is what it sounds like.
    pub fn set_running(&mut self, run: bool) {
        if run == self.running {
            return;
        }
        self.running = run;
        // A shutdown is journaled as the service's stop.
        if !self.shutting_down {
            self.note(
                if run {
                    EntryKind::EntryDdmStart
                } else {
                    EntryKind::EntryDdmStop
                },
                0,
            );
        }
        let transitions = self.dialed.pause(!run);
        self.commit_all(transitions);
        if run {
            tracing::info!("DDM started");
            return;
        }
        tracing::info!("DDM stopped; registrations dropped, streams ended");
        let signaled = self.signal_registrations();
        for session in self.sessions.values_mut() {
            session.registrations.clear();
            if !session.streams.is_empty() {
                session.streams.clear();
                session.outbox.end_stream(WinError::ERROR_DDM_NOT_RUNNING.0);
            }
        }
        self.records.push(Record::Signaled(signaled));
    }

    /// Every interface, kernel links and declared ones, in handle order.
    pub fn interfaces(&self) -> Vec<Interface> {
        self.interfaces_after(0).collect()
    }

    /// The interfaces, kernel links and declared ones, whose handle is
    /// above `handle`, in handle order: made one at a time, so a page of
    /// a long list costs the page.
    pub fn interfaces_after(&self, handle: u32) -> impl Iterator<Item = Interface> + '_ {
        let mut links = self.table.after(handle).peekable();
        let mut declared = self.dialed.after(handle).peekable();
        std::iter::from_fn(move || match (links.peek(), declared.peek()) {
            (Some(l), Some(d)) if d.handle < l.handle => declared.next(),
            (Some(_), _) => links.next(),
            (None, _) => declared.next(),
        })
        .map(|interface| self.dated(interface))
    }

    /// How many interfaces there are.
    pub fn interface_count(&self) -> usize {
        self.table.len() + self.dialed.declared_count()
    }

    /// How many interfaces are CONNECTED (without building them).
    pub fn connected_count(&self) -> usize {
        self.table.connected() + self.dialed.connected()
    }

    pub fn interface(&self, handle: u32) -> Option<Interface> {
        self.table
            .get(handle)
            .or_else(|| self.dialed.get(handle))
            .map(|interface| self.dated(interface))
    }

    /// A declared interface's name wins over a kernel link's of the same
    /// spelling: the administrator chose it.
    pub fn handle_of(&self, name: &str) -> Option<u32> {
        self.dialed
            .handle_of(name)
            .or_else(|| self.table.handle_of(name))
    }
}

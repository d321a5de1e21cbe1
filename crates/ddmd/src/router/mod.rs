//! The router: the one task that owns the DDM's state.
//!
//! Everything else talks to it by message: link events, supervisors'
//! reports, sessions' calls, timers. Each input changes the [`State`] (a
//! request through its handler in `requests`, checked against its
//! description first), and what the state committed comes back as
//! [`Record`]s, which this loop hands to the journal, the metrics and the
//! log; systemd hears the status line and the watchdog from here. Nothing
//! here waits on a client, a disk or a broker: eventfd writes do not
//! block, frames go to bounded outboxes, journal entries to a bounded
//! queue.

pub mod requests;
pub mod state;

use crate::core::limits::Limits;
use crate::core::notify::{Attachment, Registrations};
use crate::core::outbox::Outbox;
use crate::core::outcome::Outcome;
use crate::core::peer::Peer;
use crate::core::table::{InterfaceTable, Transition};
use crate::dial::declaration::Declared;
use crate::dial::supervisor::{Report, Reported};
use crate::dial::{Dialed, LocalClock};
use crate::health::prober::HealthRound;
use crate::links::LinkEvent;
use crate::ops::memory::Trimmer;
use crate::ops::metrics::{Accounts, ExportFigures, JournalFigures, Snapshot};
use crate::ops::systemd::{Notice, Notifier};
use crate::ops::throttle::Throttle;
use crate::record::change_log;
use crate::record::export::Export;
use crate::record::journal::{Journal, Recovered};
use ddm_proto::message::{EntryKind, JournalEntry, Reply, ReplyResult, Request, Role};
use ddm_proto::model::{now_unix_ns, ConnectionState};
use ddm_proto::WinError;
use requests::{Call, Reloader};
use state::{Record, Session, State};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// A kernel link's state as its transitions see it: CONNECTED or not
/// there.
fn not_connected_is_away(state: ConnectionState) -> ConnectionState {
    match state {
        ConnectionState::Connected => ConnectionState::Connected,
        _ => ConnectionState::Unreachable,
    }
}

/// How often systemd hears the status line, at the most (the watchdog may
/// need it more often).
const STATUS_PERIOD: Duration = Duration::from_secs(1);
/// Inputs already waiting that one turn of the loop takes after the one
/// that woke it, before it looks at the watchdog and the timers again.
const MORE_PER_TURN: usize = 256;

/// What sessions (and the service) ask of the router.
#[derive(Debug)]
pub enum Command {
    /// A session finished its handshake.
    Open {
        session: u64,
        peer: Peer,
        outbox: Arc<Outbox>,
    },
    /// A session ended: its registrations and streams go with it (G3).
    Close(u64),
    Call {
        session: u64,
        id: u64,
        request: Request,
        attachment: Attachment,
        reply: oneshot::Sender<Answer>,
    },
    /// The configuration file was read again (by the reloader): apply its
    /// interfaces, or keep the old ones if it was not valid, and answer
    /// the reloader.
    Reload {
        declared: Result<Declared, String>,
        reply: oneshot::Sender<Outcome>,
    },
    /// The service is stopping: end every stream, signal and drop every
    /// registration, hang up every declared interface, refuse every later
    /// call; answer with what fires as each supervisor is done.
    Shutdown(oneshot::Sender<Vec<oneshot::Receiver<()>>>),
    /// The supervisors are done: record the stop and hand the journal
    /// over to be closed.
    CloseJournal(oneshot::Sender<Option<(Journal, Option<Export>)>>),
}

/// What woke the router.
enum Woken {
    Link(LinkEvent),
    Report(Reported),
    Round(HealthRound),
    Command(Command),
    Timer,
    /// Time to feed systemd's watchdog and tell it the status line.
    Systemd,
    /// The metrics endpoint wants a snapshot.
    Scrape,
}

/// The router's answer to a call. Not boxed: nearly every call is
/// answered `Now`, and an answer is moved once, never stored.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Answer {
    Now(Reply),
    /// The reply comes later, through the session's outbox (a synchronous
    /// Connect, a reload, a journal read); the session goes on meanwhile.
    Later,
}

pub struct Router {
    state: State,
    reports: Option<mpsc::Receiver<Reported>>,
    rounds: Option<mpsc::Receiver<HealthRound>>,
    reloader: Option<Reloader>,
    journal: Option<Journal>,
    /// The journal's export to NATS, if configured.
    export: Option<Export>,
    /// The journal's last states, until the first link dump is compared
    /// with them.
    recovered: Option<Recovered>,
    ready: Option<oneshot::Sender<()>>,
    trimmer: Trimmer,
    refusals: Throttle,
    /// The longest time one input took, for the shutdown log line: the
    /// router must never wait on anything.
    longest_turn: Duration,
    notifier: Notifier,
    /// The status line systemd was last told.
    told_status: String,
    /// Figures for the metrics endpoint, when there is one.
    accounts: Option<Accounts>,
}

impl Router {
    /// `ready` fires once the first link dump is in the table.
    pub fn new(table: InterfaceTable, limits: Limits, ready: oneshot::Sender<()>) -> Self {
        let dialed = Dialed::new(
            Box::new(|_, _| crate::dial::supervisor::orders().0),
            Box::new(LocalClock),
        );
        Router {
            state: State::new(table, dialed, limits),
            reports: None,
            rounds: None,
            reloader: None,
            journal: None,
            export: None,
            recovered: None,
            ready: Some(ready),
            trimmer: Trimmer::default(),
            refusals: Throttle::default(),
            longest_turn: Duration::ZERO,
            notifier: Notifier::default(),
            told_status: String::new(),
            accounts: None,
        }
    }

    /// Counts for the metrics endpoint, and publishes them when it asks.
    pub fn counting(mut self, accounts: Accounts) -> Self {
        self.accounts = Some(accounts);
        self
    }

    /// Health rounds of the interfaces whose paths are probed.
    pub fn probing(mut self, rounds: mpsc::Receiver<HealthRound>) -> Self {
        self.rounds = Some(rounds);
        self
    }

    /// Tells systemd (when it asked) the status line, and feeds its
    /// watchdog from this task.
    pub fn notifying(mut self, notifier: Notifier) -> Self {
        self.notifier = notifier;
        self
    }

    /// Declared interfaces: their machines (`dialed`), and the reports of
    /// their supervisors; `reloader` reads the configuration again.
    pub fn dialing(
        mut self,
        dialed: Dialed,
        reports: mpsc::Receiver<Reported>,
        reloader: Option<Reloader>,
    ) -> Self {
        self.state.dialed = dialed;
        self.reports = Some(reports);
        self.reloader = reloader;
        self
    }

    /// Keeps every change in `journal` (and exports it, when `export`):
    /// numbering goes on from it, and the first link dump is compared with
    /// its last states.
    pub fn journaled(
        mut self,
        journal: Journal,
        export: Option<Export>,
        mut recovered: Recovered,
    ) -> Self {
        self.state.seq = recovered.last_seq;
        self.state.numbering = recovered.numbering.take();
        self.state.epoch = journal.epoch();
        self.journal = Some(journal);
        self.export = export;
        self.recovered = Some(recovered);
        self
    }

    /// Declares interfaces, with handles from the table's counter.
    pub fn declare(&mut self, declared: Declared) {
        self.state.declare(declared);
    }

    /// Serves until every command sender is gone.
    pub async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut links: mpsc::UnboundedReceiver<LinkEvent>,
    ) {
        let mut reports = self.reports.take();
        let mut rounds = self.rounds.take();
        // The watchdog's period, or a status line a second at the most.
        let mut systemd = self.notifier.enabled().then(|| {
            let period = self.notifier.watchdog_period();
            tokio::time::interval(period.map_or(STATUS_PERIOD, |p| p.min(STATUS_PERIOD)))
        });
        let scrapes = self.accounts.as_ref().map(Accounts::wanted);
        loop {
            let deadline = self.state.dialed.deadline();
            let woken = tokio::select! {
                biased;
                // First: a flood of link events must not starve the watchdog.
                Some(_) = async { Some(systemd.as_mut()?.tick().await) } => Woken::Systemd,
                Some(event) = links.recv() => Woken::Link(event),
                Some(reported) = async { reports.as_mut()?.recv().await } => Woken::Report(reported),
                Some(round) = async { rounds.as_mut()?.recv().await } => Woken::Round(round),
                command = commands.recv() => match command {
                    Some(command) => Woken::Command(command),
                    None => return,
                },
                () = crate::dial::sleep_until(deadline) => Woken::Timer,
                Some(()) = async {
                    scrapes.as_ref()?.notified().await;
                    Some(())
                } => Woken::Scrape,
            };
            self.turn(woken);
            // Inputs already waiting are taken before the next select: one
            // select (and one look at the timers) for them all.
            for _ in 0..MORE_PER_TURN {
                let more = if let Ok(event) = links.try_recv() {
                    Woken::Link(event)
                } else if let Some(reported) = reports.as_mut().and_then(|r| r.try_recv().ok()) {
                    Woken::Report(reported)
                } else if let Ok(command) = commands.try_recv() {
                    Woken::Command(command)
                } else {
                    break;
                };
                self.turn(more);
            }
        }
    }

    /// One input handled, and what follows every input.
    fn turn(&mut self, woken: Woken) {
        let started = Instant::now();
        match woken {
            Woken::Link(event) => self.on_link(event),
            Woken::Report(reported) => self.on_report(reported),
            Woken::Round(round) => {
                let transitions = self.state.dialed.round(round);
                self.state.commit_all(transitions);
            }
            Woken::Command(command) => self.on_command(command),
            Woken::Timer => {
                let transitions = self.state.dialed.tick();
                self.state.commit_all(transitions);
            }
            Woken::Systemd => self.tell_systemd(),
            Woken::Scrape => self.publish_figures(),
        }
        self.regroup();
        self.hand_on();
        let took = started.elapsed();
        self.longest_turn = self.longest_turn.max(took);
        if let Some(accounts) = &mut self.accounts {
            accounts.turned(took);
        }
    }

    /// The groups' carriers chosen again after an input: their switches
    /// journaled, demand members no longer needed hung up.
    fn regroup(&mut self) {
        let (transitions, switches) = self.state.dialed.regroup();
        self.state.commit_all(transitions);
        for switch in switches {
            let numbered = ddm_proto::message::GroupSwitch {
                from: switch.from.unwrap_or_default(),
                to: switch.to.unwrap_or_default(),
                via_trigger: switch.via_trigger,
                reason: switch.why.into(),
            };
            self.state.commit_switch(switch.group, numbered);
        }
    }

    /// Hands what the state recorded to the journal, the metrics and the
    /// log, in order.
    fn hand_on(&mut self) {
        for record in self.state.take_records() {
            match record {
                Record::Committed(c) => {
                    if let Some(accounts) = &mut self.accounts {
                        accounts.committed(&c.event, c.signals, c.missed);
                    }
                    match &mut self.journal {
                        Some(journal) => journal.transition(&c.event, &c.reason),
                        None => change_log::transition(&c.event, &c.reason),
                    }
                }
                Record::Note(kind, count) => {
                    if let Some(journal) = &mut self.journal {
                        journal.note(kind, count);
                    }
                }
                Record::Entry(entry) => {
                    if let Some(journal) = &mut self.journal {
                        journal.append(entry);
                    }
                }
                Record::Switched(event) => match &mut self.journal {
                    Some(journal) => journal.switched(&event),
                    None => change_log::switch(&event),
                },
                Record::Signaled(signals) => {
                    if let Some(accounts) = &mut self.accounts {
                        accounts.signaled(signals);
                    }
                }
            }
        }
    }

    fn on_link(&mut self, event: LinkEvent) {
        let state = &mut self.state;
        match event {
            LinkEvent::DumpBegin => {
                if let (None, Some(accounts)) = (&self.ready, &mut self.accounts) {
                    accounts.resynced();
                }
                state.table.begin_reconcile();
                state.dialed.begin_reconcile();
            }
            LinkEvent::DumpEnd => {
                let gone = state.table.end_reconcile();
                state.commit_all(gone);
                let gone = state.dialed.end_reconcile();
                state.commit_all(gone);
                if let Some(ready) = self.ready.take() {
                    let mut started = self.state.dialed.start();
                    if let Some(recovered) = self.recovered.take() {
                        started = self.resync(recovered, started);
                    }
                    self.state.commit_all(started);
                    if let Some(accounts) = &mut self.accounts {
                        accounts.started(&self.state.interfaces());
                    }
                    self.tell_status();
                    let _ = ready.send(());
                }
            }
            LinkEvent::Changed(link) => {
                let (claimed, watched) = state.dialed.link_changed(&link);
                state.commit_all(watched);
                let transition = if claimed {
                    state.table.remove(link.index)
                } else {
                    state.table.update(link)
                };
                self.commit_found(transition);
            }
            LinkEvent::Deleted(index) => {
                let (ours, watched) = state.dialed.link_deleted(index);
                state.commit_all(watched);
                if !ours {
                    let transition = state.table.remove(index);
                    self.commit_found(transition);
                }
            }
        }
    }

    /// Commits what a link event changed; during the first dump of a
    /// journaled start, the resynchronisation at its end does instead.
    fn commit_found(&mut self, transition: Option<Transition>) {
        if self.recovered.is_none() {
            self.state.commit_all(transition);
        }
    }

    /// The first dump is in: records the start, and commits, as one
    /// resynchronisation, every difference between the journal's last
    /// states and what the kernel shows now, before `started` (what
    /// starting the declared interfaces did), which it returns less the
    /// changes that did not happen: an interface whose start ends where
    /// the journal left it (a connection adopted after a crash) changed
    /// nothing, and is told as nothing.
    fn resync(&mut self, mut recovered: Recovered, started: Vec<Transition>) -> Vec<Transition> {
        let mut before_start = HashMap::new();
        let mut after_start = HashMap::new();
        for t in &started {
            before_start.entry(t.handle).or_insert(t.from);
            after_start.insert(t.handle, t.to);
        }
        let mut found = Vec::new();
        let mut unchanged = HashSet::new();
        for interface in self.state.interfaces() {
            let current = ConnectionState::from_u32(interface.connection_state);
            let now = before_start
                .get(&interface.handle)
                .copied()
                .unwrap_or(current);
            let then = recovered
                .last_states
                .remove(&interface.name)
                .map_or(ConnectionState::Unreachable, ConnectionState::from_u32);
            // A kernel link's transitions are into and out of CONNECTED: a
            // link that is down is as one that is not there.
            let kernel_link = self.state.table.get(interface.handle).is_some();
            if kernel_link && not_connected_is_away(then) == not_connected_is_away(now) {
                continue;
            }
            if after_start.get(&interface.handle) == Some(&then) {
                unchanged.insert(interface.handle);
                continue;
            }
            if then != now {
                found.push(Transition {
                    handle: interface.handle,
                    name: interface.name,
                    from: then,
                    to: now,
                    last_error: interface.last_error,
                    reason: "resync".into(),
                });
            }
        }
        let mut gone: Vec<(String, u32)> = recovered.last_states.into_iter().collect();
        gone.sort();
        for (name, then) in gone {
            let then = ConnectionState::from_u32(then);
            if then != ConnectionState::Unreachable {
                found.push(Transition {
                    handle: 0,
                    name,
                    from: then,
                    to: ConnectionState::Unreachable,
                    last_error: 0,
                    reason: "resync".into(),
                });
            }
        }
        self.state.note(EntryKind::EntryServiceStart, 0);
        self.state.note(EntryKind::EntryResync, found.len() as u64);
        tracing::info!(changes = found.len(), "resynchronised with the journal");
        self.state.commit_all(found);
        started
            .into_iter()
            .filter(|t| !unchanged.contains(&t.handle))
            .collect()
    }

    /// A supervisor's report: what it carried goes to the journal; the rest
    /// to the interface's machine.
    fn on_report(&mut self, reported: Reported) {
        if let Report::Carried {
            rx_bytes,
            tx_bytes,
            connected,
        } = reported.report
        {
            if let Some(interface) = self.state.interface(reported.handle) {
                self.state.record_entry(JournalEntry {
                    time_unix_ns: now_unix_ns(),
                    kind: EntryKind::EntryAccounting as i32,
                    interface: interface.name,
                    rx_bytes,
                    tx_bytes,
                    connected_ns: connected.as_nanos() as u64,
                    ..JournalEntry::default()
                });
            }
            return;
        }
        let transitions = self.state.dialed.report(reported);
        self.state.commit_all(transitions);
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Open {
                session,
                peer,
                outbox,
            } => {
                let state = Session {
                    peer,
                    outbox,
                    registrations: Registrations::default(),
                    streams: HashSet::new(),
                };
                self.state.sessions.insert(session, state);
                self.trimmer.sessions_now(self.state.sessions.len());
            }
            Command::Close(id) => {
                self.state.dialed.session_closed(id);
                let closed = self.state.sessions.remove(&id);
                self.trimmer.sessions_now(self.state.sessions.len());
                if let Some(session) = closed {
                    tracing::debug!(
                        session = id,
                        registrations = session.registrations.len(),
                        "session's registrations dropped"
                    );
                }
            }
            Command::Call {
                session,
                id,
                request,
                attachment,
                reply,
            } => {
                let outcome = self.call(session, id, request, attachment);
                let _ = reply.send(if outcome.later {
                    Answer::Later
                } else {
                    Answer::Now(Reply {
                        id,
                        error: outcome.error.0,
                        result: outcome.result,
                    })
                });
            }
            Command::Reload { declared, reply } => {
                let outcome = match declared {
                    Ok(declared) => {
                        let state = &mut self.state;
                        let transitions = state.dialed.reload(declared, &mut state.table);
                        state.commit_all(transitions);
                        tracing::info!("configuration reloaded");
                        Outcome::done()
                    }
                    Err(why) => {
                        tracing::error!("reload refused, the configuration is unchanged: {why}");
                        Outcome {
                            error: WinError::ERROR_BAD_CONFIGURATION,
                            result: Some(ReplyResult::Reason(why)),
                            later: false,
                        }
                    }
                };
                let _ = reply.send(outcome);
            }
            Command::Shutdown(done) => {
                tracing::info!(
                    longest_turn_us = self.longest_turn.as_micros() as u64,
                    "router stopping"
                );
                self.state.shutting_down = true;
                self.state.set_running(false);
                let _ = done.send(self.state.dialed.stop_all());
            }
            Command::CloseJournal(reply) => {
                if let Some(journal) = &mut self.journal {
                    journal.note(EntryKind::EntryServiceStop, 0);
                }
                let _ = reply.send(self.journal.take().map(|j| (j, self.export.take())));
            }
        }
    }

    /// Feeds the watchdog, and tells the status line when it changed.
    fn tell_systemd(&mut self) {
        if self.notifier.watchdog_period().is_some() {
            self.notifier.tell(Notice::Watchdog);
        }
        if self.ready.is_none() {
            self.tell_status();
        }
    }

    /// Tells systemd the status line if it changed.
    fn tell_status(&mut self) {
        if !self.notifier.enabled() {
            return;
        }
        let status = self.status_line();
        if status != self.told_status {
            self.notifier.tell(Notice::Status(status.clone()));
            self.told_status = status;
        }
    }

    /// Publishes the figures for the metrics endpoint.
    fn publish_figures(&mut self) {
        let Some(accounts) = &mut self.accounts else {
            return;
        };
        let state = &self.state;
        let mut snapshot = Snapshot {
            running: state.running,
            health: state.dialed.health(""),
            groups: state.dialed.groups(),
            journal: self.journal.as_ref().map(|journal| JournalFigures {
                path: journal.path().to_owned(),
                lost: journal.lost(),
                write_errors: journal.write_errors(),
            }),
            ..Snapshot::default()
        };
        if let (Some(journal), Some(export)) = (&self.journal, &self.export) {
            let status = export.status(journal.last_id());
            snapshot.export = Some(ExportFigures {
                connected: status.connected,
                behind: status.behind,
                errors: export.errors(),
            });
        }
        for role in [Role::None, Role::Status, Role::Monitor, Role::Admin] {
            snapshot.sessions.insert(role.name(), 0);
            snapshot.registrations.insert(role.name(), 0);
            snapshot.streams.insert(role.name(), 0);
        }
        for session in state.sessions.values() {
            let role = session.peer.role.name();
            *snapshot.sessions.entry(role).or_default() += 1;
            *snapshot.registrations.entry(role).or_default() += session.registrations.len() as u64;
            *snapshot.streams.entry(role).or_default() += session.streams.len() as u64;
        }
        accounts.publish(snapshot, &state.interfaces());
    }

    /// `systemctl status`'s line: the DDM, interfaces, clients. Made at
    /// every watchdog notice: counted, not a list built.
    fn status_line(&self) -> String {
        let state = &self.state;
        let registrations: usize = state.sessions.values().map(|s| s.registrations.len()).sum();
        format!(
            "DDM {}: {} interfaces, {} connected; {} sessions, {registrations} registrations",
            if state.running { "running" } else { "stopped" },
            state.interface_count(),
            state.connected_count(),
            state.sessions.len(),
        )
    }

    /// Checks a request against its description, then runs its handler.
    fn call(&mut self, session: u64, id: u64, request: Request, attachment: Attachment) -> Outcome {
        let spec = requests::spec(&request);
        let Some(caller) = self.state.sessions.get(&session) else {
            return WinError::RPC_S_PROTOCOL_ERROR.into();
        };
        let (role, outbox) = (caller.peer.role, caller.outbox.clone());
        if role < spec.role {
            if let Some(suppressed) = self.refusals.allow(Instant::now()) {
                tracing::info!(
                    session,
                    role = role.name(),
                    request = spec.name,
                    suppressed,
                    "refused: access denied"
                );
            }
            return WinError::ERROR_ACCESS_DENIED.into();
        }
        if self.state.shutting_down || (spec.needs_ddm && !self.state.running) {
            return WinError::ERROR_DDM_NOT_RUNNING.into();
        }
        let call = Call {
            session,
            id,
            attachment,
            outbox,
            journal: self.journal.as_mut(),
            export: self.export.as_ref(),
            reloader: self.reloader.as_ref(),
        };
        requests::handle(request, &mut self.state, call)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::peer::test_peer;
    use crate::core::table::LinkFilter;
    use crate::dial::declaration::Declaration;
    use crate::links::LinkState;
    use ddm_proto::message::*;
    use ddm_proto::model::ConnectionState;

    fn router() -> Router {
        let table = InterfaceTable::new(LinkFilter::new(&["*".into()], &[]));
        Router::new(table, Limits::default(), oneshot::channel().0)
    }

    fn open(router: &mut Router, session: u64, role: Role) -> Arc<Outbox> {
        let outbox = Arc::new(Outbox::new(16));
        let peer = test_peer(role);
        router.on_command(Command::Open {
            session,
            peer,
            outbox: outbox.clone(),
        });
        outbox
    }

    fn call(router: &mut Router, session: u64, request: Request) -> Outcome {
        router.call(session, 1, request, Attachment::None)
    }

    fn link(index: u32, connected: bool) -> LinkEvent {
        LinkEvent::Changed(LinkState {
            index,
            name: format!("eth{index}"),
            flags: (libc::IFF_UP | if connected { libc::IFF_RUNNING } else { 0 }) as u32,
            operstate: if connected { 6 } else { 2 },
            stats: None,
        })
    }

    #[test]
    fn a_call_above_the_role_is_refused_and_changes_nothing() {
        let mut r = router();
        open(&mut r, 1, Role::Status);
        let info = call(
            &mut r,
            1,
            Request::ServerGetInfo(ServerGetInfo { level: 0 }),
        );
        assert_eq!(info.error, WinError::NO_ERROR);
        let listing = Request::InterfaceEnum(InterfaceEnum::default());
        assert_eq!(
            call(&mut r, 1, listing).error,
            WinError::ERROR_ACCESS_DENIED
        );
        let stop = Request::RouterControl(RouterControl { run: false });
        assert_eq!(call(&mut r, 1, stop).error, WinError::ERROR_ACCESS_DENIED);
        assert!(r.state.running, "the refused stop stopped nothing");
    }

    #[test]
    fn a_stopped_ddm_refuses_what_needs_it() {
        let mut r = router();
        open(&mut r, 1, Role::Admin);
        let stop = Request::RouterControl(RouterControl { run: false });
        assert_eq!(call(&mut r, 1, stop).error, WinError::NO_ERROR);
        let listing = Request::InterfaceEnum(InterfaceEnum::default());
        assert_eq!(
            call(&mut r, 1, listing).error,
            WinError::ERROR_DDM_NOT_RUNNING
        );
        let info = call(
            &mut r,
            1,
            Request::ServerGetInfo(ServerGetInfo { level: 0 }),
        );
        match info.result {
            Some(ReplyResult::ServerInfo(info)) => assert!(info.lan_only_mode),
            other => panic!("server info: {other:?}"),
        }
        let sessions = call(&mut r, 1, Request::ListSessions(ListSessions {}));
        assert_eq!(sessions.error, WinError::NO_ERROR);
    }

    #[test]
    fn commits_reach_every_stream_of_a_session_once() {
        let mut r = router();
        let outbox = open(&mut r, 1, Role::Monitor);
        for stream in [1, 2] {
            let opened = call(&mut r, 1, Request::Subscribe(Subscribe { stream }));
            assert_eq!(opened.error, WinError::NO_ERROR);
        }
        r.on_link(link(2, true));
        let pushes = outbox.take();
        assert_eq!(pushes.len(), 1, "one event a session: {pushes:?}");
        let unsubscribe = |stream| Request::Unsubscribe(Unsubscribe { stream });
        assert_eq!(call(&mut r, 1, unsubscribe(1)).error, WinError::NO_ERROR);
        r.on_link(link(2, false));
        match &outbox.take()[..] {
            [Push::Event(e)] => assert_eq!(
                (e.from, e.to),
                (
                    ConnectionState::Connected as u32,
                    ConnectionState::Disconnected as u32
                )
            ),
            other => panic!("the other stream goes on: {other:?}"),
        }
        assert_eq!(
            call(&mut r, 1, unsubscribe(7)).error,
            WinError::ERROR_INVALID_PARAMETER
        );
    }

    #[test]
    fn the_number_of_streams_is_limited() {
        let mut r = router();
        r.state.limits.max_streams_per_session = 2;
        open(&mut r, 1, Role::Monitor);
        let subscribe = |stream| Request::Subscribe(Subscribe { stream });
        assert_eq!(call(&mut r, 1, subscribe(1)).error, WinError::NO_ERROR);
        assert_eq!(call(&mut r, 1, subscribe(2)).error, WinError::NO_ERROR);
        assert_eq!(call(&mut r, 1, subscribe(2)).error, WinError::NO_ERROR);
        assert_eq!(
            call(&mut r, 1, subscribe(3)).error,
            WinError::ERROR_NOT_ENOUGH_QUOTA
        );
    }

    #[test]
    fn shutdown_ends_streams_and_refuses_every_later_call() {
        let mut r = router();
        let outbox = open(&mut r, 1, Role::Admin);
        call(&mut r, 1, Request::Subscribe(Subscribe { stream: 1 }));
        let (done, acked) = oneshot::channel();
        r.on_command(Command::Shutdown(done));
        assert!(matches!(acked.blocking_recv(), Ok(stopping) if stopping.is_empty()));
        assert_eq!(
            outbox.take(),
            vec![Push::StreamEnd(StreamEnd {
                error: WinError::ERROR_DDM_NOT_RUNNING.0
            })]
        );
        let start = Request::RouterControl(RouterControl { run: true });
        assert_eq!(
            call(&mut r, 1, start).error,
            WinError::ERROR_DDM_NOT_RUNNING
        );
    }

    /// A router with one declared manual interface "branch", started (its
    /// first link dump is in); its supervisor's orders come out of the
    /// receiver.
    fn dialing_router() -> (Router, u32, crate::dial::supervisor::OrderReceiver) {
        use std::sync::{Arc, Mutex};
        let orders = Arc::new(Mutex::new(None));
        let slot = orders.clone();
        let spawner: crate::dial::Spawner = Box::new(move |_, _| {
            let (sender, receiver) = crate::dial::supervisor::orders();
            *slot.lock().unwrap() = Some(receiver);
            sender
        });
        let dialed = Dialed::new(spawner, Box::new(LocalClock));
        let (_, reports) = mpsc::channel(1);
        let mut r = router().dialing(dialed, reports, None);
        r.declare(Declared {
            interfaces: vec![Declaration {
                name: "branch".into(),
                link: "wg0".into(),
                connect: vec!["up".into()],
                trigger_device: "ddm-branch".into(),
                ..Declaration::default()
            }],
            ..Declared::default()
        });
        r.on_link(LinkEvent::DumpBegin);
        r.on_link(LinkEvent::DumpEnd);
        let mut receiver = orders.lock().unwrap().take().unwrap();
        assert!(matches!(
            receiver.try_recv(),
            Ok(crate::dial::supervisor::Order::Start { adopt: None })
        ));
        let handle = r.state.handle_of("branch").unwrap();
        (r, handle, receiver)
    }

    fn report(r: &mut Router, handle: u32, report: crate::dial::supervisor::Report) {
        let transitions = r
            .state
            .dialed
            .report(crate::dial::supervisor::Reported { handle, report });
        r.state.commit_all(transitions);
    }

    fn connect(handle: u32, event: u64, synchronous: bool) -> Request {
        Request::InterfaceConnect(InterfaceConnect {
            handle,
            event,
            synchronous,
        })
    }

    #[test]
    fn a_connect_event_is_signaled_once_when_the_attempt_completes() {
        use crate::dial::supervisor::{Order, Report};
        let (mut r, branch, mut orders) = dialing_router();
        let outbox = open(&mut r, 1, Role::Admin);
        let outcome = r.call(1, 1, connect(branch, 9, false), Attachment::NotCarried);
        assert_eq!(outcome.error, WinError::PENDING);
        assert!(matches!(orders.try_recv(), Ok(Order::Dial(1))));
        assert_eq!(
            r.state.interface(branch).unwrap().connection_state,
            ConnectionState::Connecting as u32
        );
        assert_eq!(outbox.take(), vec![], "nothing yet");
        report(&mut r, branch, Report::Ready(1));
        assert_eq!(outbox.take(), vec![Push::Signal(Signal { event: 9 })]);
        report(
            &mut r,
            branch,
            Report::Failed(1, WinError::ERROR_REMOTE_DISCONNECTION),
        );
        assert_eq!(outbox.take(), vec![], "signaled once, not again");
    }

    #[test]
    fn a_synchronous_connect_answers_with_the_attempts_outcome_through_the_outbox() {
        use crate::dial::supervisor::Report;
        let (mut r, branch, _orders) = dialing_router();
        let outbox = open(&mut r, 1, Role::Admin);
        let outcome = r.call(1, 41, connect(branch, 0, true), Attachment::None);
        assert!(outcome.later, "the reply comes later");
        assert_eq!(outbox.take(), vec![], "not yet");
        assert_eq!(
            r.call(1, 42, connect(branch, 0, false), Attachment::None)
                .error,
            WinError::ERROR_ALREADY_CONNECTING
        );
        report(&mut r, branch, Report::Failed(1, WinError::ERROR_NO_ANSWER));
        assert_eq!(
            outbox.take(),
            vec![Push::Reply(Reply {
                id: 41,
                error: WinError::ERROR_NO_ANSWER.0,
                result: None,
            })]
        );
    }

    #[test]
    fn a_synchronous_connect_of_what_is_connected_answers_once_at_once() {
        let mut r = router();
        let outbox = open(&mut r, 1, Role::Admin);
        r.on_link(link(2, true));
        let up = r.state.handle_of("eth2").unwrap();
        let outcome = r.call(1, 5, connect(up, 0, true), Attachment::None);
        assert_eq!((outcome.error, outcome.later), (WinError::NO_ERROR, false));
        assert_eq!(outbox.take(), vec![], "no second reply");
    }

    #[test]
    fn a_closed_session_takes_its_waiters_with_it() {
        use crate::dial::supervisor::Report;
        let (mut r, branch, _orders) = dialing_router();
        let outbox = open(&mut r, 1, Role::Admin);
        assert!(
            r.call(1, 1, connect(branch, 0, true), Attachment::None)
                .later
        );
        r.on_command(Command::Close(1));
        report(&mut r, branch, Report::Ready(1));
        assert_eq!(outbox.take(), vec![], "nobody is told");
    }

    #[test]
    fn only_connects_and_disconnects_signal_but_streams_see_every_state() {
        use crate::dial::supervisor::Report;
        let (mut r, branch, _orders) = dialing_router();
        let outbox = open(&mut r, 1, Role::Admin);
        r.state
            .sessions
            .get_mut(&1)
            .unwrap()
            .registrations
            .insert(5, crate::core::notify::Target::Session, 8)
            .unwrap();
        call(&mut r, 1, Request::Subscribe(Subscribe { stream: 1 }));
        outbox.take();
        r.call(1, 1, connect(branch, 0, false), Attachment::None);
        let pushes = outbox.take();
        assert!(
            matches!(&pushes[..], [Push::Event(e)] if e.to == ConnectionState::Connecting as u32),
            "CONNECTING is streamed, not signaled: {pushes:?}"
        );
        report(&mut r, branch, Report::Ready(1));
        let pushes = outbox.take();
        assert!(
            pushes.contains(&Push::Signal(Signal { event: 5 })),
            "{pushes:?}"
        );
    }

    #[test]
    fn dialing_calls_need_an_admin_and_a_known_handle() {
        let (mut r, branch, _orders) = dialing_router();
        open(&mut r, 1, Role::Monitor);
        open(&mut r, 2, Role::Admin);
        assert_eq!(
            call(&mut r, 1, connect(branch, 0, false)).error,
            WinError::ERROR_ACCESS_DENIED
        );
        let disconnect = |handle| Request::InterfaceDisconnect(InterfaceDisconnect { handle });
        assert_eq!(
            call(&mut r, 1, disconnect(branch)).error,
            WinError::ERROR_ACCESS_DENIED
        );
        assert_eq!(
            call(&mut r, 2, connect(999, 0, false)).error,
            WinError::ERROR_INVALID_HANDLE
        );
        assert_eq!(
            call(&mut r, 2, disconnect(999)).error,
            WinError::ERROR_INVALID_HANDLE
        );
        assert_eq!(
            call(&mut r, 2, disconnect(branch)).error,
            WinError::ERROR_INTERFACE_NOT_CONNECTED
        );
        let set = |level| {
            Request::InterfaceSetInfo(InterfaceSetInfo {
                level,
                handle: branch,
                enabled: false,
            })
        };
        assert_eq!(call(&mut r, 2, set(1)).error, WinError::ERROR_NOT_SUPPORTED);
        assert_eq!(call(&mut r, 2, set(0)).error, WinError::NO_ERROR);
        assert_eq!(
            call(&mut r, 2, connect(branch, 0, false)).error,
            WinError::ERROR_INTERFACE_DISABLED
        );
    }

    #[test]
    fn kernel_links_are_not_dialed() {
        let mut r = router();
        let outbox = open(&mut r, 1, Role::Admin);
        r.on_link(link(2, true));
        r.on_link(link(3, false));
        let up = r.state.handle_of("eth2").unwrap();
        let down = r.state.handle_of("eth3").unwrap();
        let disconnect = |handle| Request::InterfaceDisconnect(InterfaceDisconnect { handle });
        assert_eq!(
            call(&mut r, 1, connect(up, 0, true)).error,
            WinError::NO_ERROR
        );
        let with_event = r.call(1, 1, connect(up, 11, false), Attachment::NotCarried);
        assert_eq!(with_event.error, WinError::NO_ERROR);
        assert!(
            outbox.take().contains(&Push::Signal(Signal { event: 11 })),
            "its event is set at once"
        );
        assert_eq!(
            call(&mut r, 1, connect(down, 0, false)).error,
            WinError::ERROR_NOT_SUPPORTED
        );
        assert_eq!(
            call(&mut r, 1, disconnect(up)).error,
            WinError::ERROR_NOT_SUPPORTED
        );
        assert_eq!(
            call(&mut r, 1, disconnect(down)).error,
            WinError::ERROR_INTERFACE_NOT_CONNECTED
        );
        let set = |handle, enabled| {
            Request::InterfaceSetInfo(InterfaceSetInfo {
                level: 0,
                handle,
                enabled,
            })
        };
        assert_eq!(call(&mut r, 1, set(up, true)).error, WinError::NO_ERROR);
        assert_eq!(
            call(&mut r, 1, set(up, false)).error,
            WinError::ERROR_NOT_SUPPORTED
        );
    }

    #[test]
    fn a_refused_reload_answers_with_the_reason() {
        let mut r = router();
        let (reply, outcome) = oneshot::channel();
        r.on_command(Command::Reload {
            declared: Err("interface \"x\": connect must name a program".into()),
            reply,
        });
        let outcome = outcome.blocking_recv().unwrap();
        assert_eq!(outcome.error, WinError::ERROR_BAD_CONFIGURATION);
        assert!(matches!(
            outcome.result,
            Some(ReplyResult::Reason(why)) if why.contains("connect must name a program")
        ));
    }
}

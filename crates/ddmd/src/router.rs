//! The router: the one task that owns the DDM's state.
//!
//! Interfaces, the DDM's running flag, the sequence number, every session's
//! registrations and stream: all of it lives here and nowhere else, and
//! everything else talks to it by message. A transition is committed and
//! signaled in one step, so a Deregister handled after it cannot miss it
//! (G1) and a change handled after a Deregister cannot reach it (G2).
//! Nothing here waits on a client: eventfd writes do not block and typed
//! events go to bounded outboxes.

use crate::access::PeerCredentials;
use crate::config::Limits;
use crate::links::LinkEvent;
use crate::memory::Trimmer;
use crate::notify::{accept_eventfd, Registrations};
use crate::outbox::Outbox;
use crate::table::{InterfaceTable, Transition};
use ddm_proto::message::*;
use ddm_proto::prost::Message as _;
use ddm_proto::WinError;
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// A session as the router knows it.
#[derive(Debug)]
pub struct SessionHandle {
    pub id: u64,
    pub peer: PeerCredentials,
    pub role: Role,
    pub outbox: Arc<Outbox>,
}

/// What sessions ask of the router.
#[derive(Debug)]
pub enum Command {
    Open(SessionHandle),
    Close(u64),
    Call {
        session: u64,
        id: u64,
        request: Request,
        /// The descriptor that came with the frame (Register only).
        eventfd: Option<OwnedFd>,
        reply: oneshot::Sender<Reply>,
    },
}

struct Session {
    handle: SessionHandle,
    registrations: Registrations,
    subscribed: bool,
}

pub struct Router {
    table: InterfaceTable,
    running: bool,
    started: Instant,
    seq: u64,
    sessions: HashMap<u64, Session>,
    limits: Limits,
    ready: Option<oneshot::Sender<()>>,
    trimmer: Trimmer,
}

/// Room kept in a frame for everything but the interface entries.
const REPLY_OVERHEAD: usize = 64;

impl Router {
    /// `ready` fires once the first link dump is in the table.
    pub fn new(table: InterfaceTable, limits: Limits, ready: oneshot::Sender<()>) -> Self {
        Router {
            table,
            running: true,
            started: Instant::now(),
            seq: 0,
            sessions: HashMap::new(),
            limits,
            ready: Some(ready),
            trimmer: Trimmer::default(),
        }
    }

    /// Serves until every session sender and the link monitor are gone.
    pub async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut links: mpsc::UnboundedReceiver<LinkEvent>,
    ) {
        loop {
            tokio::select! {
                biased;
                Some(event) = links.recv() => self.on_link(event),
                command = commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => return,
                },
            }
        }
    }

    fn on_link(&mut self, event: LinkEvent) {
        match event {
            LinkEvent::DumpBegin => self.table.begin_reconcile(),
            LinkEvent::DumpEnd => {
                for transition in self.table.end_reconcile() {
                    self.commit(transition);
                }
                if let Some(ready) = self.ready.take() {
                    let _ = ready.send(());
                }
            }
            LinkEvent::Changed(link) => {
                if let Some(transition) = self.table.update(link) {
                    self.commit(transition);
                }
            }
            LinkEvent::Deleted(index) => {
                if let Some(transition) = self.table.remove(index) {
                    self.commit(transition);
                }
            }
        }
    }

    /// Commits one connect or disconnect: a new sequence number, every
    /// registered event signaled, every stream told.
    fn commit(&mut self, t: Transition) {
        self.seq += 1;
        tracing::info!(seq = self.seq, interface = %t.name, from = t.from.name(), to = t.to.name(), "connection event");
        let event = ConnectionEvent {
            seq: self.seq,
            handle: t.handle,
            name: t.name,
            from: t.from as u32,
            to: t.to as u32,
            time_unix_ns: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
        };
        for session in self.sessions.values() {
            session.registrations.signal_all();
            if session.subscribed {
                session.handle.outbox.push_event(event.clone());
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Open(handle) => {
                let id = handle.id;
                let session = Session {
                    handle,
                    registrations: Registrations::default(),
                    subscribed: false,
                };
                self.sessions.insert(id, session);
                self.trimmer.sessions_now(self.sessions.len());
            }
            Command::Close(id) => {
                let closed = self.sessions.remove(&id);
                self.trimmer.sessions_now(self.sessions.len());
                if let Some(session) = closed {
                    let n = session.registrations.len();
                    tracing::debug!(
                        session = id,
                        registrations = n,
                        "session's registrations dropped"
                    );
                }
            }
            Command::Call {
                session,
                id,
                request,
                eventfd,
                reply,
            } => {
                let (error, result) = match self.call(session, request, eventfd) {
                    Ok(result) => (WinError::NO_ERROR, result),
                    Err((error, result)) => (error, result),
                };
                let _ = reply.send(Reply {
                    id,
                    error: error.0,
                    result,
                });
            }
        }
    }

    /// Carries out one call. An error may still carry a result
    /// (ERROR_MORE_DATA with the first entries).
    fn call(
        &mut self,
        session: u64,
        request: Request,
        eventfd: Option<OwnedFd>,
    ) -> Result<Option<ReplyResult>, (WinError, Option<ReplyResult>)> {
        let fail = |e: WinError| Err((e, None));
        let needs_ddm = !matches!(
            request,
            Request::ServerGetInfo(_) | Request::RouterControl(_) | Request::ListSessions(_)
        );
        if needs_ddm && !self.running {
            return fail(WinError::ERROR_DDM_NOT_RUNNING);
        }
        let Some(state) = self.sessions.get_mut(&session) else {
            return fail(WinError::RPC_S_PROTOCOL_ERROR);
        };
        match request {
            Request::ServerGetInfo(ServerGetInfo { level: 0 }) => {
                Ok(Some(ReplyResult::ServerInfo(ServerInfo {
                    lan_only_mode: !self.running,
                    up_time: self.started.elapsed().as_secs() as u32,
                    total_ports: 0,
                    ports_in_use: 0,
                })))
            }
            Request::InterfaceEnum(InterfaceEnum {
                level: 0,
                max_entries,
                resume_handle,
            }) => self.enumerate(max_entries, resume_handle),
            Request::InterfaceGetInfo(InterfaceGetInfo { level: 0, handle }) => {
                match self.table.get(handle) {
                    Some(interface) => Ok(Some(ReplyResult::Interface(interface))),
                    None => fail(WinError::ERROR_INVALID_HANDLE),
                }
            }
            Request::ServerGetInfo(_)
            | Request::InterfaceEnum(_)
            | Request::InterfaceGetInfo(_) => fail(WinError::ERROR_NOT_SUPPORTED),
            Request::Register(Register { event }) => {
                let fd = eventfd.ok_or((WinError::ERROR_INVALID_PARAMETER, None))?;
                let fd = accept_eventfd(fd).map_err(|e| (e, None))?;
                let limit = self.limits.max_registrations_per_session;
                state
                    .registrations
                    .insert(event, fd, limit)
                    .map_err(|e| (e, None))?;
                Ok(None)
            }
            Request::Deregister(Deregister { event }) => {
                if state.registrations.remove(event) {
                    Ok(None)
                } else {
                    fail(WinError::ERROR_INVALID_PARAMETER)
                }
            }
            Request::Subscribe(_) => {
                state.subscribed = true;
                state.handle.outbox.restart(self.limits.stream_backlog);
                Ok(Some(ReplyResult::Snapshot(Snapshot {
                    seq: self.seq,
                    interfaces: self.table.interfaces(),
                })))
            }
            Request::Unsubscribe(_) => {
                state.subscribed = false;
                state.handle.outbox.restart(self.limits.stream_backlog);
                Ok(None)
            }
            Request::RouterControl(RouterControl { run }) => {
                self.set_running(run);
                Ok(None)
            }
            Request::ListSessions(_) => Ok(Some(ReplyResult::Sessions(self.list_sessions()))),
            Request::Hello(_) => fail(WinError::RPC_S_PROTOCOL_ERROR),
        }
    }

    /// Interfaces after `resume_handle`, as many as were asked for and fit
    /// in one frame; ERROR_MORE_DATA and a resume handle when some remain.
    fn enumerate(
        &self,
        max_entries: u32,
        resume_handle: u32,
    ) -> Result<Option<ReplyResult>, (WinError, Option<ReplyResult>)> {
        let all = self.table.interfaces();
        let total_entries = all.len() as u32;
        let remaining: Vec<Interface> = all
            .into_iter()
            .filter(|i| i.handle > resume_handle)
            .collect();
        let wanted = if max_entries == 0 {
            usize::MAX
        } else {
            max_entries as usize
        };
        let mut budget = self.limits.max_frame_bytes - REPLY_OVERHEAD;
        let mut page = Vec::new();
        for interface in &remaining {
            let size = interface.encoded_len() + 4;
            if page.len() == wanted || size > budget {
                break;
            }
            budget -= size;
            page.push(interface.clone());
        }
        let more = page.len() < remaining.len();
        let list = InterfaceList {
            resume_handle: if more {
                page.last().map_or(resume_handle, |i| i.handle)
            } else {
                0
            },
            interfaces: page,
            total_entries,
        };
        let result = Some(ReplyResult::Interfaces(list));
        if more {
            Err((WinError::ERROR_MORE_DATA, result))
        } else {
            Ok(result)
        }
    }

    /// Stopping the DDM signals every registered event once (what a waiter
    /// then calls returns ERROR_DDM_NOT_RUNNING), drops every registration
    /// and ends every stream. Starting it again is what it sounds like.
    fn set_running(&mut self, run: bool) {
        if run == self.running {
            return;
        }
        self.running = run;
        if run {
            tracing::info!("DDM started");
            return;
        }
        tracing::info!("DDM stopped; registrations dropped, streams ended");
        for session in self.sessions.values_mut() {
            session.registrations.signal_all();
            session.registrations.clear();
            if std::mem::take(&mut session.subscribed) {
                session
                    .handle
                    .outbox
                    .end_stream(WinError::ERROR_DDM_NOT_RUNNING.0);
            }
        }
    }

    fn list_sessions(&self) -> SessionList {
        let mut sessions: Vec<SessionEntry> = self
            .sessions
            .values()
            .map(|s| SessionEntry {
                session: s.handle.id,
                pid: s.handle.peer.pid,
                uid: s.handle.peer.uid,
                role: s.handle.role as i32,
                registrations: s.registrations.len() as u32,
                subscribed: s.subscribed,
            })
            .collect();
        sessions.sort_by_key(|s| s.session);
        SessionList { sessions }
    }
}

//! `Server`: a server handle, and the calls made through it.

use crate::connection::{Connection, DEFAULT_CALL_TIMEOUT};
use crate::event::Event;
use crate::replay::Replay;
use crate::stream::{EventStream, Snapshot, STREAM_CAPACITY};
use crate::types::{Connect, InterfaceInfo, InterfacePage, ServerInfo, SessionInfo};
use ddm_proto::endpoint::client_socket_path;
use ddm_proto::message::*;
use ddm_proto::model::MAX_CONNECT_TIMEOUT_SECS;
use ddm_proto::WinError;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The result of every call: the value, or the Win32 error.
pub type Result<T> = std::result::Result<T, WinError>;

/// A server handle (`MprAdminServerConnect`): one authenticated session
/// with one service. Dropping it is `MprAdminServerDisconnect`: the service
/// drops every registration made through it.
pub struct Server {
    connection: Arc<Connection>,
}

impl Server {
    /// `MprAdminServerConnect`. `None` is the local service, at the default
    /// socket (`DDM_SOCKET` honoured). A name (`router2`, `router2:4850`,
    /// an address, `[v6]:port`) is a remote service over TLS 1.3, with the
    /// client certificate of the client configuration (`client.toml`):
    /// RPC_S_SERVER_UNAVAILABLE when it cannot be reached, RPC_S_UNKNOWN_IF
    /// when nothing listens, ERROR_ACCESS_DENIED when TLS refuses the
    /// certificate or the service gives it no role.
    pub fn connect(server_name: Option<&str>) -> Result<Server> {
        match server_name {
            None => Self::connect_socket(&client_socket_path(None)),
            Some(name) => {
                let config = crate::client_config::ClientConfig::load().map_err(|e| {
                    eprintln!("mprapi: {e}");
                    WinError::ERROR_ACCESS_DENIED
                })?;
                Self::connect_remote(name, &config)
            }
        }
    }

    /// Connects to the remote service `name` with `config`'s certificate
    /// and CA instead of the client configuration's (a program that speaks
    /// for several identities).
    pub fn connect_remote(
        name: &str,
        config: &crate::client_config::ClientConfig,
    ) -> Result<Server> {
        Ok(Server {
            connection: Arc::new(Connection::open_remote(name, config, DEFAULT_CALL_TIMEOUT)?),
        })
    }

    /// Connects to the local service listening on `path`.
    pub fn connect_socket(path: &Path) -> Result<Server> {
        Ok(Server {
            connection: Arc::new(Connection::open(path, DEFAULT_CALL_TIMEOUT)?),
        })
    }

    /// `MprAdminServerDisconnect`.
    pub fn disconnect(self) {}

    /// The role the service gave this session.
    pub fn role(&self) -> Role {
        Role::try_from(self.connection.welcome.role).unwrap_or(Role::None)
    }

    /// Waits up to `timeout` for the connection to end (the service went
    /// away or this handle was disconnected); true if it has.
    pub fn wait_closed(&self, timeout: Duration) -> bool {
        self.connection.wait_closed(timeout)
    }

    /// The service's number for this session.
    pub fn session_id(&self) -> u64 {
        self.connection.welcome.session
    }

    fn call(&self, request: Request) -> Result<Option<ReplyResult>> {
        self.call_with_fd(request, None)
    }

    fn call_with_fd(&self, request: Request, event: Option<&Event>) -> Result<Option<ReplyResult>> {
        let reply = self.connection.call(request, event.map(|e| e.as_fd()))?;
        WinError(reply.error).into_result()?;
        Ok(reply.result)
    }

    /// `MprAdminServerGetInfo`, level 0.
    pub fn server_info(&self) -> Result<ServerInfo> {
        match self.call(Request::ServerGetInfo(ServerGetInfo { level: 0 }))? {
            Some(ReplyResult::ServerInfo(info)) => Ok(info.into()),
            _ => Err(WinError::RPC_S_PROTOCOL_ERROR),
        }
    }

    /// True when the service answers and its DDM is running.
    pub fn is_service_running(&self) -> bool {
        self.server_info().is_ok_and(|info| !info.lan_only_mode)
    }

    /// `MprAdminInterfaceEnum`, level 0: one page of at most `max_entries`
    /// interfaces (0: as many as fit a frame) after `resume_handle`.
    pub fn interface_enum(&self, max_entries: u32, resume_handle: u32) -> Result<InterfacePage> {
        let request = Request::InterfaceEnum(InterfaceEnum {
            level: 0,
            max_entries,
            resume_handle,
        });
        let reply = self.connection.call(request, None)?;
        let error = WinError(reply.error);
        if !error.is_ok() && error != WinError::ERROR_MORE_DATA {
            return Err(error);
        }
        match reply.result {
            Some(ReplyResult::Interfaces(list)) => Ok(InterfacePage {
                interfaces: list.interfaces.into_iter().map(Into::into).collect(),
                total_entries: list.total_entries,
                resume_handle: (error == WinError::ERROR_MORE_DATA).then_some(list.resume_handle),
            }),
            _ => Err(WinError::RPC_S_PROTOCOL_ERROR),
        }
    }

    /// Every interface, in handle order (all pages of `interface_enum`).
    pub fn interfaces(&self) -> Result<Vec<InterfaceInfo>> {
        let mut all = Vec::new();
        let mut resume = 0;
        loop {
            let page = self.interface_enum(0, resume)?;
            let progress = !page.interfaces.is_empty();
            all.extend(page.interfaces);
            match page.resume_handle {
                // A page that moves nothing on would be asked for forever.
                Some(next) if !progress || next == resume => {
                    return Err(WinError::RPC_S_PROTOCOL_ERROR)
                }
                Some(next) => resume = next,
                None => return Ok(all),
            }
        }
    }

    /// `MprAdminInterfaceGetInfo`, level 0.
    pub fn interface(&self, handle: u32) -> Result<InterfaceInfo> {
        match self.call(Request::InterfaceGetInfo(InterfaceGetInfo {
            level: 0,
            handle,
        }))? {
            Some(ReplyResult::Interface(interface)) => Ok(interface.into()),
            _ => Err(WinError::RPC_S_PROTOCOL_ERROR),
        }
    }

    /// `MprAdminInterfaceGetHandle`: the handle of the interface named
    /// exactly `name`; `ERROR_NO_SUCH_INTERFACE` when there is none.
    pub fn interface_handle(&self, name: &str) -> Result<u32> {
        let request = Request::InterfaceGetHandle(InterfaceGetHandle {
            name: name.to_owned(),
            include_client_interfaces: false,
        });
        match self.call(request)? {
            Some(ReplyResult::InterfaceHandle(InterfaceHandle { handle })) => Ok(handle),
            _ => Err(WinError::RPC_S_PROTOCOL_ERROR),
        }
    }

    /// `MprAdminInterfaceConnect` with no event, not synchronous: starts
    /// dialing a declared interface and returns at once.
    /// `ERROR_ALREADY_CONNECTING`, `ERROR_INTERFACE_DISABLED`,
    /// `ERROR_DIALOUT_HOURS_RESTRICTION`, `ERROR_INVALID_HANDLE`, and
    /// `ERROR_NOT_SUPPORTED` for a kernel link that is not connected.
    pub fn interface_connect(&self, handle: u32) -> Result<Connect> {
        self.connect_call(handle, None, false, CALL_TIMEOUT)
    }

    /// `MprAdminInterfaceConnect` with an event: as `interface_connect`,
    /// and `event` is signaled once when the attempt completes, either way
    /// (read the outcome with `interface`).
    pub fn interface_connect_signaling(&self, handle: u32, event: &Event) -> Result<Connect> {
        self.connect_call(handle, Some(event), false, CALL_TIMEOUT)
    }

    /// `MprAdminInterfaceConnect`, synchronous: returns when the attempt
    /// completes, `Ok` when connected or the attempt's error. The service
    /// bounds an attempt by the interface's connect timeout (600 s at the
    /// most).
    pub fn interface_connect_wait(&self, handle: u32) -> Result<()> {
        let limit = Duration::from_secs(MAX_CONNECT_TIMEOUT_SECS) + CALL_TIMEOUT;
        self.connect_call(handle, None, true, limit).map(drop)
    }

    fn connect_call(
        &self,
        handle: u32,
        event: Option<&Event>,
        synchronous: bool,
        timeout: Duration,
    ) -> Result<Connect> {
        let request = Request::InterfaceConnect(InterfaceConnect {
            handle,
            event: event.map_or(0, Event::id),
            synchronous,
        });
        let reply = self
            .connection
            .call_within(request, event.map(|e| e.as_fd()), timeout)?;
        match WinError(reply.error) {
            WinError::NO_ERROR => Ok(Connect::Connected),
            WinError::PENDING => Ok(Connect::Pending),
            error => Err(error),
        }
    }

    /// `MprAdminInterfaceDisconnect`: hangs up a declared interface, or
    /// cancels its attempt. `ERROR_INTERFACE_NOT_CONNECTED` when there is
    /// neither.
    pub fn interface_disconnect(&self, handle: u32) -> Result<()> {
        self.call(Request::InterfaceDisconnect(InterfaceDisconnect { handle }))
            .map(drop)
    }

    /// `MprAdminInterfaceSetInfo`, level 0, fEnabled: enables or disables
    /// a declared interface (disabling a connected one hangs it up).
    pub fn interface_set_enabled(&self, handle: u32, enabled: bool) -> Result<()> {
        self.call(Request::InterfaceSetInfo(InterfaceSetInfo {
            level: 0,
            handle,
            enabled,
        }))
        .map(drop)
    }

    /// Has the service read its configuration file again and apply what
    /// changed. `ERROR_BAD_CONFIGURATION` when the file is not valid (the
    /// service keeps what it had; [`reload_with_reason`](Self::reload_with_reason)
    /// says why). Admin only.
    pub fn reload(&self) -> Result<()> {
        self.reload_with_reason().map_err(|(error, _)| error)
    }

    /// As [`reload`](Self::reload), with the service's reason when it
    /// refuses the file (ERROR_BAD_CONFIGURATION and what is wrong with
    /// it, as `ddm serve --config` would say).
    pub fn reload_with_reason(&self) -> std::result::Result<(), (WinError, Option<String>)> {
        let reply = self
            .connection
            .call(Request::ServiceReload(ServiceReload {}), None)
            .map_err(|error| (error, None))?;
        match WinError(reply.error).into_result() {
            Ok(()) => Ok(()),
            Err(error) => Err((
                error,
                match reply.result {
                    Some(ReplyResult::Reason(reason)) => Some(reason),
                    _ => None,
                },
            )),
        }
    }

    /// `MprAdminRegisterConnectionNotification`: from when this returns,
    /// `event` is signaled after every connect or disconnect the DDM
    /// commits, until it is deregistered or this handle is dropped.
    /// Registering an event twice is one registration.
    pub fn register_connection_notification(&self, event: &Event) -> Result<()> {
        let request = Request::Register(Register { event: event.id() });
        self.call_with_fd(request, Some(event)).map(drop)
    }

    /// `MprAdminDeregisterConnectionNotification`: once this returns, the
    /// registration never signals `event` again. `ERROR_INVALID_PARAMETER`
    /// when `event` is not registered on this handle.
    pub fn deregister_connection_notification(&self, event: &Event) -> Result<()> {
        self.call(Request::Deregister(Deregister { event: event.id() }))
            .map(drop)
    }

    /// Opens the typed event stream: a snapshot, then every event after it.
    /// The library holds up to [`STREAM_CAPACITY`] unread events.
    pub fn subscribe(&self) -> Result<EventStream> {
        self.subscribe_bounded(STREAM_CAPACITY)
    }

    /// [`Server::subscribe`], holding at most `capacity` unread events;
    /// past that, a [`StreamItem::Missed`](crate::StreamItem) marker counts
    /// what was dropped.
    /// Each stream has its own snapshot, backlog and end; dropping one
    /// leaves the others as they were.
    pub fn subscribe_bounded(&self, capacity: usize) -> Result<EventStream> {
        self.open_stream(capacity, None)
    }

    /// Opens the typed event stream, resuming after `seq`: the events
    /// numbered after `seq` up to the snapshot come from the service's
    /// journal, then the live ones follow, with nothing between and nothing
    /// twice. What the journal no longer keeps (or never had: the journal
    /// is off) comes as one `Missed` marker of the exact count. Not in
    /// mprapi.h: Windows has no such call.
    pub fn subscribe_from(&self, seq: u64) -> Result<EventStream> {
        self.open_stream(STREAM_CAPACITY, Some(seq))
    }

    /// [`Server::subscribe_from`], holding at most `capacity` live events
    /// while the replay is read.
    pub fn subscribe_from_bounded(&self, seq: u64, capacity: usize) -> Result<EventStream> {
        self.open_stream(capacity, Some(seq))
    }

    fn open_stream(&self, capacity: usize, after: Option<u64>) -> Result<EventStream> {
        let subscriptions = self.connection.subscriptions();
        let (stream, subscription) = subscriptions.open(capacity);
        let watch = self.connection.watch();
        match self.call(Request::Subscribe(Subscribe { stream })) {
            Ok(Some(ReplyResult::Snapshot(s))) => Ok(EventStream::new(
                watch,
                stream,
                subscription,
                Snapshot {
                    seq: s.seq,
                    interfaces: s.interfaces.into_iter().map(Into::into).collect(),
                    epoch: s.epoch,
                },
                after.map(|after| Replay::new(after, s.seq)),
            )),
            outcome => {
                subscriptions.close(stream);
                Err(outcome.err().unwrap_or(WinError::RPC_S_PROTOCOL_ERROR))
            }
        }
    }

    /// Starts (`true`) or stops the DDM. Admin only. Stopping signals every
    /// registered event once, drops every registration and ends every
    /// stream; calls that need the DDM then return ERROR_DDM_NOT_RUNNING.
    pub fn set_router_running(&self, run: bool) -> Result<()> {
        self.call(Request::RouterControl(RouterControl { run }))
            .map(drop)
    }

    /// One page of the journal (see [`History`]): its entries, and whether
    /// more follow (ask again with `after_id` set to the last entry's id).
    /// Monitor or admin; ERROR_NOT_SUPPORTED when the journal is off.
    pub fn history_page(&self, query: &History) -> Result<(Vec<JournalEntry>, bool)> {
        let reply = self
            .connection
            .call(Request::History(Box::new(query.clone())), None)?;
        let more = match WinError(reply.error) {
            WinError::ERROR_MORE_DATA => true,
            error => {
                error.into_result()?;
                false
            }
        };
        match reply.result {
            Some(ReplyResult::History(page)) => Ok((page.entries, more)),
            _ => Err(WinError::RPC_S_PROTOCOL_ERROR),
        }
    }

    /// Every journal entry `query` selects, oldest first, read a page at a
    /// time as the iterator is advanced.
    pub fn history(&self, query: History) -> impl Iterator<Item = Result<JournalEntry>> + '_ {
        let mut query = query;
        let mut page = std::collections::VecDeque::new();
        let mut more = true;
        std::iter::from_fn(move || {
            while page.is_empty() && more {
                match self.history_page(&query) {
                    Ok((entries, next)) => {
                        more = next && !entries.is_empty();
                        if let Some(last) = entries.last() {
                            query.after_id = last.id;
                        }
                        page.extend(entries);
                    }
                    Err(e) => {
                        more = false;
                        return Some(Err(e));
                    }
                }
            }
            page.pop_front().map(Ok)
        })
    }

    /// Connected time, disconnects, outages and (for declared interfaces)
    /// attempts, failures and bytes carried, per interface, from the
    /// journal. Monitor or admin.
    /// Read in as many replies as the frame limit needs.
    pub fn uptime(&self, query: &Uptime) -> Result<UptimeReport> {
        let mut query = query.clone();
        let mut whole: Option<UptimeReport> = None;
        loop {
            let reply = self
                .connection
                .call(Request::Uptime(Box::new(query.clone())), None)?;
            let more = WinError(reply.error) == WinError::ERROR_MORE_DATA;
            if !more {
                WinError(reply.error).into_result()?;
            }
            let Some(ReplyResult::Uptime(mut part)) = reply.result else {
                return Err(WinError::RPC_S_PROTOCOL_ERROR);
            };
            // The window is fixed by the first part: the rest use it.
            query.since_unix_ns = part.since_unix_ns;
            query.until_unix_ns = part.until_unix_ns;
            match &mut whole {
                None => whole = Some(part),
                Some(whole) => whole.interfaces.append(&mut part.interfaces),
            }
            let last = whole.as_ref().and_then(|w| w.interfaces.last());
            match last {
                Some(last) if more => query.after_interface = last.name.clone(),
                _ => return whole.ok_or(WinError::RPC_S_PROTOCOL_ERROR),
            }
        }
    }

    /// The journal's state and its export's. Monitor or admin.
    pub fn journal_status(&self) -> Result<JournalStatus> {
        match self.call(Request::JournalInfo(JournalInfo {}))? {
            Some(ReplyResult::Journal(status)) => Ok(*status),
            _ => Err(WinError::RPC_S_PROTOCOL_ERROR),
        }
    }

    /// The path health of the interfaces with a health table (all, or
    /// the one named), with each target's figures. Monitor or admin.
    /// ERROR_NO_SUCH_INTERFACE when `interface` names none.
    pub fn health(&self, interface: &str) -> Result<Vec<InterfaceHealth>> {
        let request = Request::HealthGet(HealthGet {
            interface: interface.into(),
        });
        match self.call(request)? {
            Some(ReplyResult::Health(report)) => Ok(report.interfaces),
            _ => Err(WinError::RPC_S_PROTOCOL_ERROR),
        }
    }

    /// The groups of uplinks: which member carries each group's routes,
    /// since when, and its members. Monitor or admin.
    pub fn groups(&self) -> Result<Vec<GroupInfo>> {
        match self.call(Request::GroupsGet(GroupsGet {}))? {
            Some(ReplyResult::Groups(list)) => Ok(list.groups),
            _ => Err(WinError::RPC_S_PROTOCOL_ERROR),
        }
    }

    /// Every session with its registrations. Admin only.
    pub fn sessions(&self) -> Result<Vec<SessionInfo>> {
        match self.call(Request::ListSessions(ListSessions {}))? {
            Some(ReplyResult::Sessions(list)) => {
                Ok(list.sessions.into_iter().map(Into::into).collect())
            }
            _ => Err(WinError::RPC_S_PROTOCOL_ERROR),
        }
    }
}

/// `MprAdminIsServiceRunning`: false when the service is down, its DDM is
/// stopped, or the caller may not ask.
pub fn is_service_running(server_name: Option<&str>) -> bool {
    Server::connect(server_name).is_ok_and(|s| s.is_service_running())
}

/// `MprAdminGetErrorString`: the text of a Win32 error number, or
/// `ERROR_MR_MID_NOT_FOUND`.
pub fn error_string(code: u32) -> Result<&'static str> {
    WinError(code).text()
}

/// The call timeout after which an unanswered call returns
/// ERROR_DDM_NOT_RUNNING.
pub const CALL_TIMEOUT: Duration = DEFAULT_CALL_TIMEOUT;

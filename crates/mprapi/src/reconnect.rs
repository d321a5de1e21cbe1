//! A server handle that outlives its service.
//!
//! Registrations do not survive a restart of the service, and changes made
//! while it was away are lost to its clients. [`ReconnectingServer`] keeps
//! trying to reach the service again; when it does, it registers its
//! events again and signals each of them once, so a waiter wakes and looks
//! at the table afresh. While the service is away every call returns
//! ERROR_DDM_NOT_RUNNING, as a plain handle's would. Its typed stream
//! ([`ResumingStream`]) resumes after the last event it yielded, from the
//! service's journal: a restart costs its consumer nothing.

use crate::event::Event;
use crate::server::{Result, Server};
use crate::stream::{EventStream, Snapshot};
use crate::types::StreamItem;
use ddm_proto::endpoint::client_socket_path;
use ddm_proto::WinError;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a lost service is tried again.
pub const RECONNECT_INTERVAL: Duration = Duration::from_millis(100);

struct State {
    server: Option<Arc<Server>>,
    /// The events to register again, by id.
    events: HashMap<u64, Event>,
    stopping: bool,
}

/// Where the service is.
enum Target {
    Local(PathBuf),
    Remote(String),
}

impl Target {
    fn connect(&self) -> Result<Server> {
        match self {
            Target::Local(path) => Server::connect_socket(path),
            Target::Remote(name) => Server::connect(Some(name)),
        }
    }
}

struct Shared {
    target: Target,
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A server handle that reconnects by itself (see the module docs).
pub struct ReconnectingServer {
    shared: Arc<Shared>,
    supervisor: Option<JoinHandle<()>>,
}

impl ReconnectingServer {
    /// Connects like [`Server::connect`], local or remote; the first
    /// connection must succeed.
    pub fn connect(server_name: Option<&str>) -> Result<ReconnectingServer> {
        match server_name {
            None => Self::connect_socket(&client_socket_path(None)),
            Some(name) => Self::start(Target::Remote(name.to_owned())),
        }
    }

    /// Connects to the local service listening on `path`.
    pub fn connect_socket(path: &Path) -> Result<ReconnectingServer> {
        Self::start(Target::Local(path.to_owned()))
    }

    fn start(target: Target) -> Result<ReconnectingServer> {
        let server = Arc::new(target.connect()?);
        let shared = Arc::new(Shared {
            target,
            state: Mutex::new(State {
                server: Some(server),
                events: HashMap::new(),
                stopping: false,
            }),
            changed: Condvar::new(),
        });
        let watched = shared.clone();
        let supervisor = std::thread::Builder::new()
            .name("mprapi-reconnect".into())
            .spawn(move || supervise(&watched))
            .map_err(|_| WinError::ERROR_NOT_ENOUGH_MEMORY)?;
        Ok(ReconnectingServer {
            shared,
            supervisor: Some(supervisor),
        })
    }

    /// The current connection, for any call; ERROR_DDM_NOT_RUNNING while
    /// the service is away.
    pub fn server(&self) -> Result<Arc<Server>> {
        self.shared
            .lock()
            .server
            .clone()
            .ok_or(WinError::ERROR_DDM_NOT_RUNNING)
    }

    /// True while connected.
    pub fn is_connected(&self) -> bool {
        self.shared.lock().server.is_some()
    }

    /// Waits up to `timeout` until connected; true if it is.
    pub fn wait_connected(&self, timeout: Duration) -> bool {
        let state = self.shared.lock();
        let (state, _) = self
            .shared
            .changed
            .wait_timeout_while(state, timeout, |s| s.server.is_none())
            .unwrap_or_else(|p| p.into_inner());
        state.server.is_some()
    }

    /// Opens a typed stream that goes on across restarts of the service
    /// (see [`ResumingStream`]); the first subscription must succeed.
    pub fn subscribe(&self) -> Result<ResumingStream> {
        let stream = self.server()?.subscribe()?;
        Ok(self.resuming(stream.snapshot().seq, stream))
    }

    /// [`ReconnectingServer::subscribe`], beginning after `seq` as
    /// [`Server::subscribe_from`] does.
    pub fn subscribe_from(&self, seq: u64) -> Result<ResumingStream> {
        let stream = self.server()?.subscribe_from(seq)?;
        Ok(self.resuming(seq, stream))
    }

    fn resuming(&self, last_seq: u64, stream: EventStream) -> ResumingStream {
        ResumingStream {
            shared: self.shared.clone(),
            last_seq,
            snapshot: stream.snapshot().clone(),
            stream: Some(stream),
        }
    }

    /// Registers `event` now and again after every reconnection.
    pub fn register_connection_notification(&self, event: &Event) -> Result<()> {
        let copy = event
            .try_clone()
            .map_err(|_| WinError::ERROR_NOT_ENOUGH_MEMORY)?;
        self.server()?.register_connection_notification(event)?;
        self.shared.lock().events.insert(event.id(), copy);
        Ok(())
    }

    /// Deregisters `event`; it is not registered again on reconnection.
    pub fn deregister_connection_notification(&self, event: &Event) -> Result<()> {
        self.server()?.deregister_connection_notification(event)?;
        self.shared.lock().events.remove(&event.id());
        Ok(())
    }
}

impl Drop for ReconnectingServer {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.changed.notify_all();
        if let Some(supervisor) = self.supervisor.take() {
            let _ = supervisor.join();
        }
    }
}

/// Watches the connection; when it is lost, reconnects, registers again
/// and signals every event once.
fn supervise(shared: &Shared) {
    loop {
        let current = {
            let state = shared.lock();
            if state.stopping {
                return;
            }
            state.server.clone()
        };
        match current {
            Some(server) => {
                if server.wait_closed(RECONNECT_INTERVAL) {
                    shared.lock().server = None;
                    shared.changed.notify_all();
                }
            }
            None => {
                if let Ok(server) = shared.target.connect() {
                    let mut state = shared.lock();
                    for event in state.events.values() {
                        let _ = server.register_connection_notification(event);
                        event.set();
                    }
                    state.server = Some(Arc::new(server));
                    drop(state);
                    shared.changed.notify_all();
                } else {
                    let state = shared.lock();
                    let _ = shared
                        .changed
                        .wait_timeout_while(state, RECONNECT_INTERVAL, |s| !s.stopping);
                }
            }
        }
    }
}

/// A typed stream that resumes: when its stream ends (the service went
/// away, or the DDM stopped), it subscribes again as soon as it can with
/// [`Server::subscribe_from`] the last sequence number it yielded, so the
/// events committed meanwhile come from the journal, then the live ones,
/// with none missing and none twice (the journal permitting: what it no
/// longer has comes as a `Missed` marker). It never yields `End`.
pub struct ResumingStream {
    shared: Arc<Shared>,
    stream: Option<EventStream>,
    snapshot: Snapshot,
    /// The newest sequence number yielded or counted missed.
    last_seq: u64,
}

impl ResumingStream {
    /// The table when the stream first opened.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The newest sequence number yielded (or counted as missed).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The next event or `Missed` marker, or `None` after `timeout`.
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<StreamItem> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if self.stream.is_none() {
                let server = self.shared.lock().server.clone();
                self.stream = server.and_then(|s| s.subscribe_from(self.last_seq).ok());
                if self.stream.is_none() {
                    if left.is_zero() {
                        return None;
                    }
                    std::thread::sleep(left.min(RECONNECT_INTERVAL));
                    continue;
                }
            }
            let stream = self.stream.as_ref()?;
            match stream.next_timeout(left)? {
                StreamItem::End(_) => self.stream = None,
                StreamItem::Event(event) => {
                    self.last_seq = event.seq;
                    return Some(StreamItem::Event(event));
                }
                StreamItem::Missed(count) => {
                    self.last_seq += count;
                    return Some(StreamItem::Missed(count));
                }
            }
        }
    }
}

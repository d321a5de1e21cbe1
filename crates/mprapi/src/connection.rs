//! One session with a service: requests written and replies read by the
//! calling thread; pushes read by the process's I/O thread while a typed
//! stream needs them.
//!
//! A call writes its frame itself (with the eventfd attached, for a
//! Register), then waits for the reply with its id. Whoever holds the
//! reader lock reads the socket and hands every frame to its owner: a
//! calling thread that finds the lock free reads for itself, and otherwise
//! the holder delivers the reply through a channel. So a plain call costs
//! the caller's own wake-up and nothing else, as with libdbus.
//!
//! The process's I/O thread (a one-thread tokio runtime started on first
//! use, shared by every connection) watches a connection's socket only
//! while something is [`watch`](Connection::watch)ing it, a typed stream:
//! then events and the end of the service are seen at once, between calls.
//! Unwatched, the socket wakes no one but the caller reading its reply;
//! registrations need no reader at all, since the service writes their
//! eventfds itself. A remote connection (TLS, see `channel` and `remote`)
//! is watched all the time: its registrations are signaled by frames,
//! which the reader turns into eventfd writes. While calls are under way
//! they read the socket themselves, and the I/O thread, which watches it
//! through a [`gate`](crate::gate) the calls close, is not woken by their
//! replies (a call that ends reads what is left, and what comes after
//! opens the gate ready). When the service goes away, whoever reads sees the
//! socket close and every waiting call fails with ERROR_DDM_NOT_RUNNING; a
//! service that stops answering is given up on after the call timeout,
//! with the same error. Users see only blocking calls, and no runtime is
//! imposed on them.

use crate::channel::{nothing_yet, wait_ready, Channel};
use crate::gate::Gate;
use crate::remote::Events;
use crate::subscriptions::Subscriptions;
use ddm_proto::frame::{encode_frame, FrameDecoder, PROTOCOL_VERSION};
use ddm_proto::message::*;
use ddm_proto::snapshot_parts;
use ddm_proto::WinError;
use nix::poll::PollFlags;
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, TryLockError};
use std::time::{Duration, Instant};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// How long a call waits for its reply before the service counts as gone.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes read at a time.
const READ_CHUNK: usize = 16 * 1024;

/// How long a call waits for its reply awake before it sleeps. A reply
/// usually comes sooner than a sleeping thread on another CPU could be
/// woken to take it (tens of microseconds on a virtual machine); waiting
/// awake yields the CPU at every turn, so on one CPU the service runs.
pub const AWAKE_FOR_REPLY: Duration = Duration::from_micros(50);

/// What whoever holds the reader lock reads with: the frames read so far
/// and the buffer each read goes into, made once for the connection (a
/// buffer made for every call, zeroed and moved, cost a call more than its
/// system calls did).
struct Reader {
    decoder: FrameDecoder,
    chunk: Box<[u8]>,
}

impl Reader {
    fn new(max_frame: usize) -> Self {
        Reader {
            decoder: FrameDecoder::new(max_frame),
            chunk: vec![0; READ_CHUNK].into_boxed_slice(),
        }
    }

    /// Reads `channel` once, without waiting, into the decoder: the bytes
    /// read (0 at the end).
    fn read(&mut self, channel: &Channel) -> io::Result<usize> {
        let n = channel.receive(&mut self.chunk)?;
        self.decoder.extend(&self.chunk[..n]);
        Ok(n)
    }
}

/// What the reader and the callers share.
pub(crate) struct Shared {
    pending: Mutex<Pending>,
    /// Rung when a reply arrives, a reader lets go, or the connection
    /// closes.
    changed: Condvar,
    subscriptions: Subscriptions,
    /// The read side: whoever holds it reads the socket.
    reader: Mutex<Reader>,
    /// Rung when a calling thread stops reading, for the I/O thread.
    released: tokio::sync::Notify,
    /// A remote connection's eventfds, signaled by the service's Signal
    /// frames (a local service writes them itself).
    events: Option<Mutex<Events>>,
    /// Calls waiting for their replies: while there are any they read the
    /// socket, and the I/O thread leaves it to them rather than competing
    /// for every reply. Changed under `gate`'s lock.
    calling: AtomicUsize,
    /// What the I/O thread watches the socket through, while it reads the
    /// connection between calls (a call then reads what is left when it
    /// ends): closed while calls are under way, so that their replies do
    /// not wake it (see `gate`).
    gate: Mutex<Option<Arc<Gate>>>,
}

#[derive(Default)]
struct Pending {
    closed: bool,
    /// Why the service ended the session, when it said (an unasked reply
    /// with id 0 before it closes: a revoked certificate is
    /// ERROR_ACCESS_DENIED); otherwise its going is ERROR_DDM_NOT_RUNNING.
    ended: Option<WinError>,
    /// The calls waiting, by request id; a reply once it is in.
    replies: HashMap<u64, Option<Reply>>,
    /// The parts in so far of a snapshot sent in parts, by request id.
    parts: HashMap<u64, Snapshot>,
    /// How many times a reading caller has let go: a caller waiting for
    /// its reply then reads in its place.
    releases: u64,
    /// Callers asleep on `changed`: with none (the usual single caller),
    /// nobody is woken, which saves a system call per call.
    sleepers: usize,
}

impl Pending {
    fn gone(&self) -> WinError {
        self.ended.unwrap_or(WinError::ERROR_DDM_NOT_RUNNING)
    }

    /// `reply` whole: a snapshot's part is kept until its last part is in
    /// (`None` until then), which then carries every part's interfaces.
    fn whole(&mut self, mut reply: Reply) -> Option<Reply> {
        if let Some(ReplyResult::Snapshot(snapshot)) = &mut reply.result {
            if let Some(mut first) = self.parts.remove(&reply.id) {
                snapshot_parts::join(&mut first, std::mem::take(snapshot));
                *snapshot = first;
            }
            if snapshot.more {
                if self.replies.contains_key(&reply.id) {
                    self.parts.insert(reply.id, std::mem::take(snapshot));
                }
                return None;
            }
        }
        Some(reply)
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_gate(&self) -> std::sync::MutexGuard<'_, Option<Arc<Gate>>> {
        self.gate.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The connection is gone: fail every waiting call and end the stream.
    fn close(&self) {
        let why = {
            let mut pending = self.lock();
            pending.closed = true;
            pending.gone()
        };
        self.changed.notify_all();
        self.subscriptions.end(why);
    }

    /// What a call on the closed connection fails with.
    fn gone(&self) -> WinError {
        self.lock().gone()
    }

    /// A reading caller let go of the reader.
    fn release_reader(&self) {
        let mut pending = self.lock();
        pending.releases += 1;
        self.wake_sleepers(&pending);
        drop(pending);
        self.released.notify_one();
    }

    /// The I/O thread stopped reading: the callers asleep waiting for it,
    /// or about to sleep (they compare `releases`), read in its place.
    fn reader_let_go(&self) {
        let mut pending = self.lock();
        pending.releases += 1;
        self.wake_sleepers(&pending);
    }

    /// Wakes the callers asleep on `changed`, if any.
    fn wake_sleepers(&self, pending: &Pending) {
        if pending.sleepers > 0 {
            self.changed.notify_all();
        }
    }

    /// Call `id`'s reply if it is in (and forgets the call), the end of the
    /// connection, or `None` to wait on.
    fn take_reply(&self, id: u64) -> Option<Result<Reply, WinError>> {
        let mut pending = self.lock();
        if let Some(Some(_)) = pending.replies.get(&id) {
            return pending.replies.remove(&id).flatten().map(Ok);
        }
        pending.closed.then_some(Err(pending.gone()))
    }

    /// Hands every whole frame in `decoder` to its owner; false when the
    /// stream is corrupt (the connection is then closed).
    fn dispatch_all(&self, decoder: &mut FrameDecoder) -> bool {
        loop {
            match decoder.next_message::<ServiceMessage>() {
                Ok(Some(message)) => self.dispatch(message),
                Ok(None) => return true,
                Err(_) => {
                    self.close();
                    return false;
                }
            }
        }
    }

    fn dispatch(&self, message: ServiceMessage) {
        match message.body {
            // The service ends the session, and says why.
            Some(Push::Reply(reply)) if reply.id == 0 && reply.error != 0 => {
                self.lock().ended = Some(WinError(reply.error));
            }
            Some(Push::Reply(reply)) => {
                if let Some(events) = &self.events {
                    lock(events).answered(&reply);
                }
                let whole = self.lock().whole(reply);
                let Some(reply) = whole else {
                    return;
                };
                if let Some(ReplyResult::Snapshot(snapshot)) = &reply.result {
                    self.subscriptions.snapshot(snapshot.stream, snapshot.seq);
                }
                let mut pending = self.lock();
                if let Some(slot) = pending.replies.get_mut(&reply.id) {
                    *slot = Some(reply);
                    self.wake_sleepers(&pending);
                }
            }
            Some(Push::Event(event)) => self.subscriptions.event(&event),
            Some(Push::Missed(Missed { count, last_seq })) => {
                self.subscriptions.missed(count, last_seq)
            }
            Some(Push::StreamEnd(StreamEnd { error })) => self.subscriptions.end(WinError(error)),
            // Signals come over transports without descriptors (TLS).
            Some(Push::Signal(Signal { event })) => {
                if let Some(events) = &self.events {
                    lock(events).signal(event);
                }
            }
            None => {}
        }
    }
}

pub(crate) struct Connection {
    /// Non-blocking; callers write to it and read their replies from it.
    channel: Arc<Channel>,
    write_lock: Mutex<()>,
    shared: Arc<Shared>,
    watchers: Mutex<Watchers>,
    next_id: AtomicU64,
    max_frame: usize,
    timeout: Duration,
    pub(crate) welcome: Welcome,
}

/// Who needs the I/O thread to read between calls, and its reading task.
#[derive(Default)]
struct Watchers {
    count: usize,
    /// A remote connection is read all the time: its registrations are
    /// signaled by frames.
    always: bool,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Keeps the I/O thread reading a connection until dropped.
pub(crate) struct Watch {
    connection: Arc<Connection>,
}

impl Watch {
    pub(crate) fn connection(&self) -> &Connection {
        &self.connection
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut watchers = self.connection.lock_watchers();
        watchers.count -= 1;
        if watchers.count == 0 && !watchers.always {
            if let Some(task) = watchers.task.take() {
                task.abort();
            }
        }
    }
}

impl Connection {
    /// Connects and completes the handshake.
    pub(crate) fn open(path: &Path, timeout: Duration) -> Result<Connection, WinError> {
        let socket = UnixStream::connect(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                WinError::RPC_S_UNKNOWN_IF
            }
            io::ErrorKind::PermissionDenied => WinError::ERROR_ACCESS_DENIED,
            _ => WinError::RPC_S_SERVER_UNAVAILABLE,
        })?;
        socket
            .set_nonblocking(true)
            .map_err(|_| WinError::RPC_S_SERVER_UNAVAILABLE)?;
        Self::over(Channel::Local(socket), timeout)
    }

    /// Connects to the remote service `name` over TLS (see `remote`) and
    /// completes the handshake.
    pub(crate) fn open_remote(
        name: &str,
        config: &crate::client_config::ClientConfig,
        timeout: Duration,
    ) -> Result<Connection, WinError> {
        let channel = crate::remote::connect(name, config, timeout)?;
        let connection = Self::over(channel, timeout)?;
        // Read all the time, for the Signal frames of registrations.
        let watch = Arc::new(connection);
        watch.lock_watchers().always = true;
        drop(watch.watch());
        Arc::try_unwrap(watch).map_err(|_| WinError::ERROR_NOT_ENOUGH_MEMORY)
    }

    /// The handshake over a connected channel, and the connection on it.
    fn over(channel: Channel, timeout: Duration) -> Result<Connection, WinError> {
        let welcome = handshake(&channel, timeout)?;
        let max_frame = welcome.max_frame as usize;
        let events =
            matches!(channel, Channel::Remote { .. }).then(|| Mutex::new(Events::default()));
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            changed: Condvar::new(),
            subscriptions: Subscriptions::default(),
            reader: Mutex::new(Reader::new(max_frame)),
            released: tokio::sync::Notify::new(),
            events,
            calling: AtomicUsize::new(0),
            gate: Mutex::new(None),
        });
        Ok(Connection {
            channel: Arc::new(channel),
            write_lock: Mutex::new(()),
            shared,
            watchers: Mutex::new(Watchers::default()),
            next_id: AtomicU64::new(1),
            max_frame,
            timeout,
            welcome,
        })
    }

    fn lock_watchers(&self) -> std::sync::MutexGuard<'_, Watchers> {
        self.watchers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Has the I/O thread read this connection between calls until the
    /// returned guard is dropped.
    pub(crate) fn watch(self: &Arc<Self>) -> Watch {
        let mut watchers = self.lock_watchers();
        watchers.count += 1;
        if watchers.task.is_none() {
            let mut gate = self.shared.lock_gate();
            let calling = self.shared.calling.load(Ordering::SeqCst) > 0;
            let watched = Gate::new(self.channel.fd(), !calling).and_then(|(opened, fd)| {
                let _runtime = io_runtime().enter();
                // SAFETY: an OwnedFd stays open, and is the same
                // descriptor, for as long as the AsyncFd owns it.
                let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
                    .map_err(io::Error::from)?;
                let opened = Arc::new(opened);
                *gate = Some(opened.clone());
                Ok((fd, opened))
            });
            drop(gate);
            match watched {
                Ok((fd, gate)) => {
                    let gone = ReaderGone {
                        shared: self.shared.clone(),
                        gate,
                    };
                    let channel = self.channel.clone();
                    watchers.task = Some(io_runtime().spawn(read_loop(fd, channel, gone)));
                }
                // Out of descriptors: the connection is unusable anyway.
                Err(_) => self.shared.close(),
            }
        }
        drop(watchers);
        Watch {
            connection: self.clone(),
        }
    }

    /// Sends a request and waits for its reply. The reply's own error is
    /// the caller's to read: some errors carry a result (ERROR_MORE_DATA).
    pub(crate) fn call(
        &self,
        request: Request,
        eventfd: Option<BorrowedFd<'_>>,
    ) -> Result<Reply, WinError> {
        self.call_within(request, eventfd, self.timeout)
    }

    /// `call`, waiting up to `timeout` for the reply (a synchronous
    /// Connect waits for its attempt).
    pub(crate) fn call_within(
        &self,
        request: Request,
        eventfd: Option<BorrowedFd<'_>>,
        timeout: Duration,
    ) -> Result<Reply, WinError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut pending = self.shared.lock();
            if pending.closed {
                return Err(pending.gone());
            }
            pending.replies.insert(id, None);
        }
        if let (Some(events), Some(fd)) = (&self.shared.events, eventfd) {
            lock(events).keep(&request, fd);
        }
        if let (Some(events), Request::Deregister(Deregister { event })) =
            (&self.shared.events, &request)
        {
            lock(events).deregistering(id, *event);
        }
        let message = ClientMessage {
            id,
            body: Some(request),
        };
        let deadline = Instant::now() + timeout;
        let call = UnderWay::new(self);
        let sent = encode_frame(&message, self.max_frame)
            .map_err(|_| WinError::ERROR_INVALID_PARAMETER)
            .and_then(|frame| self.send(&frame, eventfd, deadline));
        if let Err(e) = sent {
            drop(call);
            self.forget(id);
            return Err(e);
        }
        let waited = self.wait_for_reply(id, deadline);
        drop(call);
        if waited.is_err() {
            self.forget(id);
        }
        waited
    }

    /// Reads for itself when nobody else is reading; otherwise waits until
    /// the reader delivers its reply or lets go, and then reads itself.
    fn wait_for_reply(&self, id: u64, deadline: Instant) -> Result<Reply, WinError> {
        let gone = WinError::ERROR_DDM_NOT_RUNNING;
        loop {
            if let Some(outcome) = self.shared.take_reply(id) {
                return outcome;
            }
            // Taken before trying the reader: a reader that lets go after
            // the try must not be waited for.
            let releases = self.shared.lock().releases;
            match self.shared.reader.try_lock() {
                Ok(mut reader) => {
                    let outcome = self.read_until_reply(&mut reader, id, deadline);
                    drop(reader);
                    self.shared.release_reader();
                    return outcome;
                }
                Err(TryLockError::Poisoned(_)) => return Err(gone),
                Err(TryLockError::WouldBlock) => {}
            }
            let mut pending = self.shared.lock();
            pending.sleepers += 1;
            let left = deadline.saturating_duration_since(Instant::now());
            let (mut pending, waited) = self
                .shared
                .changed
                .wait_timeout_while(pending, left, |p| {
                    !p.closed && p.releases == releases && matches!(p.replies.get(&id), Some(None))
                })
                .unwrap_or_else(|p| p.into_inner());
            pending.sleepers -= 1;
            drop(pending);
            if waited.timed_out() {
                return Err(gone);
            }
        }
    }

    /// Reads the socket, dispatching every frame, until this caller's
    /// reply arrives, the deadline passes or the connection ends.
    fn read_until_reply(
        &self,
        reader: &mut Reader,
        id: u64,
        deadline: Instant,
    ) -> Result<Reply, WinError> {
        let awake_until = Instant::now() + AWAKE_FOR_REPLY;
        loop {
            if !self.shared.dispatch_all(&mut reader.decoder) {
                return Err(self.shared.gone());
            }
            if let Some(outcome) = self.shared.take_reply(id) {
                return outcome;
            }
            if Instant::now() < awake_until {
                // SAFETY: sched_yield has no preconditions.
                unsafe { libc::sched_yield() };
            } else {
                wait_ready(self.channel.fd(), PollFlags::POLLIN, deadline)?;
            }
            self.receive(reader)?;
        }
    }

    /// Reads the socket once, without waiting, into the reader's decoder:
    /// whether anything came, or the error the connection ended with.
    fn receive(&self, reader: &mut Reader) -> Result<bool, WinError> {
        match reader.read(&self.channel) {
            Ok(0) => {
                self.shared.close();
                Err(self.shared.gone())
            }
            Ok(_) => Ok(true),
            Err(e) if nothing_yet(&e) => Ok(false),
            Err(_) => {
                self.shared.close();
                Err(self.shared.gone())
            }
        }
    }

    /// Reads and hands on everything the socket holds, if nobody else is
    /// reading.
    fn read_what_is_left(&self) {
        let Ok(mut reader) = self.shared.reader.try_lock() else {
            return;
        };
        while self.shared.dispatch_all(&mut reader.decoder)
            && matches!(self.receive(&mut reader), Ok(true))
        {}
        drop(reader);
        self.shared.release_reader();
    }

    /// The connection's typed streams.
    pub(crate) fn subscriptions(&self) -> &Subscriptions {
        &self.shared.subscriptions
    }

    /// Waits up to `timeout` for the connection to close; true if it has.
    /// It watches for the service's hang-up alone, so the replies and
    /// events that arrive meanwhile do not wake it.
    pub(crate) fn wait_closed(&self, timeout: Duration) -> bool {
        if self.is_closed() {
            return true;
        }
        let mut hang_up = libc::pollfd {
            fd: self.channel.fd().as_raw_fd(),
            events: libc::POLLRDHUP,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd, for the duration of the call. (nix's
        // PollFlags cannot carry POLLRDHUP.)
        let ready = unsafe { libc::poll(&mut hang_up, 1, ms) };
        if ready > 0 {
            self.shared.close();
        }
        self.is_closed()
    }

    fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }

    /// Sends a request whose reply nobody waits for.
    pub(crate) fn notify(&self, request: Request) {
        let message = ClientMessage {
            id: 0,
            body: Some(request),
        };
        if let Ok(frame) = encode_frame(&message, self.max_frame) {
            let _ = self.send(&frame, None, Instant::now() + self.timeout);
        }
    }

    fn forget(&self, id: u64) {
        let mut pending = self.shared.lock();
        pending.replies.remove(&id);
        pending.parts.remove(&id);
    }

    /// Writes one whole frame, the eventfd riding on its first byte.
    fn send(
        &self,
        frame: &[u8],
        eventfd: Option<BorrowedFd<'_>>,
        deadline: Instant,
    ) -> Result<(), WinError> {
        let _guard = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.channel.send(frame, eventfd, deadline)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // The reader sees the end, fails any waiter and exits; the service
        // drops every registration of this session.
        self.channel.shut_down();
        if let Some(task) = self.lock_watchers().task.take() {
            task.abort();
        }
    }
}

fn lock(events: &Mutex<Events>) -> std::sync::MutexGuard<'_, Events> {
    events.lock().unwrap_or_else(|p| p.into_inner())
}

/// Hello, and the Welcome (or the refusal) that answers it.
fn handshake(channel: &Channel, timeout: Duration) -> Result<Welcome, WinError> {
    let deadline = Instant::now() + timeout;
    let hello = ClientMessage {
        id: 1,
        body: Some(Request::Hello(Hello {
            version: PROTOCOL_VERSION,
        })),
    };
    let frame = encode_frame(&hello, usize::MAX).expect("a Hello always fits");
    // A service that refuses the connection (too busy) writes why and
    // closes, perhaps before the Hello is written: read its answer anyway.
    let _ = channel.send(&frame, None, deadline);
    let mut decoder = FrameDecoder::new(ddm_proto::frame::DEFAULT_MAX_FRAME);
    let mut chunk = [0u8; 4096];
    let message = loop {
        match decoder.next_message::<ServiceMessage>() {
            Ok(Some(message)) => break message,
            Ok(None) => {}
            Err(_) => return Err(WinError::RPC_S_PROTOCOL_ERROR),
        }
        wait_ready(channel.fd(), PollFlags::POLLIN, deadline)
            .map_err(|_| WinError::RPC_S_SERVER_UNAVAILABLE)?;
        match channel.receive(&mut chunk) {
            Ok(0) => return Err(WinError::RPC_S_SERVER_UNAVAILABLE),
            Ok(n) => decoder.extend(&chunk[..n]),
            Err(e) if nothing_yet(&e) => {}
            Err(e) => {
                return Err(crate::remote::refused(&e).unwrap_or(WinError::RPC_S_SERVER_UNAVAILABLE))
            }
        }
    };
    match message.body {
        Some(Push::Reply(Reply {
            error: 0,
            result: Some(ReplyResult::Welcome(welcome)),
            ..
        })) => Ok(welcome),
        Some(Push::Reply(Reply { error, .. })) if error != 0 => Err(WinError(error)),
        _ => Err(WinError::RPC_S_PROTOCOL_ERROR),
    }
}

/// The I/O thread's part, while the connection is watched: read whenever
/// no calling thread does.
async fn read_loop(socket: AsyncFd<OwnedFd>, channel: Arc<Channel>, gone: ReaderGone) {
    let shared = gone.shared.clone();
    loop {
        let Ok(mut ready) = socket.readable().await else {
            return shared.close();
        };
        if shared.calling.load(Ordering::SeqCst) > 0 {
            // What woke this thread came before the first call closed the
            // gate: the calls read it, and the last to end reads what they
            // left. A call asleep because this thread held the reader is
            // told it may read.
            ready.clear_ready();
            shared.reader_let_go();
            continue;
        }
        match read_once(&channel, &shared) {
            Turn::Read => {}
            Turn::Drained => ready.clear_ready(),
            // A caller is reading; it rings when it lets go.
            Turn::Busy => shared.released.notified().await,
            Turn::End => return shared.close(),
        }
    }
}

/// Dropped when the I/O thread stops reading a connection, however it
/// stops (dropping the last stream aborts it, maybe before it ran): the
/// connection is no longer watched through its gate (unless a watch since
/// made another), and a caller asleep waiting for the I/O thread to let go
/// of the reader, with its reply perhaps still unread, reads in its place.
struct ReaderGone {
    shared: Arc<Shared>,
    gate: Arc<Gate>,
}

impl Drop for ReaderGone {
    fn drop(&mut self) {
        let mut gate = self.shared.lock_gate();
        if gate.as_ref().is_some_and(|g| Arc::ptr_eq(g, &self.gate)) {
            *gate = None;
        }
        drop(gate);
        self.shared.reader_let_go();
    }
}

enum Turn {
    Read,
    Drained,
    Busy,
    End,
}

/// One read and its dispatch, if no calling thread is reading.
fn read_once(channel: &Channel, shared: &Shared) -> Turn {
    let mut reader = match shared.reader.try_lock() {
        Ok(reader) => reader,
        Err(TryLockError::WouldBlock) => return Turn::Busy,
        Err(TryLockError::Poisoned(_)) => return Turn::End,
    };
    match reader.read(channel) {
        Ok(0) => Turn::End,
        Ok(_) => {
            if shared.dispatch_all(&mut reader.decoder) {
                Turn::Read
            } else {
                Turn::End
            }
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Turn::Drained,
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Turn::Read,
        Err(_) => Turn::End,
    }
}

/// A call under way, from its request until its reply: counted in
/// `calling`; when it ends on a watched connection it reads what is left
/// (the I/O thread left what came meanwhile to the calls).
struct UnderWay<'a> {
    connection: &'a Connection,
}

impl<'a> UnderWay<'a> {
    fn new(connection: &'a Connection) -> Self {
        let shared = &connection.shared;
        let gate = shared.lock_gate();
        if shared.calling.fetch_add(1, Ordering::SeqCst) == 0 {
            if let Some(gate) = &*gate {
                gate.close();
            }
        }
        drop(gate);
        UnderWay { connection }
    }
}

impl Drop for UnderWay<'_> {
    fn drop(&mut self) {
        let shared = &self.connection.shared;
        // Still under way: the I/O thread leaves the socket alone. What
        // comes after this read makes the gate ready as it opens.
        if shared.lock_gate().is_some() {
            self.connection.read_what_is_left();
        }
        let gate = shared.lock_gate();
        if shared.calling.fetch_sub(1, Ordering::SeqCst) == 1 {
            // A connection the I/O thread can no longer see would miss
            // what comes between calls: it ends instead.
            if gate.as_ref().is_some_and(|gate| gate.open().is_err()) {
                drop(gate);
                shared.close();
            }
        }
    }
}

/// The process's one I/O thread, started on first use.
fn io_runtime() -> &'static tokio::runtime::Handle {
    static RUNTIME: OnceLock<tokio::runtime::Handle> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("cannot start the mprapi I/O thread");
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("mprapi-io".into())
            .spawn(move || runtime.block_on(std::future::pending::<()>()))
            .expect("cannot start the mprapi I/O thread");
        handle
    })
}

//! The typed stream of connection events.
//!
//! It opens with a snapshot of every interface at sequence n; every event
//! after n follows, in order. Snapshot and subscription are one step in the
//! service, so no change can fall between reading the table and listening.
//! A consumer that falls behind finds a [`StreamItem::Missed`] marker where
//! events were dropped, never a silent gap; both the service and this
//! library hold a bounded number of events for it.

use crate::connection::Connection;
use crate::types::{ConnectionEvent, InterfaceInfo};
use ddm_proto::backlog::{Backlog, Entry};
use ddm_proto::message::{self, Request, Unsubscribe};
use ddm_proto::WinError;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Events this library holds for a stream before it counts them missed.
pub const STREAM_CAPACITY: usize = 4096;

/// What a stream yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamItem {
    Event(ConnectionEvent),
    /// This many events were dropped here, because the consumer was slow.
    Missed(u64),
    /// The stream is over: ERROR_DDM_NOT_RUNNING when the DDM stopped or
    /// the service went away. Every later call to `next` says the same.
    End(WinError),
}

/// The table at the moment the stream began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub seq: u64,
    pub interfaces: Vec<InterfaceInfo>,
}

/// The reader thread's side: where pushed events land.
#[derive(Default)]
pub(crate) struct StreamState {
    inner: Mutex<Inner>,
    ready: Condvar,
}

#[derive(Default)]
struct Inner {
    /// The bound of the next stream to open.
    capacity: usize,
    /// Open from the snapshot reply on; events before it belong to an
    /// earlier subscription and are dropped.
    backlog: Option<Backlog<message::ConnectionEvent>>,
    end: Option<WinError>,
}

impl StreamState {
    fn update(&self, change: impl FnOnce(&mut Inner)) {
        change(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()));
        self.ready.notify_all();
    }

    /// A Subscribe is about to be sent.
    pub(crate) fn prepare(&self, capacity: usize) {
        self.update(|s| {
            s.capacity = capacity;
            s.backlog = None;
            s.end = None;
        });
    }

    /// The reader saw the snapshot reply: the service sends this
    /// subscription's events only after it.
    pub(crate) fn activate(&self) {
        self.update(|s| s.backlog = Some(Backlog::new(s.capacity)));
    }

    fn close(&self) {
        self.update(|s| s.backlog = None);
    }

    pub(crate) fn push(&self, event: message::ConnectionEvent) {
        self.update(|s| {
            if let Some(backlog) = &mut s.backlog {
                backlog.push(event);
            }
        });
    }

    pub(crate) fn missed(&self, count: u64) {
        self.update(|s| {
            if let Some(backlog) = &mut s.backlog {
                backlog.add_missed(count);
            }
        });
    }

    pub(crate) fn end(&self, error: WinError) {
        self.update(|s| {
            s.end.get_or_insert(error);
        });
    }

    fn next(&self, timeout: Option<Duration>) -> Option<StreamItem> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(entry) = inner.backlog.as_mut().and_then(Backlog::pop) {
                return Some(match entry {
                    Entry::Item(event) => StreamItem::Event(event.into()),
                    Entry::Missed(count) => StreamItem::Missed(count),
                });
            }
            if let Some(error) = inner.end {
                return Some(StreamItem::End(error));
            }
            inner = match deadline {
                None => self.ready.wait(inner).unwrap_or_else(|p| p.into_inner()),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    self.ready
                        .wait_timeout(inner, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
    }
}

/// A server handle's typed event stream. Dropping it unsubscribes.
pub struct EventStream {
    connection: Arc<Connection>,
    snapshot: Snapshot,
    /// The iterator has yielded `End`.
    finished: bool,
}

impl EventStream {
    pub(crate) fn new(connection: Arc<Connection>, snapshot: Snapshot) -> Self {
        EventStream {
            connection,
            snapshot,
            finished: false,
        }
    }

    /// Every interface at sequence `snapshot().seq`.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The next item, waiting as long as it takes.
    pub fn next_item(&self) -> StreamItem {
        self.connection
            .shared
            .stream
            .next(None)
            .expect("an untimed wait returns an item")
    }

    /// The next item, or `None` after `timeout`.
    pub fn next_timeout(&self, timeout: Duration) -> Option<StreamItem> {
        self.connection.shared.stream.next(Some(timeout))
    }
}

impl Iterator for EventStream {
    type Item = StreamItem;

    /// Items until the stream ends; the `End` item is the last.
    fn next(&mut self) -> Option<StreamItem> {
        if self.finished {
            return None;
        }
        let item = self.next_item();
        self.finished = matches!(item, StreamItem::End(_));
        Some(item)
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.connection.shared.stream.close();
        self.connection.notify(Request::Unsubscribe(Unsubscribe {}));
    }
}

//! The typed stream of connection events.
//!
//! It opens with a snapshot of every interface at sequence n; every event
//! after n follows, in order. Snapshot and subscription are one step in the
//! service, so no change can fall between reading the table and listening.
//! A consumer that falls behind finds a [`StreamItem::Missed`] marker where
//! events were dropped, never a silent gap; both the service and this
//! library hold a bounded number of events for it. A server handle may
//! have any number of streams, each with its own snapshot, backlog and end.

use crate::connection::Watch;
use crate::replay::Replay;
use crate::subscriptions::Subscription;
use crate::types::{InterfaceInfo, StreamItem};
use ddm_proto::message::{Request, Unsubscribe};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Events this library holds for a stream before it counts them missed.
pub const STREAM_CAPACITY: usize = 4096;

/// The table at the moment the stream began.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub seq: u64,
    pub interfaces: Vec<InterfaceInfo>,
    /// Names the service's numbering: sequence numbers go on across its
    /// restarts while it keeps its journal; the epoch changes when they
    /// start again.
    pub epoch: u64,
}

/// A server handle's typed event stream. Dropping it unsubscribes.
pub struct EventStream {
    /// The connection, read by the I/O thread while the stream lives.
    watch: Watch,
    id: u64,
    subscription: Arc<Subscription>,
    snapshot: Snapshot,
    /// Events from before the snapshot, read from the journal first
    /// (`Server::subscribe_from`).
    replay: Mutex<Option<Replay>>,
    /// The iterator has yielded `End`.
    finished: bool,
}

impl EventStream {
    pub(crate) fn new(
        watch: Watch,
        id: u64,
        subscription: Arc<Subscription>,
        snapshot: Snapshot,
        replay: Option<Replay>,
    ) -> Self {
        EventStream {
            watch,
            id,
            subscription,
            snapshot,
            replay: Mutex::new(replay),
            finished: false,
        }
    }

    /// The next item of the replay, if one is under way.
    fn replayed(&self) -> Option<StreamItem> {
        let mut replay = self.replay.lock().unwrap_or_else(|p| p.into_inner());
        let item = replay.as_mut()?.next(self.watch.connection());
        if item.is_none() {
            *replay = None;
        }
        item
    }

    /// Every interface at sequence `snapshot().seq`.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The next item, waiting as long as it takes.
    pub fn next_item(&self) -> StreamItem {
        if let Some(item) = self.replayed() {
            return item;
        }
        self.subscription
            .next(None)
            .expect("an untimed wait returns an item")
    }

    /// The next item, or `None` after `timeout`.
    pub fn next_timeout(&self, timeout: Duration) -> Option<StreamItem> {
        if let Some(item) = self.replayed() {
            return Some(item);
        }
        self.subscription.next(Some(timeout))
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
        let connection = self.watch.connection();
        connection.subscriptions().close(self.id);
        connection.notify(Request::Unsubscribe(Unsubscribe { stream: self.id }));
    }
}

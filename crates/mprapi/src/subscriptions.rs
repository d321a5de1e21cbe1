//! The typed streams of one connection, as the reader hands them events.
//!
//! Each stream has its own state: where it starts (its snapshot's sequence
//! number), how far it has got, its own bounded backlog and its own end.
//! The service sends each event once per session, whatever the number of
//! streams, and the reader gives it to every stream it is new to: events
//! are numbered without gaps, so a stream takes the events after its
//! snapshot and counts what a Missed marker says it lost, exactly. Dropping
//! one stream leaves the others as they were.

use crate::types::StreamItem;
use ddm_proto::backlog::{Backlog, Entry};
use ddm_proto::message::ConnectionEvent;
use ddm_proto::WinError;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Every open stream of a connection, by id.
#[derive(Default)]
pub(crate) struct Subscriptions {
    streams: Mutex<Streams>,
}

#[derive(Default)]
struct Streams {
    last_id: u64,
    open: HashMap<u64, Arc<Subscription>>,
}

impl Subscriptions {
    fn lock(&self) -> MutexGuard<'_, Streams> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new stream, holding at most `capacity` unread events; it takes
    /// events once its snapshot has arrived.
    pub(crate) fn open(&self, capacity: usize) -> (u64, Arc<Subscription>) {
        let mut streams = self.lock();
        streams.last_id += 1;
        let id = streams.last_id;
        let subscription = Arc::new(Subscription::new(capacity));
        streams.open.insert(id, subscription.clone());
        (id, subscription)
    }

    pub(crate) fn close(&self, id: u64) {
        self.lock().open.remove(&id);
    }

    fn each(&self, f: impl Fn(&Subscription)) {
        for subscription in self.lock().open.values() {
            f(subscription);
        }
    }

    /// Stream `id`'s snapshot is at `seq`: events after it are its own.
    pub(crate) fn snapshot(&self, id: u64, seq: u64) {
        if let Some(subscription) = self.lock().open.get(&id) {
            subscription.update(|s| s.cursor = Some(seq));
        }
    }

    pub(crate) fn event(&self, event: &ConnectionEvent) {
        self.each(|subscription| {
            subscription.update(|s| match s.cursor {
                Some(cursor) if event.seq > cursor => {
                    s.cursor = Some(event.seq);
                    s.backlog.push(event.clone());
                }
                _ => {}
            })
        });
    }

    /// The service dropped `count` events, the last numbered `last_seq`.
    pub(crate) fn missed(&self, count: u64, last_seq: u64) {
        self.each(|subscription| {
            subscription.update(|s| match s.cursor {
                Some(cursor) if last_seq > cursor => {
                    s.cursor = Some(last_seq);
                    s.backlog.add_missed(count.min(last_seq - cursor));
                }
                _ => {}
            })
        });
    }

    /// Every open stream ends with `error`.
    pub(crate) fn end(&self, error: WinError) {
        self.each(|subscription| {
            subscription.update(|s| {
                s.end.get_or_insert(error);
            })
        });
    }
}

/// One stream's state, shared by the reader and the stream's consumer.
pub(crate) struct Subscription {
    state: Mutex<State>,
    ready: Condvar,
}

struct State {
    /// The newest sequence number this stream has accounted for; `None`
    /// until its snapshot arrives.
    cursor: Option<u64>,
    backlog: Backlog<ConnectionEvent>,
    end: Option<WinError>,
}

impl Subscription {
    fn new(capacity: usize) -> Self {
        Subscription {
            state: Mutex::new(State {
                cursor: None,
                backlog: Backlog::new(capacity),
                end: None,
            }),
            ready: Condvar::new(),
        }
    }

    fn update(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()));
        self.ready.notify_all();
    }

    /// The next item, or `None` after `timeout` (`None`: wait for ever).
    pub(crate) fn next(&self, timeout: Option<Duration>) -> Option<StreamItem> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(entry) = state.backlog.pop() {
                return Some(match entry {
                    Entry::Item(event) => StreamItem::Event(event.into()),
                    Entry::Missed(count) => StreamItem::Missed(count),
                });
            }
            if let Some(error) = state.end {
                return Some(StreamItem::End(error));
            }
            state = match deadline {
                None => self.ready.wait(state).unwrap_or_else(|p| p.into_inner()),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    self.ready
                        .wait_timeout(state, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64) -> ConnectionEvent {
        ConnectionEvent {
            seq,
            ..ConnectionEvent::default()
        }
    }

    fn drain(s: &Subscription) -> Vec<StreamItem> {
        std::iter::from_fn(|| s.next(Some(Duration::ZERO))).collect()
    }

    fn seqs(items: &[StreamItem]) -> Vec<i64> {
        items
            .iter()
            .map(|i| match i {
                StreamItem::Event(e) => e.seq as i64,
                StreamItem::Missed(n) => -(*n as i64),
                StreamItem::End(_) => 0,
            })
            .collect()
    }

    #[test]
    fn each_stream_takes_the_events_after_its_snapshot() {
        let subs = Subscriptions::default();
        let (a_id, a) = subs.open(16);
        subs.snapshot(a_id, 0);
        subs.event(&event(1));
        let (b_id, b) = subs.open(16);
        subs.event(&event(2)); // before b's snapshot arrives
        subs.snapshot(b_id, 2);
        // Queued for the session before b subscribed, sent after its snapshot.
        subs.event(&event(2));
        subs.event(&event(3));
        assert_eq!(seqs(&drain(&a)), vec![1, 2, 3]);
        assert_eq!(seqs(&drain(&b)), vec![3]);
        subs.close(a_id);
        subs.event(&event(4));
        assert_eq!(seqs(&drain(&b)), vec![4], "closing a leaves b as it was");
        assert_eq!(seqs(&drain(&a)), Vec::<i64>::new());
    }

    #[test]
    fn a_gap_counts_only_what_each_stream_lost() {
        let subs = Subscriptions::default();
        let (a_id, a) = subs.open(16);
        subs.snapshot(a_id, 0);
        let (b_id, b) = subs.open(16);
        subs.snapshot(b_id, 4);
        // The service dropped 2..=6.
        subs.event(&event(1));
        subs.missed(5, 6);
        subs.event(&event(7));
        assert_eq!(seqs(&drain(&a)), vec![1, -5, 7]);
        assert_eq!(seqs(&drain(&b)), vec![-2, 7]);
    }

    #[test]
    fn the_end_reaches_every_stream() {
        let subs = Subscriptions::default();
        let (_, a) = subs.open(4);
        let (_, b) = subs.open(4);
        subs.end(WinError::ERROR_DDM_NOT_RUNNING);
        for s in [a, b] {
            assert_eq!(
                s.next(None),
                Some(StreamItem::End(WinError::ERROR_DDM_NOT_RUNNING))
            );
        }
    }
}

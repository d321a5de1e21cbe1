//! A session's queue of frames the service sends unasked.
//!
//! The router pushes typed events and signals here and moves on; it never
//! waits for a socket. The session's task drains the outbox when woken and
//! writes the frames. Events queue in a [`Backlog`], so a client that reads
//! too slowly costs bounded memory and is told how many events it missed
//! and which (the last missed sequence number of each gap). Signals for
//! registrations whose target is the session are a set: an event is a
//! level, so a signal already pending absorbs the next. Replies that come
//! later (a synchronous Connect, a reload, a journal read) are queued here
//! too, by whoever completes them ([`LateReply`]).

use crate::core::outcome::Outcome;
use ddm_proto::backlog::{Backlog, Entry};
use ddm_proto::message::{ConnectionEvent, Missed, Push, Reply, Signal, StreamEnd};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

#[derive(Debug)]
pub struct Outbox {
    state: Mutex<State>,
    wake: Notify,
}

#[derive(Debug)]
struct State {
    events: Backlog<ConnectionEvent>,
    /// The sequence number of the newest event the backlog dropped.
    last_dropped: u64,
    end: Option<u32>,
    signals: BTreeSet<u64>,
    /// Late replies, in the order they completed.
    replies: Vec<Reply>,
}

impl Outbox {
    pub fn new(capacity: usize) -> Self {
        Outbox {
            state: Mutex::new(State {
                events: Backlog::new(capacity),
                last_dropped: 0,
                end: None,
                signals: BTreeSet::new(),
                replies: Vec::new(),
            }),
            wake: Notify::new(),
        }
    }

    fn update(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.state.lock().expect("outbox lock poisoned"));
        self.wake.notify_one();
    }

    /// Queues a typed event, or counts it as missed (and says so).
    pub fn push_event(&self, event: ConnectionEvent) -> bool {
        let mut queued = true;
        self.update(|s| {
            let seq = event.seq;
            if !s.events.push(event) {
                s.last_dropped = seq;
                queued = false;
            }
        });
        queued
    }

    /// Queues a Signal frame for `event`, unless one is already queued.
    pub fn push_signal(&self, event: u64) {
        self.update(|s| {
            s.signals.insert(event);
        });
    }

    /// Queues a reply that came later.
    fn push_reply(&self, reply: Reply) {
        self.update(|s| s.replies.push(reply));
    }

    /// Withdraws a queued Signal for `event` (its registration ended).
    pub fn withdraw_signal(&self, event: u64) {
        self.state
            .lock()
            .expect("outbox lock poisoned")
            .signals
            .remove(&event);
    }

    /// Ends every typed stream with `error`, after what is queued.
    pub fn end_stream(&self, error: u32) {
        self.update(|s| s.end = Some(error));
    }

    /// Starts the streams afresh: no event queued, no end.
    pub fn restart(&self, capacity: usize) {
        self.update(|s| {
            s.events = Backlog::new(capacity);
            s.end = None;
        });
    }

    /// Takes everything queued, in order, as frames to send.
    pub fn take(&self) -> Vec<Push> {
        let mut state = self.state.lock().expect("outbox lock poisoned");
        let last_dropped = state.last_dropped;
        let mut out: Vec<Push> = std::mem::take(&mut state.signals)
            .into_iter()
            .map(|event| Push::Signal(Signal { event }))
            .collect();
        let mut gap = None;
        while let Some(entry) = state.events.pop() {
            match entry {
                Entry::Missed(count) => gap = Some(count),
                Entry::Item(event) => {
                    if let Some(count) = gap.take() {
                        let last_seq = event.seq - 1;
                        out.push(Push::Missed(Missed { count, last_seq }));
                    }
                    out.push(Push::Event(event));
                }
            }
        }
        if let Some(count) = gap {
            out.push(Push::Missed(Missed {
                count,
                last_seq: last_dropped,
            }));
        }
        out.extend(state.replies.drain(..).map(Push::Reply));
        if let Some(error) = state.end.take() {
            out.push(Push::StreamEnd(StreamEnd { error }));
        }
        out
    }

    /// Resolves when something was queued since the last wait.
    pub async fn wait(&self) {
        self.wake.notified().await
    }
}

/// The reply to a call whose outcome comes later: it goes into the
/// session's outbox, behind what was queued before it, and the session
/// writes it as it writes everything else it is sent unasked.
#[derive(Debug)]
pub struct LateReply {
    id: u64,
    outbox: Arc<Outbox>,
}

impl LateReply {
    /// The reply to request `id`, through `outbox`.
    pub fn new(id: u64, outbox: Arc<Outbox>) -> Self {
        LateReply { id, outbox }
    }

    pub fn send(self, outcome: Outcome) {
        self.outbox.push_reply(Reply {
            id: self.id,
            error: outcome.error.0,
            result: outcome.result,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ddm_proto::WinError;

    fn event(seq: u64) -> ConnectionEvent {
        ConnectionEvent {
            seq,
            ..ConnectionEvent::default()
        }
    }

    #[test]
    fn a_gap_says_how_many_and_which_events_were_missed() {
        let outbox = Outbox::new(3);
        for seq in 1..=6 {
            outbox.push_event(event(seq));
        }
        let first = outbox.take();
        assert_eq!(
            first,
            vec![
                Push::Event(event(1)),
                Push::Event(event(2)),
                Push::Event(event(3)),
                Push::Missed(Missed {
                    count: 3,
                    last_seq: 6
                }),
            ]
        );
        for seq in 7..=12 {
            outbox.push_event(event(seq));
        }
        outbox.end_stream(903);
        let second = outbox.take();
        assert_eq!(
            second,
            vec![
                Push::Event(event(7)),
                Push::Event(event(8)),
                Push::Event(event(9)),
                Push::Missed(Missed {
                    count: 3,
                    last_seq: 12
                }),
                Push::StreamEnd(StreamEnd { error: 903 }),
            ]
        );
    }

    #[test]
    fn a_gap_in_the_middle_ends_before_the_next_event() {
        let outbox = Outbox::new(4);
        for seq in 1..=6 {
            outbox.push_event(event(seq));
        }
        // 1..4 queued, 5 and 6 dropped: the gap comes out after 4.
        let mut taken = outbox.take();
        outbox.push_event(event(7));
        taken.extend(outbox.take());
        assert_eq!(
            taken[4..],
            [
                Push::Missed(Missed {
                    count: 2,
                    last_seq: 6
                }),
                Push::Event(event(7))
            ]
        );
    }

    #[test]
    fn late_replies_come_through_the_outbox_after_what_was_queued() {
        let outbox = Arc::new(Outbox::new(4));
        outbox.push_event(event(1));
        LateReply::new(7, outbox.clone()).send(WinError::ERROR_NO_ANSWER.into());
        LateReply::new(8, outbox.clone()).send(Outcome::done());
        let reply = |id, error: WinError| {
            Push::Reply(Reply {
                id,
                error: error.0,
                result: None,
            })
        };
        assert_eq!(
            outbox.take(),
            vec![
                Push::Event(event(1)),
                reply(7, WinError::ERROR_NO_ANSWER),
                reply(8, WinError::NO_ERROR),
            ]
        );
    }
}

//! A session's queue of frames the service sends unasked.
//!
//! The router pushes typed events here and moves on; it never waits for a
//! socket. The session's task drains the outbox when woken and writes the
//! frames. The queue is a [`Backlog`], so a client that reads too slowly
//! costs bounded memory and is told how many events it missed.

use ddm_proto::backlog::{Backlog, Entry};
use ddm_proto::message::{ConnectionEvent, Missed, Push, StreamEnd};
use std::sync::Mutex;
use tokio::sync::Notify;

#[derive(Debug)]
pub struct Outbox {
    state: Mutex<State>,
    wake: Notify,
}

#[derive(Debug)]
struct State {
    events: Backlog<ConnectionEvent>,
    end: Option<u32>,
}

impl Outbox {
    pub fn new(capacity: usize) -> Self {
        Outbox {
            state: Mutex::new(State {
                events: Backlog::new(capacity),
                end: None,
            }),
            wake: Notify::new(),
        }
    }

    fn update(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.state.lock().expect("outbox lock poisoned"));
        self.wake.notify_one();
    }

    /// Queues a typed event (or counts it as missed).
    pub fn push_event(&self, event: ConnectionEvent) {
        self.update(|s| s.events.push(event));
    }

    /// Ends the typed stream with `error`, after what is queued.
    pub fn end_stream(&self, error: u32) {
        self.update(|s| s.end = Some(error));
    }

    /// Starts the stream afresh: nothing queued, no end.
    pub fn restart(&self, capacity: usize) {
        self.update(|s| {
            s.events = Backlog::new(capacity);
            s.end = None;
        });
    }

    /// Takes everything queued, in order, as frames to send.
    pub fn take(&self) -> Vec<Push> {
        let mut state = self.state.lock().expect("outbox lock poisoned");
        let mut out: Vec<Push> = std::iter::from_fn(|| state.events.pop())
            .map(|entry| match entry {
                Entry::Item(event) => Push::Event(event),
                Entry::Missed(count) => Push::Missed(Missed { count }),
            })
            .collect();
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

//! The part of a resumed stream that comes from the journal.
//!
//! `Server::subscribe_from(seq)` subscribes first (a snapshot at n; live
//! events after n are held for the stream meanwhile), then reads the
//! transitions numbered seq + 1 to n from the journal, a page at a time,
//! as the consumer asks for them. The stream yields those, then the live
//! ones: nothing between, nothing twice. What the journal no longer has
//! (or never had: the journal is off, or lost entries in a gap) becomes a
//! `Missed` marker of the exact count.

use crate::connection::Connection;
use crate::types::StreamItem;
use ddm_proto::message::{History, ReplyResult, Request};
use ddm_proto::WinError;
use std::collections::VecDeque;

pub(crate) struct Replay {
    /// The next sequence number the stream owes its consumer.
    next_seq: u64,
    /// The snapshot's: live events take over after it.
    until: u64,
    /// The journal's paging cursor.
    after_id: u64,
    ready: VecDeque<StreamItem>,
    done: bool,
}

impl Replay {
    /// Replays `after + 1 ..= until`; nothing when `after >= until`.
    pub(crate) fn new(after: u64, until: u64) -> Self {
        Replay {
            next_seq: after + 1,
            until,
            after_id: 0,
            ready: VecDeque::new(),
            done: after >= until,
        }
    }

    /// The next replayed item, reading a page when it needs one; `None`
    /// once the replay is over.
    pub(crate) fn next(&mut self, connection: &Connection) -> Option<StreamItem> {
        while self.ready.is_empty() && !self.done {
            self.read_page(connection);
        }
        self.ready.pop_front()
    }

    fn read_page(&mut self, connection: &Connection) {
        let request = Request::History(Box::new(History {
            after_id: self.after_id,
            since_seq: self.next_seq,
            until_seq: self.until,
            transitions_only: true,
            ..History::default()
        }));
        let reply = connection.call(request, None);
        let (entries, more) = match reply {
            Ok(reply) => match (WinError(reply.error), reply.result) {
                (error, Some(ReplyResult::History(page)))
                    if error.is_ok() || error == WinError::ERROR_MORE_DATA =>
                {
                    (page.entries, error == WinError::ERROR_MORE_DATA)
                }
                _ => (Vec::new(), false),
            },
            Err(_) => (Vec::new(), false),
        };
        for entry in entries {
            self.after_id = entry.id;
            let Some(event) = entry.event else { continue };
            if event.seq < self.next_seq || event.seq > self.until {
                continue;
            }
            if event.seq > self.next_seq {
                self.ready
                    .push_back(StreamItem::Missed(event.seq - self.next_seq));
            }
            self.next_seq = event.seq + 1;
            self.ready.push_back(StreamItem::Event(event.into()));
        }
        if !more {
            if self.next_seq <= self.until {
                self.ready
                    .push_back(StreamItem::Missed(self.until + 1 - self.next_seq));
            }
            self.done = true;
        }
    }
}

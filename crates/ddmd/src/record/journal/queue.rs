//! The bounded queue from the router to the journal's writer thread.
//!
//! std's `sync_channel` makes every slot when it is made: at the default
//! `journal.queue` of 65,536 entries that is 16 MiB written at start by
//! every service, for a queue that is nearly always empty. This is std's
//! unbounded channel (its slots come in small blocks made as it fills and
//! freed as it drains) with the bound kept by a count: the router never
//! waits, and what finds the queue full is the caller's to count.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

pub use mpsc::{RecvTimeoutError, TryRecvError};

/// A queue of at most `capacity` items.
pub fn bounded<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let (sender, receiver) = mpsc::channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (
        Sender {
            sender,
            queued: queued.clone(),
            capacity,
        },
        Receiver { receiver, queued },
    )
}

#[derive(Debug)]
pub struct Sender<T> {
    sender: mpsc::Sender<T>,
    queued: Arc<AtomicUsize>,
    capacity: usize,
}

impl<T> Sender<T> {
    /// Queues `item`, or gives it back when the queue is full or the
    /// receiver has gone.
    pub fn try_send(&self, item: T) -> Result<(), T> {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(item);
        }
        self.sender.send(item).map_err(|e| {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            e.0
        })
    }

    /// Queues `item` even past the bound: the last item, at the end.
    pub fn send_last(self, item: T) {
        if self.sender.send(item).is_ok() {
            self.queued.fetch_add(1, Ordering::AcqRel);
        }
    }
}

#[derive(Debug)]
pub struct Receiver<T> {
    receiver: mpsc::Receiver<T>,
    queued: Arc<AtomicUsize>,
}

impl<T> Receiver<T> {
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.receiver.try_recv().inspect(|_| self.taken())
    }

    pub fn recv_timeout(&self, wait: Duration) -> Result<T, RecvTimeoutError> {
        self.receiver.recv_timeout(wait).inspect(|_| self.taken())
    }

    fn taken(&self) {
        self.queued.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_holds_capacity_items_and_room_comes_back_as_they_are_taken() {
        let (sender, receiver) = bounded(2);
        assert_eq!(sender.try_send(1), Ok(()));
        assert_eq!(sender.try_send(2), Ok(()));
        assert_eq!(sender.try_send(3), Err(3), "full");
        assert_eq!(receiver.try_recv(), Ok(1));
        assert_eq!(sender.try_send(4), Ok(()));
        assert_eq!(sender.try_send(5), Err(5), "full again");
        sender.send_last(6);
        assert_eq!(receiver.try_recv(), Ok(2));
        assert_eq!(receiver.recv_timeout(Duration::ZERO), Ok(4));
        assert_eq!(receiver.try_recv(), Ok(6), "the last goes past the bound");
        assert_eq!(receiver.try_recv(), Err(TryRecvError::Disconnected));
    }

    #[test]
    fn an_item_for_a_receiver_that_has_gone_comes_back() {
        let (sender, receiver) = bounded(2);
        drop(receiver);
        assert_eq!(sender.try_send(1), Err(1));
        assert_eq!(sender.try_send(2), Err(2), "and takes no room");
    }
}

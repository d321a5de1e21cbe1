//! A bounded queue that counts what it had to drop, and says where.
//!
//! The typed event stream must never block its producer (the router, or the
//! client's I/O thread) on a slow consumer, must keep memory bounded, and
//! must never leave a silent gap. A `Backlog` holds at most `capacity`
//! entries; an item pushed into a full backlog is counted, and the count
//! comes out as one [`Entry::Missed`] exactly where the gap is, before the
//! next item that fits.

use std::collections::VecDeque;

/// What a consumer takes out of a [`Backlog`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry<T> {
    Item(T),
    /// This many items were dropped here.
    Missed(u64),
}

#[derive(Debug)]
pub struct Backlog<T> {
    entries: VecDeque<Entry<T>>,
    capacity: usize,
    missed: u64,
}

impl<T> Backlog<T> {
    /// A backlog of at most `capacity` entries (at least 1).
    pub fn new(capacity: usize) -> Self {
        Backlog {
            entries: VecDeque::new(),
            capacity: capacity.max(1),
            missed: 0,
        }
    }

    /// Queues `item`, or counts it as missed when full; true if queued.
    pub fn push(&mut self, item: T) -> bool {
        // A pending gap is marked first, so the marker and the item must
        // both fit.
        let needed = if self.missed > 0 { 2 } else { 1 };
        if self.entries.len() + needed > self.capacity {
            self.missed += 1;
            return false;
        }
        if self.missed > 0 {
            self.entries
                .push_back(Entry::Missed(std::mem::take(&mut self.missed)));
        }
        self.entries.push_back(Entry::Item(item));
        true
    }

    /// Records that `count` items were dropped upstream, at this point.
    pub fn add_missed(&mut self, count: u64) {
        self.missed += count;
    }

    /// The oldest entry; a gap at the end comes out last.
    pub fn pop(&mut self) -> Option<Entry<T>> {
        self.entries
            .pop_front()
            .or_else(|| (self.missed > 0).then(|| Entry::Missed(std::mem::take(&mut self.missed))))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.missed == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(b: &mut Backlog<u32>) -> Vec<Entry<u32>> {
        std::iter::from_fn(|| b.pop()).collect()
    }

    #[test]
    fn keeps_order_under_capacity() {
        let mut b = Backlog::new(4);
        (1..=3).for_each(|i| {
            b.push(i);
        });
        assert_eq!(
            drain(&mut b),
            vec![Entry::Item(1), Entry::Item(2), Entry::Item(3)]
        );
        assert!(b.is_empty());
    }

    #[test]
    fn marks_the_gap_where_it_happened() {
        let mut b = Backlog::new(3);
        (1..=5).for_each(|i| {
            b.push(i);
        });
        assert_eq!(b.pop(), Some(Entry::Item(1)));
        b.push(6); // no room for a marker and 6: 6 is missed too
        assert_eq!(b.pop(), Some(Entry::Item(2)));
        b.push(7);
        assert_eq!(
            drain(&mut b),
            vec![Entry::Item(3), Entry::Missed(3), Entry::Item(7)]
        );
    }

    #[test]
    fn a_trailing_gap_is_reported() {
        let mut b = Backlog::new(1);
        (1..=3).for_each(|i| {
            b.push(i);
        });
        assert_eq!(drain(&mut b), vec![Entry::Item(1), Entry::Missed(2)]);
    }

    #[test]
    fn upstream_gaps_merge_with_local_ones() {
        let mut b = Backlog::new(1);
        b.push(1);
        b.push(2);
        b.add_missed(5);
        assert_eq!(drain(&mut b), vec![Entry::Item(1), Entry::Missed(6)]);
    }

    #[test]
    fn never_holds_more_than_capacity() {
        let mut b = Backlog::new(3);
        for i in 0..1000 {
            b.push(i);
            assert!(b.entries.len() <= 3);
            if i % 7 == 0 {
                b.pop();
            }
        }
    }
}

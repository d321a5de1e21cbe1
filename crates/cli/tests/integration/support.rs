//! What the integration tests share: the lab (`ddm_lab`: namespaces, the
//! real `ddm serve` in them, one patience), the `ddm` binary cargo built,
//! and the waits on events.

pub use ddm_lab::service::{NOBODY, NOGROUP};
pub use ddm_lab::{
    require_root, run, stdout_of, tool, wait_until, Lab, Netns, Service, PATIENCE, QUIET,
};
use mprapi::Event;

pub const DDM: &str = env!("CARGO_BIN_EXE_ddm");

/// Waits for `event`, failing the test if it is not signaled in time.
pub fn expect_signal(event: &Event, what: &str) {
    assert!(event.wait(Some(PATIENCE)), "event not signaled: {what}");
}

/// Asserts `event` stays unsignaled for [`QUIET`].
pub fn expect_silence(event: &Event, what: &str) {
    assert!(
        !event.wait(Some(QUIET)),
        "event signaled, but should not be: {what}"
    );
}

/// What a resumed stream delivered, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    Event(u64),
    Missed(u64),
}

impl Seen {
    /// A line of `ddm watch --json`: an event's `seq`, or a `missed` count.
    pub fn of_json(line: &serde_json::Value) -> Seen {
        match (line["seq"].as_u64(), line["missed"].as_u64()) {
            (Some(seq), _) => Seen::Event(seq),
            (None, Some(count)) => Seen::Missed(count),
            _ => panic!("neither an event nor a missed marker: {line}"),
        }
    }
}

/// Checks that a resumed stream gave each number once, in order, from
/// `first`, a number skipped only where a `Missed` marker counts exactly
/// the numbers it skips; returns the events' numbers and the markers'
/// counts.
pub fn resumed(first: u64, seen: &[Seen]) -> (Vec<u64>, Vec<u64>) {
    let (mut next, mut seqs, mut missed) = (first, Vec::new(), Vec::new());
    for item in seen {
        match *item {
            Seen::Event(seq) => {
                assert_eq!(seq, next, "each number once, in order: {seen:?}");
                seqs.push(seq);
                next = seq + 1;
            }
            Seen::Missed(count) => {
                missed.push(count);
                next += count;
            }
        }
    }
    (seqs, missed)
}

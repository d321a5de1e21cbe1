//! The journal writer: a thread of its own, fed through a bounded queue.
//!
//! The router never waits for the disk: it hands entries over without
//! blocking (see `Journal::append`), and this thread writes whatever has
//! queued in one transaction, so a slow disk makes batches larger, not
//! the router slower. While changes keep coming it polls the queue rather
//! than being woken for each. When a write fails (a full disk), the batch is
//! counted as lost and the next successful write begins with a gap entry
//! saying how many. Retention deletes old entries in small chunks between
//! batches, so writes never wait long behind it.

use super::queue::{Receiver, RecvTimeoutError, TryRecvError};
use super::store;
use crate::ops::throttle::Throttle;
use crate::record::change_log;
use ddm_proto::message::{EntryKind, JournalEntry};
use rusqlite::Connection;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// How long the writer lets entries gather into one transaction: fewer,
/// larger writes, still far inside the 100 ms an entry may wait.
const GATHER: Duration = Duration::from_millis(5);
/// How long the writer polls after its last entry before it waits on the
/// queue again.
const STAY_AWAKE: Duration = Duration::from_secs(1);
/// Entries written in one transaction at most.
const MAX_BATCH: usize = 4096;
/// How often retention looks at the journal.
const RETENTION_EVERY: Duration = Duration::from_secs(60);
/// Entries deleted in one step of retention.
const RETENTION_CHUNK: u64 = 2000;

/// How long entries are kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub max_age: Duration,
    pub max_bytes: u64,
}

pub(super) struct Writer {
    pub connection: Connection,
    pub retention: Retention,
    /// The last id handled (written, or counted as lost): readers wait on
    /// it to see what was committed before they asked; the export wakes.
    pub handled: watch::Sender<u64>,
    /// What failed writes cost since the start, for `ddm status` and the
    /// metrics.
    pub failures: Arc<WriteFailures>,
}

/// Failed writes since the start, and the entries they lost.
#[derive(Debug, Default)]
pub struct WriteFailures {
    pub writes: AtomicU64,
    pub entries: AtomicU64,
}

/// What the writer lost to failed writes and has yet to record.
#[derive(Default)]
struct Lost {
    count: u64,
    last_id: u64,
    last_seq: u64,
}

impl Writer {
    pub fn run(mut self, queue: Receiver<JournalEntry>) {
        let mut lost = Lost::default();
        let mut failures = Throttle::default();
        // A first step at once: a journal kept while the service was down
        // may be past its age or size.
        let mut retaining = self.retain_step();
        let mut retention_at = Instant::now() + RETENTION_EVERY;
        // While entries keep coming the writer polls every GATHER instead
        // of waiting on the queue: the router then never has to wake it
        // (a futex wake, and a thread competing for a CPU with the waiters
        // the change just woke). Idle for STAY_AWAKE, it waits again.
        let mut busy_until = Instant::now();
        loop {
            let first = if Instant::now() < busy_until {
                std::thread::sleep(GATHER);
                match queue.try_recv() {
                    Ok(entry) => Some(entry),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => return,
                }
            } else {
                let wait = if retaining {
                    Duration::ZERO
                } else {
                    retention_at.saturating_duration_since(Instant::now())
                };
                match queue.recv_timeout(wait) {
                    Ok(entry) => {
                        // What comes meanwhile joins the transaction.
                        std::thread::sleep(GATHER);
                        Some(entry)
                    }
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            };
            if let Some(first) = first {
                busy_until = Instant::now() + STAY_AWAKE;
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match queue.try_recv() {
                        Ok(entry) => batch.push(entry),
                        Err(_) => break,
                    }
                }
                self.write(batch, &mut lost, &mut failures);
            }
            if Instant::now() >= retention_at {
                retention_at = Instant::now() + RETENTION_EVERY;
                retaining = true;
            }
            if retaining {
                retaining = self.retain_step();
            }
        }
    }

    fn write(&mut self, mut batch: Vec<JournalEntry>, lost: &mut Lost, failures: &mut Throttle) {
        let last_id = batch.last().map_or(0, |e| e.id);
        for entry in &batch {
            log(entry);
        }
        if lost.count > 0 {
            batch.insert(0, gap(lost));
        }
        match store::insert(&mut self.connection, &batch) {
            Ok(()) => *lost = Lost::default(),
            Err(e) => {
                self.failures.writes.fetch_add(1, Ordering::Relaxed);
                let gap_id = lost.last_id;
                let failed = batch
                    .iter()
                    .filter(|e| e.kind != EntryKind::EntryGap as i32 || e.id != gap_id);
                for entry in failed {
                    self.failures.entries.fetch_add(1, Ordering::Relaxed);
                    lost.count += 1;
                    lost.last_id = entry.id;
                    lost.last_seq = lost.last_seq.max(seq_of(entry));
                }
                if let Some(suppressed) = failures.allow(Instant::now()) {
                    tracing::error!(
                        lost = lost.count,
                        suppressed,
                        "journal write failed, entries lost: {e}"
                    );
                }
            }
        }
        self.handled.send_replace(last_id);
    }

    /// One step of retention; true while there is more to delete.
    fn retain_step(&mut self) -> bool {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let before = now.saturating_sub(self.retention.max_age).as_nanos() as u64;
        let step = || -> rusqlite::Result<bool> {
            let aged = store::delete_oldest(&self.connection, Some(before), RETENTION_CHUNK)?;
            if aged == RETENTION_CHUNK {
                return Ok(true);
            }
            if store::bytes_used(&self.connection)? > self.retention.max_bytes {
                let deleted = store::delete_oldest(&self.connection, None, RETENTION_CHUNK)?;
                return Ok(deleted > 0);
            }
            Ok(false)
        };
        step().unwrap_or_else(|e| {
            tracing::warn!("journal retention failed: {e}");
            false
        })
    }
}

/// The log line of an entry, for the changes and the gaps: the router
/// leaves the lines of what it journals to this thread.
fn log(entry: &JournalEntry) {
    match (EntryKind::try_from(entry.kind), &entry.event) {
        (Ok(EntryKind::EntryTransition), Some(event)) => {
            change_log::transition(event, &entry.reason)
        }
        (Ok(EntryKind::EntryGroupSwitch), Some(event)) => change_log::switch(event),
        (Ok(EntryKind::EntryGap), _) => tracing::warn!(
            lost = entry.count,
            "journal gap: the queue to the journal was full; entries lost"
        ),
        _ => {}
    }
}

fn seq_of(entry: &JournalEntry) -> u64 {
    entry.event.as_ref().map_or(entry.last_seq, |e| e.seq)
}

/// The entry that records what failed writes lost; it takes the last lost
/// entry's id, which nothing else has.
fn gap(lost: &Lost) -> JournalEntry {
    tracing::warn!(
        lost = lost.count,
        "journal gap: writes failed; entries lost"
    );
    JournalEntry {
        id: lost.last_id,
        time_unix_ns: ddm_proto::model::now_unix_ns(),
        kind: EntryKind::EntryGap as i32,
        count: lost.count,
        last_seq: lost.last_seq,
        reason: "write failed".into(),
        ..JournalEntry::default()
    }
}

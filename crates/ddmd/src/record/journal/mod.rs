//! The connection journal: every committed change, kept in SQLite.
//!
//! The router appends an entry for every transition it commits and for
//! what happens to the service (start, stop, the DDM stopped or started,
//! the resynchronisation at a start); dialed connections add what they
//! carried. Entries go to the writer thread (`writer`) through a bounded
//! queue, never waiting: when the queue is full the router counts what it
//! could not hand over and hands over a gap entry saying so as soon as
//! there is room. Ids are given here, in commit order, so the file's order
//! is the commits' order and the export can follow it (`export`).
//!
//! Reading (`history`, `uptime`) runs on the blocking pool with its own
//! connection; it first waits until the writer has handled everything
//! committed before the request, so a reader sees its own past.

pub mod config;
pub mod history;
mod queue;
pub mod reservation;
pub mod store;
pub mod uptime;
mod writer;

use config::JournalConfig;
use ddm_proto::message::{ConnectionEvent, EntryKind, JournalEntry};
use ddm_proto::model::now_unix_ns;
use reservation::{Numbering, Reservation};
use std::collections::HashMap;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::{watch, Semaphore};

/// How long a reader waits for the writer to catch up with its request.
const CATCH_UP: Duration = Duration::from_secs(2);
/// Reads of the journal running at once; more are refused as too busy.
const READERS: usize = 4;

#[derive(Debug, thiserror::Error)]
#[error("journal {path}: {source}")]
pub struct JournalError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// What the journal knew when it was opened.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The last sequence number that may have been used: the next run
    /// goes on after it.
    pub last_seq: u64,
    /// Each interface's state (a ROUTER_CONNECTION_STATE) after its last
    /// journaled transition.
    pub last_states: HashMap<String, u32>,
    /// Keeps the numbering ahead on disk: the router tells it each number.
    pub numbering: Option<Numbering>,
}

/// The router's side of the journal.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    queue: Option<queue::Sender<JournalEntry>>,
    writer: Option<JoinHandle<()>>,
    next_id: u64,
    /// Entries the queue had no room for, not yet recorded.
    dropped: Option<JournalEntry>,
    /// Entries lost since the service started because the queue was full.
    lost: u64,
    /// Writes failed since the service started, and what they lost.
    failures: Arc<writer::WriteFailures>,
    handled: watch::Receiver<u64>,
    epoch: u64,
    readers: Arc<Semaphore>,
    /// Where the file found damaged at the start was moved, if it was.
    damaged: Option<PathBuf>,
    /// Keeps the numbering ahead on disk; closed after the writer, with
    /// the last sequence number handed here.
    reservation: Option<Reservation>,
    last_seq: u64,
}

impl Journal {
    /// Opens (or creates) the journal file and starts its writer.
    pub fn open(config: &JournalConfig) -> Result<(Journal, Recovered), JournalError> {
        let path = config.file();
        let failed = |source: std::io::Error| JournalError {
            path: path.clone(),
            source,
        };
        if let Some(directory) = path.parent() {
            // Only the service reads the file: others ask it (history
            // needs the monitor role).
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(directory)
                .map_err(failed)?;
        }
        let lock = lock(&path).map_err(failed)?;
        let sqlite = |e: rusqlite::Error| failed(std::io::Error::other(e));
        let (opened, damaged) = match open_sound(&path) {
            Ok(opened) => (opened, None),
            Err(Unsound::Other(e)) => return Err(sqlite(e)),
            Err(Unsound::Damaged(why)) => {
                let aside = move_aside(&path).map_err(failed)?;
                tracing::error!(
                    path = %path.display(),
                    moved_to = %aside.display(),
                    "the journal is damaged ({why}): moved aside; a new journal begins, with a gap entry saying so"
                );
                let opened = open_sound(&path).map_err(|e| {
                    failed(std::io::Error::other(match e {
                        Unsound::Damaged(why) => why,
                        Unsound::Other(e) => e.to_string(),
                    }))
                })?;
                (opened, Some((aside, why)))
            }
        };
        let Opened {
            connection,
            last_id,
            last_seq,
            last_states,
            epoch,
        } = opened;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(failed)?;
        let seq_file = reservation::file(&path);
        let reserved = reservation::read(&seq_file, epoch);
        let numbered = last_seq.max(reserved);
        let reservation = Reservation::start(&seq_file, epoch, numbered).map_err(failed)?;
        let (handled_sender, handled) = watch::channel(last_id);
        let (queue, receiver) = queue::bounded(config.queue);
        let failures = Arc::new(writer::WriteFailures::default());
        let writer = writer::Writer {
            connection,
            retention: writer::Retention {
                max_age: Duration::from_secs(config.max_age_days * 86_400),
                max_bytes: config.max_bytes,
            },
            handled: handled_sender,
            failures: failures.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("ddm-journal".into())
            .spawn(move || {
                writer.run(receiver);
                drop(lock);
            })
            .map_err(failed)?;
        tracing::info!(path = %path.display(), last_seq = numbered, "journal open");
        let mut journal = Journal {
            path,
            queue: Some(queue),
            writer: Some(thread),
            next_id: last_id + 1,
            dropped: None,
            lost: 0,
            failures,
            handled,
            epoch,
            readers: Arc::new(Semaphore::new(READERS)),
            damaged: damaged.as_ref().map(|(aside, _)| aside.clone()),
            reservation: None,
            last_seq: numbered,
        };
        let numbering = reservation.numbering();
        journal.reservation = Some(reservation);
        if reserved > last_seq {
            tracing::warn!(
                journaled = last_seq,
                reserved,
                "the service did not stop cleanly: numbering goes on after the reserved numbers, which changes not journaled may have used"
            );
            journal.append(JournalEntry {
                time_unix_ns: now_unix_ns(),
                kind: EntryKind::EntryGap as i32,
                count: reserved - last_seq,
                last_seq: reserved,
                reason: format!(
                    "unclean stop: sequence numbers {} to {reserved} may have been given to changes that were not journaled",
                    last_seq + 1
                ),
                ..JournalEntry::default()
            });
        }
        if let Some((aside, why)) = damaged {
            journal.append(JournalEntry {
                time_unix_ns: now_unix_ns(),
                kind: EntryKind::EntryGap as i32,
                reason: format!(
                    "journal damaged ({}); moved aside to {}",
                    crate::bounds::cut(&why, 200),
                    aside.display()
                ),
                ..JournalEntry::default()
            });
        }
        Ok((
            journal,
            Recovered {
                last_seq: numbered,
                last_states,
                numbering: Some(numbering),
            },
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the file found damaged at this start was moved, if it was.
    pub fn damaged(&self) -> Option<&Path> {
        self.damaged.as_deref()
    }

    /// Names this journal's numbering (random, kept in the file).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The id of the last entry appended.
    pub fn last_id(&self) -> u64 {
        self.next_id - 1
    }

    /// Entries lost since the service started: the queue was full, or
    /// writes failed (a full disk).
    pub fn lost(&self) -> u64 {
        self.lost + self.failures.entries.load(Ordering::Relaxed)
    }

    /// Writes to the file that failed since the service started.
    pub fn write_errors(&self) -> u64 {
        self.failures.writes.load(Ordering::Relaxed)
    }

    /// Wakes whoever waits on the entries handled by the writer.
    pub fn handled(&self) -> watch::Receiver<u64> {
        self.handled.clone()
    }

    /// Records a transition.
    pub fn transition(&mut self, event: &ConnectionEvent, reason: &str) {
        self.append(JournalEntry {
            time_unix_ns: event.time_unix_ns,
            kind: EntryKind::EntryTransition as i32,
            event: Some(event.clone()),
            reason: reason.into(),
            ..JournalEntry::default()
        });
    }

    /// Records a group's switch (its event carries the switch).
    pub fn switched(&mut self, event: &ConnectionEvent) {
        self.append(JournalEntry {
            time_unix_ns: event.time_unix_ns,
            kind: EntryKind::EntryGroupSwitch as i32,
            reason: event
                .group_switch
                .as_ref()
                .map(|s| s.reason.clone())
                .unwrap_or_default(),
            event: Some(event.clone()),
            ..JournalEntry::default()
        });
    }

    /// Records an entry of `kind` with nothing more than a count.
    pub fn note(&mut self, kind: EntryKind, count: u64) {
        self.append(JournalEntry {
            time_unix_ns: now_unix_ns(),
            kind: kind as i32,
            count,
            ..JournalEntry::default()
        });
    }

    /// Appends `entry` (its id is given here), never waiting: with no room
    /// it is counted in a gap entry, handed over when there is room again.
    pub fn append(&mut self, mut entry: JournalEntry) {
        if self.queue.is_none() {
            return;
        }
        entry.id = self.next_id;
        self.next_id += 1;
        let seq = entry.event.as_ref().map_or(entry.last_seq, |e| e.seq);
        self.last_seq = self.last_seq.max(seq);
        if !self.flush_gap() {
            self.drop_entry(&entry);
            return;
        }
        let Some(queue) = &self.queue else {
            return;
        };
        if let Err(entry) = queue.try_send(entry) {
            self.drop_entry(&entry);
        }
    }

    /// Hands the pending gap entry to the writer if there is room; true
    /// when none is left pending.
    fn flush_gap(&mut self) -> bool {
        if let (Some(gap), Some(queue)) = (self.dropped.take(), &self.queue) {
            if let Err(gap) = queue.try_send(gap) {
                self.dropped = Some(gap);
            }
        }
        self.dropped.is_none()
    }

    /// Counts `entry` in the pending gap entry, which takes its id.
    fn drop_entry(&mut self, entry: &JournalEntry) {
        self.lost += 1;
        let gap = self.dropped.get_or_insert_with(|| JournalEntry {
            kind: EntryKind::EntryGap as i32,
            reason: "queue full".into(),
            ..JournalEntry::default()
        });
        gap.id = entry.id;
        gap.time_unix_ns = entry.time_unix_ns;
        gap.count += 1;
        if let Some(event) = &entry.event {
            gap.last_seq = event.seq;
        }
    }

    /// A reader's wait: until the writer has handled every entry appended
    /// so far (or a little while has passed).
    fn caught_up(&mut self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.flush_gap();
        let target = match &self.dropped {
            Some(gap) => gap.id.saturating_sub(gap.count),
            None => self.last_id(),
        };
        let mut handled = self.handled.clone();
        async move {
            let _ = tokio::time::timeout(CATCH_UP, handled.wait_for(|id| *id >= target)).await;
        }
    }

    /// Runs `read` on a connection of its own, on the blocking pool, once
    /// the writer has handled everything appended so far, and hands the
    /// result to `deliver`; false (and nothing run) when `READERS` reads are
    /// running already. `failed` is the result when the file cannot be
    /// read.
    pub fn read<T: Send + 'static>(
        &mut self,
        read: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
        failed: impl FnOnce(rusqlite::Error) -> T + Send + 'static,
        deliver: impl FnOnce(T) + Send + 'static,
    ) -> bool {
        let Ok(permit) = self.readers.clone().try_acquire_owned() else {
            return false;
        };
        let caught_up = self.caught_up();
        let path = self.path.clone();
        tokio::spawn(async move {
            caught_up.await;
            let done = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                store::open_reader(&path).and_then(|connection| read(&connection))
            })
            .await;
            deliver(match done {
                Ok(result) => result.unwrap_or_else(|e| {
                    tracing::warn!("journal read failed: {e}");
                    failed(e)
                }),
                Err(_) => failed(rusqlite::Error::InvalidQuery),
            });
        });
        true
    }

    /// Returns what hands the writer what is left and waits for it to
    /// finish, then records the last number given: blocking, for the
    /// blocking pool.
    pub fn close(&mut self) -> impl FnOnce() + Send + 'static {
        let (gap, queue, writer) = (self.dropped.take(), self.queue.take(), self.writer.take());
        let (reservation, last_seq) = (self.reservation.take(), self.last_seq);
        move || {
            if let (Some(gap), Some(queue)) = (gap, queue) {
                queue.send_last(gap);
            }
            if let Some(writer) = writer {
                let _ = writer.join();
            }
            if let Some(reservation) = reservation {
                reservation.finish(last_seq);
            }
        }
    }
}

/// Takes the journal for this service: a second service on the same file
/// would number entries as the first does.
fn lock(path: &Path) -> std::io::Result<nix::fcntl::Flock<std::fs::File>> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path.with_extension("lock"))?;

    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
        if e == nix::errno::Errno::EWOULDBLOCK {
            std::io::Error::other("in use by another ddm service")
        } else {
            e.into()
        }
    })
}

/// A journal file opened, checked and read back.
struct Opened {
    connection: rusqlite::Connection,
    last_id: u64,
    last_seq: u64,
    last_states: HashMap<String, u32>,
    epoch: u64,
}

/// Why a journal file cannot be used as it is.
enum Unsound {
    /// SQLite finds it damaged (so is an empty file: ddm never leaves one).
    Damaged(String),
    /// Anything else (a directory it may not write, a disk error): the
    /// file is left alone.
    Other(rusqlite::Error),
}

impl From<rusqlite::Error> for Unsound {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
        match e.sqlite_error_code() {
            Some(DatabaseCorrupt | NotADatabase) => Unsound::Damaged(e.to_string()),
            _ => Unsound::Other(e),
        }
    }
}

/// Opens the file (creating it if there is none), checks it and reads what
/// the router goes on from.
fn open_sound(path: &Path) -> Result<Opened, Unsound> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() == 0) {
        return Err(Unsound::Damaged("the file is empty".into()));
    }
    let connection = store::open_writer(path)?;
    store::quick_check(&connection)?.map_err(Unsound::Damaged)?;
    let (last_id, last_seq) = store::last_numbers(&connection)?;
    let last_states = store::last_states(&connection)?;
    let epoch = match store::setting(&connection, "epoch")? {
        Some(epoch) => epoch,
        None => {
            let epoch = new_epoch();
            store::set_setting(&connection, "epoch", epoch)?;
            epoch
        }
    };
    Ok(Opened {
        connection,
        last_id,
        last_seq,
        last_states,
        epoch,
    })
}

/// Moves a damaged journal (and its WAL and shared-memory files) aside, to
/// `journal.sqlite.damaged-<unix seconds>`; returns where.
fn move_aside(path: &Path) -> std::io::Result<PathBuf> {
    let seconds = now_unix_ns() / 1_000_000_000;
    let aside = PathBuf::from(format!("{}.damaged-{seconds}", path.display()));
    std::fs::rename(path, &aside)?;
    for suffix in ["-wal", "-shm"] {
        let companion = PathBuf::from(format!("{}{suffix}", path.display()));
        if companion.exists() {
            std::fs::rename(&companion, format!("{}{suffix}", aside.display()))?;
        }
    }
    Ok(aside)
}

/// A new epoch: random, so that two journals never share one.
fn new_epoch() -> u64 {
    let mut bytes = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_err()
    {
        bytes = now_unix_ns().to_le_bytes();
    }
    u64::from_le_bytes(bytes) >> 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use ddm_proto::message::History;

    fn config(dir: &Path) -> JournalConfig {
        JournalConfig {
            directory: Some(dir.to_owned()),
            ..JournalConfig::default()
        }
    }

    fn event(seq: u64, name: &str, from: u32, to: u32) -> ConnectionEvent {
        ConnectionEvent {
            seq,
            name: name.into(),
            from,
            to,
            time_unix_ns: now_unix_ns(),
            ..ConnectionEvent::default()
        }
    }

    fn all(dir: &Path) -> Vec<JournalEntry> {
        let connection = store::open_reader(&dir.join("journal.sqlite")).unwrap();
        history::page(&connection, &History::default(), usize::MAX)
            .unwrap()
            .0
    }

    fn close(mut journal: Journal) {
        journal.close()();
    }

    #[test]
    fn numbering_and_states_go_on_from_the_last_run() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, recovered) = Journal::open(&config(dir.path())).unwrap();
        assert_eq!(recovered.last_seq, 0);
        journal.transition(&event(1, "eth0", 0, 3), "");
        journal.transition(&event(2, "eth1", 0, 3), "");
        journal.transition(&event(3, "eth0", 3, 1), "");
        journal.note(EntryKind::EntryServiceStop, 0);
        let epoch = journal.epoch();
        close(journal);
        let (journal, recovered) = Journal::open(&config(dir.path())).unwrap();
        assert_eq!(recovered.last_seq, 3);
        assert_eq!(
            recovered.last_states,
            HashMap::from([("eth0".into(), 1), ("eth1".into(), 3)])
        );
        assert_eq!(journal.epoch(), epoch, "the epoch is the file's");
        assert_eq!(journal.last_id(), 4);
        close(journal);
        let ids: Vec<u64> = all(dir.path()).iter().map(|e| e.id).collect();
        assert_eq!(ids, vec![1, 2, 3, 4]);
    }

    #[test]
    fn after_an_unclean_stop_numbering_goes_on_after_the_reserved_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, _) = Journal::open(&config(dir.path())).unwrap();
        for seq in 1..=5 {
            journal.transition(&event(seq, "eth0", 1, 3), "");
        }
        // Killed: the exact last number is never written.
        drop(journal.reservation.take());
        close(journal);
        let (journal, recovered) = Journal::open(&config(dir.path())).unwrap();
        // Reserved as the first run began.
        let reserved = reservation::AHEAD;
        assert_eq!(recovered.last_seq, reserved, "no number is given twice");
        close(journal);
        let gap = all(dir.path()).pop().unwrap();
        assert_eq!(gap.kind, EntryKind::EntryGap as i32);
        assert_eq!((gap.last_seq, gap.count), (reserved, reserved - 5));
        assert!(gap.reason.starts_with("unclean stop"), "{}", gap.reason);
        let (journal, recovered) = Journal::open(&config(dir.path())).unwrap();
        assert_eq!(recovered.last_seq, reserved, "a clean stop: no new gap");
        close(journal);
        assert_eq!(all(dir.path()).len(), 6);
    }

    #[test]
    fn one_journal_serves_one_service() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = Journal::open(&config(dir.path())).unwrap();
        let second = Journal::open(&config(dir.path()));
        assert!(
            second.is_err_and(|e| e.to_string().contains("in use")),
            "a second service on the same journal is refused"
        );
        close(journal);
        assert!(
            Journal::open(&config(dir.path())).is_ok(),
            "free once closed"
        );
    }

    #[test]
    fn a_writer_that_cannot_keep_up_leaves_a_gap_that_counts_what_it_lost() {
        let dir = tempfile::tempdir().unwrap();
        let config = JournalConfig {
            queue: 4,
            ..config(dir.path())
        };
        let (mut journal, _) = Journal::open(&config).unwrap();
        // Another writer holds the file: the journal's writer waits, its
        // queue fills, and the router side must not wait with it.
        let blocker = store::open_reader(&config.file()).unwrap();
        blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
        journal.transition(&event(1, "eth0", 0, 3), "");
        std::thread::sleep(Duration::from_millis(100));
        let started = std::time::Instant::now();
        for seq in 2..=40 {
            journal.transition(
                &event(
                    seq,
                    "eth0",
                    3 - (seq as u32 % 2) * 2,
                    1 + (seq as u32 % 2) * 2,
                ),
                "",
            );
        }
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "appending never waits"
        );
        assert!(journal.lost() > 0);
        blocker.execute_batch("COMMIT").unwrap();
        journal.transition(&event(41, "eth0", 3, 1), "");
        let lost = journal.lost();
        close(journal);
        let entries = all(dir.path());
        let gaps: Vec<&JournalEntry> = entries
            .iter()
            .filter(|e| e.kind == EntryKind::EntryGap as i32)
            .collect();
        assert_eq!(gaps.iter().map(|g| g.count).sum::<u64>(), lost);
        let transitions = entries.iter().filter(|e| e.event.is_some()).count() as u64;
        assert_eq!(
            transitions + lost,
            41,
            "every change is an entry or counted in a gap"
        );
        let ids: Vec<u64> = entries.iter().map(|e| e.id).collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "in commit order: {ids:?}"
        );
        let (_, recovered) = Journal::open(&JournalConfig { queue: 4, ..config }).unwrap();
        assert_eq!(recovered.last_seq, 41);
    }

    #[test]
    fn retention_keeps_the_newest_entry_and_drops_old_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, _) = Journal::open(&config(dir.path())).unwrap();
        for seq in 1..=10 {
            let mut old = event(seq, "eth0", 1, 3);
            old.time_unix_ns = seq; // 1970
            journal.transition(&old, "");
        }
        journal.transition(&event(11, "eth0", 3, 1), "");
        close(journal);
        // Retention runs as the writer starts.
        let (journal, recovered) = Journal::open(&config(dir.path())).unwrap();
        close(journal);
        let seqs: Vec<u64> = all(dir.path())
            .iter()
            .filter_map(|e| e.event.as_ref().map(|e| e.seq))
            .collect();
        assert_eq!(seqs, vec![11]);
        assert_eq!(recovered.last_seq, 11);

        let small = JournalConfig {
            max_bytes: 1,
            ..config(dir.path())
        };
        let (mut journal, _) = Journal::open(&small).unwrap();
        for seq in 12..=20 {
            journal.transition(&event(seq, "eth0", 1, 3), "");
        }
        close(journal);
        let (journal, _) = Journal::open(&small).unwrap();
        close(journal);
        let left = all(dir.path());
        assert_eq!(left.len(), 1, "over the size, all but the newest go");
        assert_eq!(left[0].event.as_ref().unwrap().seq, 20);
    }

    #[test]
    fn a_page_fits_its_frame_and_says_more_follow() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, _) = Journal::open(&config(dir.path())).unwrap();
        for seq in 1..=500 {
            journal.transition(&event(seq, "a-long-interface-name", 1, 3), "demand");
        }
        journal.note(EntryKind::EntryDdmStop, 0);
        close(journal);
        let connection = store::open_reader(&dir.path().join("journal.sqlite")).unwrap();
        let mut query = History::default();
        let mut seen = Vec::new();
        loop {
            let (page, more) = history::page(&connection, &query, 4096).unwrap();
            assert!(page.len() < 500, "bounded by the frame");
            query.after_id = page.last().unwrap().id;
            seen.extend(page);
            if !more {
                break;
            }
        }
        assert_eq!(seen.len(), 501);
        let window = History {
            since_seq: 100,
            until_seq: 109,
            ..History::default()
        };
        let (page, more) = history::page(&connection, &window, usize::MAX).unwrap();
        let seqs: Vec<u64> = page.iter().map(|e| e.event.as_ref().unwrap().seq).collect();
        assert_eq!(seqs, (100..=109).collect::<Vec<_>>());
        assert!(!more);
        let limited = History {
            max_entries: 3,
            ..History::default()
        };
        let (page, more) = history::page(&connection, &limited, usize::MAX).unwrap();
        assert_eq!((page.len(), more), (3, true));
    }

    /// A journal of `n` transitions, closed.
    fn written(dir: &Path, n: u64) {
        let (mut journal, _) = Journal::open(&config(dir)).unwrap();
        for seq in 1..=n {
            journal.transition(&event(seq, &format!("eth{}", seq % 50), 1, 3), "link");
        }
        close(journal);
    }

    /// Each way a file may be damaged: the service opens a new journal
    /// (it never refuses to start), moves the old one aside, and the new
    /// one begins with a gap entry that says where it went.
    #[test]
    fn a_damaged_journal_is_moved_aside_and_a_new_one_begins_with_a_gap() {
        use std::io::{Seek, SeekFrom, Write};
        type Damage = fn(&Path);
        let damage: [(&str, Damage); 5] = [
            ("empty", |f| std::fs::write(f, b"").unwrap()),
            ("garbage", |f| {
                std::fs::write(f, vec![0x5a; 64 * 1024]).unwrap()
            }),
            ("header", |f| {
                let mut file = std::fs::OpenOptions::new().write(true).open(f).unwrap();
                file.write_all(b"not a database, no").unwrap();
            }),
            ("truncated", |f| {
                let length = std::fs::metadata(f).unwrap().len();
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(f)
                    .unwrap()
                    .set_len(length / 3)
                    .unwrap();
            }),
            ("pages", |f| {
                // Every page but the first overwritten in its middle: the
                // table's and the indexes' b-trees.
                let mut file = std::fs::OpenOptions::new().write(true).open(f).unwrap();
                let length = file.metadata().unwrap().len();
                let mut page = 4096;
                while page + 2048 < length {
                    file.seek(SeekFrom::Start(page + 100)).unwrap();
                    file.write_all(&[0xff; 512]).unwrap();
                    page += 4096;
                }
            }),
        ];
        for (how, damage) in damage {
            let dir = tempfile::tempdir().unwrap();
            written(dir.path(), 2000);
            let file = dir.path().join("journal.sqlite");
            damage(&file);
            let (journal, recovered) = Journal::open(&config(dir.path()))
                .unwrap_or_else(|e| panic!("{how}: the service must start: {e}"));
            let aside = journal
                .damaged()
                .unwrap_or_else(|| panic!("{how}: not noticed"))
                .to_owned();
            assert!(aside.exists(), "{how}: {} kept", aside.display());
            assert_eq!(recovered.last_seq, 0, "{how}");
            close(journal);
            let entries = all(dir.path());
            assert_eq!(entries.len(), 1, "{how}: {entries:?}");
            assert_eq!(entries[0].kind, EntryKind::EntryGap as i32, "{how}");
            assert!(
                entries[0].reason.contains("journal damaged")
                    && entries[0].reason.contains(&aside.display().to_string()),
                "{how}: {}",
                entries[0].reason
            );
            let (again, _) = Journal::open(&config(dir.path())).unwrap();
            assert!(again.damaged().is_none(), "{how}: the new one is sound");
            close(again);
        }
    }

    #[test]
    fn a_sound_journal_is_not_moved() {
        let dir = tempfile::tempdir().unwrap();
        written(dir.path(), 10);
        let (journal, recovered) = Journal::open(&config(dir.path())).unwrap();
        assert!(journal.damaged().is_none());
        assert_eq!(recovered.last_seq, 10);
        close(journal);
    }
}

//! Sequence numbers reserved ahead on disk, so that a killed service never
//! gives one number to two changes.
//!
//! The router signals a change before the writer has it on disk, so a
//! SIGKILL can lose changes that clients saw. Numbering on from the
//! journal's last entry would then give their numbers again, to other
//! changes: a client resuming after one would skip or misread them. So the
//! service keeps, in a small file beside the journal, a number that the
//! router's numbering stays below: a thread of its own moves it `AHEAD`
//! further whenever the router has used half of the way (the router only
//! asks, never waits), and the journal's close writes the exact last
//! number it was handed (a clean stop). A
//! start numbers on from the larger of the journal's last number and the
//! file's; when the file's is larger the stop was not clean, and the
//! journal says which numbers may have been given and not journaled.
//!
//! The file holds the journal's epoch and the number (16 bytes, little
//! endian), overwritten in place: a full disk does not stop the write.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// How far ahead of the router's last number the file is kept.
pub const AHEAD: u64 = 1024;

/// The file beside the journal at `journal`.
pub fn file(journal: &Path) -> PathBuf {
    journal.with_extension("seq")
}

/// The number reserved by the last run on the journal of `epoch` (0 when
/// there is none, or it was another journal's).
pub fn read(path: &Path, epoch: u64) -> u64 {
    let mut bytes = [0u8; 16];
    match File::open(path).and_then(|f| f.read_exact_at(&mut bytes, 0)) {
        Ok(()) if u64::from_le_bytes(bytes[..8].try_into().unwrap_or_default()) == epoch => {
            u64::from_le_bytes(bytes[8..].try_into().unwrap_or_default())
        }
        _ => 0,
    }
}

/// What wakes the thread.
enum Wake {
    /// The router asked for more: the number is in `Shared::wanted`.
    Ahead,
    /// The last number given: a clean stop.
    Exact(u64),
}

/// The thread that keeps the file ahead; the journal holds it, and writes
/// the exact last number through it when it closes.
#[derive(Debug)]
pub struct Reservation {
    wake: SyncSender<Wake>,
    wanted: Arc<AtomicU64>,
    thread: JoinHandle<()>,
}

/// The router's side: it says what it numbered, never waiting.
#[derive(Debug)]
pub struct Numbering {
    wake: SyncSender<Wake>,
    /// The furthest number asked for; the thread reads the latest.
    wanted: Arc<AtomicU64>,
    asked: u64,
}

impl Reservation {
    /// Writes `AHEAD` numbers past `last` for the journal of `epoch` (at
    /// once: the router has not begun) and starts the thread that keeps
    /// the file ahead.
    pub fn start(path: &Path, epoch: u64, last: u64) -> io::Result<Reservation> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(path)?;
        let reserved = last.saturating_add(AHEAD);
        write(&file, epoch, reserved)?;
        let wanted = Arc::new(AtomicU64::new(reserved));
        // One wake-up pending is enough: the thread reads the latest number.
        let (wake, wakes) = sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("ddm-numbering".into())
            .spawn({
                let wanted = wanted.clone();
                move || keep(file, epoch, reserved, &wanted, wakes)
            })?;
        Ok(Reservation {
            wake,
            wanted,
            thread,
        })
    }

    /// The handle the router tells its numbers to.
    pub fn numbering(&self) -> Numbering {
        Numbering {
            wake: self.wake.clone(),
            wanted: self.wanted.clone(),
            asked: self.wanted.load(Ordering::Relaxed),
        }
    }

    /// Writes `last` as the exact last number (a clean stop) and waits for
    /// the thread: blocking, for the blocking pool.
    pub fn finish(self, last: u64) {
        if self.wake.send(Wake::Exact(last)).is_ok() {
            let _ = self.thread.join();
        }
    }
}

impl Numbering {
    /// The router gave `seq`: past half of the way, it asks for more,
    /// without waiting.
    pub fn numbered(&mut self, seq: u64) {
        if seq.saturating_add(AHEAD / 2) <= self.asked {
            return;
        }
        self.asked = seq.saturating_add(AHEAD);
        self.wanted.store(self.asked, Ordering::Relaxed);
        // Full: a wake-up is pending, and will read this number.
        let _ = self.wake.try_send(Wake::Ahead);
    }
}

fn keep(file: File, epoch: u64, reserved: u64, wanted: &AtomicU64, wakes: Receiver<Wake>) {
    let mut written = reserved;
    while let Ok(wake) = wakes.recv() {
        let number = match wake {
            Wake::Ahead => wanted.load(Ordering::Relaxed),
            Wake::Exact(number) => {
                if let Err(e) = write(&file, epoch, number) {
                    tracing::warn!("the last sequence number could not be written: {e}");
                }
                return;
            }
        };
        if number <= written {
            continue;
        }
        // The router asks at half of the way: past the end, it had given
        // numbers no file covered (a disk that hangs).
        if number - AHEAD > written {
            tracing::warn!(
                given = number - AHEAD,
                reserved = written,
                "sequence numbers given beyond the reservation on disk; a kill now could give numbers twice"
            );
        }
        match write(&file, epoch, number) {
            Ok(()) => written = number,
            Err(e) => tracing::error!(
                "sequence numbers could not be reserved on disk: {e}; a kill now could give numbers twice"
            ),
        }
    }
}

fn write(file: &File, epoch: u64, number: u64) -> io::Result<()> {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&epoch.to_le_bytes());
    bytes[8..].copy_from_slice(&number.to_le_bytes());
    file.write_all_at(&bytes, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_reserves_ahead_and_a_clean_stop_writes_the_exact_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(&dir.path().join("journal.sqlite"));
        let reservation = Reservation::start(&path, 7, 40).unwrap();
        assert_eq!(read(&path, 7), 40 + AHEAD);
        reservation.finish(45);
        assert_eq!(read(&path, 7), 45);
    }

    #[test]
    fn the_file_stays_ahead_of_every_number_given() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(&dir.path().join("journal.sqlite"));
        let reservation = Reservation::start(&path, 7, 0).unwrap();
        let mut numbering = reservation.numbering();
        for seq in 1..=3 * AHEAD {
            numbering.numbered(seq);
            if seq % 1000 == 0 {
                // What the thread wrote is never behind what the router
                // had given when it asked.
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
                while read(&path, 7) < seq && std::time::Instant::now() < deadline {
                    std::thread::yield_now();
                }
                assert!(read(&path, 7) >= seq, "{} < {seq}", read(&path, 7));
            }
        }
        reservation.finish(3 * AHEAD);
        assert_eq!(read(&path, 7), 3 * AHEAD);
    }

    #[test]
    fn another_journals_number_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(&dir.path().join("journal.sqlite"));
        Reservation::start(&path, 7, 10).unwrap().finish(10);
        assert_eq!(read(&path, 8), 0);
        assert_eq!(read(&dir.path().join("none.seq"), 7), 0);
    }
}

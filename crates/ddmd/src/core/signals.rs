//! The eventfds one change signals, written together.
//!
//! A connect or disconnect adds 1 to the eventfd of every registration.
//! Written one `write` at a time, each wake-up may hand the service's CPU
//! to the client it woke before the next write: a fan-out to 1,000
//! clients took longer than the kernel's own multicast, which wakes them
//! all inside one system call. From `BATCH_FROM` eventfds on, the writes
//! go to the kernel together through io_uring (one `io_uring_enter` for
//! up to `RING_ENTRIES` of them), every wake-up inside it. Where io_uring
//! cannot be had (a seccomp filter without it, `kernel.io_uring_disabled`,
//! an old kernel), and for fewer eventfds, they are written one at a time.
//!
//! Once they are written, the service gives its CPU up once
//! (`sched_yield`) when it may run on more than one. The scheduler often
//! wakes a client on the CPU of the thread that woke it, where it waited
//! for the rest of the service's turn (the change's streams, its journal
//! entry, the runtime's next look at its sockets) before it ran; the bare
//! relay, which sleeps right after its write, did not make it wait.
//! Measured placed by the scheduler, this took ddm's notification latency
//! from 1.17-1.36x the bare relay to 0.89-1.06x. On one CPU the client
//! runs as soon as the service sleeps, and a yield could only let other
//! threads (the journal's, the export's) in ahead of it: not done there.
//!
//! An eventfd that cannot take 1 more (its count at the maximum) is no
//! concern of the service's: its registration stays signaled either way.

use io_uring::{opcode, squeue, types, IoUring};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

/// From how many eventfds a change's writes go through io_uring.
const BATCH_FROM: usize = 8;
/// The ring's submission entries: a fan-out past it takes one
/// `io_uring_enter` per this many eventfds.
const RING_ENTRIES: u32 = 256;
/// What every write adds; static, as the kernel may read it after the
/// submission returns (a write it had to retry).
static ONE: u64 = 1;

/// Collects one change's eventfds (`push`) and writes them (`flush`).
#[derive(Default)]
pub struct Signals {
    /// Raw: every one is borrowed from a registration that outlives the
    /// flush (the registrations are not touched between the two).
    eventfds: Vec<RawFd>,
    ring: Ring,
}

#[derive(Default)]
enum Ring {
    /// Made at the first fan-out that needs it.
    #[default]
    Untried,
    Ready(Box<IoUring>),
    Unavailable,
}

impl Signals {
    /// Adds `eventfd` to the writes of the change under way.
    pub fn push(&mut self, eventfd: BorrowedFd<'_>) {
        self.eventfds.push(eventfd.as_raw_fd());
    }

    /// Writes every eventfd pushed since the last flush, then lets the
    /// clients woken run (see the module's documentation).
    pub fn flush(&mut self) {
        if self.eventfds.is_empty() {
            return;
        }
        self.write();
        if on_more_than_one_cpu() {
            // SAFETY: sched_yield has no preconditions.
            unsafe { libc::sched_yield() };
        }
    }

    fn write(&mut self) {
        if self.eventfds.len() >= BATCH_FROM {
            if let Some(ring) = self.ring.get() {
                match write_through(ring, &self.eventfds) {
                    Ok(()) => {
                        self.eventfds.clear();
                        return;
                    }
                    Err(e) => {
                        tracing::warn!("io_uring failed; eventfds are written one at a time: {e}");
                        self.ring = Ring::Unavailable;
                    }
                }
            }
        }
        for eventfd in self.eventfds.drain(..) {
            // SAFETY: pushed from a registration that is still open (see
            // `eventfds`).
            write_one(unsafe { BorrowedFd::borrow_raw(eventfd) });
        }
    }
}

impl Ring {
    /// The ring, made if not tried yet.
    fn get(&mut self) -> Option<&mut IoUring> {
        if matches!(*self, Ring::Untried) {
            *self = match IoUring::new(RING_ENTRIES) {
                Ok(ring) => Ring::Ready(Box::new(ring)),
                Err(e) => {
                    tracing::info!("no io_uring ({e}): eventfds are written one at a time");
                    Ring::Unavailable
                }
            };
        }
        match self {
            Ring::Ready(ring) => Some(ring),
            Ring::Untried | Ring::Unavailable => None,
        }
    }
}

/// Whether this thread may run on more than one CPU now (its affinity is
/// read each time: an administrator may pin the service while it runs).
fn on_more_than_one_cpu() -> bool {
    // SAFETY: a zeroed cpu_set_t is an empty set; the kernel fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid cpu_set_t of the size given.
    let ok = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) } == 0;
    // SAFETY: CPU_COUNT reads the set.
    ok && unsafe { libc::CPU_COUNT(&set) } > 1
}

/// Adds 1 to one eventfd (non-blocking: a full one is left as it is).
pub fn write_one(eventfd: BorrowedFd<'_>) {
    match nix::unistd::write(eventfd.as_fd(), &ONE.to_ne_bytes()) {
        Ok(_) | Err(nix::errno::Errno::EAGAIN) => {}
        Err(e) => tracing::debug!("signalling an event failed: {e}"),
    }
}

/// One write of 1 to each of `eventfds`, submitted together; only failures
/// are completed (and ignored, as `write_one` ignores them).
fn write_through(ring: &mut IoUring, eventfds: &[RawFd]) -> std::io::Result<()> {
    for chunk in eventfds.chunks(RING_ENTRIES as usize) {
        {
            let mut queue = ring.submission();
            for eventfd in chunk {
                let write = opcode::Write::new(
                    types::Fd(*eventfd),
                    std::ptr::from_ref(&ONE).cast(),
                    size_of::<u64>() as u32,
                )
                .build()
                .flags(squeue::Flags::SKIP_SUCCESS);
                // SAFETY: the buffer is static; the queue was emptied by
                // the last submission and a chunk fits in it.
                unsafe { queue.push(&write) }.map_err(std::io::Error::other)?;
            }
        }
        ring.submit()?;
        ring.completion().for_each(drop);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::eventfd::{EfdFlags, EventFd};

    fn counts(events: &[EventFd]) -> Vec<u64> {
        events.iter().map(|e| e.read().unwrap()).collect()
    }

    /// Fewer than `BATCH_FROM`, and more than a ring holds: each eventfd
    /// gets exactly 1.
    #[test]
    fn every_eventfd_pushed_gets_one() {
        let mut signals = Signals::default();
        assert!(signals.ring.get().is_some(), "io_uring on this machine");
        for n in [1, BATCH_FROM - 1, BATCH_FROM, RING_ENTRIES as usize * 2 + 3] {
            let events: Vec<EventFd> = (0..n)
                .map(|_| EventFd::from_value_and_flags(0, EfdFlags::EFD_NONBLOCK).unwrap())
                .collect();
            for event in &events {
                signals.push(event.as_fd());
            }
            signals.flush();
            assert_eq!(counts(&events), vec![1; n], "{n} eventfds");
        }
    }

    /// Without io_uring (a seccomp filter, `io_uring_disabled`), as many
    /// eventfds are written one at a time.
    #[test]
    fn without_io_uring_they_are_written_one_at_a_time() {
        let mut signals = Signals {
            eventfds: Vec::new(),
            ring: Ring::Unavailable,
        };
        let events: Vec<EventFd> = (0..BATCH_FROM * 2)
            .map(|_| EventFd::from_value_and_flags(0, EfdFlags::EFD_NONBLOCK).unwrap())
            .collect();
        for event in &events {
            signals.push(event.as_fd());
        }
        signals.flush();
        assert_eq!(counts(&events), vec![1; BATCH_FROM * 2]);
    }

    /// An eventfd whose count is at its maximum takes no more, and the
    /// others are written all the same.
    #[test]
    fn a_full_eventfd_holds_no_other_up() {
        let mut signals = Signals::default();
        let full = EventFd::from_value_and_flags(0, EfdFlags::EFD_NONBLOCK).unwrap();
        full.write(u64::MAX - 1).unwrap();
        let events: Vec<EventFd> = (0..BATCH_FROM)
            .map(|_| EventFd::from_value_and_flags(0, EfdFlags::EFD_NONBLOCK).unwrap())
            .collect();
        signals.push(full.as_fd());
        for event in &events {
            signals.push(event.as_fd());
        }
        signals.flush();
        assert_eq!(counts(&events), vec![1; BATCH_FROM]);
        assert_eq!(full.read().unwrap(), u64::MAX - 1);
    }
}

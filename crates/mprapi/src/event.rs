//! Win32-style event objects, backed by eventfd.
//!
//! The eventfd's counter is the event's state: non-zero is signaled. So the
//! descriptor polls readable exactly while the event is signaled, which is
//! what lets an event sit in epoll, mio or tokio beside other descriptors,
//! and what lets the service signal a registered event by writing the
//! client's own descriptor, passed to it at registration.
//!
//! * Manual-reset: a waiter only polls; the event stays signaled and
//!   releases every waiter until [`Event::reset`] drains the counter.
//! * Auto-reset: a waiter wins by draining the counter (a non-blocking
//!   read); a waiter that loses that race goes back to waiting. One set
//!   releases one waiter.
//!
//! Waiting for all of several events takes the auto-reset ones together
//! under a process-wide lock; if another thread drained one in between, the
//! ones already taken are given back and the wait goes on. (Across
//! processes this is not atomic the way Win32's kernel objects are.)

use ddm_proto::WinError;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most this many events in one [`wait_for_multiple`] (Win32's
/// MAXIMUM_WAIT_OBJECTS).
pub const MAXIMUM_WAIT_OBJECTS: usize = 64;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static WAIT_ALL: Mutex<()> = Mutex::new(());

/// An event object: `CreateEvent`, `SetEvent`, `ResetEvent`,
/// `WaitForSingleObject`.
#[derive(Debug)]
pub struct Event {
    fd: EventFd,
    manual_reset: bool,
    id: u64,
}

impl Event {
    /// `CreateEvent(NULL, manual_reset, initial_state, NULL)`.
    pub fn new(manual_reset: bool, initial_state: bool) -> std::io::Result<Event> {
        let fd = EventFd::from_value_and_flags(
            u32::from(initial_state),
            EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC,
        )?;
        Ok(Event {
            fd,
            manual_reset,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// A manual-reset event, initially not signaled.
    pub fn manual() -> std::io::Result<Event> {
        Self::new(true, false)
    }

    /// An auto-reset event, initially not signaled.
    pub fn auto() -> std::io::Result<Event> {
        Self::new(false, false)
    }

    /// Another handle to the same event: the same eventfd (duplicated) and
    /// the same id, so the service sees one event.
    pub fn try_clone(&self) -> std::io::Result<Event> {
        let fd = self.fd.as_fd().try_clone_to_owned()?;
        Ok(Event {
            // SAFETY: `fd` is a fresh duplicate of an eventfd we own.
            fd: unsafe { EventFd::from_owned_fd(fd) },
            manual_reset: self.manual_reset,
            id: self.id,
        })
    }

    /// The process-unique number that names this event to the service.
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn is_manual_reset(&self) -> bool {
        self.manual_reset
    }

    /// `SetEvent`.
    pub fn set(&self) {
        // EAGAIN: the counter is saturated, the event is signaled anyway.
        let _ = self.fd.write(1);
    }

    /// `ResetEvent`.
    pub fn reset(&self) {
        let _ = self.fd.read();
    }

    /// True while signaled; does not consume an auto-reset event.
    pub fn is_set(&self) -> bool {
        readiness(&[self.fd.as_fd()], Some(Duration::ZERO))
            .map(|ready| ready[0])
            .unwrap_or(false)
    }

    /// `WaitForSingleObject`: true when the event was signaled (and, for an
    /// auto-reset event, taken), false after `timeout` (`None`: INFINITE).
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        matches!(wait_for_multiple(&[self], false, timeout), Ok(Some(0)))
    }

    /// Takes the signal: always for manual-reset, by draining for auto.
    fn try_take(&self) -> Option<u64> {
        if self.manual_reset {
            return Some(0);
        }
        self.fd.read().ok()
    }

    fn give_back(&self, taken: u64) {
        if !self.manual_reset && taken > 0 {
            let _ = self.fd.write(taken);
        }
    }
}

impl AsFd for Event {
    /// The descriptor polls readable while the event is signaled.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Event {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_fd().as_raw_fd()
    }
}

/// `WaitForMultipleObjects`: `Ok(Some(i))` when event `i` released the
/// wait (with `wait_all`, when all did; `i` is then 0), `Ok(None)` on
/// timeout, `ERROR_INVALID_PARAMETER` for no events or more than 64.
pub fn wait_for_multiple(
    events: &[&Event],
    wait_all: bool,
    timeout: Option<Duration>,
) -> Result<Option<usize>, WinError> {
    if events.is_empty() || events.len() > MAXIMUM_WAIT_OBJECTS {
        return Err(WinError::ERROR_INVALID_PARAMETER);
    }
    let deadline = timeout.map(|t| Instant::now() + t);
    let fds: Vec<BorrowedFd<'_>> = events.iter().map(|e| e.fd.as_fd()).collect();
    loop {
        let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let ready = if wait_all {
            // Wait until every event not yet signaled becomes so.
            let current = readiness(&fds, Some(Duration::ZERO))?;
            let waiting: Vec<BorrowedFd<'_>> = fds
                .iter()
                .zip(&current)
                .filter(|(_, ready)| !**ready)
                .map(|(fd, _)| *fd)
                .collect();
            if !waiting.is_empty() {
                if !readiness(&waiting, remaining)?.contains(&true) {
                    return Ok(None);
                }
                continue;
            }
            current
        } else {
            readiness(&fds, remaining)?
        };
        if !ready.contains(&true) {
            return Ok(None);
        }
        if wait_all {
            if take_all(events) {
                return Ok(Some(0));
            }
        } else if let Some(i) =
            (0..events.len()).find(|&i| ready[i] && events[i].try_take().is_some())
        {
            return Ok(Some(i));
        }
        if remaining == Some(Duration::ZERO) {
            return Ok(None);
        }
    }
}

/// Takes every event at once, or none.
fn take_all(events: &[&Event]) -> bool {
    let _guard = WAIT_ALL.lock().unwrap_or_else(|p| p.into_inner());
    let mut taken = Vec::with_capacity(events.len());
    for event in events {
        match event.try_take() {
            Some(count) => taken.push(count),
            None => {
                for (event, count) in events.iter().zip(taken) {
                    event.give_back(count);
                }
                return false;
            }
        }
    }
    true
}

/// Which descriptors are readable, waiting up to `timeout` for any.
fn readiness(fds: &[BorrowedFd<'_>], timeout: Option<Duration>) -> Result<Vec<bool>, WinError> {
    let mut polls: Vec<PollFd<'_>> = fds
        .iter()
        .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
        .collect();
    let timeout = match timeout {
        None => PollTimeout::NONE,
        // Rounded up: a wait never ends before its timeout.
        Some(t) => {
            let ms = t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
        }
    };
    loop {
        match poll(&mut polls, timeout) {
            Ok(_) => break,
            Err(Errno::EINTR) => continue,
            Err(_) => return Err(WinError::ERROR_INVALID_HANDLE),
        }
    }
    Ok(polls
        .iter()
        .map(|p| p.revents().is_some_and(|r| r.intersects(PollFlags::POLLIN)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::thread;

    const SHORT: Option<Duration> = Some(Duration::from_millis(20));
    const LONG: Option<Duration> = Some(Duration::from_secs(5));

    #[test]
    fn manual_reset_stays_signaled_until_reset() {
        let e = Event::manual().unwrap();
        assert!(!e.wait(SHORT));
        e.set();
        assert!(e.wait(SHORT));
        assert!(e.wait(SHORT), "a manual event stays signaled");
        e.reset();
        assert!(!e.wait(SHORT));
    }

    #[test]
    fn auto_reset_releases_one_wait_per_set() {
        let e = Event::auto().unwrap();
        e.set();
        e.set(); // coalesces: still one level
        assert!(e.wait(SHORT));
        assert!(
            !e.wait(SHORT),
            "an auto event resets when it releases a waiter"
        );
    }

    #[test]
    fn initial_state_is_honoured() {
        assert!(Event::new(true, true).unwrap().is_set());
        assert!(!Event::new(false, false).unwrap().is_set());
    }

    #[test]
    fn manual_reset_releases_every_waiter_and_auto_exactly_one() {
        for manual in [true, false] {
            let e = Arc::new(Event::new(manual, false).unwrap());
            let woken = Arc::new(AtomicUsize::new(0));
            let waiters: Vec<_> = (0..4)
                .map(|_| {
                    let (e, woken) = (e.clone(), woken.clone());
                    thread::spawn(move || {
                        if e.wait(Some(Duration::from_millis(500))) {
                            woken.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                })
                .collect();
            thread::sleep(Duration::from_millis(50));
            e.set();
            waiters.into_iter().for_each(|w| w.join().unwrap());
            assert_eq!(woken.load(Ordering::SeqCst), if manual { 4 } else { 1 });
        }
    }

    #[test]
    fn wait_any_returns_the_signaled_index() {
        let (a, b) = (Event::auto().unwrap(), Event::auto().unwrap());
        assert_eq!(wait_for_multiple(&[&a, &b], false, SHORT), Ok(None));
        b.set();
        assert_eq!(wait_for_multiple(&[&a, &b], false, LONG), Ok(Some(1)));
        assert!(!b.is_set(), "the auto event was taken");
    }

    #[test]
    fn wait_all_needs_every_event_and_takes_them_together() {
        let (a, b) = (Event::auto().unwrap(), Event::manual().unwrap());
        a.set();
        assert_eq!(wait_for_multiple(&[&a, &b], true, SHORT), Ok(None));
        assert!(a.is_set(), "a failed wait-all takes nothing");
        b.set();
        assert_eq!(wait_for_multiple(&[&a, &b], true, LONG), Ok(Some(0)));
        assert!(!a.is_set());
        assert!(b.is_set(), "a manual event stays signaled");
    }

    #[test]
    fn wait_all_wakes_when_the_last_event_arrives() {
        let a = Arc::new(Event::auto().unwrap());
        let b = Arc::new(Event::auto().unwrap());
        a.set();
        let setter = {
            let b = b.clone();
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(50));
                b.set();
            })
        };
        assert_eq!(wait_for_multiple(&[&a, &b], true, LONG), Ok(Some(0)));
        setter.join().unwrap();
    }

    #[test]
    fn wait_bounds_are_checked() {
        assert_eq!(
            wait_for_multiple(&[], false, SHORT),
            Err(WinError::ERROR_INVALID_PARAMETER)
        );
        let events: Vec<Event> = (0..65).map(|_| Event::auto().unwrap()).collect();
        let refs: Vec<&Event> = events.iter().collect();
        assert_eq!(
            wait_for_multiple(&refs, false, SHORT),
            Err(WinError::ERROR_INVALID_PARAMETER)
        );
        assert_eq!(wait_for_multiple(&refs[..64], false, SHORT), Ok(None));
    }

    #[test]
    fn the_descriptor_polls_readable_while_signaled() {
        let e = Event::manual().unwrap();
        let readable = |e: &Event| {
            let mut p = [PollFd::new(e.as_fd(), PollFlags::POLLIN)];
            poll(&mut p, PollTimeout::ZERO).unwrap() == 1
        };
        assert!(!readable(&e));
        e.set();
        assert!(readable(&e));
        e.reset();
        assert!(!readable(&e));
    }

    #[test]
    fn a_clone_is_the_same_event() {
        let e = Event::manual().unwrap();
        let clone = e.try_clone().unwrap();
        assert_eq!(clone.id(), e.id());
        clone.set();
        assert!(e.is_set());
        drop(e);
        assert!(clone.is_set(), "the clone keeps the event alive");
    }

    #[test]
    fn timeouts_are_honoured() {
        let e = Event::auto().unwrap();
        let start = Instant::now();
        assert!(!e.wait(Some(Duration::from_millis(100))));
        assert!(start.elapsed() >= Duration::from_millis(100));
    }
}

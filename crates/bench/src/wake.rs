//! Timing wake-ups: how long after a link flip each of many waiters learns
//! of it.
//!
//! Every mechanism is measured the same way: worker threads, one a core,
//! each blocked in epoll over its share of the waiters' descriptors. When a
//! descriptor is ready the worker asks the waiter whether what arrived is
//! the change it waits for (a netlink listener must see the link's new
//! state; an eventfd or a D-Bus socket only has to be readable), and stamps
//! the time with CLOCK_MONOTONIC.

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// What a descriptor carries.
#[derive(Clone, Copy)]
pub enum Kind {
    /// An eventfd: readable is signaled.
    EventFd,
    /// A D-Bus connection: readable is a signal delivered.
    Bytes,
    /// An rtnetlink group socket: waits for a report of the link's state.
    Netlink { index: u32 },
}

#[derive(Clone, Copy)]
pub struct Waiter {
    pub fd: RawFd,
    pub kind: Kind,
}

impl Waiter {
    /// Reads what is there; true if it is the awaited change (the link
    /// became `connected`).
    fn fired(&self, connected: bool) -> bool {
        let mut buffer = [0u8; 8192];
        let mut fired = false;
        loop {
            // SAFETY: the descriptor stays open for the measurement.
            let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
            match nix::unistd::read(fd, &mut buffer) {
                Ok(0) | Err(_) => return fired,
                Ok(n) => match self.kind {
                    Kind::EventFd => return true,
                    Kind::Bytes => fired = true,
                    Kind::Netlink { index } => {
                        fired |= crate::netlink::reports_about(&buffer[..n], index)
                            .any(|c| c == connected)
                    }
                },
            }
        }
    }

    /// Throws away whatever is queued.
    pub fn drain(&self) {
        self.fired(false);
    }
}

/// How many workers wait: one a core.
fn workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Arms every waiter, runs `flip` (which returns the moment it started),
/// and returns how long each waiter took to see the link become
/// `connected`; None for a waiter that did not within `timeout`.
pub fn wake_times(
    waiters: &[Waiter],
    connected: bool,
    timeout: Duration,
    flip: impl FnOnce() -> Instant,
) -> Vec<Option<Duration>> {
    let chunk = waiters.len().div_ceil(workers()).max(1);
    let parts: Vec<&[Waiter]> = waiters.chunks(chunk).collect();
    let armed = Barrier::new(parts.len() + 1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .iter()
            .map(|part| scope.spawn(|| wait_all(part, connected, timeout, &armed)))
            .collect();
        armed.wait();
        // Let the workers reach epoll_wait before the flip.
        std::thread::sleep(Duration::from_millis(3));
        let start = flip();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("waiter thread"))
            .map(|woke| woke.map(|t| t.saturating_duration_since(start)))
            .collect()
    })
}

fn wait_all(
    part: &[Waiter],
    connected: bool,
    timeout: Duration,
    armed: &Barrier,
) -> Vec<Option<Instant>> {
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).expect("epoll");
    for (i, waiter) in part.iter().enumerate() {
        // SAFETY: the descriptor outlives the epoll set.
        let fd = unsafe { BorrowedFd::borrow_raw(waiter.fd) };
        epoll
            .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, i as u64))
            .expect("epoll add");
    }
    let mut woke = vec![None; part.len()];
    let mut left = part.len();
    let mut events = vec![EpollEvent::empty(); part.len().min(1024)];
    armed.wait();
    let deadline = Instant::now() + timeout;
    while left > 0 {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            break;
        }
        let ms = u16::try_from(remaining.as_millis().max(1)).unwrap_or(u16::MAX);
        let n = epoll.wait(&mut events, EpollTimeout::from(ms)).unwrap_or(0);
        let now = Instant::now();
        for event in &events[..n] {
            let i = event.data() as usize;
            if woke[i].is_none() && part[i].fired(connected) {
                woke[i] = Some(now);
                left -= 1;
            }
        }
    }
    woke
}

//! Staying awake for a client's next request.
//!
//! A service that sleeps between two calls of a client must be woken for
//! the second; when that wake-up crosses CPUs it costs tens of
//! microseconds on a virtual machine, more than the call itself. So after
//! answering a request the service stays awake a while
//! (`limits.session_spin_us`): one task for the whole service keeps the
//! runtime turning without sleeping (each turn looks at the sockets), and,
//! while no request is being answered, gives the CPU to any other thread
//! that wants it, so on one CPU the client runs. Every answer pushes the
//! end further; when it passes, the task ends and the service sleeps as
//! before.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Awake {
    spin: Duration,
    state: Mutex<State>,
    /// Rung when the last request being answered is answered.
    idle: tokio::sync::Notify,
}

#[derive(Default)]
struct State {
    until: Option<Instant>,
    /// Requests read and not yet answered.
    answering: usize,
    /// Whether the task that keeps the runtime awake is running.
    running: bool,
}

impl Awake {
    pub fn new(spin: Duration) -> Self {
        Awake {
            spin,
            state: Mutex::default(),
            idle: tokio::sync::Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A request was read: while it is answered, the service keeps the
    /// CPU.
    pub fn received(&self) {
        self.lock().answering += 1;
    }

    /// A request was answered: stay awake for `spin` from now. Called
    /// within the runtime.
    pub fn answered(self: &Arc<Self>) {
        let mut state = self.lock();
        state.answering = state.answering.saturating_sub(1);
        if state.answering == 0 {
            self.idle.notify_one();
        }
        if self.spin.is_zero() {
            return;
        }
        state.until = Some(Instant::now() + self.spin);
        if !state.running {
            state.running = true;
            tokio::spawn(self.clone().stay());
        }
    }

    async fn stay(self: Arc<Self>) {
        loop {
            let idle = {
                let mut state = self.lock();
                if state.until.is_none_or(|until| Instant::now() >= until) {
                    state.running = false;
                    return;
                }
                state.answering == 0
            };
            if idle {
                // SAFETY: sched_yield has no preconditions.
                unsafe { libc::sched_yield() };
                tokio::task::yield_now().await;
            } else {
                // A request is being answered: the runtime is busy anyway.
                self.idle.notified().await;
            }
        }
    }

    /// Whether the runtime is being kept awake (for tests).
    #[cfg(test)]
    fn is_running(&self) -> bool {
        self.lock().running
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn stays_awake_for_the_spin_then_ends() {
        let awake = Arc::new(Awake::new(Duration::from_millis(20)));
        awake.answered();
        tokio::task::yield_now().await;
        assert!(awake.is_running());
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(!awake.is_running());
        // And starts again at the next answer.
        awake.answered();
        assert!(awake.is_running());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn no_spin_never_starts() {
        let awake = Arc::new(Awake::new(Duration::ZERO));
        awake.answered();
        tokio::task::yield_now().await;
        assert!(!awake.is_running());
    }
}

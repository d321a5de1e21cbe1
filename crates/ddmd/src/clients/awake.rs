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
    /// The session answered last.
    last_answered: Option<u64>,
}

impl State {
    /// Whether the CPU is given up after an answer to `session` (see
    /// [`Awake::answered`]); notes the session as the last answered.
    fn hands_over(&mut self, session: u64, delivered_at_once: bool) -> bool {
        let again = self.last_answered.replace(session) == Some(session);
        again && delivered_at_once && self.answering == 0
    }
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

    /// A request of `session` was answered: stay awake for `spin` from
    /// now. Called within the runtime, by the session, before it reads
    /// again; `delivered_at_once` says whether the client's next request
    /// is in the socket as soon as the client has written it.
    ///
    /// When it is, the same session was answered last and nothing else is
    /// being answered, the CPU is given up once here: a client calling
    /// back to back sends its next request as soon as it has the reply,
    /// and on one CPU it can only run if the service lets it. The
    /// session's next read then finds that request, where it would have
    /// found nothing and the request would have waited for the runtime's
    /// next look at the sockets. Answers that alternate between sessions
    /// keep the CPU: the next request is already there.
    pub fn answered(self: &Arc<Self>, session: u64, delivered_at_once: bool) {
        let mut state = self.lock();
        state.answering = state.answering.saturating_sub(1);
        if state.answering == 0 {
            self.idle.notify_one();
        }
        let hand_over = state.hands_over(session, delivered_at_once);
        if self.spin.is_zero() {
            return;
        }
        state.until = Some(Instant::now() + self.spin);
        if !state.running {
            state.running = true;
            tokio::spawn(self.clone().stay());
        }
        drop(state);
        if hand_over {
            // SAFETY: sched_yield has no preconditions.
            unsafe { libc::sched_yield() };
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
        awake.answered(1, true);
        tokio::task::yield_now().await;
        assert!(awake.is_running());
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(!awake.is_running());
        // And starts again at the next answer.
        awake.answered(1, true);
        assert!(awake.is_running());
    }

    #[test]
    fn the_cpu_is_given_up_only_between_two_answers_to_one_local_session() {
        let mut state = State::default();
        assert!(!state.hands_over(1, true), "a first answer");
        assert!(state.hands_over(1, true), "back to back");
        assert!(!state.hands_over(2, true), "another session");
        assert!(!state.hands_over(1, true), "answers that alternate");
        assert!(
            !state.hands_over(1, false),
            "a transport that delivers later"
        );
        state.answering = 1;
        assert!(!state.hands_over(1, true), "another request being answered");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn no_spin_never_starts() {
        let awake = Arc::new(Awake::new(Duration::ZERO));
        awake.answered(1, true);
        tokio::task::yield_now().await;
        assert!(!awake.is_running());
    }
}

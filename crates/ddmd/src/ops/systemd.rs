//! systemd: the listening socket it passes (socket activation), and what
//! the service tells it (readiness, status, reloads, stopping, the
//! watchdog), through the `sd-notify` crate.
//!
//! A notification is a datagram sent with a blocking call, and the router
//! must never wait: notices go through a small bounded queue to a thread of
//! their own, which sends them. The watchdog's notice comes from the router
//! task itself, so a router that is stuck stops feeding it and systemd
//! restarts the service; a full queue drops the notice (and counts it),
//! never the router's time. Without `NOTIFY_SOCKET` nothing is sent and no
//! thread runs.

use sd_notify::NotifyState;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

/// Notices waiting for the thread that sends them.
const QUEUE: usize = 16;

/// The Unix stream socket systemd passed (`LISTEN_FDS`), if it passed one
/// to this process. Anything else passed is an error: the unit is wrong.
pub fn passed_listener() -> io::Result<Option<UnixListener>> {
    let mut fds = sd_notify::listen_fds()?;
    let Some(fd) = fds.next() else {
        return Ok(None);
    };
    if fds.len() > 0 {
        return Err(io::Error::other(
            "systemd passed more than one socket; ddm.socket should listen on one",
        ));
    }
    // SAFETY: systemd hands this process the descriptor (LISTEN_PID is
    // ours), and nothing else in it takes ownership of it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    use nix::sys::socket::{getsockname, getsockopt, sockopt, SockType, UnixAddr};
    let unix = getsockname::<UnixAddr>(fd.as_raw_fd()).is_ok_and(|a| a.path().is_some());
    let stream = getsockopt(&fd, sockopt::SockType).is_ok_and(|t| t == SockType::Stream);
    let listening = getsockopt(&fd, sockopt::AcceptConn).unwrap_or(false);
    if !(unix && stream && listening) {
        return Err(io::Error::other(
            "the socket systemd passed is not a listening Unix stream socket with a path",
        ));
    }
    Ok(Some(UnixListener::from(fd)))
}

/// What the service tells systemd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Started: the first link dump is applied and the DDM runs.
    Ready,
    /// A one-line summary for `systemctl status`.
    Status(String),
    /// Reading the configuration again (`ddm reload`, SIGHUP); `Ready`
    /// follows once it is applied or refused.
    Reloading,
    Stopping,
    /// The router is alive.
    Watchdog,
}

/// Sends notices to systemd, when it asked for them. Cloning is cheap; a
/// notifier without `NOTIFY_SOCKET` does nothing.
#[derive(Clone, Debug, Default)]
pub struct Notifier {
    queue: Option<SyncSender<Notice>>,
    watchdog: Option<Duration>,
    dropped: Arc<AtomicU64>,
}

impl Notifier {
    /// A notifier for what the environment asks: `NOTIFY_SOCKET` and
    /// `WATCHDOG_USEC` (with `WATCHDOG_PID`, when set, this process).
    pub fn from_environment() -> io::Result<Notifier> {
        if std::env::var_os("NOTIFY_SOCKET").is_none_or(|s| s.is_empty()) {
            return Ok(Notifier::default());
        }
        let (queue, notices) = sync_channel::<Notice>(QUEUE);
        std::thread::Builder::new()
            .name("ddm-notify".into())
            .spawn(move || {
                for notice in notices {
                    if let Err(e) = send(&notice) {
                        tracing::warn!("cannot notify systemd ({notice:?}): {e}");
                    }
                }
            })?;
        Ok(Notifier {
            queue: Some(queue),
            watchdog: sd_notify::watchdog_enabled(),
            dropped: Arc::default(),
        })
    }

    /// Whether anything is sent at all.
    pub fn enabled(&self) -> bool {
        self.queue.is_some()
    }

    /// How often the watchdog must be fed: half its timeout, as
    /// sd_watchdog_enabled(3) advises; `None` without a watchdog.
    pub fn watchdog_period(&self) -> Option<Duration> {
        self.watchdog.map(|timeout| timeout / 2)
    }

    /// Queues `notice` without waiting; a full queue drops it.
    pub fn tell(&self, notice: Notice) {
        let Some(queue) = &self.queue else {
            return;
        };
        if let Err(TrySendError::Full(_)) = queue.try_send(notice) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Notices dropped because the thread sending them was behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn send(notice: &Notice) -> io::Result<()> {
    match notice {
        Notice::Ready => sd_notify::notify(&[NotifyState::Ready]),
        Notice::Status(line) => sd_notify::notify(&[NotifyState::Status(line)]),
        // systemd 253 and later want the time with RELOADING=1.
        Notice::Reloading => {
            sd_notify::notify(&[NotifyState::Reloading, NotifyState::monotonic_usec_now()?])
        }
        Notice::Stopping => sd_notify::notify(&[NotifyState::Stopping]),
        Notice::Watchdog => sd_notify::notify(&[NotifyState::Watchdog]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_notify_socket_nothing_is_sent_and_nothing_waits() {
        let notifier = Notifier::default();
        assert!(!notifier.enabled());
        assert_eq!(notifier.watchdog_period(), None);
        for _ in 0..(QUEUE * 2) {
            notifier.tell(Notice::Watchdog);
        }
        assert_eq!(notifier.dropped(), 0);
    }
}

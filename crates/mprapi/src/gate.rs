//! The epoll set through which the I/O thread watches a connection's
//! socket, so that calls under way can take the socket out of its sight.
//!
//! tokio's `AsyncFd` watches a descriptor for as long as it lives: a
//! watched connection's every reply woke the I/O thread, which then found
//! the caller reading it and went back to sleep (a wake-up a call, and on
//! one CPU a turn of the I/O thread before the caller's). The I/O thread
//! now watches a set of its own holding the socket; a call that starts
//! while none is under way clears the socket's events in the set, and the
//! last call to end sets them again (an `epoll_ctl` each). Whatever is
//! left in the socket by then makes the set ready at once: nothing is
//! missed.

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

pub(crate) struct Gate {
    set: Epoll,
    socket: OwnedFd,
}

impl Gate {
    /// A set holding `socket`, open (watching it) if `open`; with the
    /// descriptor for the I/O thread to watch.
    pub(crate) fn new(socket: BorrowedFd<'_>, open: bool) -> io::Result<(Gate, OwnedFd)> {
        let set = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let socket = socket.try_clone_to_owned()?;
        set.add(&socket, EpollEvent::new(events(open), 0))?;
        let watched = set.0.try_clone()?;
        Ok((Gate { set, socket }, watched))
    }

    /// Watches the socket (`true`) or stops watching it. Its hang-up and
    /// errors are seen either way.
    pub(crate) fn open(&self, open: bool) {
        // Fails only if the socket left the set, which nothing does.
        let _ = self
            .set
            .modify(&self.socket, &mut EpollEvent::new(events(open), 0));
    }
}

fn events(open: bool) -> EpollFlags {
    if open {
        EpollFlags::EPOLLIN
    } else {
        EpollFlags::empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    fn ready(fd: &OwnedFd) -> bool {
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::ZERO).unwrap() > 0
    }

    #[test]
    fn a_closed_gate_hides_what_arrives_and_opening_it_shows_what_is_left() {
        let (mut near, far) = UnixStream::pair().unwrap();
        let (gate, watched) = Gate::new(far.as_fd(), true).unwrap();
        assert!(!ready(&watched));
        gate.open(false);
        near.write_all(b"reply").unwrap();
        assert!(!ready(&watched), "a closed gate shows nothing");
        gate.open(true);
        assert!(ready(&watched), "what is left shows once it opens");
    }
}

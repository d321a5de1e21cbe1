//! The epoll set through which the I/O thread watches a connection's
//! socket, so that calls under way can take the socket out of its sight.
//!
//! tokio's `AsyncFd` watches a descriptor for as long as it lives: a
//! watched connection's every reply woke the I/O thread, which then found
//! the caller reading it and went back to sleep (a wake-up a call, and on
//! one CPU a turn of the I/O thread before the caller's). The I/O thread
//! now watches a set of its own: a call that starts while none is under
//! way takes the socket out of the set, and the last call to end puts it
//! back (an `epoll_ctl` each). Whatever is in the socket by then makes the
//! set ready, and wakes its watcher, at once: nothing is missed. (Changing
//! the socket's events in the set instead would not do: the set keeps a
//! socket it has seen ready on its list until someone asks, and a socket
//! already on the list wakes no one when its events come back.)

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

pub(crate) struct Gate {
    set: Epoll,
    socket: OwnedFd,
}

impl Gate {
    /// A set for `socket`, open (holding it) if `open`; with the
    /// descriptor for the I/O thread to watch.
    pub(crate) fn new(socket: BorrowedFd<'_>, open: bool) -> io::Result<(Gate, OwnedFd)> {
        let gate = Gate {
            set: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?,
            socket: socket.try_clone_to_owned()?,
        };
        if open {
            gate.open()?;
        }
        let watched = gate.set.0.try_clone()?;
        Ok((gate, watched))
    }

    /// Puts the socket back in the set. Fails only without memory (or
    /// epoll watches) for its entry: the I/O thread could no longer see it.
    pub(crate) fn open(&self) -> io::Result<()> {
        self.set
            .add(&self.socket, EpollEvent::new(EpollFlags::EPOLLIN, 0))
            .map_err(io::Error::from)
    }

    /// Takes the socket out of the set.
    pub(crate) fn close(&self) {
        // Fails only if it is not in the set: it is, since calls close and
        // open the gate in turn.
        let _ = self.set.delete(&self.socket);
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
        gate.close();
        near.write_all(b"reply").unwrap();
        assert!(!ready(&watched), "a closed gate shows nothing");
        gate.open().unwrap();
        assert!(ready(&watched), "what is left shows once it opens");
    }

    /// As the I/O thread watches it: edge-triggered, from an outer set.
    /// What arrives while the gate is closed, after what came before was
    /// read, wakes the watcher when the gate opens.
    #[test]
    fn opening_the_gate_on_what_is_left_wakes_its_watcher() {
        let (mut near, mut far) = UnixStream::pair().unwrap();
        let (gate, watched) = Gate::new(far.as_fd(), true).unwrap();
        let outer = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
        let edge = EpollFlags::EPOLLIN | EpollFlags::EPOLLET;
        outer.add(&watched, EpollEvent::new(edge, 0)).unwrap();
        let woken = || {
            let mut events = [EpollEvent::empty()];
            outer.wait(&mut events, 0u16).unwrap() > 0
        };
        near.write_all(b"signal").unwrap();
        assert!(woken());
        std::io::Read::read(&mut far, &mut [0u8; 16]).unwrap();
        gate.close();
        near.write_all(b"reply").unwrap();
        assert!(!woken(), "a closed gate wakes no one");
        gate.open().unwrap();
        assert!(woken(), "what is left wakes the watcher as the gate opens");
    }
}

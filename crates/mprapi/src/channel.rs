//! What a connection's bytes travel over: the local service's Unix socket,
//! which carries descriptors, or TLS 1.3 to a remote router, which does
//! not. Both are non-blocking and read or written by whichever thread
//! needs to (a caller, or the I/O thread): a remote connection's TLS state
//! is behind a lock held only for the moment of a read or a write, so a
//! call costs the same thread hops remotely as locally.

use ddm_proto::WinError;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recv, sendmsg, ControlMessage, MsgFlags};
use std::io::{self, IoSlice, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

pub(crate) enum Channel {
    Local(UnixStream),
    Remote {
        tcp: TcpStream,
        /// Boxed: a TLS session is large, a Unix socket is a descriptor.
        tls: Box<Mutex<rustls::ClientConnection>>,
    },
}

impl Channel {
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Channel::Local(socket) => socket.as_fd(),
            Channel::Remote { tcp, .. } => tcp.as_fd(),
        }
    }

    fn lock(tls: &Mutex<rustls::ClientConnection>) -> MutexGuard<'_, rustls::ClientConnection> {
        tls.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes one whole frame (a local one with `eventfd` riding on its
    /// first byte), waiting for room until `deadline`.
    pub(crate) fn send(
        &self,
        mut frame: &[u8],
        eventfd: Option<BorrowedFd<'_>>,
        deadline: Instant,
    ) -> Result<(), WinError> {
        match self {
            Channel::Local(socket) => {
                let raw = socket.as_raw_fd();
                let mut fd_pending = eventfd.map(|fd| [fd.as_raw_fd()]);
                while !frame.is_empty() {
                    let rights: Vec<ControlMessage<'_>> = fd_pending
                        .iter()
                        .map(|fd| ControlMessage::ScmRights(fd))
                        .collect();
                    let written = sendmsg::<()>(
                        raw,
                        &[IoSlice::new(frame)],
                        &rights,
                        MsgFlags::MSG_NOSIGNAL,
                        None,
                    )
                    .map_err(io::Error::from);
                    match written {
                        Ok(n) => {
                            frame = &frame[n..];
                            fd_pending = None;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            wait_ready(self.fd(), PollFlags::POLLOUT, deadline)?;
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => return Err(WinError::ERROR_DDM_NOT_RUNNING),
                    }
                }
                Ok(())
            }
            Channel::Remote { tcp, tls } => {
                let mut tls = Self::lock(tls);
                tls.writer()
                    .write_all(frame)
                    .map_err(|_| WinError::ERROR_DDM_NOT_RUNNING)?;
                while tls.wants_write() {
                    match tls.write_tls(&mut NoSignal(tcp)) {
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            wait_ready(self.fd(), PollFlags::POLLOUT, deadline)?;
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => return Err(WinError::ERROR_DDM_NOT_RUNNING),
                    }
                }
                Ok(())
            }
        }
    }

    /// What has arrived, into `chunk`: the number of bytes, 0 at the end;
    /// WouldBlock when there is nothing yet. A TLS error (a refused
    /// certificate arrives as an alert) is an error of its own kind.
    pub(crate) fn receive(&self, chunk: &mut [u8]) -> io::Result<usize> {
        match self {
            Channel::Local(socket) => {
                match recv(socket.as_raw_fd(), chunk, MsgFlags::MSG_DONTWAIT) {
                    Ok(n) => Ok(n),
                    Err(Errno::EAGAIN) => Err(io::ErrorKind::WouldBlock.into()),
                    Err(e) => Err(e.into()),
                }
            }
            Channel::Remote { tcp, tls } => {
                let mut tls = Self::lock(tls);
                loop {
                    match tls.reader().read(chunk) {
                        Ok(n) => return Ok(n),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                    match tls.read_tls(&mut &*tcp) {
                        Ok(0) => return Ok(0),
                        Ok(_) => {
                            tls.process_new_packets()
                                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                            while tls.wants_write() {
                                if tls.write_tls(&mut NoSignal(tcp)).is_err() {
                                    break;
                                }
                            }
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }

    /// The end: a remote one says goodbye (close_notify) first.
    pub(crate) fn shut_down(&self) {
        if let Channel::Remote { tcp, tls } = self {
            let mut tls = Self::lock(tls);
            tls.send_close_notify();
            let _ = tls.write_tls(&mut NoSignal(tcp));
        }
        let _ = nix::sys::socket::shutdown(self.fd().as_raw_fd(), nix::sys::socket::Shutdown::Both);
    }
}

/// A read that found nothing yet (or was interrupted): poll and try again.
pub(crate) fn nothing_yet(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// Waits until `fd` is ready for `what` (or has hung up), at most until
/// `deadline`: past it the service counts as gone.
pub(crate) fn wait_ready(
    fd: BorrowedFd<'_>,
    what: PollFlags,
    deadline: Instant,
) -> Result<(), WinError> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return Err(WinError::ERROR_DDM_NOT_RUNNING);
    }
    let ms = remaining.as_millis().clamp(1, i32::MAX as u128) as i32;
    let mut polls = [PollFd::new(fd, what)];
    match poll(
        &mut polls,
        PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
    ) {
        Ok(_) | Err(Errno::EINTR) => Ok(()),
        Err(_) => Err(WinError::ERROR_DDM_NOT_RUNNING),
    }
}

/// Writes to a TCP socket with MSG_NOSIGNAL: a service that went away is
/// an error to return, never a SIGPIPE that kills a program that left the
/// signal's default action (a C program, `ddm` itself).
pub(crate) struct NoSignal<'a>(pub(crate) &'a std::net::TcpStream);

impl io::Read for NoSignal<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        io::Read::read(&mut &*self.0, buf)
    }
}

impl io::Write for NoSignal<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        nix::sys::socket::send(self.0.as_raw_fd(), buf, MsgFlags::MSG_NOSIGNAL)
            .map_err(io::Error::from)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

//! The local transport: a Unix stream socket, with descriptors.
//!
//! A Register frame (and a Connect with an event) carries its eventfd as
//! SCM_RIGHTS on its first byte. Descriptors queue here until the request
//! they came with is decoded; a descriptor with no such request to go with
//! it is a protocol fault. The
//! descriptor is checked here (is it an eventfd?) and made non-blocking, in
//! the session's task, so the router never touches the file system. Reads
//! land in a buffer shared by every session of the thread, so an idle
//! session holds no read buffer of its own.
//!
//! The socket is watched for reading only. A Unix stream socket signals
//! "writable" each time its peer reads, so a socket also watched for
//! writing wakes the service once more for every reply a client takes in:
//! a wake-up the kernel does not mark as synchronous, which moves the
//! service to the other, idle CPU, where the next request must wake it
//! again (tens of microseconds on a virtual machine). Writes go straight to
//! the socket; only one that finds it full waits for room, on a second
//! registration made for that write alone.

use super::{Fault, Transport};
use crate::core::notify::accept_eventfd;
use crate::core::notify::Attachment;
use crate::sockets::{scm, watched};
use ddm_proto::frame::FrameDecoder;
use ddm_proto::message::ClientMessage;
use ddm_proto::WinError;
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

const READ_CHUNK: usize = 16 * 1024;

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; READ_CHUNK]);
}

pub struct UnixTransport {
    /// Non-blocking, registered for reading only.
    stream: AsyncFd<UnixStream>,
    decoder: FrameDecoder,
    fds: VecDeque<OwnedFd>,
    /// The kernel could not hand over a descriptor (the service is out of
    /// them): the Register it came with is told so.
    descriptor_dropped: bool,
}

impl UnixTransport {
    /// A transport over the non-blocking `stream`, refusing frames over
    /// `max_frame` bytes. Must be called within the runtime.
    pub fn new(stream: UnixStream, max_frame: usize) -> io::Result<Self> {
        Ok(UnixTransport {
            stream: watched(stream, Interest::READABLE)?,
            decoder: FrameDecoder::new(max_frame),
            fds: VecDeque::new(),
            descriptor_dropped: false,
        })
    }

    /// A descriptor may wait only for the rest of its Register frame.
    fn check_descriptors(&self) -> Result<(), Fault> {
        if self.fds.len() > 1 || (!self.fds.is_empty() && self.decoder.is_at_boundary()) {
            return Err(Fault::Protocol(
                WinError::RPC_S_PROTOCOL_ERROR,
                "file descriptor sent without a Register or a Connect with an event".into(),
            ));
        }
        Ok(())
    }

    /// recvmsg: bytes into the decoder, descriptors into `self.fds`; the
    /// number of bytes, 0 at the end of the stream.
    async fn receive(&mut self) -> Result<usize, Fault> {
        loop {
            let mut ready = self.stream.readable().await?;
            let (fds, decoder, dropped) = (
                &mut self.fds,
                &mut self.decoder,
                &mut self.descriptor_dropped,
            );
            let result = ready.try_io(|stream| {
                SCRATCH.with_borrow_mut(|chunk| {
                    let got = scm::receive(stream.as_raw_fd(), chunk, fds)?;
                    // Out of descriptors (EMFILE): the kernel dropped one.
                    *dropped |= got.truncated;
                    decoder.extend(&chunk[..got.bytes]);
                    Ok(got.bytes)
                })
            });
            match result {
                Ok(Ok(n)) => return Ok(n),
                Ok(Err(e)) => return Err(Fault::Gone(e)),
                // Not readable after all: wait again.
                Err(_) => continue,
            }
        }
    }
}

impl Transport for UnixTransport {
    const DELIVERED_AT_ONCE: bool = true;

    async fn read(&mut self) -> Result<(ClientMessage, Attachment), Fault> {
        loop {
            if let Some(message) = super::next_message(&mut self.decoder)? {
                let carries_event = super::carries_event(&message);
                let attachment = match carries_event {
                    true => match self.fds.pop_front() {
                        Some(fd) => match accept_eventfd(fd) {
                            Ok(fd) => Attachment::Eventfd(fd),
                            Err(_) => Attachment::NotAnEventfd,
                        },
                        None if std::mem::take(&mut self.descriptor_dropped) => Attachment::Dropped,
                        None => Attachment::None,
                    },
                    false => Attachment::None,
                };
                self.check_descriptors()?;
                return Ok((message, attachment));
            }
            self.check_descriptors()?;
            if self.receive().await? == 0 {
                let how = if self.decoder.is_at_boundary() {
                    "peer closed"
                } else {
                    "peer closed in the middle of a frame"
                };
                return Err(Fault::Gone(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    how,
                )));
            }
        }
    }

    async fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        // Until the socket is full, no registration.
        let mut room: Option<AsyncFd<UnixStream>> = None;
        while !bytes.is_empty() {
            if let Some(room) = &room {
                room.writable().await?.clear_ready();
            }
            match send_now(self.stream.get_ref(), bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && room.is_none() => {
                    // The same socket under a second descriptor, watched
                    // for room until this write is done.
                    let twin = self.stream.get_ref().try_clone()?;
                    room = Some(watched(twin, Interest::WRITABLE)?);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// One non-blocking send, without SIGPIPE when the peer has gone.
pub fn send_now(stream: &UnixStream, bytes: &[u8]) -> io::Result<usize> {
    use nix::sys::socket::{send, MsgFlags};
    send(
        stream.as_raw_fd(),
        bytes,
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
    )
    .map_err(io::Error::from)
}

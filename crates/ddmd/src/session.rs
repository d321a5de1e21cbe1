//! One client connection, from handshake to close.
//!
//! A session reads frames (and the eventfds that travel with Register
//! frames), checks each request against the peer's role, hands it to the
//! router and writes the reply; between requests it flushes its outbox. It
//! handles one request at a time, so replies keep request order and a
//! client that stops reading stalls only itself. Any protocol fault (bytes
//! that are not a frame, a frame over the limit, a request before Hello,
//! a descriptor without a Register) gets an error reply where one can be
//! sent, and then the session is closed; the service carries on.

use crate::access::{required_role, PeerCredentials, Policy};
use crate::config::Limits;
use crate::outbox::Outbox;
use crate::router::{Command, SessionHandle};
use crate::scm;
use ddm_proto::frame::{encode_frame, FrameDecoder, PROTOCOL_VERSION};
use ddm_proto::message::*;
use ddm_proto::WinError;
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;
use tokio::io::Interest;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};

/// What every session shares.
pub struct SessionContext {
    pub policy: Policy,
    pub limits: Limits,
    pub router: mpsc::UnboundedSender<Command>,
}

/// Why a session ended early; logged, and answered when possible.
#[derive(Debug)]
enum Fault {
    /// The peer closed or the socket failed: nothing to answer.
    Gone(io::Error),
    /// A protocol fault: answer with this error, then close.
    Protocol(WinError, String),
}

impl From<io::Error> for Fault {
    fn from(e: io::Error) -> Self {
        Fault::Gone(e)
    }
}

const READ_CHUNK: usize = 16 * 1024;

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; READ_CHUNK]);
}

struct Session {
    id: u64,
    /// Fixed at connection time from the peer's credentials.
    role: Role,
    stream: UnixStream,
    decoder: FrameDecoder,
    fds: VecDeque<OwnedFd>,
    /// The kernel could not hand over a descriptor (the service is out of
    /// them): the Register it came with is refused with a quota error.
    descriptor_dropped: bool,
    context: Arc<SessionContext>,
    outbox: Arc<Outbox>,
}

/// Runs a session to its end.
pub async fn run(stream: UnixStream, id: u64, context: Arc<SessionContext>) {
    let peer = match PeerCredentials::of(stream.as_fd()) {
        Ok(peer) => peer,
        Err(e) => {
            tracing::warn!(session = id, "cannot read peer credentials: {e}");
            return;
        }
    };
    let role = context.policy.role_of(&peer);
    let mut session = Session {
        id,
        role,
        stream,
        decoder: FrameDecoder::new(context.limits.max_frame_bytes),
        fds: VecDeque::new(),
        descriptor_dropped: false,
        outbox: Arc::new(Outbox::new(context.limits.stream_backlog)),
        context,
    };
    let opened = match session.handshake(&peer).await {
        Ok(()) => {
            tracing::info!(
                session = id,
                pid = peer.pid,
                uid = peer.uid,
                role = role.name(),
                "session opened"
            );
            session.serve().await
        }
        Err(fault) => Err(fault),
    };
    if let Err(fault) = opened {
        session.close_with(fault).await;
    }
    let _ = session.context.router.send(Command::Close(id));
    tracing::info!(session = id, "session closed");
}

impl Session {
    async fn handshake(&mut self, peer: &PeerCredentials) -> Result<(), Fault> {
        let role = self.role;
        let timeout = self.context.limits.handshake_timeout();
        let first = match tokio::time::timeout(timeout, self.next_message()).await {
            Ok(message) => message?,
            Err(_) => {
                return Err(Fault::Gone(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "handshake not finished in time",
                )))
            }
        };
        let (_, hello) = first;
        let id = hello.id;
        match hello.body {
            Some(Request::Hello(Hello { version })) if version == PROTOCOL_VERSION => {}
            Some(Request::Hello(Hello { version })) => {
                return Err(Fault::Protocol(
                    WinError::RPC_S_UNKNOWN_IF,
                    format!("protocol version {version} is not {PROTOCOL_VERSION}"),
                ))
            }
            _ => {
                return Err(Fault::Protocol(
                    WinError::RPC_S_PROTOCOL_ERROR,
                    "first message is not a Hello".into(),
                ))
            }
        }
        if role == Role::None {
            tracing::info!(uid = peer.uid, pid = peer.pid, "refused: peer has no role");
            return Err(Fault::Protocol(
                WinError::ERROR_ACCESS_DENIED,
                "peer has no role".into(),
            ));
        }
        let handle = SessionHandle {
            id: self.id,
            peer: peer.clone(),
            role,
            outbox: self.outbox.clone(),
        };
        self.context
            .router
            .send(Command::Open(handle))
            .map_err(|_| io::Error::other("router has stopped"))?;
        let welcome = Welcome {
            version: PROTOCOL_VERSION,
            role: role as i32,
            session: self.id,
            max_frame: self.context.limits.max_frame_bytes as u32,
        };
        self.reply(id, WinError::NO_ERROR, Some(ReplyResult::Welcome(welcome)))
            .await
    }

    /// Answers requests and flushes pushes until the peer leaves.
    async fn serve(&mut self) -> Result<(), Fault> {
        let outbox = self.outbox.clone();
        loop {
            tokio::select! {
                message = self.next_message() => {
                    let (eventfd, message) = message?;
                    self.handle(message, eventfd).await?;
                }
                () = outbox.wait() => {}
            }
            // Also after a request: a Subscribe's events follow its snapshot.
            self.flush_outbox().await?;
        }
    }

    async fn handle(
        &mut self,
        message: ClientMessage,
        eventfd: Option<OwnedFd>,
    ) -> Result<(), Fault> {
        let role = self.role;
        let id = message.id;
        let request = match message.body {
            Some(Request::Hello(_)) | None => {
                return Err(Fault::Protocol(
                    WinError::RPC_S_PROTOCOL_ERROR,
                    "Hello after the handshake, or an empty request".into(),
                ))
            }
            Some(request) => request,
        };
        if matches!(request, Request::Register(_))
            && eventfd.is_none()
            && std::mem::take(&mut self.descriptor_dropped)
        {
            tracing::warn!(
                session = self.id,
                "refused a registration: the service is out of descriptors"
            );
            return self.reply(id, WinError::ERROR_NOT_ENOUGH_QUOTA, None).await;
        }
        if role < required_role(&request) {
            tracing::info!(
                session = self.id,
                role = role.name(),
                request = request_name(&request),
                "refused: access denied"
            );
            return self.reply(id, WinError::ERROR_ACCESS_DENIED, None).await;
        }
        let (reply_to, reply) = oneshot::channel();
        let call = Command::Call {
            session: self.id,
            id,
            request,
            eventfd,
            reply: reply_to,
        };
        self.context
            .router
            .send(call)
            .map_err(|_| io::Error::other("router has stopped"))?;
        let reply = reply
            .await
            .map_err(|_| io::Error::other("router has stopped"))?;
        self.write(Push::Reply(reply)).await
    }

    async fn reply(
        &mut self,
        id: u64,
        error: WinError,
        result: Option<ReplyResult>,
    ) -> Result<(), Fault> {
        self.write(Push::Reply(Reply {
            id,
            error: error.0,
            result,
        }))
        .await
    }

    async fn flush_outbox(&mut self) -> Result<(), Fault> {
        for push in self.outbox.take() {
            self.write(push).await?;
        }
        Ok(())
    }

    async fn write(&mut self, push: Push) -> Result<(), Fault> {
        let message = ServiceMessage { body: Some(push) };
        let frame = match encode_frame(&message, self.context.limits.max_frame_bytes) {
            Ok(frame) => frame,
            Err(e) => {
                // Only a reply can grow past the limit (a snapshot of a very
                // large table): answer that it did not fit.
                tracing::warn!(session = self.id, "reply not sent: {e}");
                let id = match message.body {
                    Some(Push::Reply(r)) => r.id,
                    _ => 0,
                };
                let refusal = ServiceMessage {
                    body: Some(Push::Reply(Reply {
                        id,
                        error: WinError::ERROR_NOT_ENOUGH_MEMORY.0,
                        result: None,
                    })),
                };
                encode_frame(&refusal, usize::MAX).expect("an error reply always fits")
            }
        };
        write_all(&self.stream, &frame).await?;
        Ok(())
    }

    /// The next message, with the eventfd that came with it if it is a
    /// Register.
    async fn next_message(&mut self) -> Result<(Option<OwnedFd>, ClientMessage), Fault> {
        loop {
            let decoded = self
                .decoder
                .next_message::<ClientMessage>()
                .map_err(|e| Fault::Protocol(WinError::RPC_S_PROTOCOL_ERROR, e.to_string()))?;
            if let Some(message) = decoded {
                let eventfd = match message.body {
                    Some(Request::Register(_)) => self.fds.pop_front(),
                    _ => None,
                };
                self.check_descriptors()?;
                return Ok((eventfd, message));
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

    /// A descriptor may wait only for the rest of its Register frame.
    fn check_descriptors(&self) -> Result<(), Fault> {
        if self.fds.len() > 1 || (!self.fds.is_empty() && self.decoder.is_at_boundary()) {
            return Err(Fault::Protocol(
                WinError::RPC_S_PROTOCOL_ERROR,
                "file descriptor sent without a Register".into(),
            ));
        }
        Ok(())
    }

    /// recvmsg: bytes into the decoder, descriptors into `self.fds`; the
    /// number of bytes, 0 at the end of the stream. Reads land in a buffer
    /// shared by every session of the thread, so an idle session holds no
    /// read buffer of its own.
    async fn receive(&mut self) -> Result<usize, Fault> {
        loop {
            self.stream.readable().await?;
            let (fds, decoder, dropped) = (
                &mut self.fds,
                &mut self.decoder,
                &mut self.descriptor_dropped,
            );
            let raw = self.stream.as_raw_fd();
            let result = self.stream.try_io(Interest::READABLE, || {
                SCRATCH.with_borrow_mut(|chunk| {
                    let got = scm::receive(raw, chunk, fds)?;
                    // Out of descriptors (EMFILE): the kernel dropped one,
                    // and the Register it came with will be refused.
                    *dropped |= got.truncated;
                    decoder.extend(&chunk[..got.bytes]);
                    Ok(got.bytes)
                })
            });
            match result {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(Fault::Gone(e)),
            }
        }
    }

    /// Logs why the session ends and, for a protocol fault, tells the peer.
    async fn close_with(&mut self, fault: Fault) {
        match fault {
            Fault::Gone(e) => tracing::debug!(session = self.id, "session ends: {e}"),
            Fault::Protocol(error, why) => {
                tracing::warn!(
                    session = self.id,
                    error = error.name(),
                    "closing session: {why}"
                );
                let _ = self.reply(0, error, None).await;
            }
        }
    }
}

/// Writes all of `bytes`, waiting for room as needed.
pub(crate) async fn write_all(stream: &UnixStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn request_name(request: &Request) -> &'static str {
    match request {
        Request::Hello(_) => "Hello",
        Request::ServerGetInfo(_) => "ServerGetInfo",
        Request::InterfaceEnum(_) => "InterfaceEnum",
        Request::InterfaceGetInfo(_) => "InterfaceGetInfo",
        Request::Register(_) => "Register",
        Request::Deregister(_) => "Deregister",
        Request::RouterControl(_) => "RouterControl",
        Request::ListSessions(_) => "ListSessions",
        Request::Subscribe(_) => "Subscribe",
        Request::Unsubscribe(_) => "Unsubscribe",
    }
}

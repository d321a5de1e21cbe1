//! One client session, from handshake to close, over any transport.
//!
//! A session reads messages, hands each request to the router (which
//! checks it against the request table and the peer's role) and writes the
//! reply; between requests it flushes its outbox. It handles one request
//! at a time, so replies keep request order and a client that stops
//! reading stalls only itself. Any protocol fault (bytes that are not a
//! frame, a frame over the limit, a request before Hello, a descriptor
//! without a Register) gets an error reply where one can be sent, and then
//! the session is closed; the service carries on. When the service shuts
//! down, the session writes what its outbox holds (the end of its streams)
//! and closes.

use crate::clients::access::Policy;
use crate::clients::admission::{Admission, Ticket};
use crate::clients::awake::Awake;
use crate::clients::transport::{Fault, Transport};
use crate::core::limits::Limits;
use crate::core::notify::Attachment;
use crate::core::outbox::Outbox;
use crate::core::peer::Peer;
use crate::ops::metrics::Counters;
use crate::router::{Answer, Command};
use ddm_proto::frame::{encode_frame, PROTOCOL_VERSION};
use ddm_proto::message::*;
use ddm_proto::snapshot_parts;
use ddm_proto::WinError;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// What every session, of every listener, shares.
pub struct SessionContext {
    pub policy: Policy,
    pub limits: Limits,
    pub admission: Arc<Admission>,
    pub router: mpsc::UnboundedSender<Command>,
    /// Fires when the service shuts down.
    pub shutdown: CancellationToken,
    /// Protocol faults and refusals, for the metrics.
    pub counters: Arc<Counters>,
    /// Keeps the service awake a while after each answer.
    pub awake: Arc<Awake>,
    last_id: AtomicU64,
}

impl SessionContext {
    pub fn new(
        policy: Policy,
        limits: Limits,
        router: mpsc::UnboundedSender<Command>,
        counters: Arc<Counters>,
    ) -> Self {
        SessionContext {
            policy,
            admission: Admission::new(&limits, counters.clone()),
            awake: Arc::new(Awake::new(limits.session_spin())),
            limits,
            router,
            shutdown: CancellationToken::new(),
            counters,
            last_id: AtomicU64::new(0),
        }
    }

    /// A session id, unique among all sessions of the service.
    fn new_session_id(&self) -> u64 {
        self.last_id.fetch_add(1, Ordering::Relaxed) + 1
    }
}

struct Session<T> {
    id: u64,
    peer: Peer,
    transport: T,
    context: Arc<SessionContext>,
    /// What the router sends unasked: typed events, signals, and replies
    /// that came later (a synchronous Connect, a reload, a journal read).
    outbox: Arc<Outbox>,
}

/// Runs a session to its end. `ticket` is its place among the admitted.
pub async fn run<T: Transport>(
    transport: T,
    peer: Peer,
    mut ticket: Ticket,
    context: Arc<SessionContext>,
) {
    let id = context.new_session_id();
    let mut session = Session {
        id,
        peer,
        transport,
        outbox: Arc::new(Outbox::new(context.limits.stream_backlog)),
        context,
    };
    let outcome = match session.handshake().await {
        Ok(()) => {
            ticket.established();
            tracing::info!(
                session = id,
                pid = session.peer.pid(),
                uid = session.peer.uid(),
                role = session.peer.role.name(),
                "session opened"
            );
            session.serve().await
        }
        Err(fault) => Err(fault),
    };
    if let Err(fault) = outcome {
        session.close_with(fault).await;
    }
    let _ = session.context.router.send(Command::Close(id));
    tracing::info!(session = id, "session closed");
}

impl<T: Transport> Session<T> {
    async fn handshake(&mut self) -> Result<(), Fault> {
        let timeout = self.context.limits.handshake_timeout();
        let (hello, _) = match tokio::time::timeout(timeout, self.transport.read()).await {
            Ok(message) => message?,
            Err(_) => {
                return Err(Fault::Gone(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "handshake not finished in time",
                )))
            }
        };
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
        if self.peer.role == Role::None {
            tracing::info!(
                uid = self.peer.uid(),
                pid = self.peer.pid(),
                "refused: peer has no role"
            );
            return Err(Fault::Protocol(
                WinError::ERROR_ACCESS_DENIED,
                "peer has no role".into(),
            ));
        }
        self.context
            .router
            .send(Command::Open {
                session: self.id,
                peer: self.peer.clone(),
                outbox: self.outbox.clone(),
            })
            .map_err(|_| io::Error::other("router has stopped"))?;
        let welcome = Welcome {
            version: PROTOCOL_VERSION,
            role: self.peer.role as i32,
            session: self.id,
            max_frame: self.context.limits.max_frame_bytes as u32,
        };
        self.reply(
            hello.id,
            WinError::NO_ERROR,
            Some(ReplyResult::Welcome(welcome)),
        )
        .await
    }

    /// Answers requests and flushes pushes until the peer leaves or the
    /// service shuts down. After each answer the service stays awake for
    /// the next request a while (see `awake`).
    async fn serve(&mut self) -> Result<(), Fault> {
        let outbox = self.outbox.clone();
        let shutdown = self.context.shutdown.clone();
        loop {
            tokio::select! {
                message = self.transport.read() => {
                    let (message, attachment) = message?;
                    self.context.awake.received();
                    let handled = self.handle(message, attachment).await;
                    self.context.awake.answered(self.id, T::DELIVERED_AT_ONCE);
                    handled?;
                }
                () = outbox.wait() => {}
                () = shutdown.cancelled() => return self.flush_outbox().await,
            }
            // Also after a request: a Subscribe's events follow its snapshot.
            self.flush_outbox().await?;
        }
    }

    async fn handle(
        &mut self,
        message: ClientMessage,
        attachment: Attachment,
    ) -> Result<(), Fault> {
        let request = match message.body {
            Some(Request::Hello(_)) | None => {
                return Err(Fault::Protocol(
                    WinError::RPC_S_PROTOCOL_ERROR,
                    "Hello after the handshake, or an empty request".into(),
                ))
            }
            Some(request) => request,
        };
        let (reply_to, reply) = oneshot::channel();
        let call = Command::Call {
            session: self.id,
            id: message.id,
            request,
            attachment,
            reply: reply_to,
        };
        let gone = |_| Fault::Gone(io::Error::other("router has stopped"));
        self.context.router.send(call).map_err(|_| gone(()))?;
        match reply.await.map_err(|_| gone(()))? {
            Answer::Now(reply) => self.write(Push::Reply(reply)).await,
            // Its reply comes through the outbox.
            Answer::Later => Ok(()),
        }
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
        let max = self.context.limits.max_frame_bytes;
        let message = ServiceMessage { body: Some(push) };
        let frame = match encode_frame(&message, max) {
            Ok(frame) => frame,
            Err(e) => {
                // Only a reply can grow past the limit. A stream's snapshot
                // of a large table goes in parts; anything else is answered
                // with the error that it did not fit.
                let mut id = 0;
                if let Some(Push::Reply(reply)) = message.body {
                    id = reply.id;
                    if let Some(parts) = snapshot_parts::split(reply, max) {
                        for part in parts {
                            let part = ServiceMessage {
                                body: Some(Push::Reply(part)),
                            };
                            let frame = encode_frame(&part, max).expect("a part fits in a frame");
                            self.transport.write(&frame).await?;
                        }
                        return Ok(());
                    }
                }
                tracing::warn!(session = self.id, "reply not sent: {e}");
                refusal_frame(id, WinError::ERROR_NOT_ENOUGH_MEMORY)
            }
        };
        self.transport.write(&frame).await?;
        Ok(())
    }

    /// Logs why the session ends and, unless the peer went, tells it (an
    /// unasked reply with id 0, before the close).
    async fn close_with(&mut self, fault: Fault) {
        match fault {
            Fault::Gone(e) => tracing::debug!(session = self.id, "session ends: {e}"),
            Fault::Ended(error, why) => {
                tracing::info!(
                    session = self.id,
                    error = error.name(),
                    "ending session: {why}"
                );
                let _ = self.reply(0, error, None).await;
            }
            Fault::Protocol(error, why) => {
                self.context
                    .counters
                    .protocol_faults
                    .fetch_add(1, Ordering::Relaxed);
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

/// A reply frame that carries only an error.
pub fn refusal_frame(id: u64, error: WinError) -> Vec<u8> {
    let refusal = ServiceMessage {
        body: Some(Push::Reply(Reply {
            id,
            error: error.0,
            result: None,
        })),
    };
    encode_frame(&refusal, usize::MAX).expect("an error reply always fits")
}

#[cfg(test)]
mod tests {
    //! A session over an in-memory transport that carries no descriptors,
    //! as a remote one will: its registrations are signaled by frames.

    use super::*;
    use crate::core::peer::test_peer;
    use crate::core::table::{InterfaceTable, LinkFilter};
    use crate::links::LinkEvent;
    use crate::links::LinkState;
    use crate::router::Router;
    use ddm_proto::frame::FrameDecoder;
    use std::time::Duration;

    struct MemoryTransport {
        incoming: mpsc::UnboundedReceiver<ClientMessage>,
        outgoing: mpsc::UnboundedSender<ServiceMessage>,
    }

    impl Transport for MemoryTransport {
        async fn read(&mut self) -> Result<(ClientMessage, Attachment), Fault> {
            match self.incoming.recv().await {
                Some(message) => Ok((message, Attachment::NotCarried)),
                None => Err(Fault::Gone(io::ErrorKind::UnexpectedEof.into())),
            }
        }

        async fn write(&mut self, frame: &[u8]) -> io::Result<()> {
            let mut decoder = FrameDecoder::new(usize::MAX);
            decoder.extend(frame);
            let message = decoder.next_message().map_err(io::Error::other)?;
            let _ = self.outgoing.send(message.expect("one whole frame"));
            Ok(())
        }
    }

    fn request(id: u64, request: Request) -> ClientMessage {
        ClientMessage {
            id,
            body: Some(request),
        }
    }

    async fn next(pushes: &mut mpsc::UnboundedReceiver<ServiceMessage>) -> Push {
        tokio::time::timeout(Duration::from_secs(5), pushes.recv())
            .await
            .expect("a frame in time")
            .and_then(|m| m.body)
            .expect("a frame")
    }

    #[tokio::test(flavor = "current_thread")]
    async fn registrations_without_descriptors_are_signaled_on_the_session() {
        let limits = Limits::default();
        let (commands, command_receiver) = mpsc::unbounded_channel();
        let (links, link_receiver) = mpsc::unbounded_channel();
        let table = InterfaceTable::new(LinkFilter::new(&["*".into()], &[]));
        let router = Router::new(table, limits.clone(), oneshot::channel().0);
        tokio::spawn(router.run(command_receiver, link_receiver));
        let context = Arc::new(SessionContext::new(
            Policy::resolve(&crate::clients::access::AccessConfig::default()),
            limits,
            commands,
            Arc::default(),
        ));
        let (to_session, incoming) = mpsc::unbounded_channel();
        let (outgoing, mut pushes) = mpsc::unbounded_channel();
        let peer = test_peer(Role::Monitor);
        let ticket = context
            .admission
            .admit(crate::clients::admission::Who::User(1000), Role::Monitor)
            .unwrap();
        let transport = MemoryTransport { incoming, outgoing };
        tokio::spawn(run(transport, peer, ticket, context.clone()));

        to_session
            .send(request(1, Request::Hello(Hello { version: 1 })))
            .unwrap();
        assert!(matches!(next(&mut pushes).await, Push::Reply(r) if r.error == 0));
        to_session
            .send(request(2, Request::Register(Register { event: 42 })))
            .unwrap();
        assert!(matches!(next(&mut pushes).await, Push::Reply(r) if r.id == 2 && r.error == 0));

        let up = LinkState {
            index: 2,
            name: "eth0".into(),
            flags: (libc::IFF_UP | libc::IFF_RUNNING) as u32,
            operstate: 6,
            stats: None,
        };
        links.send(LinkEvent::Changed(up)).unwrap();
        assert_eq!(next(&mut pushes).await, Push::Signal(Signal { event: 42 }));

        to_session
            .send(request(3, Request::Deregister(Deregister { event: 42 })))
            .unwrap();
        assert!(matches!(next(&mut pushes).await, Push::Reply(r) if r.id == 3 && r.error == 0));
        links.send(LinkEvent::Deleted(2)).unwrap();
        to_session
            .send(request(
                4,
                Request::ServerGetInfo(ServerGetInfo { level: 0 }),
            ))
            .unwrap();
        assert!(
            matches!(next(&mut pushes).await, Push::Reply(r) if r.id == 4),
            "no signal after Deregister"
        );
    }
}

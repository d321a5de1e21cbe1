//! Transports: how a session's frames travel, apart from what they say.
//!
//! A transport turns a byte stream into whole client messages and writes
//! the service's frames back. It may also carry descriptors (the Unix
//! socket does, for the eventfd of a Register); what came with a message is
//! its [`Attachment`](crate::core::notify::Attachment). The session speaks the protocol over any transport,
//! and knows its peer only as a [`Peer`](crate::core::peer::Peer).

mod tls;
mod unix;

pub use tls::TlsTransport;
pub use unix::{send_now, UnixTransport};

use crate::core::notify::Attachment;
use ddm_proto::message::ClientMessage;
use ddm_proto::WinError;
use std::future::Future;
use std::io;

/// Why a transport could not deliver the next message.
#[derive(Debug)]
pub enum Fault {
    /// The peer closed or the connection failed: nothing to answer.
    Gone(io::Error),
    /// A protocol fault: answer with this error, then close.
    Protocol(WinError, String),
    /// The service ends the session (a reload no longer accepts its
    /// certificate): tell the peer this error, then close.
    Ended(WinError, String),
}

impl From<io::Error> for Fault {
    fn from(e: io::Error) -> Self {
        Fault::Gone(e)
    }
}

/// The next whole message in `decoder`, if one is in; bytes that are not
/// a frame are a protocol fault.
pub(crate) fn next_message(
    decoder: &mut ddm_proto::frame::FrameDecoder,
) -> Result<Option<ClientMessage>, Fault> {
    decoder
        .next_message::<ClientMessage>()
        .map_err(|e| Fault::Protocol(WinError::RPC_S_PROTOCOL_ERROR, e.to_string()))
}

/// Whether `message` comes with an event of the client's (see
/// `Request::event_carried`): its descriptor locally, a Signal remotely.
pub(crate) fn carries_event(message: &ClientMessage) -> bool {
    message
        .body
        .as_ref()
        .is_some_and(|request| request.event_carried().is_some())
}

/// A session's connection to its peer.
pub trait Transport: Send {
    /// Whether a client's next request is in the socket as soon as the
    /// client has written it (a Unix socket), so that giving the CPU up
    /// after an answer lets it come (see `awake`). Over TCP the kernel may
    /// deliver it later, and the service would only have waited.
    const DELIVERED_AT_ONCE: bool = false;

    /// The next whole message, and what came with it.
    fn read(&mut self) -> impl Future<Output = Result<(ClientMessage, Attachment), Fault>> + Send;

    /// Writes one whole frame.
    fn write(&mut self, frame: &[u8]) -> impl Future<Output = io::Result<()>> + Send;
}

//! The remote transport: frames over TLS 1.3. No descriptors travel: a
//! Register (or a Connect with an event) is signaled by a frame on the
//! session. A session can be told to end (its certificate was revoked),
//! and a write to a client that does not read fails after a time limit.

use super::{Fault, Transport};
use crate::core::notify::Attachment;
use ddm_proto::frame::FrameDecoder;
use ddm_proto::message::ClientMessage;
use ddm_proto::WinError;
use std::io;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

const READ_CHUNK: usize = 16 * 1024;

pub struct TlsTransport {
    stream: TlsStream<TcpStream>,
    decoder: FrameDecoder,
    chunk: Box<[u8]>,
    /// Cancelled when the session must end (a reload revoked its
    /// certificate).
    ended: CancellationToken,
    write_timeout: Duration,
}

impl TlsTransport {
    pub fn new(
        stream: TlsStream<TcpStream>,
        max_frame: usize,
        ended: CancellationToken,
        write_timeout: Duration,
    ) -> Self {
        TlsTransport {
            stream,
            decoder: FrameDecoder::new(max_frame),
            chunk: vec![0; READ_CHUNK].into_boxed_slice(),
            ended,
            write_timeout,
        }
    }
}

impl Transport for TlsTransport {
    async fn read(&mut self) -> Result<(ClientMessage, Attachment), Fault> {
        loop {
            if let Some(message) = super::next_message(&mut self.decoder)? {
                let carries_event = super::carries_event(&message);
                let attachment = if carries_event {
                    Attachment::NotCarried
                } else {
                    Attachment::None
                };
                return Ok((message, attachment));
            }
            let read = tokio::select! {
                read = self.stream.read(&mut self.chunk) => read?,
                () = self.ended.cancelled() => {
                    return Err(Fault::Ended(
                        WinError::ERROR_ACCESS_DENIED,
                        "its certificate is no longer accepted".into(),
                    ));
                }
            };
            if read == 0 {
                return Err(Fault::Gone(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "peer closed",
                )));
            }
            self.decoder.extend(&self.chunk[..read]);
        }
    }

    async fn write(&mut self, frame: &[u8]) -> io::Result<()> {
        let write = async {
            self.stream.write_all(frame).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(self.write_timeout, write).await {
            Ok(written) => written,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client does not read",
            )),
        }
    }
}

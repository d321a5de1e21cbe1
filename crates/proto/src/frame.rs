//! Framing: a 4-byte big-endian length, then that many bytes of one message.
//!
//! Both sides enforce a maximum frame size before they buffer a byte of the
//! body, so a peer cannot make the other allocate more than the limit.
//! [`FrameDecoder`] is fed whatever the socket produced and yields whole
//! messages; it never reads a socket itself, which keeps it testable and
//! fuzzable.

use prost::Message;

/// The protocol version the Hello carries.
pub const PROTOCOL_VERSION: u32 = 1;

/// The protocol's ALPN id over TLS: a remote client offers it, and the
/// service refuses, in the handshake, a client that does not (another
/// protocol's client, pointed at the wrong port).
pub const ALPN: &[u8] = b"ddm/1";

/// Default upper bound on a frame's body, in bytes.
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;

const HEADER_LEN: usize = 4;

/// Why a byte stream could not be turned into messages.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("malformed message: {0}")]
    Malformed(#[from] prost::DecodeError),
}

/// Encodes `message` as one frame, refusing one larger than `max`.
pub fn encode_frame<M: Message>(message: &M, max: usize) -> Result<Vec<u8>, FrameError> {
    let len = message.encoded_len();
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    let mut out = Vec::with_capacity(HEADER_LEN + len);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    message
        .encode(&mut out)
        .expect("a Vec grows to fit any message");
    Ok(out)
}

/// Accumulates stream bytes and splits them into messages.
#[derive(Debug)]
pub struct FrameDecoder {
    buffer: Vec<u8>,
    consumed: usize,
    max: usize,
}

impl FrameDecoder {
    pub fn new(max: usize) -> Self {
        FrameDecoder {
            buffer: Vec::new(),
            consumed: 0,
            max,
        }
    }

    /// Appends bytes read from the stream.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.consumed > 0 {
            self.buffer.drain(..self.consumed);
            self.consumed = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole message, `Ok(None)` when more bytes are needed.
    pub fn next_message<M: Message + Default>(&mut self) -> Result<Option<M>, FrameError> {
        let pending = &self.buffer[self.consumed..];
        let Some(header) = pending.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(*header) as usize;
        if len > self.max {
            return Err(FrameError::TooLarge { len, max: self.max });
        }
        let Some(body) = pending.get(HEADER_LEN..HEADER_LEN + len) else {
            return Ok(None);
        };
        let message = M::decode(body)?;
        self.consumed += HEADER_LEN + len;
        Ok(Some(message))
    }

    /// True when no partial frame is buffered: a stream may end here.
    pub fn is_at_boundary(&self) -> bool {
        self.consumed == self.buffer.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{ClientMessage, Hello, Request};

    fn hello(id: u64) -> ClientMessage {
        ClientMessage {
            id,
            body: Some(Request::Hello(Hello { version: 1 })),
        }
    }

    #[test]
    fn round_trip_byte_by_byte() {
        let mut stream = encode_frame(&hello(7), DEFAULT_MAX_FRAME).unwrap();
        stream.extend(encode_frame(&hello(8), DEFAULT_MAX_FRAME).unwrap());
        let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME);
        let mut got = Vec::new();
        for byte in stream {
            decoder.extend(&[byte]);
            while let Some(m) = decoder.next_message::<ClientMessage>().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got, vec![hello(7), hello(8)]);
        assert!(decoder.is_at_boundary());
    }

    #[test]
    fn oversized_header_is_refused_before_the_body_arrives() {
        let mut decoder = FrameDecoder::new(16);
        decoder.extend(&17u32.to_be_bytes());
        assert_eq!(
            decoder.next_message::<ClientMessage>(),
            Err(FrameError::TooLarge { len: 17, max: 16 })
        );
    }

    #[test]
    fn encoder_refuses_what_the_decoder_would() {
        let big = crate::message::Interface {
            name: "x".repeat(100),
            ..Default::default()
        };
        assert!(matches!(
            encode_frame(&big, 50),
            Err(FrameError::TooLarge { max: 50, .. })
        ));
    }

    #[test]
    fn cut_short_frame_is_not_at_boundary() {
        let frame = encode_frame(&hello(1), DEFAULT_MAX_FRAME).unwrap();
        let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME);
        decoder.extend(&frame[..frame.len() - 1]);
        assert_eq!(decoder.next_message::<ClientMessage>(), Ok(None));
        assert!(!decoder.is_at_boundary());
    }

    #[test]
    fn garbage_is_malformed() {
        let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME);
        decoder.extend(&[0, 0, 0, 3, 0xff, 0xff, 0xff]);
        assert!(matches!(
            decoder.next_message::<ClientMessage>(),
            Err(FrameError::Malformed(_))
        ));
    }
}

//! Everything between a client and the router: the listeners (the Unix
//! socket, the TLS 1.3 endpoint), the transports that carry frames (and
//! descriptors), who the peer is and what role it gets, admission, and the
//! session that speaks the protocol.

pub mod access;
pub mod admission;
pub mod awake;
pub mod listen;
pub mod remote;
pub mod session;
pub mod transport;

//! The router's state and its vocabulary, below everything that acts on
//! it: the interface table, registrations and how they are signaled, the
//! sessions' outboxes, who a peer is.

pub mod limits;
pub mod notify;
pub mod outbox;
pub mod outcome;
pub mod peer;
pub mod signals;
pub mod table;

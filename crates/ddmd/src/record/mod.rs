//! What the router hands on after it commits, kept and sent away beside
//! it: the journal (SQLite, a writer thread of its own) and its export to
//! NATS JetStream.

pub mod export;
pub mod journal;

//! What the router hands on after it commits, kept and sent away beside
//! it: the journal (SQLite, a writer thread of its own), its export to
//! NATS JetStream, and the log line of each change.

pub mod change_log;
pub mod export;
pub mod journal;

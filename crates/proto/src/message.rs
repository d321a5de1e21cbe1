//! The messages of `proto/ddm.proto`, as Rust types.
//!
//! Generated at build time from the schema (see `build.rs`), so the two
//! cannot disagree. The oneofs get short names here: a client sends a
//! [`Request`], the service sends a [`Push`], and a reply carries a
//! [`ReplyResult`].

include!(concat!(env!("OUT_DIR"), "/ddm.v1.rs"));

pub use client_message::Body as Request;
pub use reply::Result as ReplyResult;
pub use service_message::Body as Push;

impl Role {
    /// Lower-case name, as the CLI and the configuration spell it.
    pub fn name(self) -> &'static str {
        match self {
            Role::None => "none",
            Role::Status => "status",
            Role::Monitor => "monitor",
            Role::Admin => "admin",
        }
    }
}

impl DialMode {
    /// Lower-case name, as the configuration spells it ("" for a kernel
    /// link, which ddm does not dial).
    pub fn name(self) -> &'static str {
        match self {
            DialMode::DialNone => "",
            DialMode::DialManual => "manual",
            DialMode::DialDemand => "demand",
            DialMode::DialPersistent => "persistent",
        }
    }
}

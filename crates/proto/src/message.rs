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

impl Request {
    /// The client's event this request comes with, if any: a Register's,
    /// or a Connect's when it names one. Locally its eventfd travels with
    /// the frame (SCM_RIGHTS); remotely the service signals it with a
    /// Signal frame. The one place that says which requests carry one.
    pub fn event_carried(&self) -> Option<u64> {
        match self {
            Request::Register(register) => Some(register.event),
            Request::InterfaceConnect(connect) if connect.event != 0 => Some(connect.event),
            _ => None,
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_and_connects_with_an_event_carry_it() {
        assert_eq!(
            Request::Register(Register { event: 7 }).event_carried(),
            Some(7)
        );
        let connect = |event| {
            Request::InterfaceConnect(InterfaceConnect {
                handle: 1,
                event,
                synchronous: false,
            })
        };
        assert_eq!(connect(9).event_carried(), Some(9));
        assert_eq!(connect(0).event_carried(), None);
        assert_eq!(
            Request::Deregister(Deregister { event: 7 }).event_carried(),
            None
        );
    }
}

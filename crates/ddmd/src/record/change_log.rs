//! The log line of each committed change (target `ddmd::router`, info).
//!
//! With the journal on, its writer logs each change as it writes the
//! batch, not the router: formatting a line and waking the log's thread
//! cost the router's thread microseconds right after it signaled the
//! clients, and the woken log thread then competed for a CPU with the
//! clients it had just woken. With the journal off the router logs itself.

use ddm_proto::message::ConnectionEvent;
use ddm_proto::model::ConnectionState;

/// A connection event (a transition), committed for `reason`.
pub fn transition(event: &ConnectionEvent, reason: &str) {
    let from = ConnectionState::from_u32(event.from);
    let to = ConnectionState::from_u32(event.to);
    tracing::info!(target: "ddmd::router", seq = event.seq, interface = ?event.name, from = from.name(), to = to.name(), last_error = event.last_error, reason, "connection event");
}

/// A group's switch (the event carries it).
pub fn switch(event: &ConnectionEvent) {
    if let Some(switch) = &event.group_switch {
        tracing::info!(target: "ddmd::router", seq = event.seq, group = ?event.name, from = switch.from, to = switch.to, via_trigger = switch.via_trigger, reason = switch.reason, "group switch");
    }
}

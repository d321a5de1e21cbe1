//! MprAdminDeregisterConnectionNotification. The registration's
//! descriptor is closed (or its queued signal withdrawn) before the reply
//! goes out, and the router commits nothing in between: once the caller
//! has NO_ERROR, nothing signals the event for this registration (G2).

use super::{Call, Handler, Outcome, Spec};
use crate::router::state::State;
use ddm_proto::message::{Deregister, Role};
use ddm_proto::WinError;

impl Handler for Deregister {
    const SPEC: Spec = Spec {
        name: "Deregister",
        role: Role::Monitor,
        needs_ddm: true,
    };

    fn handle(self, state: &mut State, call: Call) -> Outcome {
        let removed = state
            .sessions
            .get_mut(&call.session)
            .is_some_and(|s| s.registrations.remove(self.event, &s.outbox));
        if removed {
            Outcome::done()
        } else {
            WinError::ERROR_INVALID_PARAMETER.into()
        }
    }
}

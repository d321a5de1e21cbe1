//! Closes one typed stream; the session's other streams go on. With the
//! last one gone, what is queued for them is dropped.

use super::{Call, Handler, Outcome, Spec};
use crate::router::state::State;
use ddm_proto::message::{Role, Unsubscribe};
use ddm_proto::WinError;

impl Handler for Unsubscribe {
    const SPEC: Spec = Spec {
        name: "Unsubscribe",
        role: Role::Monitor,
        needs_ddm: true,
    };

    fn handle(self, state: &mut State, call: Call) -> Outcome {
        let backlog = state.limits.stream_backlog;
        let Some(session) = state.sessions.get_mut(&call.session) else {
            return WinError::RPC_S_PROTOCOL_ERROR.into();
        };
        if !session.streams.remove(&self.stream) {
            return WinError::ERROR_INVALID_PARAMETER.into();
        }
        if session.streams.is_empty() {
            session.outbox.restart(backlog);
        }
        Outcome::done()
    }
}

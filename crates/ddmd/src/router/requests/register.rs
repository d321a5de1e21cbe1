//! MprAdminRegisterConnectionNotification. Locally the event's eventfd
//! came with the request (checked by the transport) and becomes the
//! registration's target; over a transport without descriptors the session
//! is the target.

use super::{Call, Handler, Outcome, Spec};
use crate::router::state::State;
use crate::core::notify::Attachment;
use ddm_proto::message::{Register, Role};
use ddm_proto::WinError;

impl Handler for Register {
    const SPEC: Spec = Spec {
        name: "Register",
        role: Role::Monitor,
        needs_ddm: true,
    };

    fn handle(self, state: &mut State, call: Call) -> Outcome {
        if matches!(call.attachment, Attachment::Dropped) {
            tracing::warn!(
                session = call.session,
                "refused a registration: the service is out of descriptors"
            );
        }
        let target = match call.attachment.into_target() {
            Ok(target) => target,
            Err(e) => return e.into(),
        };
        let limit = state.limits.max_registrations_per_session;
        match state.sessions.get_mut(&call.session) {
            Some(session) => session
                .registrations
                .insert(self.event, target, limit)
                .into(),
            None => WinError::RPC_S_PROTOCOL_ERROR.into(),
        }
    }
}

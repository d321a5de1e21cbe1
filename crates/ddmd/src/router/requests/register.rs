//! MprAdminRegisterConnectionNotification. Locally the event's eventfd
//! came with the request (checked by the transport) and becomes the
//! registration's target; over a transport without descriptors the session
//! is the target.

use super::{Call, Handler, Outcome, Spec};
use crate::core::notify::Target;
use crate::router::Router;
use crate::clients::transport::Attachment;
use ddm_proto::message::{Register, Role};
use ddm_proto::WinError;

impl Handler for Register {
    const SPEC: Spec = Spec {
        name: "Register",
        role: Role::Monitor,
        needs_ddm: true,
    };

    fn handle(self, router: &mut Router, call: Call) -> Outcome {
        let target = match call.attachment {
            Attachment::Eventfd(fd) => Target::Eventfd(fd),
            Attachment::NotCarried => Target::Session,
            Attachment::None | Attachment::NotAnEventfd => {
                return WinError::ERROR_INVALID_PARAMETER.into()
            }
            Attachment::Dropped => {
                tracing::warn!(
                    session = call.session,
                    "refused a registration: the service is out of descriptors"
                );
                return WinError::ERROR_NOT_ENOUGH_QUOTA.into();
            }
        };
        let limit = router.limits.max_registrations_per_session;
        match router.sessions.get_mut(&call.session) {
            Some(session) => session
                .registrations
                .insert(self.event, target, limit)
                .into(),
            None => WinError::RPC_S_PROTOCOL_ERROR.into(),
        }
    }
}

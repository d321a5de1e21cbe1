//! MprAdminInterfaceGetHandle: an interface's handle by its name.

use super::{Call, Handler, Outcome, Spec};
use crate::router::state::State;
use ddm_proto::message::{InterfaceGetHandle, InterfaceHandle, ReplyResult, Role};
use ddm_proto::WinError;

impl Handler for InterfaceGetHandle {
    const SPEC: Spec = Spec {
        name: "InterfaceGetHandle",
        role: Role::Monitor,
        needs_ddm: true,
    };

    fn handle(self, state: &mut State, _: Call) -> Outcome {
        match state.handle_of(&self.name) {
            Some(handle) => Outcome::ok(ReplyResult::InterfaceHandle(InterfaceHandle { handle })),
            None => WinError::ERROR_NO_SUCH_INTERFACE.into(),
        }
    }
}

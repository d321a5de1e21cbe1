//! MprAdminInterfaceGetInfo, level 0 (MPR_INTERFACE_0), by handle.

use super::{Call, Handler, Outcome, Spec};
use crate::router::state::State;
use ddm_proto::message::{InterfaceGetInfo, ReplyResult, Role};
use ddm_proto::WinError;

impl Handler for InterfaceGetInfo {
    const SPEC: Spec = Spec {
        name: "InterfaceGetInfo",
        role: Role::Monitor,
        needs_ddm: true,
    };

    fn handle(self, state: &mut State, _: Call) -> Outcome {
        if self.level != 0 {
            return WinError::ERROR_NOT_SUPPORTED.into();
        }
        match state.interface(self.handle) {
            Some(interface) => Outcome::ok(ReplyResult::Interface(interface)),
            None => WinError::ERROR_INVALID_HANDLE.into(),
        }
    }
}

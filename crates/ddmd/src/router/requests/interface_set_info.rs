//! MprAdminInterfaceSetInfo, level 0: applies fEnabled to a declared
//! interface (disabling a connected one hangs it up). Other levels:
//! ERROR_NOT_SUPPORTED; a kernel link's state is the kernel's: setting it
//! to what it is is NO_ERROR, anything else ERROR_NOT_SUPPORTED.

use super::{Call, Handler, Outcome, Spec};
use crate::router::state::State;
use ddm_proto::message::{InterfaceSetInfo, Role};
use ddm_proto::WinError;

impl Handler for InterfaceSetInfo {
    const SPEC: Spec = Spec {
        name: "InterfaceSetInfo",
        role: Role::Admin,
        // Enabling or disabling is a setting: it may change while the DDM
        // is stopped (which dials nothing either way).
        needs_ddm: false,
    };

    fn handle(self, state: &mut State, _: Call) -> Outcome {
        if self.level != 0 {
            return WinError::ERROR_NOT_SUPPORTED.into();
        }
        if !state.dialed.owns(self.handle) {
            return match state.table.get(self.handle) {
                Some(i) if i.enabled == self.enabled => Outcome::done(),
                Some(_) => WinError::ERROR_NOT_SUPPORTED.into(),
                None => WinError::ERROR_INVALID_HANDLE.into(),
            };
        }
        let transitions = state.dialed.set_enabled(self.handle, self.enabled);
        state.commit_all(transitions);
        Outcome::done()
    }
}

//! MprAdminInterfaceDisconnect: hangs up a declared interface, or cancels
//! its attempt; its last error becomes ERROR_INTERFACE_DISCONNECTED. A
//! kernel link is not hung up by ddm: ERROR_NOT_SUPPORTED when connected,
//! ERROR_INTERFACE_NOT_CONNECTED when not.

use super::{Call, Handler, Outcome, Spec};
use crate::router::state::State;
use ddm_proto::message::{InterfaceDisconnect, Role};
use ddm_proto::model::ConnectionState;
use ddm_proto::WinError;

impl Handler for InterfaceDisconnect {
    const SPEC: Spec = Spec {
        name: "InterfaceDisconnect",
        role: Role::Admin,
        needs_ddm: true,
    };

    fn handle(self, state: &mut State, _: Call) -> Outcome {
        if !state.dialed.owns(self.handle) {
            return match state.table.get(self.handle) {
                Some(i) if i.connection_state == ConnectionState::Connected as u32 => {
                    WinError::ERROR_NOT_SUPPORTED.into()
                }
                Some(_) => WinError::ERROR_INTERFACE_NOT_CONNECTED.into(),
                None => WinError::ERROR_INVALID_HANDLE.into(),
            };
        }
        let (result, transitions) = state.dialed.disconnect(self.handle);
        state.commit_all(transitions);
        result.into()
    }
}

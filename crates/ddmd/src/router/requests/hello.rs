//! Hello opens a session; the session answers it during the handshake.
//! Once the session is open, another is a protocol fault.

use super::{Call, Handler, Outcome, Spec};
use crate::router::state::State;
use ddm_proto::message::{Hello, Role};
use ddm_proto::WinError;

impl Handler for Hello {
    const SPEC: Spec = Spec {
        name: "Hello",
        role: Role::Status,
        needs_ddm: false,
    };

    fn handle(self, _: &mut State, _: Call) -> Outcome {
        WinError::RPC_S_PROTOCOL_ERROR.into()
    }
}

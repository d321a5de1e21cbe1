//! `ddm health`: the path health of the probed interfaces, or of one, with
//! each target's figures. Beyond mprapi.h.

use super::{Call, Handler, Outcome, Spec};
use crate::router::state::State;
use ddm_proto::message::{HealthGet, HealthReport, ReplyResult, Role};
use ddm_proto::WinError;

impl Handler for HealthGet {
    const SPEC: Spec = Spec {
        name: "HealthGet",
        role: Role::Monitor,
        needs_ddm: false,
    };

    fn handle(self, state: &mut State, _: Call) -> Outcome {
        let interfaces = state.dialed.health(&self.interface);
        if interfaces.is_empty()
            && !self.interface.is_empty()
            && state.dialed.handle_of(&self.interface).is_none()
            && state.table.handle_of(&self.interface).is_none()
        {
            return WinError::ERROR_NO_SUCH_INTERFACE.into();
        }
        Outcome::ok(ReplyResult::Health(HealthReport { interfaces }))
    }
}

//! `ddm router start|stop`: starts or stops the DDM (see
//! `Router::set_running`).

use super::{Call, Handler, Outcome, Spec};
use crate::router::state::State;
use ddm_proto::message::{Role, RouterControl};

impl Handler for RouterControl {
    const SPEC: Spec = Spec {
        name: "RouterControl",
        role: Role::Admin,
        needs_ddm: false,
    };

    fn handle(self, state: &mut State, _: Call) -> Outcome {
        state.set_running(self.run);
        Outcome::done()
    }
}

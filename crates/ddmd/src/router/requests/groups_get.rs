//! `ddm groups`: each group's members with their states and health, which
//! one carries its routes and since when. Beyond mprapi.h.

use super::{Call, Handler, Outcome, Spec};
use crate::router::state::State;
use ddm_proto::message::{GroupList, GroupsGet, ReplyResult, Role};

impl Handler for GroupsGet {
    const SPEC: Spec = Spec {
        name: "GroupsGet",
        role: Role::Monitor,
        needs_ddm: false,
    };

    fn handle(self, state: &mut State, _: Call) -> Outcome {
        let groups = state.dialed.groups();
        Outcome::ok(ReplyResult::Groups(GroupList { groups }))
    }
}

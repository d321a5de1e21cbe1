//! `ddm groups`: each group's members with their states and health, which
//! one carries its routes and since when. Beyond mprapi.h.

use super::{Call, Handler, Outcome, Spec};
use crate::router::state::State;
use ddm_proto::message::{GroupInfo, GroupList, GroupMember, GroupsGet, ReplyResult, Role};
use std::time::UNIX_EPOCH;

impl Handler for GroupsGet {
    const SPEC: Spec = Spec {
        name: "GroupsGet",
        role: Role::Monitor,
        needs_ddm: false,
    };

    fn handle(self, state: &mut State, _: Call) -> Outcome {
        let dialed = &state.dialed;
        let groups = dialed
            .groups()
            .into_iter()
            .map(|g| GroupInfo {
                members: g
                    .members
                    .iter()
                    .map(|name| {
                        let interface = dialed.handle_of(name).and_then(|h| dialed.get(h));
                        GroupMember {
                            name: name.clone(),
                            state: interface.as_ref().map_or(0, |i| i.connection_state),
                            health: interface.map(|i| i.health).unwrap_or_default(),
                            carrying: g.carrier.as_ref() == Some(name),
                        }
                    })
                    .collect(),
                name: g.name,
                routes: g.routes,
                carrier: g.carrier.unwrap_or_default(),
                via_trigger: g.via_trigger,
                since_unix_ns: g
                    .since
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos() as u64),
                switches: g.switches,
                failback_secs: g.failback_secs,
            })
            .collect();
        Outcome::ok(ReplyResult::Groups(GroupList { groups }))
    }
}

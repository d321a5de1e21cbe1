//! `ddm registrations`: every session, who it is, and what it holds.

use super::{Call, Handler, Outcome, Spec};
use crate::router::state::State;
use ddm_proto::message::{ListSessions, ReplyResult, Role, SessionEntry, SessionList};

impl Handler for ListSessions {
    const SPEC: Spec = Spec {
        name: "ListSessions",
        role: Role::Admin,
        needs_ddm: false,
    };

    fn handle(self, state: &mut State, _: Call) -> Outcome {
        let mut sessions: Vec<SessionEntry> = state
            .sessions
            .iter()
            .map(|(&id, s)| SessionEntry {
                session: id,
                pid: s.peer.pid().unwrap_or(0),
                uid: s.peer.uid().unwrap_or(0),
                role: s.peer.role as i32,
                registrations: s.registrations.len() as u32,
                subscribed: !s.streams.is_empty(),
                identity: s.peer.remote().map(|r| r.0.to_owned()).unwrap_or_default(),
                address: s.peer.remote().map(|r| r.1.to_string()).unwrap_or_default(),
            })
            .collect();
        sessions.sort_by_key(|s| s.session);
        Outcome::ok(ReplyResult::Sessions(SessionList { sessions }))
    }
}

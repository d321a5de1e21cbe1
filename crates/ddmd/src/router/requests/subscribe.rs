//! Opens a typed stream: a snapshot at the current sequence number, in the
//! same step as the subscription, so no event falls between the two. A
//! session's streams share its outbox: each event goes out once, and the
//! client hands it to every stream whose snapshot is older. A snapshot
//! too large for a frame is split by the session when it writes it
//! (`ddm_proto::snapshot_parts`).

use super::{Call, Handler, Outcome, Spec};
use crate::router::state::State;
use ddm_proto::message::{ReplyResult, Role, Snapshot, Subscribe};
use ddm_proto::WinError;

impl Handler for Subscribe {
    const SPEC: Spec = Spec {
        name: "Subscribe",
        role: Role::Monitor,
        needs_ddm: true,
    };

    fn handle(self, state: &mut State, call: Call) -> Outcome {
        let (limits, seq) = (&state.limits, state.seq);
        let Some(session) = state.sessions.get_mut(&call.session) else {
            return WinError::RPC_S_PROTOCOL_ERROR.into();
        };
        if session.streams.len() >= limits.max_streams_per_session
            && !session.streams.contains(&self.stream)
        {
            return WinError::ERROR_NOT_ENOUGH_QUOTA.into();
        }
        if session.streams.is_empty() {
            session.outbox.restart(limits.stream_backlog);
        }
        session.streams.insert(self.stream);
        Outcome::ok(ReplyResult::Snapshot(Snapshot {
            seq,
            interfaces: state.interfaces(),
            stream: self.stream,
            epoch: state.epoch,
            more: false,
        }))
    }
}

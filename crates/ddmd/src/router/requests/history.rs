//! `ddm history`: a page of the journal, read off the router.

use super::{Call, Handler, Outcome, Spec};
use crate::record::journal::history;
use crate::router::state::State;
use ddm_proto::message::{History, HistoryPage, ReplyResult, Role};
use ddm_proto::WinError;

impl Handler for History {
    const SPEC: Spec = Spec {
        name: "History",
        role: Role::Monitor,
        needs_ddm: false,
    };

    fn handle(self, state: &mut State, call: Call) -> Outcome {
        let max_frame = state.limits.max_frame_bytes;
        call.read_journal(move |connection| {
            let (entries, more) = history::page(connection, &self, max_frame)?;
            Ok(Outcome {
                error: if more {
                    WinError::ERROR_MORE_DATA
                } else {
                    WinError::NO_ERROR
                },
                ..Outcome::ok(ReplyResult::History(HistoryPage { entries }))
            })
        })
    }
}

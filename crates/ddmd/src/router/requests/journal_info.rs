//! `ddm status`'s journal lines: where it is, how big, what it lost, and
//! how far its export is behind.

use super::{Call, Handler, Outcome, Spec};
use crate::record::journal::store;
use crate::router::state::State;
use ddm_proto::message::{JournalInfo, JournalStatus, ReplyResult, Role};

impl Handler for JournalInfo {
    const SPEC: Spec = Spec {
        name: "JournalInfo",
        role: Role::Monitor,
        needs_ddm: false,
    };

    fn handle(self, _: &mut State, call: Call) -> Outcome {
        let Some(journal) = &call.journal else {
            return Outcome::ok(ReplyResult::Journal(Box::default()));
        };
        let mut status = JournalStatus {
            enabled: true,
            path: journal.path().display().to_string(),
            last_id: journal.last_id(),
            lost: journal.lost(),
            export: call.export.map(|e| e.status(journal.last_id())),
            damaged: journal
                .damaged()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            ..JournalStatus::default()
        };
        call.read_journal(move |connection| {
            status.bytes = store::bytes_used(connection)?;
            status.oldest_unix_ns = store::oldest_time(connection)?.unwrap_or(0);
            Ok(Outcome::ok(ReplyResult::Journal(Box::new(status))))
        })
    }
}

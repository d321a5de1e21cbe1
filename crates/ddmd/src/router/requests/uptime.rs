//! `ddm uptime`: connected time, outages and accounting, from the journal.

use super::{Call, Handler, Outcome, Spec};
use crate::record::journal::uptime;
use ddm_proto::model::now_unix_ns;
use crate::router::state::State;
use ddm_proto::message::{ReplyResult, Role, Uptime, UptimeReport};
use ddm_proto::WinError;
use prost::Message;

/// What a frame holds besides the figures.
const REPLY_OVERHEAD: usize = 256;

impl Handler for Uptime {
    const SPEC: Spec = Spec {
        name: "Uptime",
        role: Role::Monitor,
        needs_ddm: false,
    };

    fn handle(self, state: &mut State, call: Call) -> Outcome {
        let budget = state.limits.max_frame_bytes.saturating_sub(REPLY_OVERHEAD);
        call.read_journal(move |connection| {
            let (since, until, all) = uptime::report(connection, &self, now_unix_ns())?;
            let mut used = 0;
            let mut interfaces = Vec::new();
            let mut more = false;
            for figures in all.into_iter().filter(|f| f.name > self.after_interface) {
                used += figures.encoded_len() + 4;
                if used > budget && !interfaces.is_empty() {
                    more = true;
                    break;
                }
                interfaces.push(figures);
            }
            Ok(Outcome {
                error: if more {
                    WinError::ERROR_MORE_DATA
                } else {
                    WinError::NO_ERROR
                },
                ..Outcome::ok(ReplyResult::Uptime(UptimeReport {
                    since_unix_ns: since,
                    until_unix_ns: until,
                    interfaces,
                }))
            })
        })
    }
}

//! `ddm uptime`: connected time, outages and accounting, from the journal.

use super::{Call, Handler, Outcome, Spec};
use crate::journal::{now_ns, uptime};
use crate::router::Router;
use ddm_proto::message::{ReplyResult, Role, Uptime, UptimeReport};

impl Handler for Uptime {
    const SPEC: Spec = Spec {
        name: "Uptime",
        role: Role::Monitor,
        needs_ddm: false,
    };

    fn handle(self, router: &mut Router, _: Call) -> Outcome {
        super::read_journal(router, move |connection| {
            let (since, until, interfaces) = uptime::report(connection, &self, now_ns())?;
            Ok(Outcome::ok(ReplyResult::Uptime(UptimeReport {
                since_unix_ns: since,
                until_unix_ns: until,
                interfaces,
            })))
        })
    }
}

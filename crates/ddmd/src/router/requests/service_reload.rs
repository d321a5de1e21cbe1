//! `ddm reload`: the configuration file is read again, off the router
//! (by the reloader task), and what changed in its interfaces is applied;
//! the reply comes then. A file that is not valid changes nothing and
//! answers ERROR_BAD_CONFIGURATION with the reason (as `ddm serve
//! --config` gives it) in the reply. A
//! service started without a file has nothing to read: NO_ERROR.

use super::{Call, Handler, Outcome, Spec};
use crate::core::outbox::LateReply;
use crate::router::state::State;
use ddm_proto::message::{Role, ServiceReload};
use ddm_proto::WinError;
use tokio::sync::mpsc;

/// Asks the reloader to read the configuration file again; the reply, if
/// any, is for a `ddm reload` waiting for it.
pub type Reloader = mpsc::UnboundedSender<Option<LateReply>>;

impl Handler for ServiceReload {
    const SPEC: Spec = Spec {
        name: "ServiceReload",
        role: Role::Admin,
        needs_ddm: false,
    };

    fn handle(self, _: &mut State, call: Call) -> Outcome {
        let Some(reloader) = call.reloader else {
            return Outcome::done();
        };
        match reloader.send(Some(call.late_reply())) {
            Ok(()) => Outcome::later(),
            Err(_) => WinError::ERROR_DDM_NOT_RUNNING.into(),
        }
    }
}

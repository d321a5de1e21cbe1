//! `ddm reload`: the configuration file is read again, off the router
//! (by the reloader task), and what changed in its interfaces is applied;
//! the reply comes then. A file that is not valid changes nothing and
//! answers ERROR_BAD_CONFIGURATION (the service's log says why). A
//! service started without a file has nothing to read: NO_ERROR.

use super::{Call, Handler, Outcome, Spec};
use crate::router::Router;
use ddm_proto::message::{Role, ServiceReload};
use ddm_proto::WinError;
use tokio::sync::oneshot;

impl Handler for ServiceReload {
    const SPEC: Spec = Spec {
        name: "ServiceReload",
        role: Role::Admin,
        needs_ddm: false,
    };

    fn handle(self, router: &mut Router, _: Call) -> Outcome {
        let Some(reloader) = &router.reloader else {
            return Outcome::done();
        };
        let (reply, later) = oneshot::channel();
        match reloader.send(Some(reply)) {
            Ok(()) => Outcome::later(later),
            Err(_) => WinError::ERROR_DDM_NOT_RUNNING.into(),
        }
    }
}

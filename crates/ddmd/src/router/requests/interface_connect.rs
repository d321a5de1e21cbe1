//! MprAdminInterfaceConnect: dials a declared interface. With an event,
//! PENDING at once and the event signaled once when the attempt completes;
//! synchronous without one, the reply waits for the attempt (the session
//! goes on meanwhile); otherwise PENDING at once. A connected interface is
//! NO_ERROR at once (its event, if any, set at once too).
//! The same holds for a kernel link that is connected. A kernel link is not dialed by ddm: NO_ERROR when it
//! is connected, ERROR_NOT_SUPPORTED when it is not.

use super::{Call, Handler, Outcome, Spec};
use crate::dial::machine::Connecting;
use crate::dial::Waiter;
use crate::core::notify::Target;
use crate::router::Router;
use crate::clients::transport::Attachment;
use ddm_proto::message::{InterfaceConnect, Role};
use ddm_proto::model::ConnectionState;
use ddm_proto::WinError;
use tokio::sync::oneshot;

impl Handler for InterfaceConnect {
    const SPEC: Spec = Spec {
        name: "InterfaceConnect",
        role: Role::Admin,
        needs_ddm: true,
    };

    fn handle(self, router: &mut Router, call: Call) -> Outcome {
        let session = call.session;
        let (waiter, later) = if self.event != 0 {
            let target = match call.attachment {
                Attachment::Eventfd(fd) => Target::Eventfd(fd),
                Attachment::NotCarried => Target::Session,
                _ => return WinError::ERROR_INVALID_PARAMETER.into(),
            };
            let event = self.event;
            (Some(Waiter::Event { session, event, target }), None)
        } else if self.synchronous {
            let (reply, later) = oneshot::channel();
            (Some(Waiter::Reply { session, reply }), Some(later))
        } else {
            (None, None)
        };
        if !router.dialed.owns(self.handle) {
            return match router.table.get(self.handle) {
                Some(i) if i.connection_state == ConnectionState::Connected as u32 => {
                    router.dialed.answer(waiter, WinError::NO_ERROR);
                    Outcome::done()
                }
                Some(_) => WinError::ERROR_NOT_SUPPORTED.into(),
                None => WinError::ERROR_INVALID_HANDLE.into(),
            };
        }
        let (result, transitions) = router.dialed.connect(&self, waiter);
        router.commit_all(transitions);
        match (result, later) {
            (Err(e), _) => e.into(),
            (Ok(Connecting::Already), _) => Outcome::done(),
            (Ok(Connecting::Started), Some(later)) => Outcome::later(later),
            (Ok(Connecting::Started), None) => WinError::PENDING.into(),
        }
    }
}

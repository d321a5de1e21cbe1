//! MprAdminInterfaceConnect: dials a declared interface. With an event,
//! PENDING at once and the event signaled once when the attempt completes;
//! synchronous without one, the reply waits for the attempt (the session
//! goes on meanwhile); otherwise PENDING at once. A connected interface is
//! NO_ERROR at once (its event, if any, set at once too).
//! The same holds for a kernel link that is connected. A kernel link is not dialed by ddm: NO_ERROR when it
//! is connected, ERROR_NOT_SUPPORTED when it is not.

use super::{Call, Handler, Outcome, Spec};
use crate::dial::machine::Connecting;
use crate::dial::{connected_already, Waiter};
use crate::router::state::State;
use ddm_proto::message::{InterfaceConnect, Role};
use ddm_proto::model::ConnectionState;
use ddm_proto::WinError;

impl Handler for InterfaceConnect {
    const SPEC: Spec = Spec {
        name: "InterfaceConnect",
        role: Role::Admin,
        needs_ddm: true,
    };

    fn handle(self, state: &mut State, call: Call) -> Outcome {
        let session = call.session;
        let waiter = if self.event != 0 {
            let target = match call.attachment.into_target() {
                Ok(target) => target,
                Err(e) => return e.into(),
            };
            Some(Waiter::Event {
                session,
                event: self.event,
                target,
                outbox: call.outbox.clone(),
            })
        } else if self.synchronous {
            Some(Waiter::Reply {
                session,
                reply: call.late_reply(),
            })
        } else {
            None
        };
        let synchronous = matches!(waiter, Some(Waiter::Reply { .. }));
        if !state.dialed.owns(self.handle) {
            return match state.table.get(self.handle) {
                Some(i) if i.connection_state == ConnectionState::Connected as u32 => {
                    connected_already(waiter);
                    Outcome::done()
                }
                Some(_) => WinError::ERROR_NOT_SUPPORTED.into(),
                None => WinError::ERROR_INVALID_HANDLE.into(),
            };
        }
        let (result, transitions) = state.dialed.connect(&self, waiter);
        state.commit_all(transitions);
        match result {
            Err(e) => e.into(),
            Ok(Connecting::Already) => Outcome::done(),
            Ok(Connecting::Started) if synchronous => Outcome::later(),
            Ok(Connecting::Started) => WinError::PENDING.into(),
        }
    }
}

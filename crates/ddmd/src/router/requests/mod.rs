//! The request table: every request the service answers has one
//! description here (its name for logs, the least role that may make it,
//! whether it needs the DDM running) and one handler, in a file of its
//! own. The router checks the description and runs the handler; nothing
//! else knows what a request is. Adding a request means the schema
//! (`ddm.proto`), a handler file and a line in `table!` below, and the client's
//! call.

use super::state::State;
use crate::core::notify::Attachment;
use crate::core::outbox::{LateReply, Outbox};
use crate::record::export::Export;
use crate::record::journal::Journal;
use ddm_proto::message::{Request, Role};
use ddm_proto::WinError;
use std::sync::Arc;

pub use crate::core::outcome::Outcome;
pub use service_reload::Reloader;

/// What the service needs to know of a request before it runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// For logs.
    pub name: &'static str,
    /// The least role that may make it; below it: ERROR_ACCESS_DENIED.
    pub role: Role,
    /// While the DDM is stopped: ERROR_DDM_NOT_RUNNING.
    pub needs_ddm: bool,
}

/// A call as its handler sees it: who made it, what came with it, and the
/// router's handles that some handlers use besides the state.
pub struct Call<'a> {
    /// The session that made it.
    pub session: u64,
    /// The request's id, for a reply that comes later.
    pub id: u64,
    /// What came with the request (a Register's eventfd).
    pub attachment: Attachment,
    /// The session's outbox.
    pub outbox: Arc<Outbox>,
    pub journal: Option<&'a mut Journal>,
    pub export: Option<&'a Export>,
    pub reloader: Option<&'a Reloader>,
}

impl Call<'_> {
    /// The reply to this call, to send when its outcome is known.
    pub fn late_reply(&self) -> LateReply {
        LateReply::new(self.id, self.outbox.clone())
    }

    /// Runs `read` on the journal off the router; its outcome is the
    /// reply, later. ERROR_NOT_SUPPORTED when there is no journal,
    /// RPC_S_SERVER_TOO_BUSY when too many reads are running,
    /// ERROR_CAN_NOT_COMPLETE when the file cannot be read.
    fn read_journal(
        self,
        read: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<Outcome> + Send + 'static,
    ) -> Outcome {
        let reply = self.late_reply();
        let Some(journal) = self.journal else {
            return WinError::ERROR_NOT_SUPPORTED.into();
        };
        let started = journal.read(
            read,
            |_| WinError::ERROR_CAN_NOT_COMPLETE.into(),
            move |outcome| reply.send(outcome),
        );
        if started {
            Outcome::later()
        } else {
            WinError::RPC_S_SERVER_TOO_BUSY.into()
        }
    }
}

/// One request's description and handler.
pub(crate) trait Handler {
    const SPEC: Spec;
    fn handle(self, state: &mut State, call: Call) -> Outcome;
}

/// The table: each `Request` variant, named after its message type, and
/// the module of its handler.
macro_rules! table {
    ($($request:ident => $module:ident),* $(,)?) => {
        $(mod $module;)*

        /// The description of `request`.
        pub fn spec(request: &Request) -> Spec {
            use ddm_proto::message::*;
            match request {
                $(Request::$request(_) => <$request as Handler>::SPEC,)*
            }
        }

        /// Runs `request`'s handler.
        pub(crate) fn handle(request: Request, state: &mut State, call: Call) -> Outcome {
            match request {
                $(Request::$request(r) => r.handle(state, call),)*
            }
        }
    };
}

table! {
    Hello => hello,
    ServerGetInfo => server_get_info,
    InterfaceEnum => interface_enum,
    InterfaceGetInfo => interface_get_info,
    InterfaceGetHandle => interface_get_handle,
    Register => register,
    Deregister => deregister,
    Subscribe => subscribe,
    Unsubscribe => unsubscribe,
    InterfaceConnect => interface_connect,
    InterfaceDisconnect => interface_disconnect,
    InterfaceSetInfo => interface_set_info,
    RouterControl => router_control,
    ServiceReload => service_reload,
    ListSessions => list_sessions,
    History => history,
    Uptime => uptime,
    JournalInfo => journal_info,
    HealthGet => health_get,
    GroupsGet => groups_get,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ddm_proto::message::*;

    #[test]
    fn calls_need_their_roles_and_the_ddm() {
        let cases = [
            (
                Request::ServerGetInfo(ServerGetInfo { level: 0 }),
                Role::Status,
                false,
            ),
            (
                Request::InterfaceEnum(InterfaceEnum::default()),
                Role::Monitor,
                true,
            ),
            (
                Request::InterfaceGetInfo(InterfaceGetInfo::default()),
                Role::Monitor,
                true,
            ),
            (
                Request::InterfaceGetHandle(InterfaceGetHandle::default()),
                Role::Monitor,
                true,
            ),
            (
                Request::Register(Register { event: 1 }),
                Role::Monitor,
                true,
            ),
            (
                Request::Deregister(Deregister { event: 1 }),
                Role::Monitor,
                true,
            ),
            (
                Request::Subscribe(Subscribe { stream: 1 }),
                Role::Monitor,
                true,
            ),
            (
                Request::Unsubscribe(Unsubscribe { stream: 1 }),
                Role::Monitor,
                true,
            ),
            (
                Request::RouterControl(RouterControl { run: false }),
                Role::Admin,
                false,
            ),
            (Request::ListSessions(ListSessions {}), Role::Admin, false),
            (
                Request::InterfaceConnect(InterfaceConnect::default()),
                Role::Admin,
                true,
            ),
            (
                Request::InterfaceDisconnect(InterfaceDisconnect::default()),
                Role::Admin,
                true,
            ),
            (
                Request::InterfaceSetInfo(InterfaceSetInfo::default()),
                Role::Admin,
                false,
            ),
            (Request::ServiceReload(ServiceReload {}), Role::Admin, false),
            (Request::History(Box::default()), Role::Monitor, false),
            (Request::Uptime(Box::default()), Role::Monitor, false),
            (Request::JournalInfo(JournalInfo {}), Role::Monitor, false),
            (
                Request::HealthGet(HealthGet::default()),
                Role::Monitor,
                false,
            ),
        ];
        for (request, role, needs_ddm) in cases {
            let spec = spec(&request);
            assert_eq!(
                (spec.role, spec.needs_ddm),
                (role, needs_ddm),
                "{}",
                spec.name
            );
        }
    }
}

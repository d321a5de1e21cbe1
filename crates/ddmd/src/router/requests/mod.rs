//! The request table: every request the service answers has one
//! description here (its name for logs, the least role that may make it,
//! whether it needs the DDM running) and one handler, in a file of its
//! own. The router checks the description and runs the handler; nothing
//! else knows what a request is. Adding a request means the schema
//! (`ddm.proto`), a handler file and a line in `table!` below, and the client's
//! call.

use crate::clients::transport::Attachment;
use crate::router::Router;
use ddm_proto::message::{ReplyResult, Request, Role};
use ddm_proto::WinError;
use tokio::sync::oneshot;

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

/// A handler's answer: a Win32 error number and, for some calls, a result
/// (ERROR_MORE_DATA carries one too); or the promise of one, for a call
/// that completes later.
#[derive(Debug)]
pub struct Outcome {
    pub error: WinError,
    pub result: Option<ReplyResult>,
    /// The real outcome comes through this (a synchronous Connect).
    pub later: Option<oneshot::Receiver<Outcome>>,
}

impl Outcome {
    /// NO_ERROR with nothing to return.
    pub fn done() -> Self {
        WinError::NO_ERROR.into()
    }

    /// NO_ERROR with a result.
    pub fn ok(result: ReplyResult) -> Self {
        Outcome {
            error: WinError::NO_ERROR,
            result: Some(result),
            later: None,
        }
    }

    /// The outcome will come through `later`.
    pub fn later(later: oneshot::Receiver<Outcome>) -> Self {
        Outcome {
            error: WinError::PENDING,
            result: None,
            later: Some(later),
        }
    }
}

impl From<WinError> for Outcome {
    fn from(error: WinError) -> Self {
        Outcome {
            error,
            result: None,
            later: None,
        }
    }
}

impl From<Result<(), WinError>> for Outcome {
    fn from(result: Result<(), WinError>) -> Self {
        result.map_or_else(Outcome::from, |()| Outcome::done())
    }
}

/// Runs `read` on the journal off the router; its outcome is the reply.
/// ERROR_NOT_SUPPORTED when there is no journal, RPC_S_SERVER_TOO_BUSY
/// when too many reads are running, ERROR_CAN_NOT_COMPLETE when the file
/// cannot be read.
fn read_journal(
    router: &mut Router,
    read: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<Outcome> + Send + 'static,
) -> Outcome {
    let Some(journal) = &mut router.journal else {
        return WinError::ERROR_NOT_SUPPORTED.into();
    };
    match journal.read(read, |_| WinError::ERROR_CAN_NOT_COMPLETE.into()) {
        Some(later) => Outcome::later(later),
        None => WinError::RPC_S_SERVER_TOO_BUSY.into(),
    }
}

/// A call as its handler sees it.
pub struct Call {
    /// The session that made it.
    pub session: u64,
    /// What came with the request (a Register's eventfd).
    pub attachment: Attachment,
}

/// One request's description and handler.
pub(crate) trait Handler {
    const SPEC: Spec;
    fn handle(self, router: &mut Router, call: Call) -> Outcome;
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
        pub(crate) fn handle(request: Request, router: &mut Router, call: Call) -> Outcome {
            match request {
                $(Request::$request(r) => r.handle(router, call),)*
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

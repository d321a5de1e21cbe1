//! MprAdminServerGetInfo, level 0 (MPR_SERVER_0): LAN-only mode while the
//! DDM is stopped, and the service's uptime.

use super::{Call, Handler, Outcome, Spec};
use crate::router::state::State;
use ddm_proto::message::{ReplyResult, Role, ServerGetInfo, ServerInfo};
use ddm_proto::WinError;

impl Handler for ServerGetInfo {
    const SPEC: Spec = Spec {
        name: "ServerGetInfo",
        role: Role::Status,
        needs_ddm: false,
    };

    fn handle(self, state: &mut State, _: Call) -> Outcome {
        if self.level != 0 {
            return WinError::ERROR_NOT_SUPPORTED.into();
        }
        Outcome::ok(ReplyResult::ServerInfo(ServerInfo {
            lan_only_mode: !state.running,
            up_time: state.started.elapsed().as_secs() as u32,
            total_ports: 0,
            ports_in_use: 0,
        }))
    }
}

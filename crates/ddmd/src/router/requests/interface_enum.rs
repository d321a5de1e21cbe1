//! MprAdminInterfaceEnum, level 0: the interfaces after `resume_handle`, in
//! handle order, as many as were asked for and fit in one frame;
//! ERROR_MORE_DATA with a resume handle when some remain.

use super::{Call, Handler, Outcome, Spec};
use crate::router::state::State;
use ddm_proto::message::{Interface, InterfaceEnum, InterfaceList, ReplyResult, Role};
use ddm_proto::prost::Message as _;
use ddm_proto::WinError;

/// Room kept in a frame for everything but the interface entries.
const REPLY_OVERHEAD: usize = 64;

impl Handler for InterfaceEnum {
    const SPEC: Spec = Spec {
        name: "InterfaceEnum",
        role: Role::Monitor,
        needs_ddm: true,
    };

    fn handle(self, state: &mut State, _: Call) -> Outcome {
        if self.level != 0 {
            return WinError::ERROR_NOT_SUPPORTED.into();
        }
        let all = state.interfaces();
        let total_entries = all.len() as u32;
        let remaining: Vec<Interface> = all
            .into_iter()
            .filter(|i| i.handle > self.resume_handle)
            .collect();
        let wanted = match self.max_entries {
            0 => usize::MAX,
            n => n as usize,
        };
        let mut budget = state.limits.max_frame_bytes - REPLY_OVERHEAD;
        let mut page = Vec::new();
        for interface in &remaining {
            let size = interface.encoded_len() + 4;
            if page.len() == wanted || size > budget {
                break;
            }
            budget -= size;
            page.push(interface.clone());
        }
        let more = page.len() < remaining.len();
        let list = InterfaceList {
            resume_handle: if more {
                page.last().map_or(self.resume_handle, |i| i.handle)
            } else {
                0
            },
            interfaces: page,
            total_entries,
        };
        Outcome {
            later: false,
            error: if more {
                WinError::ERROR_MORE_DATA
            } else {
                WinError::NO_ERROR
            },
            result: Some(ReplyResult::Interfaces(list)),
        }
    }
}

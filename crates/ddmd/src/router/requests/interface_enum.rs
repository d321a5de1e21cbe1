//! MprAdminInterfaceEnum, level 0: the interfaces after `resume_handle`, in
//! handle order, as many as were asked for and fit in one frame;
//! ERROR_MORE_DATA with a resume handle when some remain. A page always
//! holds at least one interface when any remain (the smallest frame holds
//! the largest entry), so a caller that follows the resume handles ends.

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
        let total_entries = state.interface_count() as u32;
        let mut remaining = state.interfaces_after(self.resume_handle).peekable();
        let wanted = match self.max_entries {
            0 => usize::MAX,
            n => n as usize,
        };
        let mut budget = state.limits.max_frame_bytes - REPLY_OVERHEAD;
        let mut page: Vec<Interface> = Vec::new();
        while let Some(interface) = remaining.peek() {
            let size = interface.encoded_len() + 4;
            if page.len() == wanted || (size > budget && !page.is_empty()) {
                break;
            }
            budget = budget.saturating_sub(size);
            page.extend(remaining.next());
        }
        let more = remaining.peek().is_some();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::limits::MIN_FRAME_BYTES;
    use ddm_proto::frame::encode_frame;
    use ddm_proto::message::{Push, Reply, ServiceMessage};

    #[test]
    fn the_largest_interface_fits_in_the_smallest_frame() {
        let largest = Interface {
            name: "\u{1D11E}".repeat(256),
            handle: u32::MAX,
            enabled: true,
            if_type: u32::MAX,
            connection_state: u32::MAX,
            unreachability_reasons: u32::MAX,
            last_error: u32::MAX,
            dial: i32::MAX,
            link: "l".repeat(15),
            health: "pending".into(),
            health_rtt_us: Some(u64::MAX),
            health_loss_percent: 100.0,
            dial_filter: "dial_except".into(),
            dial_filter_rules: (0..crate::dial::declaration::MAX_FILTER_RULES)
                .map(|_| ddm_proto::message::FilterRule {
                    rule: "r".repeat(crate::dial::declaration::MAX_RULE_BYTES),
                    matched: u64::MAX,
                })
                .collect(),
            dial_refused: u64::MAX,
            since_unix_ns: u64::MAX,
        };
        let reply = ServiceMessage {
            body: Some(Push::Reply(Reply {
                id: u64::MAX,
                error: WinError::ERROR_MORE_DATA.0,
                result: Some(ReplyResult::Interfaces(InterfaceList {
                    resume_handle: u32::MAX,
                    interfaces: vec![largest.clone()],
                    total_entries: u32::MAX,
                })),
            })),
        };
        assert!(encode_frame(&reply, MIN_FRAME_BYTES).is_ok());
        assert!(largest.encoded_len() + 4 <= MIN_FRAME_BYTES - REPLY_OVERHEAD);
    }
}

//! A typed stream's snapshot too large for one frame, sent in parts that
//! each fit, and joined again by the client.
//!
//! The snapshot is the one reply that grows with the interface table and
//! cannot be asked for page by page: a stream starts from one snapshot
//! taken in the same step as the subscription, so that no event falls
//! between the two. A router of thousands of interfaces outgrows a 64 KiB
//! frame, so the service splits the reply into several replies with the
//! same id, every one but the last marked `more`, written one after
//! another before any event of the stream; the client's call completes
//! when the last is in.

use crate::message::{Reply, ReplyResult, Snapshot};
use prost::encoding::encoded_len_varint;
use prost::Message;

/// Room kept in every part for all but its interfaces: the envelopes of
/// the service message, the reply and the snapshot, and the snapshot's
/// other fields, at their largest.
const ENVELOPE: usize = 96;

/// `reply` in parts of at most `max` encoded bytes each (as a service
/// message), or `None` when it is not a snapshot or when one interface
/// alone does not fit in a part.
pub fn split(reply: Reply, max: usize) -> Option<Vec<Reply>> {
    let Reply {
        id,
        error,
        result: Some(ReplyResult::Snapshot(snapshot)),
    } = reply
    else {
        return None;
    };
    let room = max.checked_sub(ENVELOPE)?;
    let Snapshot {
        seq,
        interfaces,
        stream,
        epoch,
        more: _,
    } = snapshot;
    let part = |interfaces, more| Reply {
        id,
        error,
        result: Some(ReplyResult::Snapshot(Snapshot {
            seq,
            interfaces,
            stream,
            epoch,
            more,
        })),
    };
    let mut parts = Vec::new();
    let mut current = Vec::new();
    let mut used = 0;
    for interface in interfaces {
        let len = interface.encoded_len();
        let cost = 1 + encoded_len_varint(len as u64) + len;
        if cost > room {
            return None;
        }
        if used + cost > room {
            parts.push(part(std::mem::take(&mut current), true));
            used = 0;
        }
        used += cost;
        current.push(interface);
    }
    parts.push(part(current, false));
    Some(parts)
}

/// Adds the part `next` to the snapshot `first` received before it.
pub fn join(first: &mut Snapshot, next: Snapshot) {
    first.interfaces.extend(next.interfaces);
    first.more = next.more;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Interface, Push, ServiceMessage};

    fn interface(n: usize) -> Interface {
        Interface {
            handle: n as u32,
            name: format!("interface-{n:05}"),
            ..Interface::default()
        }
    }

    fn snapshot_reply(count: usize) -> Reply {
        Reply {
            id: u64::MAX,
            error: u32::MAX,
            result: Some(ReplyResult::Snapshot(Snapshot {
                seq: u64::MAX,
                interfaces: (0..count).map(interface).collect(),
                stream: u64::MAX,
                epoch: u64::MAX,
                more: false,
            })),
        }
    }

    fn snapshot(reply: Reply) -> Snapshot {
        match reply.result {
            Some(ReplyResult::Snapshot(s)) => s,
            other => panic!("not a snapshot: {other:?}"),
        }
    }

    #[test]
    fn every_part_fits_only_the_last_says_no_more_and_joined_they_are_the_whole() {
        let max = 2048;
        let whole = snapshot_reply(500);
        let parts = split(whole.clone(), max).expect("parts");
        assert!(parts.len() > 1);
        for (i, part) in parts.iter().enumerate() {
            let message = ServiceMessage {
                body: Some(Push::Reply(part.clone())),
            };
            assert!(message.encoded_len() <= max, "part {i} is too large");
            assert_eq!(part.id, whole.id);
            assert_eq!(snapshot(part.clone()).more, i + 1 < parts.len());
        }
        let mut parts = parts.into_iter().map(snapshot);
        let mut joined = parts.next().unwrap();
        for part in parts {
            join(&mut joined, part);
        }
        assert_eq!(joined, snapshot(whole));
    }

    #[test]
    fn an_empty_snapshot_is_one_part() {
        let parts = split(snapshot_reply(0), 2048).expect("parts");
        assert_eq!(parts.len(), 1);
        assert!(!snapshot(parts[0].clone()).more);
    }

    #[test]
    fn what_is_not_a_snapshot_or_cannot_fit_is_not_split() {
        let other = Reply {
            id: 1,
            error: 0,
            result: None,
        };
        assert_eq!(split(other, 2048), None);
        let mut big = snapshot_reply(1);
        if let Some(ReplyResult::Snapshot(s)) = &mut big.result {
            s.interfaces[0].name = "x".repeat(4096);
        }
        assert_eq!(split(big, 2048), None);
        assert_eq!(split(snapshot_reply(1), 10), None);
    }
}

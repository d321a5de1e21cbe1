//! Property: any message, framed and cut into any reads, decodes to itself;
//! a frame over the limit is refused whatever it holds.

use ddm_proto::frame::{encode_frame, FrameDecoder, FrameError};
use ddm_proto::message::*;
use proptest::prelude::*;

fn interface() -> impl Strategy<Value = Interface> {
    (
        ".{0,40}",
        any::<u32>(),
        any::<bool>(),
        0u32..8,
        0u32..4,
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(
                name,
                handle,
                enabled,
                if_type,
                connection_state,
                unreachability_reasons,
                last_error,
            )| Interface {
                link: name.clone(),
                name,
                handle,
                enabled,
                if_type,
                connection_state,
                unreachability_reasons,
                last_error,
                dial: (handle % 4) as i32,
                health: ["", "up", "down", "pending"][(handle % 4) as usize].into(),
                health_rtt_us: (handle % 3 == 0).then_some(u64::from(last_error)),
                health_loss_percent: f64::from(handle % 101),
                dial_filter: ["", "dial_on", "dial_except"][(handle % 3) as usize].into(),
                dial_filter_rules: (0..handle % 3)
                    .map(|i| FilterRule {
                        rule: format!("tcp dport {}", 1 + i),
                        matched: u64::from(last_error) + u64::from(i),
                    })
                    .collect(),
                dial_refused: u64::from(unreachability_reasons),
                since_unix_ns: u64::from(last_error) << 20,
            },
        )
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        any::<u32>().prop_map(|version| Request::Hello(Hello { version })),
        any::<u32>().prop_map(|level| Request::ServerGetInfo(ServerGetInfo { level })),
        (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(
            |(level, max_entries, resume_handle)| {
                Request::InterfaceEnum(InterfaceEnum {
                    level,
                    max_entries,
                    resume_handle,
                })
            }
        ),
        (any::<u32>(), any::<u32>()).prop_map(|(level, handle)| Request::InterfaceGetInfo(
            InterfaceGetInfo { level, handle }
        )),
        any::<u64>().prop_map(|event| Request::Register(Register { event })),
        any::<u64>().prop_map(|event| Request::Deregister(Deregister { event })),
        any::<bool>().prop_map(|run| Request::RouterControl(RouterControl { run })),
        Just(Request::ListSessions(ListSessions {})),
        any::<u64>().prop_map(|stream| Request::Subscribe(Subscribe { stream })),
        any::<u64>().prop_map(|stream| Request::Unsubscribe(Unsubscribe { stream })),
        (any::<u32>(), any::<u64>(), any::<bool>()).prop_map(|(handle, event, synchronous)| {
            Request::InterfaceConnect(InterfaceConnect {
                handle,
                event,
                synchronous,
            })
        }),
        any::<u32>()
            .prop_map(|handle| Request::InterfaceDisconnect(InterfaceDisconnect { handle })),
        (any::<u32>(), any::<bool>()).prop_map(|(handle, enabled)| {
            Request::InterfaceSetInfo(InterfaceSetInfo {
                level: 0,
                handle,
                enabled,
            })
        }),
        Just(Request::ServiceReload(ServiceReload {})),
    ]
}

fn push() -> impl Strategy<Value = Push> {
    prop_oneof![
        (
            any::<u64>(),
            any::<u32>(),
            proptest::collection::vec(interface(), 0..8),
            any::<u32>()
        )
            .prop_map(|(id, error, interfaces, resume_handle)| Push::Reply(Reply {
                id,
                error,
                result: Some(ReplyResult::Interfaces(InterfaceList {
                    total_entries: interfaces.len() as u32,
                    interfaces,
                    resume_handle,
                })),
            })),
        (
            any::<u64>(),
            any::<u64>(),
            ".{0,20}",
            0u32..4,
            0u32..4,
            any::<u32>()
        )
            .prop_map(|(seq, time_unix_ns, name, from, to, last_error)| {
                Push::Event(ConnectionEvent {
                    seq,
                    handle: 1,
                    name,
                    from,
                    to,
                    time_unix_ns,
                    last_error,
                    group_switch: (last_error % 2 == 1).then(|| GroupSwitch {
                        from: "wan1".into(),
                        to: String::new(),
                        via_trigger: from == 1,
                        reason: "failback".into(),
                    }),
                })
            }),
        (any::<u64>(), any::<u64>())
            .prop_map(|(count, last_seq)| Push::Missed(Missed { count, last_seq })),
        any::<u32>().prop_map(|error| Push::StreamEnd(StreamEnd { error })),
        any::<u64>().prop_map(|event| Push::Signal(Signal { event })),
    ]
}

/// Frames `messages`, feeds the bytes in reads of `step`, decodes them all.
fn round_trip<M: ddm_proto::prost::Message + Default + PartialEq + std::fmt::Debug>(
    messages: &[M],
    step: usize,
) {
    let stream: Vec<u8> = messages
        .iter()
        .flat_map(|m| encode_frame(m, 1 << 20).unwrap())
        .collect();
    let mut decoder = FrameDecoder::new(1 << 20);
    let mut decoded = Vec::new();
    for chunk in stream.chunks(step) {
        decoder.extend(chunk);
        while let Some(message) = decoder.next_message::<M>().unwrap() {
            decoded.push(message);
        }
    }
    assert_eq!(decoded, messages);
    assert!(decoder.is_at_boundary());
}

proptest! {
    #[test]
    fn client_messages_survive_any_reads(
        bodies in proptest::collection::vec(request(), 1..10),
        ids in proptest::collection::vec(any::<u64>(), 10),
        step in 1usize..64,
    ) {
        let messages: Vec<ClientMessage> =
            bodies.into_iter().zip(ids).map(|(body, id)| ClientMessage { id, body: Some(body) }).collect();
        round_trip(&messages, step);
    }

    #[test]
    fn service_messages_survive_any_reads(bodies in proptest::collection::vec(push(), 1..10), step in 1usize..64) {
        let messages: Vec<ServiceMessage> = bodies.into_iter().map(|body| ServiceMessage { body: Some(body) }).collect();
        round_trip(&messages, step);
    }

    #[test]
    fn frames_over_the_limit_are_refused(len in 65u32..1_000_000, limit in 1usize..64) {
        let mut decoder = FrameDecoder::new(limit);
        decoder.extend(&len.to_be_bytes());
        prop_assert_eq!(decoder.next_message::<ClientMessage>(), Err(FrameError::TooLarge { len: len as usize, max: limit }));
    }
}

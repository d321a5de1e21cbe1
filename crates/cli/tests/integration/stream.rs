//! The typed stream: a snapshot, then every event after it, in order, with
//! explicit markers where a slow reader lost some.

use crate::notify::events_until_marker;
use crate::support::*;
use ddm_proto::frame::{encode_frame, FrameDecoder};
use ddm_proto::message::*;
use mprapi::{ConnectionState, StreamItem};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[test]
fn a_snapshot_then_every_event_in_sequence() {
    let lab = Lab::new();
    lab.add_link("va");
    let server = lab.service.connect();
    lab.wait_listed("va");
    let stream = server.subscribe().unwrap();
    let snapshot = stream.snapshot().clone();
    let va = snapshot.interfaces.iter().find(|i| i.name == "va").unwrap();
    assert_eq!(va.state, ConnectionState::Disconnected);

    lab.set_up("va", true);
    lab.set_up("va", false);
    let expected = [
        (ConnectionState::Disconnected, ConnectionState::Connected),
        (ConnectionState::Connected, ConnectionState::Disconnected),
    ]
    .into_iter();
    let mut seq = snapshot.seq;
    for (from, to) in expected {
        match stream.next_timeout(PATIENCE) {
            Some(StreamItem::Event(e)) => {
                seq += 1;
                assert_eq!(
                    (e.seq, e.interface.as_str(), e.handle, e.from, e.to),
                    (seq, "va", va.handle, from, to)
                );
            }
            other => panic!("expected an event, got {other:?}"),
        }
    }
}

#[test]
fn nothing_falls_between_the_snapshot_and_the_stream() {
    let lab = Arc::new(Lab::new());
    lab.add_link("va");
    let stop = Arc::new(AtomicBool::new(false));
    let flapper = {
        let (lab, stop) = (lab.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                lab.flap("va", 20);
            }
        })
    };
    let server = lab.service.connect();
    for _ in 0..30 {
        let stream = server.subscribe().unwrap();
        let snapshot = stream.snapshot();
        let state = snapshot
            .interfaces
            .iter()
            .find(|i| i.name == "va")
            .map(|i| i.state);
        match stream.next_timeout(PATIENCE) {
            Some(StreamItem::Event(e)) => {
                assert_eq!(
                    e.seq,
                    snapshot.seq + 1,
                    "the first event follows the snapshot"
                );
                assert_eq!(
                    Some(e.from),
                    state,
                    "the first event starts where the snapshot left va"
                );
            }
            other => panic!("expected an event, got {other:?}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    flapper.join().unwrap();
}

/// Checks a run of stream items accounts for every sequence number once.
fn assert_accounted(items: &[StreamItem], first_seq: u64) -> (u64, u64) {
    let (mut next, mut missed) = (first_seq, 0);
    for item in items {
        match item {
            StreamItem::Event(e) => {
                assert_eq!(e.seq, next, "no silent gap");
                next += 1;
            }
            StreamItem::Missed(n) => {
                next += n;
                missed += n;
            }
            StreamItem::End(e) => panic!("stream ended: {e}"),
        }
    }
    (next - first_seq, missed)
}

#[test]
fn a_slow_reader_gets_a_missed_marker_from_the_library() {
    let lab = Lab::new();
    lab.add_link("va");
    lab.add_link("marker");
    let server = lab.service.connect();
    let stream = server.subscribe_bounded(8).unwrap();
    let first = stream.snapshot().seq + 1;
    lab.flap("va", 200);
    // A second stream tells when the burst is committed and delivered.
    let witness = lab.service.connect();
    let witness_stream = witness.subscribe().unwrap();
    lab.set_up("marker", true);
    events_until_marker(&witness_stream, "marker");
    // Let every event reach the library before reading: then what it holds
    // is what its bound let it keep.
    std::thread::sleep(QUIET);
    let mut items = Vec::new();
    while let Some(item) = stream.next_timeout(QUIET) {
        items.push(item);
    }
    assert!(
        items.len() <= 8 + 1,
        "the library held {} items for a bound of 8 (and a trailing marker)",
        items.len()
    );
    let (accounted, missed) = assert_accounted(&items, first);
    assert!(missed > 0, "the burst overflowed the bound: {items:?}");
    let last_event = items.iter().rev().find_map(|i| match i {
        StreamItem::Event(e) => Some(e.seq),
        _ => None,
    });
    assert!(accounted >= 10 && last_event.is_some_and(|s| s >= first));
}

#[test]
fn a_reader_that_stops_reading_gets_a_missed_marker_from_the_service() {
    let lab = Lab::with_config(Some("[limits]\nstream_backlog = 4\n"));
    lab.add_link("va");
    lab.add_link("marker");
    let mut stream = UnixStream::connect(&lab.service.socket).unwrap();
    stream.set_read_timeout(Some(QUIET)).unwrap();
    for (id, request) in [
        (1, Request::Hello(Hello { version: 1 })),
        (2, Request::Subscribe(Subscribe { stream: 1 })),
    ] {
        stream
            .write_all(
                &encode_frame(
                    &ClientMessage {
                        id,
                        body: Some(request),
                    },
                    usize::MAX,
                )
                .unwrap(),
            )
            .unwrap();
    }
    // Read nothing while the kernel produces thousands of changes.
    lab.flap("va", 4000);
    // The service takes link changes in order: the marker connected, it
    // has committed every flap before it. (Not a witness stream: with this
    // service's backlog of 4, a busy machine may drop the marker there.)
    lab.set_up("marker", true);
    lab.wait_for_state("marker", mprapi::ConnectionState::Connected);

    let mut decoder = FrameDecoder::new(usize::MAX);
    let mut chunk = vec![0u8; 65536];
    let mut pushes = Vec::new();
    let mut snapshot_seq = None;
    let mut gap_ends = Vec::new();
    while let Ok(n) = stream.read(&mut chunk) {
        if n == 0 {
            break;
        }
        decoder.extend(&chunk[..n]);
        while let Some(ServiceMessage { body: Some(push) }) = decoder.next_message().unwrap() {
            match push {
                Push::Reply(Reply {
                    result: Some(ReplyResult::Snapshot(s)),
                    ..
                }) => snapshot_seq = Some(s.seq),
                Push::Event(e) => pushes.push(StreamItem::Event(e.into())),
                Push::Missed(m) => {
                    gap_ends.push((pushes.len(), m.last_seq));
                    pushes.push(StreamItem::Missed(m.count));
                }
                _ => {}
            }
        }
    }
    for (at, last_seq) in gap_ends {
        if let Some(StreamItem::Event(next)) = pushes.get(at + 1) {
            assert_eq!(
                last_seq + 1,
                next.seq,
                "a marker names its gap's last event"
            );
        }
    }
    let first = snapshot_seq.expect("a snapshot") + 1;
    let (_, missed) = assert_accounted(&pushes, first);
    assert!(
        missed > 0,
        "the service dropped events for the stuck reader and said so"
    );
    assert!(
        lab.service.connect().is_service_running(),
        "the stuck reader did not hurt the service"
    );
}

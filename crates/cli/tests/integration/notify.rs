//! The notification guarantees: G1 (nothing missed), G2 (silence after
//! deregister), duplicates and sharing, at scale.

use crate::support::*;
use mprapi::{Event, Server, StreamItem, WinError};

/// Reads the stream until `marker` connects; returns how many other
/// events came before it. The router commits in kernel order, so every
/// change made before the marker's is committed by then.
pub fn events_until_marker(stream: &mprapi::EventStream, marker: &str) -> usize {
    let mut others = 0;
    loop {
        match stream.next_timeout(PATIENCE) {
            Some(StreamItem::Event(e))
                if e.interface == marker && e.to == mprapi::ConnectionState::Connected =>
            {
                return others
            }
            Some(StreamItem::Event(_)) => others += 1,
            Some(StreamItem::Missed(n)) => others += n as usize,
            other => panic!("after {others} events, waiting for {marker}: {other:?}"),
        }
    }
}

#[test]
fn a_registered_event_is_signaled_after_each_change() {
    let lab = Lab::new();
    lab.add_link("va");
    let server = lab.service.connect();
    let event = Event::auto().unwrap();
    server.register_connection_notification(&event).unwrap();
    for up in [true, false, true, false] {
        lab.set_up("va", up);
        expect_signal(&event, if up { "connect" } else { "disconnect" });
    }
    expect_silence(&event, "no further change");
    server.deregister_connection_notification(&event).unwrap();
}

#[test]
fn two_events_on_two_handles_are_both_signaled() {
    let lab = Lab::new();
    lab.add_link("va");
    let (s1, s2) = (lab.service.connect(), lab.service.connect());
    let (e1, e2) = (Event::auto().unwrap(), Event::manual().unwrap());
    s1.register_connection_notification(&e1).unwrap();
    s2.register_connection_notification(&e2).unwrap();
    lab.set_up("va", true);
    expect_signal(&e1, "first handle");
    expect_signal(&e2, "second handle");
}

#[test]
fn one_event_on_two_handles_is_signaled_by_both_and_a_duplicate_is_one() {
    let lab = Lab::new();
    lab.add_link("va");
    let (s1, s2) = (lab.service.connect(), lab.service.connect());
    let event = Event::auto().unwrap();
    s1.register_connection_notification(&event).unwrap();
    s1.register_connection_notification(&event).unwrap();
    s2.register_connection_notification(&event).unwrap();
    let admin = lab.service.connect();
    let counts: Vec<u32> = admin
        .sessions()
        .unwrap()
        .iter()
        .filter(|s| s.session == s1.session_id() || s.session == s2.session_id())
        .map(|s| s.registrations)
        .collect();
    assert_eq!(
        counts,
        [1, 1],
        "registering twice on one handle is one registration"
    );
    // Dropping it from one handle leaves the other's.
    s1.deregister_connection_notification(&event).unwrap();
    assert_eq!(
        s1.deregister_connection_notification(&event).unwrap_err(),
        WinError::ERROR_INVALID_PARAMETER,
        "the duplicate was not a second registration"
    );
    lab.set_up("va", true);
    expect_signal(&event, "still registered on the second handle");
}

#[test]
fn two_hundred_sessions_are_all_signaled() {
    let lab = Lab::new();
    lab.add_link("va");
    let clients: Vec<(Server, Event)> = (0..200)
        .map(|_| {
            let server = lab.service.connect();
            let event = Event::manual().unwrap();
            server.register_connection_notification(&event).unwrap();
            (server, event)
        })
        .collect();
    lab.set_up("va", true);
    for (i, (_, event)) in clients.iter().enumerate() {
        expect_signal(event, &format!("session {i} of 200"));
    }
}

#[test]
fn after_deregister_a_burst_of_a_thousand_changes_never_signals() {
    let lab = Lab::new();
    lab.add_link("va");
    let server = lab.service.connect();
    let event = Event::manual().unwrap();
    server.register_connection_notification(&event).unwrap();
    lab.set_up("va", true);
    expect_signal(&event, "registration works");
    server.deregister_connection_notification(&event).unwrap();
    event.reset();

    // A second session proves the burst was committed.
    lab.add_link("marker");
    let witness = lab.service.connect();
    let stream = witness.subscribe().unwrap();
    lab.flap("va", 1001); // from up: 1,000 flips, down and up
    lab.set_up("marker", true);
    let committed = events_until_marker(&stream, "marker");
    assert!(
        committed >= 100,
        "the burst committed only {committed} changes"
    );
    // Carrier changes reach the kernel's notifications through linkwatch,
    // which may lag by up to a second: give the tail time to arrive.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(!event.is_set(), "a deregistered event was signaled");
}

#[test]
fn registrations_are_bounded_per_handle() {
    let lab = Lab::with_config(Some("[limits]\nmax_registrations_per_session = 3\n"));
    let server = lab.service.connect();
    let events: Vec<Event> = (0..4).map(|_| Event::auto().unwrap()).collect();
    for event in &events[..3] {
        server.register_connection_notification(event).unwrap();
    }
    assert_eq!(
        server
            .register_connection_notification(&events[3])
            .unwrap_err(),
        WinError::ERROR_NOT_ENOUGH_QUOTA
    );
    // The refusal lost nothing: the three still work, and freeing one
    // makes room.
    server
        .deregister_connection_notification(&events[0])
        .unwrap();
    server.register_connection_notification(&events[3]).unwrap();
}

#[test]
fn deregistering_an_event_that_is_not_registered_is_invalid_parameter() {
    let lab = Lab::new();
    let server = lab.service.connect();
    let event = Event::auto().unwrap();
    assert_eq!(
        server
            .deregister_connection_notification(&event)
            .unwrap_err(),
        WinError::ERROR_INVALID_PARAMETER
    );
    let other = lab.service.connect();
    other.register_connection_notification(&event).unwrap();
    assert_eq!(
        server
            .deregister_connection_notification(&event)
            .unwrap_err(),
        WinError::ERROR_INVALID_PARAMETER,
        "registered on another handle is not registered on this one"
    );
}

#[test]
fn a_service_out_of_descriptors_refuses_a_registration_and_serves_on() {
    let lab = Lab::with_descriptor_limit(48);
    lab.add_link("va");
    let server = lab.service.connect();
    let events: Vec<Event> = (0..64).map(|_| Event::auto().unwrap()).collect();
    let results: Vec<Result<(), WinError>> = events
        .iter()
        .map(|e| server.register_connection_notification(e))
        .collect();
    let first_refusal = results
        .iter()
        .position(Result::is_err)
        .expect("48 descriptors cannot hold 64 registrations");
    assert!(first_refusal > 10, "refused too early, at {first_refusal}");
    assert!(
        results[first_refusal..]
            .iter()
            .all(|r| *r == Err(WinError::ERROR_NOT_ENOUGH_QUOTA)),
        "{results:?}"
    );
    // The session lives on: the registrations it has still signal, and
    // freeing one makes room for another.
    lab.set_up("va", true);
    expect_signal(&events[0], "a registration made before the refusals");
    server
        .deregister_connection_notification(&events[0])
        .unwrap();
    server
        .deregister_connection_notification(&events[1])
        .unwrap();
    server
        .register_connection_notification(&events[first_refusal])
        .unwrap();
}

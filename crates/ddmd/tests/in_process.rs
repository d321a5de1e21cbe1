//! The service built as `ddm serve` builds it, in this process, with links
//! from a channel: sessions, registrations, protocol faults and shutdown,
//! through real Unix sockets, as any user, with no namespace.

use ddm_lab::in_process::Fixture;
use ddm_lab::{PATIENCE, QUIET};
use ddm_proto::frame::{encode_frame, FrameDecoder};
use ddm_proto::message::*;
use ddmd::config::{Config, JournalConfig, JournalSetting};
use ddmd::in_process::InProcess;
use mprapi::{Event, Server, StreamItem, WinError};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

fn frame(id: u64, request: Request) -> Vec<u8> {
    let message = ClientMessage {
        id,
        body: Some(request),
    };
    encode_frame(&message, usize::MAX).unwrap()
}

/// Every frame the service sends until it closes the connection.
fn read_to_close(stream: &mut UnixStream) -> Vec<Push> {
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).expect("the service closes");
    let mut decoder = FrameDecoder::new(usize::MAX);
    decoder.extend(&bytes);
    std::iter::from_fn(|| decoder.next_message::<ServiceMessage>().unwrap())
        .filter_map(|m| m.body)
        .collect()
}

#[test]
fn connects_and_disconnects_signal_until_deregistered() {
    let f = Fixture::start(Config::default());
    let server = f.connect();
    let event = Event::auto().unwrap();
    server.register_connection_notification(&event).unwrap();
    f.service.set_link(2, "eth0", true);
    assert!(event.wait(Some(PATIENCE)), "connect signaled (G1)");
    f.service.set_link(2, "eth0", false);
    assert!(event.wait(Some(PATIENCE)), "disconnect signaled (G1)");
    let interfaces = server.interfaces().unwrap();
    assert_eq!(interfaces.len(), 1);
    assert_eq!(interfaces[0].name, "eth0");
    server.deregister_connection_notification(&event).unwrap();
    f.service.set_link(2, "eth0", true);
    assert!(!event.wait(Some(QUIET)), "silence after deregister (G2)");
    assert_eq!(
        server.deregister_connection_notification(&event),
        Err(WinError::ERROR_INVALID_PARAMETER)
    );
}

#[test]
fn a_closed_handle_leaves_no_registration_behind() {
    let f = Fixture::start(Config::default());
    let admin = f.connect();
    let client = f.connect();
    let client_id = client.session_id();
    let event = Event::manual().unwrap();
    client.register_connection_notification(&event).unwrap();
    assert_ne!(admin.session_id(), client_id, "session ids are unique");
    let registered = |admin: &Server| {
        admin
            .sessions()
            .unwrap()
            .iter()
            .filter(|s| s.session == client_id)
            .map(|s| s.registrations)
            .sum::<u32>()
    };
    assert_eq!(registered(&admin), 1);
    client.disconnect();
    let deadline = Instant::now() + PATIENCE;
    while admin
        .sessions()
        .unwrap()
        .iter()
        .any(|s| s.session == client_id)
    {
        assert!(
            Instant::now() < deadline,
            "the session went with its handle (G3)"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(registered(&admin), 0);
}

#[test]
fn garbage_gets_a_protocol_error_and_the_service_carries_on() {
    let f = Fixture::start(Config::default());
    let mut stream = UnixStream::connect(f.service.socket()).unwrap();
    stream.write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff]).unwrap();
    match &read_to_close(&mut stream)[..] {
        [Push::Reply(r)] => assert_eq!(r.error, WinError::RPC_S_PROTOCOL_ERROR.0),
        other => panic!("expected one protocol error, got {other:?}"),
    }
    let mut stream = UnixStream::connect(f.service.socket()).unwrap();
    stream
        .write_all(&frame(1, Request::Hello(Hello { version: 1 })))
        .unwrap();
    stream
        .write_all(&frame(2, Request::Hello(Hello { version: 1 })))
        .unwrap();
    let pushes = read_to_close(&mut stream);
    assert!(
        matches!(pushes.last(), Some(Push::Reply(r)) if r.error == WinError::RPC_S_PROTOCOL_ERROR.0),
        "a second Hello closes the session: {pushes:?}"
    );
    assert!(f.connect().is_service_running());
}

#[test]
fn shutdown_ends_streams_signals_events_and_removes_the_socket() {
    let f = Fixture::start(Config::default());
    let server = f.connect();
    let stream = server.subscribe().unwrap();
    let event = Event::manual().unwrap();
    server.register_connection_notification(&event).unwrap();
    let socket = f.service.socket().to_owned();
    f.service.stop().unwrap();
    assert_eq!(
        stream.next_timeout(PATIENCE),
        Some(StreamItem::End(WinError::ERROR_DDM_NOT_RUNNING))
    );
    assert!(event.wait(Some(PATIENCE)), "waiters are woken to learn it");
    assert!(!socket.exists(), "the socket file is gone");
    assert_eq!(server.interfaces(), Err(WinError::ERROR_DDM_NOT_RUNNING));
    assert!(Server::connect_socket(&socket).is_err());
}

#[test]
fn shutdown_does_not_wait_for_ever_on_a_client_that_stopped_reading() {
    let mut config = Config::default();
    config.limits.shutdown_timeout_ms = 300;
    let f = Fixture::start(config);
    let mut stuck = UnixStream::connect(f.service.socket()).unwrap();
    stuck
        .write_all(&frame(1, Request::Hello(Hello { version: 1 })))
        .unwrap();
    stuck
        .write_all(&frame(2, Request::Subscribe(Subscribe { stream: 1 })))
        .unwrap();
    // Fill its socket: thousands of events it never reads.
    for n in 0..5000 {
        f.service.set_link(2, "eth0", n % 2 == 0);
    }
    let witness = f.connect();
    let events = witness.subscribe().unwrap();
    f.service.set_link(3, "marker", true);
    while let Some(item) = events.next_timeout(PATIENCE) {
        if matches!(&item, StreamItem::Event(e) if e.interface == "marker") {
            break;
        }
    }
    let started = Instant::now();
    f.service.stop().unwrap();
    assert!(
        started.elapsed() < PATIENCE,
        "the shutdown gave up on the stuck client"
    );
}

/// A start that fails after the metrics endpoint began (here: the journal
/// cannot be opened) stops the endpoint's thread, which lets go of its
/// port.
#[test]
fn a_failed_start_lets_go_of_the_metrics_port() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_directory = dir.path().join("file");
    std::fs::write(&not_a_directory, "").unwrap();
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = Config {
        journal: JournalSetting::Table(JournalConfig {
            directory: Some(not_a_directory),
            ..JournalConfig::default()
        }),
        metrics: Some(ddmd::ops::metrics::MetricsConfig {
            listen: address,
            ..ddmd::ops::metrics::MetricsConfig::default()
        }),
        ..Config::default()
    };
    let service = InProcess::start(config, &dir.path().join("ddm.sock")).unwrap();
    // The service ends by itself, with the journal's error.
    let outcome = service.stop();
    assert!(
        matches!(outcome, Err(ddmd::ServeError::Journal(_))),
        "{outcome:?}"
    );
    let deadline = Instant::now() + PATIENCE;
    while std::net::TcpListener::bind(address).is_err() {
        assert!(
            Instant::now() < deadline,
            "the metrics endpoint still holds {address} after the start failed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

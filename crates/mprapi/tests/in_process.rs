//! The client library against the real service running in this process
//! (links from a channel, no root, no namespace): typed streams, paging,
//! a service that goes away and the handle that reconnects.

use ddm_lab::{PATIENCE, QUIET};
use ddmd::config::{Config, JournalConfig, JournalSetting};
use ddmd::in_process::InProcess;
use mprapi::{ConnectionState, Event, ReconnectingServer, Server, StreamItem, WinError};
use std::path::Path;
use std::time::Duration;

/// The service on `dir` (a service started again on the same `dir` goes
/// on from its journal).
fn start(dir: &Path) -> InProcess {
    ddm_lab::in_process::start(Config::default(), dir)
}

/// Flips link 2 `count` times, starting with a connect, then connects the
/// link "marker" (index 3): `count + 1` events.
fn flips_then_marker(service: &InProcess, count: usize) {
    for n in 0..count {
        service.set_link(2, "eth0", n % 2 == 0);
    }
    service.set_link(3, "marker", true);
}

/// Every event a stream yields up to the marker's connect, by sequence.
fn events_to_marker(stream: &mprapi::EventStream) -> Vec<u64> {
    let mut seqs = Vec::new();
    loop {
        match stream.next_timeout(PATIENCE).expect("an item in time") {
            StreamItem::Event(e) => {
                seqs.push(e.seq);
                if e.interface == "marker" {
                    return seqs;
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn dropping_one_stream_leaves_the_other_every_later_event() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path());
    let server = Server::connect_socket(service.socket()).unwrap();
    let first = server.subscribe().unwrap();
    let second = server.subscribe().unwrap();
    service.set_link(4, "eth4", true);
    assert!(matches!(
        first.next_timeout(PATIENCE),
        Some(StreamItem::Event(_))
    ));
    drop(first);
    flips_then_marker(&service, 20);
    let seqs = events_to_marker(&second);
    let start = second.snapshot().seq + 1;
    let expected: Vec<u64> = (start..start + 22).collect();
    assert_eq!(seqs, expected, "every event after its snapshot, in order");
}

#[test]
fn ten_streams_on_one_handle_see_the_same_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path());
    let server = Server::connect_socket(service.socket()).unwrap();
    let streams: Vec<_> = (0..10).map(|_| server.subscribe().unwrap()).collect();
    flips_then_marker(&service, 50);
    let sequences: Vec<Vec<u64>> = streams.iter().map(events_to_marker).collect();
    assert_eq!(sequences[0].len(), 51);
    assert!(sequences.iter().all(|s| *s == sequences[0]));
}

#[test]
fn a_stream_opened_later_starts_after_its_own_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path());
    let server = Server::connect_socket(service.socket()).unwrap();
    let early = server.subscribe().unwrap();
    flips_then_marker(&service, 10);
    events_to_marker(&early);
    let late = server.subscribe().unwrap();
    assert_eq!(late.snapshot().seq, 11);
    let marker = late
        .snapshot()
        .interfaces
        .iter()
        .find(|i| i.name == "marker");
    assert_eq!(marker.map(|i| i.state), Some(ConnectionState::Connected));
    service.set_link(3, "marker", false);
    match late.next_timeout(PATIENCE) {
        Some(StreamItem::Event(e)) => assert_eq!(e.seq, 12),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        late.next_timeout(QUIET),
        None,
        "nothing older than the snapshot"
    );
}

#[test]
fn enumeration_pages_and_names_find_handles() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path());
    for index in 2..7 {
        service.set_link(index, &format!("eth{index}"), false);
    }
    let server = Server::connect_socket(service.socket()).unwrap();
    let mut names = Vec::new();
    let mut resume = 0;
    let mut pages = 0;
    while names.len() < 5 {
        let page = server.interface_enum(2, resume).unwrap();
        assert_eq!(page.total_entries, 5);
        names.extend(page.interfaces.into_iter().map(|i| i.name));
        pages += 1;
        match page.resume_handle {
            Some(next) => resume = next,
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, ["eth2", "eth3", "eth4", "eth5", "eth6"]);
    let handle = server.interface_handle("eth4").unwrap();
    assert_eq!(server.interface(handle).unwrap().name, "eth4");
    assert_eq!(
        server.interface_handle("ETH4"),
        Err(WinError::ERROR_NO_SUCH_INTERFACE)
    );
    assert_eq!(
        server.interface_handle(""),
        Err(WinError::ERROR_NO_SUCH_INTERFACE)
    );
    assert_eq!(
        server.interface(9999).err(),
        Some(WinError::ERROR_INVALID_HANDLE)
    );
}

#[test]
fn a_service_that_goes_away_fails_calls_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path());
    let server = Server::connect_socket(service.socket()).unwrap();
    let stream = server.subscribe().unwrap();
    service.stop().unwrap();
    assert!(server.wait_closed(PATIENCE));
    assert_eq!(server.interfaces(), Err(WinError::ERROR_DDM_NOT_RUNNING));
    assert_eq!(
        stream.next_timeout(PATIENCE),
        Some(StreamItem::End(WinError::ERROR_DDM_NOT_RUNNING))
    );
}

#[test]
fn the_reconnecting_handle_registers_again_and_signals_once() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path());
    let handle = ReconnectingServer::connect_socket(service.socket()).unwrap();
    let event = Event::auto().unwrap();
    handle.register_connection_notification(&event).unwrap();
    service.stop().unwrap();
    // The shutdown signals registered events: a waiter wakes to learn it.
    assert!(event.wait(Some(PATIENCE)));
    let deadline = std::time::Instant::now() + PATIENCE;
    while handle.is_connected() {
        assert!(std::time::Instant::now() < deadline, "the loss is seen");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(handle.server().err(), Some(WinError::ERROR_DDM_NOT_RUNNING));

    let service = start(dir.path());
    assert!(handle.wait_connected(PATIENCE));
    assert!(event.wait(Some(PATIENCE)), "signaled once on reconnecting");
    assert!(!event.wait(Some(QUIET)), "and only once");
    service.set_link(2, "eth0", true);
    assert!(event.wait(Some(PATIENCE)), "registered again");
    handle.deregister_connection_notification(&event).unwrap();
}

#[test]
fn threads_calling_on_one_handle_each_get_their_reply() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path());
    let server = Server::connect_socket(service.socket()).unwrap();
    // A call left waiting for a reply nobody reads fails with 903 after the
    // call timeout: every one must succeed.
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                let event = Event::auto().unwrap();
                for _ in 0..200 {
                    server.register_connection_notification(&event).unwrap();
                    server.deregister_connection_notification(&event).unwrap();
                }
            });
        }
    });
}

/// Every item a stream yields until it is quiet, events as their sequence
/// numbers and `Missed(n)` as `-n`.
fn items(stream: &mprapi::EventStream) -> Vec<i64> {
    std::iter::from_fn(|| match stream.next_timeout(QUIET)? {
        StreamItem::Event(e) => Some(e.seq as i64),
        StreamItem::Missed(n) => Some(-(n as i64)),
        StreamItem::End(e) => panic!("ended: {e}"),
    })
    .collect()
}

#[test]
fn subscribe_from_replays_the_journal_then_follows_live() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path());
    let server = Server::connect_socket(service.socket()).unwrap();
    flips_then_marker(&service, 30);
    let watcher = server.subscribe().unwrap();
    assert_eq!(watcher.snapshot().seq, 31);
    let resumed = server.subscribe_from(10).unwrap();
    assert_eq!(resumed.snapshot().seq, 31);
    assert_ne!(resumed.snapshot().epoch, 0);
    flips_then_marker(&service, 4); // the marker is up already: 4 events
    let expected: Vec<i64> = (11..=35).collect();
    assert_eq!(
        items(&resumed),
        expected,
        "replayed, then live, nothing between"
    );
    assert_eq!(
        items(&server.subscribe_from(36).unwrap()),
        Vec::<i64>::new(),
        "nothing to replay after the snapshot"
    );
}

#[test]
fn subscribe_from_with_no_journal_counts_what_it_cannot_replay() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        journal: JournalSetting::On(false),
        ..Config::default()
    };
    let service = InProcess::start(config, &dir.path().join("ddm.sock")).unwrap();
    let server = Server::connect_socket(service.socket()).unwrap();
    flips_then_marker(&service, 9);
    let resumed = server.subscribe_from(4).unwrap();
    service.set_link(3, "marker", false);
    assert_eq!(items(&resumed), vec![-6, 11]);
    assert_eq!(
        server.history_page(&mprapi::History::default()),
        Err(WinError::ERROR_NOT_SUPPORTED)
    );
}

#[test]
fn numbering_goes_on_after_a_restart_and_a_stream_resumes_across_it() {
    let dir = tempfile::tempdir().unwrap();
    let service = start(dir.path());
    flips_then_marker(&service, 5);
    let server = ReconnectingServer::connect_socket(service.socket()).unwrap();
    let mut stream = server.subscribe().unwrap();
    assert_eq!(stream.snapshot().seq, 6);
    service.set_link(2, "eth0", false);
    drop(service);
    // The fake kernel of the next start has no links at first: the resync
    // finds both gone, then they come back.
    let service = start(dir.path());
    service.set_link(2, "eth0", false);
    service.set_link(3, "marker", true);
    let mut seqs = Vec::new();
    while let Some(item) = stream.next_timeout(Duration::from_secs(2)) {
        match item {
            StreamItem::Event(e) => seqs.push((e.seq, e.interface, e.to)),
            other => panic!("{other:?}"),
        }
    }
    let numbers: Vec<u64> = seqs.iter().map(|s| s.0).collect();
    assert_eq!(numbers, (7..=10).collect::<Vec<_>>(), "{seqs:?}");
    assert_eq!(
        seqs[1..3].iter().map(|s| s.2).collect::<Vec<_>>(),
        vec![ConnectionState::Unreachable; 2],
        "the resync: both links gone while it was down"
    );
    assert_eq!(stream.last_seq(), 10);
}

#[test]
fn history_and_uptime_come_in_pages_that_fit_the_frame() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        journal: JournalSetting::Table(JournalConfig {
            directory: Some(dir.path().join("state")),
            ..JournalConfig::default()
        }),
        ..Config::default()
    };
    config.limits.max_frame_bytes = ddmd::config::MIN_FRAME_BYTES;
    let service = InProcess::start(config, &dir.path().join("ddm.sock")).unwrap();
    for index in 2..62 {
        service.set_link(index, &format!("link-with-a-long-name-{index:03}"), true);
    }
    service.set_link(99, "marker", true);
    let server = Server::connect_socket(service.socket()).unwrap();
    let deadline = std::time::Instant::now() + PATIENCE;
    while server.interfaces().unwrap().len() < 61 {
        assert!(std::time::Instant::now() < deadline, "every link is in");
        std::thread::sleep(Duration::from_millis(10));
    }
    let report = server.uptime(&mprapi::Uptime::default()).unwrap();
    let names: Vec<&str> = report.interfaces.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names.len(), 61, "every interface, over several replies");
    assert!(
        names.windows(2).all(|w| w[0] < w[1]),
        "in name order, once each"
    );
    assert!(report.interfaces.iter().all(|i| i.connected_now));
    let (first_page, more) = server.history_page(&mprapi::History::default()).unwrap();
    assert!(
        more && first_page.len() < 61,
        "a page is bounded by the frame"
    );
    let all: Vec<_> = server
        .history(mprapi::History {
            transitions_only: true,
            ..mprapi::History::default()
        })
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(all.len(), 61);
}

/// A stream's snapshot of more interfaces than one frame holds comes in
/// parts and is handed over whole, and the stream's events follow it (a
/// router of a thousand interfaces outgrew the 64 KiB frame, and its
/// Subscribe failed with ERROR_NOT_ENOUGH_MEMORY).
#[test]
fn a_snapshot_larger_than_a_frame_comes_whole_and_the_events_follow() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.limits.max_frame_bytes = ddmd::config::MIN_FRAME_BYTES;
    let service = InProcess::start(config, &dir.path().join("ddm.sock")).unwrap();
    for index in 2..202 {
        service.set_link(index, &format!("link-with-a-long-name-{index:03}"), true);
    }
    let server = Server::connect_socket(service.socket()).unwrap();
    let deadline = std::time::Instant::now() + PATIENCE;
    while server.interfaces().unwrap().len() < 200 {
        assert!(std::time::Instant::now() < deadline, "every link is in");
        std::thread::sleep(Duration::from_millis(10));
    }
    let stream = server
        .subscribe()
        .expect("a stream, whatever the table's size");
    let names: std::collections::BTreeSet<&str> = stream
        .snapshot()
        .interfaces
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    assert_eq!(names.len(), 200, "every interface once");
    assert!(
        names.contains("link-with-a-long-name-002") && names.contains("link-with-a-long-name-201")
    );
    let again = server
        .subscribe()
        .expect("a second stream on the same handle");
    assert_eq!(again.snapshot().interfaces.len(), 200);
    service.set_link(2, "link-with-a-long-name-002", false);
    for stream in [&stream, &again] {
        match stream.next_timeout(PATIENCE) {
            Some(StreamItem::Event(e)) => {
                assert_eq!(e.interface, "link-with-a-long-name-002");
                assert_eq!(e.seq, stream.snapshot().seq + 1);
            }
            other => panic!("the event after the snapshot, not {other:?}"),
        }
    }
    assert_eq!(server.interfaces().unwrap().len(), 200, "calls go on");
}

/// A call made just after a stream is dropped, while events pour in, is
/// answered: the I/O thread that read for the stream may stop reading in
/// the middle of it, and the caller waiting for it to let go must then
/// read its reply itself (it slept until the call's timeout, 5 s, and
/// failed with ERROR_DDM_NOT_RUNNING).
#[test]
fn a_call_just_after_a_stream_is_dropped_is_answered_while_events_pour_in() {
    let dir = tempfile::tempdir().unwrap();
    let service = std::sync::Arc::new(start(dir.path()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = {
        let (service, stop) = (service.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut up = true;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for index in 2..12 {
                    service.set_link(index, &format!("eth{index}"), up);
                }
                up = !up;
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };
    let server = Server::connect_socket(service.socket()).unwrap();
    let mut slowest = Duration::ZERO;
    for _ in 0..300 {
        let stream = server.subscribe().unwrap();
        let _ = stream.next_timeout(Duration::from_millis(2));
        drop(stream);
        let asked = std::time::Instant::now();
        server.server_info().expect("an answer");
        slowest = slowest.max(asked.elapsed());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flipper.join().unwrap();
    assert!(
        slowest < Duration::from_secs(1),
        "a call waited {slowest:?}"
    );
}

/// A declared interface with the longest name there may be (256
/// characters of 4 bytes each) at the smallest frame: every page of the
/// enumeration holds at least one interface, and `interfaces()` ends with
/// all of them (it used to get an empty page marked more-data with the
/// same resume handle, and ask again forever).
#[test]
fn the_longest_names_at_the_smallest_frame_are_enumerated() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let long = "\u{1D11E}".repeat(256);
    let other = format!("{}\u{1D122}", "\u{1D11E}".repeat(255));
    let file = dir.path().join("ddm.toml");
    std::fs::write(
        &file,
        format!(
            "journal = false\n[limits]\nmax_frame_bytes = {}\n\
             [[interface]]\nname = \"{long}\"\nlink = \"wg-long\"\ntrigger_device = \"ddm-t1\"\nconnect = [\"true\"]\ndial = \"manual\"\n\
             [[interface]]\nname = \"{other}\"\nlink = \"wg-other\"\ntrigger_device = \"ddm-t2\"\nconnect = [\"true\"]\ndial = \"manual\"\n",
            ddmd::config::MIN_FRAME_BYTES
        ),
    )
    .unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = Config::load(&file).unwrap();
    let service = InProcess::start(config, &dir.path().join("ddm.sock")).unwrap();
    service.set_link(2, "eth2", true);
    let server = Server::connect_socket(service.socket()).unwrap();
    let deadline = std::time::Instant::now() + PATIENCE;
    let all = loop {
        let all = server.interfaces().expect("the enumeration ends");
        if all.len() == 3 {
            break all;
        }
        assert!(std::time::Instant::now() < deadline, "{all:?}");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(all.iter().any(|i| i.name == long) && all.iter().any(|i| i.name == other));
    let mut resume = 0;
    let mut pages = 0;
    loop {
        let page = server.interface_enum(0, resume).unwrap();
        assert!(!page.interfaces.is_empty(), "page {pages} is empty");
        pages += 1;
        match page.resume_handle {
            Some(next) => resume = next,
            None => break,
        }
    }
    assert!(pages >= 2, "each long name takes a page of its own");
}

#[test]
fn an_interface_is_dated_by_its_last_change_of_state() {
    let dir = tempfile::tempdir().unwrap();
    let before_start = std::time::SystemTime::now();
    let service = start(dir.path());
    let server = Server::connect_socket(service.socket()).unwrap();
    let stream = server.subscribe().unwrap();
    service.set_link(5, "eth5", false);
    service.set_link(6, "eth6", true);
    let Some(StreamItem::Event(connected)) = stream.next_timeout(PATIENCE) else {
        panic!("eth6's connect");
    };
    let since = |name: &str| {
        let handle = server.interface_handle(name).unwrap();
        server.interface(handle).unwrap().since
    };
    // Never changed: since the service started (after the test began).
    assert!(since("eth5") >= before_start && since("eth5") <= connected.time);
    assert_eq!(since("eth6"), connected.time, "the connect's own time");
    std::thread::sleep(Duration::from_millis(10));
    service.set_link(6, "eth6", false);
    let Some(StreamItem::Event(disconnected)) = stream.next_timeout(PATIENCE) else {
        panic!("eth6's disconnect");
    };
    assert_eq!(since("eth6"), disconnected.time);
    let listed = server.interfaces().unwrap();
    let eth6 = listed.iter().find(|i| i.name == "eth6").unwrap();
    assert_eq!(
        eth6.since, disconnected.time,
        "the enumeration dates it too"
    );
}

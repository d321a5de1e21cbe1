//! G3 and faults: killed clients, a stopped DDM, a killed service.

use crate::support::*;
use mprapi::{ConnectionState, Event, StreamItem, WinError};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn a_sigkilled_client_leaves_no_registration_and_the_service_carries_on() {
    let lab = Lab::new();
    lab.add_link("va");
    let admin = lab.service.connect();
    let fds_before = lab.service.open_descriptors();

    let mut client = lab
        .service
        .ddm(&["watch"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client_pid = client.id() as i32;
    lab.service.wait_for_registration(client.id());
    assert!(lab.service.open_descriptors() > fds_before);

    client.kill().unwrap();
    client.wait().unwrap();
    wait_until("the client's session is gone", || {
        admin
            .sessions()
            .unwrap()
            .iter()
            .all(|s| s.pid != client_pid)
    });
    assert_eq!(
        lab.service.open_descriptors(),
        fds_before,
        "the service's descriptors are back where they were"
    );

    let server = lab.service.connect();
    let event = Event::auto().unwrap();
    server.register_connection_notification(&event).unwrap();
    lab.set_up("va", true);
    expect_signal(&event, "the service still serves");
}

#[test]
fn router_stop_gives_ddm_not_running_and_start_restores() {
    let lab = Lab::new();
    lab.add_link("va");
    let server = lab.service.connect();
    let event = Event::manual().unwrap();
    server.register_connection_notification(&event).unwrap();
    let stream = server.subscribe().unwrap();

    server.set_router_running(false).unwrap();
    expect_signal(&event, "stopping the DDM signals its registrations once");
    assert_eq!(
        stream.next_timeout(PATIENCE),
        Some(StreamItem::End(WinError::ERROR_DDM_NOT_RUNNING))
    );
    assert!(server.server_info().unwrap().lan_only_mode);
    assert!(!server.is_service_running());
    let not_running = Err(WinError::ERROR_DDM_NOT_RUNNING);
    assert_eq!(server.interfaces().map(drop), not_running);
    assert_eq!(server.register_connection_notification(&event), not_running);
    assert_eq!(
        server.deregister_connection_notification(&event),
        not_running
    );
    let status = lab.service.ddm(&["status"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&status.stdout).trim(), "stopped");

    server.set_router_running(true).unwrap();
    assert!(server.is_service_running());
    assert!(server.interfaces().unwrap().iter().any(|i| i.name == "va"));
    assert_eq!(
        server.deregister_connection_notification(&event),
        Err(WinError::ERROR_INVALID_PARAMETER),
        "the stop dropped the registration"
    );
    event.reset();
    server.register_connection_notification(&event).unwrap();
    lab.set_up("va", true);
    expect_signal(&event, "registrations work again after start");
}

#[test]
fn a_call_on_a_handle_whose_service_was_killed_fails_promptly() {
    let mut lab = Lab::new();
    let server = lab.service.connect();
    let stream = server.subscribe().unwrap();
    lab.service.kill();
    let start = Instant::now();
    assert_eq!(
        server.interfaces().map(drop),
        Err(WinError::ERROR_DDM_NOT_RUNNING)
    );
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(
        stream.next_timeout(PATIENCE),
        Some(StreamItem::End(WinError::ERROR_DDM_NOT_RUNNING))
    );
    let event = Event::auto().unwrap();
    assert_eq!(
        server.register_connection_notification(&event),
        Err(WinError::ERROR_DDM_NOT_RUNNING)
    );
    assert_eq!(
        mprapi::Server::connect_socket(&lab.service.socket).err(),
        Some(WinError::RPC_S_UNKNOWN_IF),
        "no service at that address"
    );
}

#[test]
fn a_stuck_service_does_not_hang_a_call() {
    let lab = Lab::new();
    let server = lab.service.connect();
    let pid = nix::unistd::Pid::from_raw(lab.service.pid());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let result = server.interfaces().map(drop);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    assert_eq!(
        result,
        Err(WinError::ERROR_DDM_NOT_RUNNING),
        "a call times out rather than hangs"
    );
}

#[test]
fn a_reconnecting_handle_comes_back_registers_again_and_signals_once() {
    let mut lab = Lab::new();
    lab.add_link("va");
    let handle = mprapi::ReconnectingServer::connect_socket(&lab.service.socket).unwrap();
    let event = Event::auto().unwrap();
    handle.register_connection_notification(&event).unwrap();

    lab.service.kill();
    wait_until("the handle sees the service gone", || {
        !handle.is_connected()
    });
    assert_eq!(handle.server().err(), Some(WinError::ERROR_DDM_NOT_RUNNING));
    assert!(!event.is_set());

    lab.service.restart();
    assert!(handle.wait_connected(PATIENCE), "the handle reconnects");
    expect_signal(&event, "the reconnection signals the event once");
    expect_silence(&event, "once, not more");
    let admin = lab.service.connect();
    let sessions = admin.sessions().unwrap();
    assert!(
        sessions
            .iter()
            .any(|s| s.pid == std::process::id() as i32 && s.registrations == 1),
        "registered again: {sessions:?}"
    );
    lab.set_up("va", true);
    expect_signal(&event, "the new registration works");
    handle.deregister_connection_notification(&event).unwrap();
    lab.set_up("va", false);
    expect_silence(&event, "deregistered for good");
}

#[test]
fn a_stopped_client_costs_bounded_memory_and_hears_what_it_missed() {
    use std::io::{BufRead, BufReader};
    // No journal: its queue, behind by thousands of entries in a storm,
    // would be measured too.
    let lab = Lab::with_config(Some("journal = false\n[limits]\nstream_backlog = 16\n"));
    lab.add_link("va");
    lab.add_link("marker");
    // The same storm first, before any client: what a storm costs the
    // service anyway (its log's queue, the allocator's arenas) is paid
    // before the measure, which then sees what the stuck client costs.
    lab.flap("va", 8000);
    for (up, state) in [
        (true, ConnectionState::Connected),
        (false, ConnectionState::Disconnected),
    ] {
        lab.set_up("marker", up);
        lab.wait_for_state("marker", state);
    }
    let mut watch = lab
        .service
        .ddm(&["watch", "--json", "--timeout", "10"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    lab.service.wait_for_registration(watch.id());
    let bystander = lab.service.connect();
    let event = Event::auto().unwrap();
    bystander.register_connection_notification(&event).unwrap();
    let watch_pid = nix::unistd::Pid::from_raw(watch.id() as i32);

    nix::sys::signal::kill(watch_pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let rss_before = lab.service.rss_kib();
    lab.flap("va", 8000);
    lab.set_up("marker", true);
    expect_signal(&event, "the bystander is served while a client is stuck");
    let grown = lab.service.rss_kib().saturating_sub(rss_before);
    // Unbounded, 8,000 queued events would cost the service over 600 KiB;
    // bounded, it keeps 16 and a count.
    assert!(grown < 256, "the stuck client cost the service {grown} KiB");

    nix::sys::signal::kill(watch_pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    // Read until the count, and keep reading (a watch whose reader went
    // would end by itself).
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    let missed = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|line| line.contains("\"missed\""))
        .expect("the watch reports the events it missed");
    assert!(missed.starts_with("{\"missed\":"), "{missed}");
    nix::sys::signal::kill(watch_pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let reader = std::thread::spawn(move || lines.count());
    assert!(watch.wait().unwrap().success());
    reader.join().unwrap();
}

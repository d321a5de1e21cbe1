//! Demand-dial interfaces against real WireGuard tunnels (wireguard-go)
//! between namespaces: the three Connect modes, failures and redial,
//! UNREACHABLE and recovery, demand dialing with the first packet
//! delivered, idle hang-up, enable and disable, dial-out hours, reload,
//! refused callers, the DDM stopped, and clean and unclean stops.

use crate::support::Netns;
use crate::support::{expect_signal, stdout_of, tool, wait_until, PATIENCE, QUIET};
use crate::wireguard_lab::{WgLab, FAR_LAN, FAR_LAN6, ROUTER_LAN, ROUTER_LAN6};
use mprapi::{unreachability, Connect, ConnectionState, Event, Server, StreamItem, WinError};
use std::time::Duration;
use ConnectionState::*;

fn handle(server: &Server, name: &str) -> u32 {
    server.interface_handle(name).unwrap()
}

/// Starts the lab's service with `config` and returns a handle on it with
/// the handle of its interface "branch".
fn start_branch(lab: &mut WgLab, config: &str) -> (Server, u32) {
    lab.start(config);
    let server = lab.service().connect();
    let branch = handle(&server, "branch");
    (server, branch)
}

/// Waits until the interface is DISCONNECTED again and its tunnel gone.
fn wait_hung_up(lab: &WgLab, server: &Server, handle: u32) {
    wait_state(server, handle, Disconnected);
    lab.wait_link_gone();
}

fn wait_state(server: &Server, handle: u32, state: ConnectionState) {
    wait_until(&format!("interface {handle} is {}", state.name()), || {
        server.interface(handle).unwrap().state == state
    });
}

#[test]
fn the_three_connect_modes_and_disconnect() {
    let mut lab = WgLab::new();
    let config = lab.interface(
        "branch",
        "dial = \"manual\"\nroutes = [\"192.168.20.0/24\"]\nconnect_timeout_secs = 5",
    );
    let (server, branch) = start_branch(&mut lab, &config);
    let info = server.interface(branch).unwrap();
    assert_eq!(
        (info.state, info.if_type),
        (Disconnected, mprapi::interface_type::FULL_ROUTER)
    );
    assert!(
        lab.route_device().is_none(),
        "a manual interface holds no routes while down"
    );

    // hEvent given: PENDING at once, the event set when the attempt completes.
    let done = Event::manual().unwrap();
    assert_eq!(
        server.interface_connect_signaling(branch, &done),
        Ok(Connect::Pending)
    );
    expect_signal(&done, "the attempt completed");
    assert_eq!(server.interface(branch).unwrap().state, Connected);
    assert!(lab.ping(2), "traffic flows through the tunnel");
    assert_eq!(lab.route_device().as_deref(), Some(lab.link.as_str()));
    assert_eq!(
        server.interface_connect(branch),
        Ok(Connect::Connected),
        "connected: NO_ERROR"
    );

    // Disconnect, then again: not connected.
    assert_eq!(server.interface_disconnect(branch), Ok(()));
    let info = server.interface(branch).unwrap();
    assert_eq!((info.state, info.last_error), (Disconnected, 929));
    lab.wait_link_gone();
    assert_eq!(
        server.interface_disconnect(branch),
        Err(WinError::ERROR_INTERFACE_NOT_CONNECTED)
    );

    // Synchronous: returns when connected.
    assert_eq!(server.interface_connect_wait(branch), Ok(()));
    assert_eq!(server.interface(branch).unwrap().state, Connected);
    server.interface_disconnect(branch).unwrap();
    lab.wait_link_gone();

    // Neither: PENDING at once; CONNECTING is visible while a slow dial
    // runs, a second Connect is ERROR_ALREADY_CONNECTING, and a Disconnect
    // cancels the attempt.
    lab.slow_dials(1.0);
    assert_eq!(server.interface_connect(branch), Ok(Connect::Pending));
    assert_eq!(server.interface(branch).unwrap().state, Connecting);
    assert_eq!(
        server.interface_connect(branch),
        Err(WinError::ERROR_ALREADY_CONNECTING)
    );
    assert_eq!(server.interface_disconnect(branch), Ok(()));
    assert_eq!(server.interface(branch).unwrap().state, Disconnected);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        server.interface(branch).unwrap().state,
        Disconnected,
        "the cancelled attempt stays cancelled"
    );
    assert!(!lab.link_exists(), "the cancelled dial left no tunnel");
}

#[test]
fn a_far_end_that_does_not_answer_fails_redials_turns_unreachable_and_recovers() {
    let mut lab = WgLab::new();
    let config = lab.interface(
        "branch",
        "dial = \"manual\"\nconnect_timeout_secs = 1\nredial_attempts = 1\nredial_pause_secs = 1\n\
         unreachable_retry_secs = 2\nunreachable_retry_step_secs = 2\nunreachable_retry_max_secs = 4",
    );
    let (server, branch) = start_branch(&mut lab, &config);
    let stream = server.subscribe().unwrap();
    let registered = Event::auto().unwrap();
    server
        .register_connection_notification(&registered)
        .unwrap();
    lab.far_answers(false);

    assert_eq!(
        server.interface_connect_wait(branch),
        Err(WinError::ERROR_NO_ANSWER)
    );
    assert_eq!(
        server.interface(branch).unwrap().last_error,
        WinError::ERROR_NO_ANSWER.0
    );
    // One redial, which fails too: UNREACHABLE.
    wait_state(&server, branch, Unreachable);
    let info = server.interface(branch).unwrap();
    assert_eq!(info.last_error, WinError::ERROR_NO_ANSWER.0);
    assert_eq!(
        info.unreachability_reasons,
        unreachability::CONNECTION_FAILURE
    );
    assert_eq!(lab.dials(), 2, "one attempt and one redial");
    // The hang-up of the last attempt runs its disconnect command once
    // UNREACHABLE is committed.
    wait_until("failed attempts are cleaned up", || !lab.link_exists());
    assert!(
        !registered.is_set(),
        "no connect or disconnect happened: nothing signaled"
    );
    // The typed stream saw every step, with the last error.
    let seen: Vec<(ConnectionState, u32)> = (0..4)
        .map(|_| match stream.next_timeout(PATIENCE) {
            Some(mprapi::StreamItem::Event(e)) => (e.to, e.last_error),
            other => panic!("expected an event, got {other:?}"),
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (Connecting, 0),
            (Disconnected, 678),
            (Connecting, 678),
            (Unreachable, 678)
        ]
    );

    // The retry interval passes: reachable (DISCONNECTED) again.
    wait_state(&server, branch, Disconnected);
    lab.far_answers(true);
    assert_eq!(server.interface_connect_wait(branch), Ok(()));
    expect_signal(&registered, "the connect");
    let info = server.interface(branch).unwrap();
    assert_eq!(
        (info.state, info.last_error, info.unreachability_reasons),
        (Connected, 0, 0)
    );
}

#[test]
fn demand_dials_on_the_first_ping_delivers_it_and_hangs_up_when_idle() {
    let mut lab = WgLab::new();
    let config = lab.interface(
        "branch",
        "dial = \"demand\"\nroutes = [\"192.168.20.0/24\"]\ntrigger_src = \"10.9.0.1\"\nidle_disconnect_secs = 2",
    );
    let (server, branch) = start_branch(&mut lab, &config);
    let trigger = lab.route_device().expect("the routes are held");
    assert_ne!(
        trigger, lab.link,
        "on the trigger device while disconnected"
    );
    let registered = Event::auto().unwrap();
    server
        .register_connection_notification(&registered)
        .unwrap();

    assert!(lab.ping(5), "the first ping, which dials, is answered");
    wait_state(&server, branch, Connected);
    expect_signal(&registered, "the demand dial connected");
    assert_eq!(
        lab.route_device().as_deref(),
        Some(lab.link.as_str()),
        "the routes moved to the link"
    );

    // No traffic: hung up with ERROR_IDLE_DISCONNECTED, routes back.
    wait_until("idle hang-up", || {
        server.interface(branch).unwrap().state == Disconnected
    });
    expect_signal(&registered, "the idle hang-up");
    assert_eq!(
        server.interface(branch).unwrap().last_error,
        WinError::ERROR_IDLE_DISCONNECTED.0
    );
    lab.wait_link_gone();
    assert_eq!(
        lab.route_device(),
        Some(trigger),
        "the routes are back on the trigger"
    );
    assert_eq!(lab.dials(), 1);
}

#[test]
fn a_stream_of_packets_while_dialing_does_not_hold_readiness_up() {
    let mut lab = WgLab::new();
    let config = lab.interface(
        "branch",
        "dial = \"demand\"\nroutes = [\"192.168.20.0/24\"]\ntrigger_src = \"10.9.0.1\"\n\
         connect_timeout_secs = 3\nhold_packets = 8",
    );
    let (server, branch) = start_branch(&mut lab, &config);
    lab.slow_dials(0.3);
    // A packet every 2 ms, before, while and after it dials.
    let flood = tool("ip")
        .args([
            "netns",
            "exec",
            &lab.router.name,
            "ping",
            "-q",
            "-c",
            "1000",
            "-i",
            "0.002",
        ])
        .arg(FAR_LAN)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_state(&server, branch, Connected);
    let info = server.interface(branch).unwrap();
    assert_eq!(info.last_error, 0);
    let out = flood.wait_with_output().unwrap();
    assert!(
        out.status.success() || out.status.code() == Some(1),
        "ping ran"
    );
    let log = lab.service().log();
    assert!(
        log.contains("held packets"),
        "what did not fit was counted: {log}"
    );
}

#[test]
fn idle_time_is_not_put_off_by_the_kernels_own_packets() {
    let mut lab = WgLab::new();
    let config = lab.interface(
        "branch",
        "dial = \"demand\"\nroutes = [\"192.168.20.0/24\"]\ntrigger_src = \"10.9.0.1\"\nidle_disconnect_secs = 5",
    );
    let (server, branch) = start_branch(&mut lab, &config);
    assert!(lab.ping(5));
    let last_traffic = std::time::Instant::now();
    // The tunnel's IPv6 link-local address makes the kernel send router
    // solicitations for seconds after the link came up; they go nowhere.
    wait_until("the idle hang-up", || {
        server.interface(branch).unwrap().state == Disconnected
    });
    let after = last_traffic.elapsed();
    assert!(
        after < Duration::from_secs(8),
        "hung up {after:?} after the last packet, for 5 s of idle time"
    );
    assert_eq!(
        server.interface(branch).unwrap().last_error,
        WinError::ERROR_IDLE_DISCONNECTED.0
    );
}

#[test]
fn demand_dialing_by_tcp_delivers_the_first_syn() {
    let mut lab = WgLab::new();
    let config = lab.interface(
        "branch",
        "dial = \"demand\"\nroutes = [\"192.168.20.0/24\"]\ntrigger_src = \"10.9.0.1\"\nidle_disconnect_secs = 0",
    );
    lab.start(&config);
    assert_eq!(
        tcp_retransmits(&lab, &lab.router, 7070),
        0,
        "the first SYN was held and delivered, not retransmitted"
    );
}

#[test]
fn demand_without_a_source_address_answers_the_first_ping_and_learns_the_tunnels() {
    let mut lab = WgLab::new();
    let config = lab.interface(
        "branch",
        "dial = \"demand\"\nroutes = [\"192.168.20.0/24\"]\nidle_disconnect_secs = 1",
    );
    let (server, branch) = start_branch(&mut lab, &config);
    // The ping leaves from the veth's address; ddm re-sends it from the
    // tunnel's, which the far end routes back.
    assert!(lab.ping(5), "the first ping is answered");
    wait_state(&server, branch, Connected);
    wait_state(&server, branch, Disconnected);
    let route = lab.router_ip(&["route", "show", "192.168.20.0/24"]);
    assert!(
        route.contains("src 10.9.0.1"),
        "the trigger route took the tunnel's address: {route}"
    );
    lab.wait_link_gone();
    // Now even a TCP connection, whose source cannot change, gets through
    // with its first SYN.
    assert_eq!(tcp_retransmits(&lab, &lab.router, 7071), 0);
}

#[test]
fn demand_dialing_through_wg_quick_which_adds_routes_of_its_own() {
    let mut lab = WgLab::new();
    let config = lab.wg_quick_interface(
        "branch",
        "dial = \"demand\"\nroutes = [\"192.168.20.0/24\"]\nidle_disconnect_secs = 1",
    );
    let (server, branch) = start_branch(&mut lab, &config);
    assert!(lab.ping(5), "the first ping is answered");
    wait_state(&server, branch, Connected);
    // wg-quick adds a route of its own unless it finds ddm's on the link
    // already; either way they do not collide (ddm's has metric 100).
    let routes = lab.router_ip(&["route", "show", "192.168.20.0/24"]);
    assert!(
        routes.lines().all(|r| r.contains(lab.link.as_str())),
        "every route goes through the tunnel: {routes}"
    );
    wait_state(&server, branch, Disconnected);
    assert_eq!(
        server.interface(branch).unwrap().last_error,
        WinError::ERROR_IDLE_DISCONNECTED.0
    );
    lab.wait_link_gone();
    assert!(
        lab.route_device().is_some_and(|d| d != lab.link),
        "ddm's route is back on the trigger"
    );
    assert!(lab.ping(5), "and dials again");
}

/// A demand tunnel (with `extra` keys) dialed four times in a row, each by
/// a first packet that must arrive: a ping bound to the router's LAN
/// address (the first dial of all, the trigger without an address of its
/// own unless `trigger_src` gives one), a LAN host's ping, a LAN host's
/// TCP SYN (to `port`, with no retransmission), the router's own ping.
fn lan_first_packets(extra: &str, port: u16) {
    let mut lab = WgLab::new();
    lab.add_lan();
    let config = lab.interface(
        "branch",
        &format!(
            "dial = \"demand\"\nroutes = [\"192.168.20.0/24\"]\nidle_disconnect_secs = 1\n{extra}"
        ),
    );
    let (server, branch) = start_branch(&mut lab, &config);
    assert!(
        lab.ping_from(&lab.router, &["-I", ROUTER_LAN], 8),
        "the first ping from the router's LAN address is answered"
    );
    wait_hung_up(&lab, &server, branch);
    let host = lab.lan.as_ref().unwrap();
    assert!(
        lab.ping_from(host, &[], 8),
        "the LAN host's first ping is answered"
    );
    wait_hung_up(&lab, &server, branch);
    assert_eq!(
        tcp_retransmits(&lab, host, port),
        0,
        "the LAN host's first SYN is delivered, not retransmitted"
    );
    wait_hung_up(&lab, &server, branch);
    assert!(lab.ping(8), "the router's own first ping is answered");
}

#[test]
fn a_lan_host_and_a_ping_bound_to_the_routers_lan_address_are_answered_first_time() {
    lan_first_packets("", 7072);
}

#[test]
fn with_trigger_src_a_lan_hosts_first_ping_and_first_syn_get_through() {
    lan_first_packets("trigger_src = \"10.9.0.1\"", 7073);
}

/// A ping from `netns` to `to` that a filter refuses: it fails at once,
/// told "Packet filtered" (ICMP administratively prohibited).
fn assert_ping_filtered(netns: &Netns, to: &str) {
    let started = std::time::Instant::now();
    let out = netns
        .command("ping")
        .args(["-c1", "-W5", to])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "the ping got through: {said}");
    assert!(
        said.contains("filtered"),
        "told administratively prohibited: {said}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "at once, not at its timeout: {:?}",
        started.elapsed()
    );
}

/// A UDP datagram from `netns` to the far LAN's `port`: the error its
/// socket gets at once (EHOSTUNREACH for "administratively prohibited").
fn udp_refusal(netns: &Netns, port: u16) -> std::io::ErrorKind {
    netns.enter(|| {
        let socket = std::net::UdpSocket::bind(("0.0.0.0", 0)).unwrap();
        socket.connect((FAR_LAN, port)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        socket.send(b"ntp?").unwrap();
        socket
            .recv(&mut [0u8; 64])
            .expect_err("no answer but the refusal")
            .kind()
    })
}

/// The interface's filter as `ddm interfaces --json` shows it.
fn filter_json(lab: &WgLab) -> serde_json::Value {
    let listing = stdout_of(&mut lab.service().ddm(&["interfaces", "--json"]));
    let list: serde_json::Value = serde_json::from_str(&listing).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "branch")
        .map(|i| i["dial_filter"].clone())
        .unwrap()
}

#[test]
fn dial_on_lets_only_its_traffic_dial_and_the_rest_is_refused_at_once() {
    let mut lab = WgLab::new();
    lab.add_lan();
    lab.router.ip(&["link", "set", "lo", "up"]);
    let config = format!(
        "[metrics]\nlisten = \"127.0.0.1:9731\"\n{}",
        lab.interface(
            "branch",
            "dial = \"demand\"\nroutes = [\"192.168.20.0/24\"]\ndial_on = [\"tcp dport 443\"]",
        )
    );
    let (server, branch) = start_branch(&mut lab, &config);
    let host = lab.lan.as_ref().unwrap();
    assert_ping_filtered(host, FAR_LAN);
    assert_eq!(udp_refusal(host, 123), std::io::ErrorKind::HostUnreachable);
    std::thread::sleep(QUIET);
    assert_eq!(lab.dials(), 0, "neither dialed");
    assert_eq!(server.interface(branch).unwrap().state, Disconnected);
    let filter = server.interface(branch).unwrap().dial_filter.unwrap();
    assert_eq!((filter.kind.as_str(), filter.refused), ("dial_on", 2));
    assert_eq!(filter.rules, vec![("tcp dport 443".to_owned(), 0)]);
    let metrics = stdout_of(
        lab.router
            .command("curl")
            .args(["-s", "http://127.0.0.1:9731/metrics"]),
    );
    assert!(
        metrics.contains("ddm_interface_dial_refused_total{interface=\"branch\"} 2"),
        "{metrics}"
    );
    // A TCP SYN to 443 dials, and is delivered first time.
    assert_eq!(tcp_retransmits_to(&lab, host, FAR_LAN, 443), 0);
    assert_eq!(lab.dials(), 1);
    let shown = filter_json(&lab);
    assert_eq!(shown["kind"], "dial_on");
    assert_eq!(shown["refused"], 2);
    assert_eq!(shown["rules"][0]["rule"], "tcp dport 443");
    assert_eq!(shown["rules"][0]["matched"], 1);
}

#[test]
fn dial_except_the_other_way_and_a_reload_changes_filters_without_hanging_up() {
    let mut lab = WgLab::new();
    lab.add_lan();
    let interface = |filter: &str| {
        lab.interface(
            "branch",
            &format!("dial = \"demand\"\nroutes = [\"192.168.20.0/24\"]\nidle_disconnect_secs = 3\n{filter}"),
        )
    };
    let (except, on) = (
        interface("dial_except = [\"udp dport 123\", \"tcp dport 873\"]"),
        interface("dial_on = [\"tcp dport 22\"]"),
    );
    let (server, branch) = start_branch(&mut lab, &except);
    let host = lab.lan.as_ref().unwrap();
    assert_eq!(udp_refusal(host, 123), std::io::ErrorKind::HostUnreachable);
    assert_eq!(lab.dials(), 0, "NTP does not dial");
    assert!(lab.ping_from(host, &[], 8), "a ping dials and is answered");
    wait_state(&server, branch, Connected);
    // The filters change; the connection stays.
    std::fs::write(lab.service().config_path(), &on).unwrap();
    let out = lab.service().ddm(&["reload"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        server.interface(branch).unwrap().state,
        Connected,
        "not hung up"
    );
    assert_eq!(filter_json(&lab)["kind"], "dial_on");
    assert!(
        lab.ping_from(host, &[], 5),
        "connected, the link carries everything"
    );
    assert_eq!(lab.dials(), 1);
    // Idle, hung up: now a ping may not dial.
    wait_hung_up(&lab, &server, branch);
    assert_ping_filtered(host, FAR_LAN);
    assert_eq!(lab.dials(), 1);
}

/// The device of the router's IPv6 route to the far LAN, if there is one.
fn route6_device(lab: &WgLab) -> Option<String> {
    let routes = lab.router_ip(&["-6", "route", "show", "fd20::/64"]);
    let mut words = routes.split_whitespace();
    words.find(|w| *w == "dev")?;
    words.next().map(str::to_owned)
}

#[test]
fn ipv6_demand_dialing_from_a_lan_host_and_the_router_side_by_side_with_ipv4() {
    let mut lab = WgLab::new();
    lab.add_lan();
    let config = lab.interface(
        "branch",
        "dial = \"demand\"\nroutes = [\"192.168.20.0/24\", \"fd20::/64\"]\nidle_disconnect_secs = 2",
    );
    let (server, branch) = start_branch(&mut lab, &config);
    wait_until("the trigger holds both routes", || {
        route6_device(&lab).as_deref() == Some("ddm-branch")
            && lab.route_device().as_deref() == Some("ddm-branch")
    });
    // The kernel's own IPv6 chatter on the new tun (router solicitations
    // a second after it comes up, MLD reports) dials nothing.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(lab.dials(), 0, "the trigger's own IPv6 chatter dialed");
    assert_eq!(server.interface(branch).unwrap().state, Disconnected);
    // The first dial of all is an IPv6 ping from the router, unbound: its
    // source is the one the kernel picked (the LAN's), and it is answered.
    assert!(
        lab.ping_to(FAR_LAN6, &lab.router, &[], 8),
        "the router's first ping6 is answered"
    );
    wait_state(&server, branch, Connected);
    assert_eq!(
        route6_device(&lab).as_deref(),
        Some(lab.link.as_str()),
        "the IPv6 route moved to the link"
    );
    assert_eq!(
        lab.route_device().as_deref(),
        Some(lab.link.as_str()),
        "and the IPv4 one"
    );
    // The kernel's IPv6 chatter on the link does not put off the idle
    // hang-up, and both routes go back to the trigger.
    let last_traffic = std::time::Instant::now();
    wait_state(&server, branch, Disconnected);
    assert!(
        last_traffic.elapsed() < Duration::from_secs(5),
        "hung up {:?} after the last packet, for 2 s of idle time",
        last_traffic.elapsed()
    );
    assert_eq!(
        server.interface(branch).unwrap().last_error,
        WinError::ERROR_IDLE_DISCONNECTED.0
    );
    lab.wait_link_gone();
    assert_eq!(
        route6_device(&lab).as_deref(),
        Some("ddm-branch"),
        "the IPv6 route is back on the trigger"
    );
    let trigger = lab.router_ip(&["-6", "addr", "show", "dev", "ddm-branch"]);
    assert!(
        trigger.contains("fd09::1"),
        "the trigger learned the link's IPv6 address: {trigger}"
    );
    // A LAN host's first ping6 and first TCP SYN over IPv6.
    let host = lab.lan.as_ref().unwrap();
    assert!(
        lab.ping_to(FAR_LAN6, host, &[], 8),
        "the LAN host's first ping6 is answered"
    );
    wait_hung_up(&lab, &server, branch);
    assert_eq!(
        tcp_retransmits_to(&lab, host, FAR_LAN6, 7074),
        0,
        "the LAN host's first SYN over IPv6"
    );
    wait_hung_up(&lab, &server, branch);
    // A ping6 bound to the router's LAN address keeps it.
    assert!(
        lab.ping_to(FAR_LAN6, &lab.router, &["-I", ROUTER_LAN6], 8),
        "a ping6 bound to the router's LAN address is answered"
    );
}

/// Connects from `from` (the router, a LAN host) to a listener at the far
/// LAN's `port` and returns how often the connection's packets were
/// retransmitted.
fn tcp_retransmits(lab: &WgLab, from: &Netns, port: u16) -> u32 {
    tcp_retransmits_to(lab, from, FAR_LAN, port)
}

/// The same to the far end's address `to`, of either family.
fn tcp_retransmits_to(lab: &WgLab, from: &Netns, to: &str, port: u16) -> u32 {
    let (router, far) = (from.name.clone(), lab.far.name.clone());
    let to: std::net::IpAddr = to.parse().unwrap();
    let listener = std::thread::spawn(move || {
        enter(&far);
        let listener = std::net::TcpListener::bind((to, port)).unwrap();
        listener.accept().map(drop)
    });
    std::thread::sleep(Duration::from_millis(200));
    let retransmits = std::thread::spawn(move || {
        enter(&router);
        let to = (to, port).into();
        let stream = std::net::TcpStream::connect_timeout(&to, PATIENCE)
            .expect("the connection through the demand-dialed tunnel");
        total_retransmits(&stream)
    })
    .join()
    .unwrap();
    listener.join().unwrap().unwrap();
    retransmits
}

/// Moves the calling thread into network namespace `name`.
fn enter(name: &str) {
    let file = std::fs::File::open(format!("/var/run/netns/{name}")).unwrap();
    nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
}

/// tcpi_total_retrans of a TCP socket.
fn total_retransmits(stream: &std::net::TcpStream) -> u32 {
    use std::os::fd::AsRawFd;
    // SAFETY: getsockopt writes at most `len` bytes of tcp_info.
    unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let got = libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            std::ptr::from_mut(&mut info).cast(),
            &mut len,
        );
        assert_eq!(got, 0);
        info.tcpi_total_retrans
    }
}

#[test]
fn a_persistent_interface_dials_at_start_and_redials_a_dropped_link() {
    let mut lab = WgLab::new();
    // Its script starts wireguard-go at once: ddm waits for the old one.
    let config = lab.impatient_interface(
        "branch",
        "dial = \"persistent\"\nroutes = [\"192.168.20.0/24\"]",
    );
    let (server, branch) = start_branch(&mut lab, &config);
    wait_state(&server, branch, Connected);
    let registered = Event::auto().unwrap();
    server
        .register_connection_notification(&registered)
        .unwrap();
    let stream = server.subscribe().unwrap();

    let link = lab.link.clone();
    lab.router.ip(&["link", "del", &link]);
    let mut states = Vec::new();
    while states.last() != Some(&Connected) {
        match stream.next_timeout(PATIENCE) {
            Some(mprapi::StreamItem::Event(e)) => states.push(e.to),
            other => panic!("expected an event, got {other:?}"),
        }
    }
    assert_eq!(
        states,
        vec![Disconnected, Connecting, Connected],
        "{}",
        lab.service().log()
    );
    expect_signal(&registered, "the loss and the redial");
    assert!(lab.ping(2));
    assert_eq!(lab.dials(), 2);
}

#[test]
fn a_supervised_connection_that_ends_is_lost_and_redialed_and_sigterm_hangs_it_up() {
    let mut lab = WgLab::new();
    let config = lab.supervised_interface(
        "branch",
        "dial = \"persistent\"\nroutes = [\"192.168.20.0/24\"]",
    );
    let (server, branch) = start_branch(&mut lab, &config);
    wait_state(&server, branch, Connected);
    let stream = server.subscribe().unwrap();

    // The tunnel's process dies: a lost connection, redialed.
    let pattern = format!("wireguard-go -f {}", lab.link);
    assert!(tool("pkill")
        .args(["-f", &pattern])
        .status()
        .unwrap()
        .success());
    let mut seen = Vec::new();
    while seen.last().map(|(to, _)| *to) != Some(Connected) {
        match stream.next_timeout(PATIENCE) {
            Some(mprapi::StreamItem::Event(e)) => seen.push((e.to, e.last_error)),
            other => panic!("expected an event, got {other:?}"),
        }
    }
    assert_eq!(
        seen[0],
        (Disconnected, WinError::ERROR_REMOTE_DISCONNECTION.0)
    );
    assert_eq!(lab.dials(), 2);

    // Hanging up is SIGTERM to the connect process, which takes its tunnel.
    server.interface_disconnect(branch).unwrap();
    lab.wait_link_gone();
    wait_until("no tunnel process is left", || lab.tunnel_processes() == 0);
}

#[test]
fn a_dial_command_that_hangs_is_killed_at_the_connect_timeout() {
    let mut lab = WgLab::new();
    let config = lab.interface(
        "branch",
        "dial = \"manual\"\nconnect_timeout_secs = 1\nredial_attempts = 0",
    );
    let (server, branch) = start_branch(&mut lab, &config);
    lab.slow_dials(30.0);
    assert_eq!(
        server.interface_connect_wait(branch),
        Err(WinError::ERROR_NO_ANSWER)
    );
    wait_until("the hung dial command is gone", || {
        !tool("pgrep")
            .args(["-f", &lab.up_script().display().to_string()])
            .status()
            .unwrap()
            .success()
    });
    assert_eq!(
        server.interface(branch).unwrap().state,
        Unreachable,
        "no redial was allowed"
    );
}

#[test]
fn disabled_interfaces_hang_up_and_refuse_connect() {
    let mut lab = WgLab::new();
    let config = lab.interface("branch", "dial = \"persistent\"");
    let (server, branch) = start_branch(&mut lab, &config);
    wait_state(&server, branch, Connected);

    server.interface_set_enabled(branch, false).unwrap();
    let info = server.interface(branch).unwrap();
    assert_eq!((info.state, info.enabled), (Disconnected, false));
    assert_eq!(
        info.unreachability_reasons & unreachability::ADMIN_DISABLED,
        unreachability::ADMIN_DISABLED
    );
    lab.wait_link_gone();
    assert_eq!(
        server.interface_connect(branch),
        Err(WinError::ERROR_INTERFACE_DISABLED)
    );

    server.interface_set_enabled(branch, true).unwrap();
    wait_state(&server, branch, Connected);
}

#[test]
fn outside_its_dialout_hours_an_interface_is_unreachable_and_refuses_connect() {
    let mut lab = WgLab::new();
    // A window on a day that is not today.
    let tomorrow = ["Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "Mon"][weekday_today()];
    let config = lab.interface(
        "branch",
        &format!("dial = \"manual\"\ndialout_hours = [\"{tomorrow} 00:00-24:00\"]"),
    );
    let (server, branch) = start_branch(&mut lab, &config);
    let info = server.interface(branch).unwrap();
    assert_eq!(info.state, Unreachable);
    assert_eq!(
        info.unreachability_reasons,
        unreachability::DIALOUT_HOURS_RESTRICTION
    );
    assert_eq!(
        server.interface_connect(branch),
        Err(WinError::ERROR_DIALOUT_HOURS_RESTRICTION)
    );
    assert_eq!(lab.dials(), 0);
}

/// 0 is Monday, in local time.
fn weekday_today() -> usize {
    let out = std::process::Command::new("date")
        .arg("+%u")
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse::<usize>()
        .unwrap()
        - 1
}

#[test]
fn the_ddm_stopped_hangs_up_and_started_dials_again() {
    let mut lab = WgLab::new();
    let config = lab.interface("branch", "dial = \"persistent\"");
    let (server, branch) = start_branch(&mut lab, &config);
    wait_state(&server, branch, Connected);
    server.set_router_running(false).unwrap();
    lab.wait_link_gone();
    assert_eq!(
        server.interface_connect(branch),
        Err(WinError::ERROR_DDM_NOT_RUNNING)
    );
    // Enabling and disabling is a setting: allowed while stopped.
    assert_eq!(server.interface_set_enabled(branch, false), Ok(()));
    assert_eq!(server.interface_set_enabled(branch, true), Ok(()));
    server.set_router_running(true).unwrap();
    wait_state(&server, branch, Connected);
}

#[test]
fn callers_below_admin_may_look_but_not_dial() {
    let mut lab = WgLab::new();
    let config = format!(
        "[access]\nmonitor_users = [\"nobody\"]\n{}",
        lab.interface("branch", "dial = \"manual\"")
    );
    lab.start(&config);
    let service = lab.service();
    let as_nobody = |args: &[&str]| {
        tool("runuser")
            .args(["-u", "nobody", "--", crate::support::DDM])
            .args(args)
            .arg("--socket")
            .arg(&service.socket)
            .output()
            .unwrap()
    };
    for args in [
        &["connect", "branch"][..],
        &["disconnect", "branch"],
        &["disable", "branch"],
        &["reload"],
    ] {
        let out = as_nobody(args);
        assert!(!out.status.success(), "{args:?} by a monitor");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("ERROR_ACCESS_DENIED"),
            "{args:?}"
        );
    }
    let listing = as_nobody(&["interfaces"]);
    assert!(String::from_utf8_lossy(&listing.stdout).contains("branch"));
    assert_eq!(lab.dials(), 0);
}

#[test]
fn the_cli_connects_waits_disconnects_and_lists_dial_modes_and_errors() {
    let mut lab = WgLab::new();
    let config = lab.interface("branch", "dial = \"manual\"");
    lab.start(&config);
    let service = lab.service();
    let ddm = |args: &[&str]| service.ddm(args).output().unwrap();
    let connected = ddm(&["connect", "branch", "--wait"]);
    assert!(
        connected.status.success(),
        "{}",
        String::from_utf8_lossy(&connected.stderr)
    );
    assert!(ddm(&["disconnect", "branch"]).status.success());
    let listing = String::from_utf8(ddm(&["interfaces"]).stdout).unwrap();
    let row = listing.lines().find(|l| l.contains("branch")).unwrap();
    assert!(
        row.contains("manual") && row.contains("ERROR_INTERFACE_DISCONNECTED (929)"),
        "{row}"
    );
    let again = ddm(&["disconnect", "branch"]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("ERROR_INTERFACE_NOT_CONNECTED"));
    assert!(ddm(&["disable", "branch"]).status.success());
    let refused = ddm(&["connect", "branch"]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("ERROR_INTERFACE_DISABLED"));
    assert!(ddm(&["enable", "branch"]).status.success());
    let missing = ddm(&["connect", "nowhere"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("ERROR_NO_SUCH_INTERFACE"));
}

#[test]
fn reload_applies_what_changed_and_leaves_the_rest_alone() {
    let mut lab = WgLab::new();
    let branch_decl = lab.interface("branch", "dial = \"persistent\"");
    lab.start(&branch_decl);
    let service = lab.service();
    let server = service.connect();
    let branch = handle(&server, "branch");
    wait_state(&server, branch, Connected);
    let stream = server.subscribe().unwrap();

    let config_path = lab.service().config_path();
    let spare = "[[interface]]\nname = \"spare\"\nlink = \"spare0\"\nconnect = [\"true\"]\n";
    std::fs::write(&config_path, format!("{branch_decl}{spare}")).unwrap();
    let out = service.ddm(&["reload"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        server.interface_handle("spare").is_ok(),
        "the new interface is there"
    );
    assert_eq!(server.interface(branch).unwrap().state, Connected);
    let events: Vec<_> =
        std::iter::from_fn(|| match stream.next_timeout(Duration::from_millis(300)) {
            Some(StreamItem::Event(e)) => Some(e),
            _ => None,
        })
        .collect();
    assert!(
        events.iter().all(|e| e.interface != "branch"),
        "the unchanged interface was not touched: {events:?}"
    );
    assert!(
        matches!(&events[..], [e] if e.interface == "spare" && e.from == Unreachable && e.to == Disconnected),
        "the new one appears, from UNREACHABLE as the journal has it: {events:?}"
    );
    assert_eq!(lab.dials(), 1);

    // A file that is not valid changes nothing.
    std::fs::write(&config_path, "[[interface]]\nname = \"broken\"\n").unwrap();
    let out = service.ddm(&["reload"]).output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("ERROR_BAD_CONFIGURATION")
            && said.contains("interface \"broken\": link \"\" is not a name the kernel takes"),
        "the caller is told why: {said}"
    );
    assert!(server.interface_handle("spare").is_ok());

    // SIGHUP reloads too: the interface removed goes, the tunnel with it.
    std::fs::write(&config_path, spare).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(service.pid()),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    wait_until("branch is gone", || {
        server.interface_handle("branch") == Err(WinError::ERROR_NO_SUCH_INTERFACE)
    });
    lab.wait_link_gone();
}

#[test]
fn a_clean_stop_leaves_nothing_and_a_restart_after_sigkill_adopts_the_tunnel() {
    let mut lab = WgLab::new();
    let config = lab.interface(
        "branch",
        "dial = \"persistent\"\nroutes = [\"192.168.20.0/24\"]",
    );
    lab.start(&config);
    let server = lab.service().connect();
    wait_state(&server, handle(&server, "branch"), Connected);
    drop(server);

    // SIGKILL: the tunnel stays up; the next start adopts it, no dial.
    lab.service.as_mut().unwrap().restart();
    let server = lab.service().connect();
    let branch = handle(&server, "branch");
    assert_eq!(
        server.interface(branch).unwrap().state,
        Connected,
        "adopted"
    );
    assert_eq!(lab.dials(), 1, "no second dial");
    assert!(lab.ping(2));
    drop(server);

    // A clean stop hangs up: no tunnel, no route, no trigger, no process.
    let status = lab
        .service
        .as_mut()
        .unwrap()
        .stop_with(nix::sys::signal::Signal::SIGTERM);
    assert!(status.success());
    assert!(!lab.link_exists());
    assert_eq!(lab.route_device(), None);
    wait_until("no tunnel process is left", || lab.tunnel_processes() == 0);
}

#[test]
fn after_sigkill_a_demand_interface_leaves_no_trigger_or_route_behind() {
    let mut lab = WgLab::new();
    let config = lab.interface(
        "branch",
        "dial = \"demand\"\nroutes = [\"192.168.20.0/24\", \"fd20::/64\"]\ntrigger_src = \"10.9.0.1\"",
    );
    lab.start(&config);
    wait_until("the trigger holds the routes", || {
        lab.route_device().is_some()
            && lab
                .router_ip(&["-6", "route", "show", "fd20::/64"])
                .contains("ddm-branch")
    });
    lab.service.as_mut().unwrap().kill();
    assert_eq!(
        lab.route_device(),
        None,
        "the trigger and its routes died with the service"
    );
    let v6 = lab.router_ip(&["-6", "route", "show", "fd20::/64"]);
    assert!(v6.trim().is_empty(), "no IPv6 route is left: {v6}");
    let links = lab.router_ip(&["-o", "link"]);
    assert!(!links.contains("ddm-branch"), "{links}");
}

#[test]
fn the_c_library_dials_as_the_windows_documentation_says() {
    use crate::c_abi::{compile, Build};
    let mut lab = WgLab::new();
    let config = format!(
        "[access]\nmonitor_users = [\"nobody\"]\n{}",
        lab.interface("branch", "dial = \"manual\"")
    );
    lab.start(&config);
    let run = |program: &std::path::Path, args: &[&str], as_nobody: bool| {
        use std::os::unix::process::CommandExt;
        let mut command = std::process::Command::new(program);
        command
            .args(args)
            .env("DDM_SOCKET", &lab.service().socket)
            .env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0");
        if as_nobody {
            command.uid(65534).gid(65534);
        }
        let out = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains(" passed, 0 failed"),
            "{args:?}:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    for build in [Build::Plain, Build::AddressSanitizer] {
        let program = compile("tests/c/dialing.c", build);
        run(&program, &["branch"], false);
        lab.wait_link_gone();
        run(&program, &["branch", "monitor"], true);
    }
}

#[test]
fn a_connect_command_still_running_when_the_link_comes_up_is_not_a_loss() {
    let lab = crate::support::Lab::with_config(Some(
        "[[interface]]\nname = \"veth-dial\"\nlink = \"vd\"\n\
         connect = [\"sh\", \"-c\", \"ip link set vd up; sleep 0.3\"]\n\
         disconnect = [\"ip\", \"link\", \"set\", \"vd\", \"down\"]\nready = \"link\"\n",
    ));
    lab.add_link("vd");
    let server = lab.service.connect();
    let dial = handle(&server, "veth-dial");
    assert_eq!(server.interface_connect_wait(dial), Ok(()));
    std::thread::sleep(Duration::from_millis(600));
    let info = server.interface(dial).unwrap();
    assert_eq!(
        (info.state, info.last_error),
        (Connected, 0),
        "the script's end is not a loss"
    );
    assert!(
        lab.interface("vd").is_none(),
        "a declared interface's link is not listed twice"
    );
    server.interface_disconnect(dial).unwrap();
    wait_until("vd is down", || !lab.router.link_is_up("vd"));
}

#[test]
fn each_connection_is_accounted_in_the_journal_and_in_uptime() {
    let mut lab = WgLab::new();
    let config = lab.interface(
        "branch",
        "dial = \"manual\"\nroutes = [\"192.168.20.0/24\"]",
    );
    let (server, branch) = start_branch(&mut lab, &config);
    for _ in 0..2 {
        assert_eq!(server.interface_connect_wait(branch), Ok(()));
        assert!(lab.ping(2), "traffic through the tunnel");
        server.interface_disconnect(branch).unwrap();
        lab.wait_link_gone();
    }
    let carried = accounting_entries(&server, "branch", 2);
    for entry in &carried {
        assert_eq!(entry.interface, "branch");
        // A ping's echo and its reply: 84 bytes of IP each way, at least.
        assert!(entry.rx_bytes >= 84 && entry.tx_bytes >= 84, "{entry:?}");
        assert!(entry.connected_ns > 0);
    }
    let report = server
        .uptime(&mprapi::Uptime {
            interface: "branch".into(),
            ..mprapi::Uptime::default()
        })
        .unwrap();
    let branch_uptime = &report.interfaces[0];
    assert_eq!(
        (
            branch_uptime.attempts,
            branch_uptime.failures,
            branch_uptime.connections,
            branch_uptime.disconnects
        ),
        (2, 0, 2, 2)
    );
    assert_eq!(
        branch_uptime.rx_bytes,
        carried.iter().map(|e| e.rx_bytes).sum::<u64>()
    );
    assert!(!branch_uptime.connected_now);
}

/// The journal's accounting entries of `interface`, once there are
/// `connections` of them (one a connection).
fn accounting_entries(
    server: &Server,
    interface: &str,
    connections: usize,
) -> Vec<mprapi::JournalEntry> {
    std::iter::repeat_with(|| {
        server
            .history(mprapi::History {
                interface: interface.into(),
                ..mprapi::History::default()
            })
            .map(Result::unwrap)
            .filter(|e| e.kind == mprapi::EntryKind::EntryAccounting as i32)
            .collect::<Vec<_>>()
    })
    .take(100)
    .inspect(|_| std::thread::sleep(Duration::from_millis(50)))
    .find(|found| found.len() == connections)
    .expect("one accounting entry a connection")
}

/// A link that outlives its connections (a veth set up and down by the
/// commands): each connection accounts from the link's counters when it
/// came up, not from the link's creation.
#[test]
fn a_connection_accounts_what_it_carried_not_what_its_link_carried_before() {
    let lab = crate::support::Lab::with_config(Some(
        "[[interface]]\nname = \"veth-dial\"\nlink = \"vd\"\n\
         connect = [\"ip\", \"link\", \"set\", \"vd\", \"up\"]\n\
         disconnect = [\"ip\", \"link\", \"set\", \"vd\", \"down\"]\nready = \"link\"\n",
    ));
    lab.add_link("vd");
    lab.router.ip(&["addr", "add", "10.77.0.1/24", "dev", "vd"]);
    lab.far.ip(&["addr", "add", "10.77.0.2/24", "dev", "vdp"]);
    let server = lab.service.connect();
    let dial = handle(&server, "veth-dial");
    // 200 echoes of 1,000 bytes each way in the first connection, none in
    // the second.
    for pings in [200, 0] {
        assert_eq!(server.interface_connect_wait(dial), Ok(()));
        if pings > 0 {
            let out = lab
                .router
                .command("ping")
                .args(["-q", "-c", &pings.to_string(), "-i", "0.002", "-s", "1000"])
                .arg("10.77.0.2")
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
        }
        server.interface_disconnect(dial).unwrap();
        wait_until("vd is down", || !lab.router.link_is_up("vd"));
    }
    let carried = accounting_entries(&server, "veth-dial", 2);
    let (first, second) = (&carried[0], &carried[1]);
    assert!(
        first.rx_bytes >= 200 * 1000 && first.tx_bytes >= 200 * 1000,
        "{first:?}"
    );
    // What a link says when it comes up (IPv6 neighbour discovery) at most.
    assert!(
        second.rx_bytes < 10_000 && second.tx_bytes < 10_000,
        "the second connection counted the first's traffic: {second:?}"
    );
}

/// A connect command's output is read to its end whatever it writes: a
/// byte that is not UTF-8 (a Latin-1 "é"), a 3 MB line without a newline,
/// 20,000 lines. The command is never killed by a closed pipe (it dials
/// first time, on every attempt), the log holds a cut line and a bounded
/// number of lines with a count of the rest, and the service stays small.
#[test]
fn a_connect_command_may_write_anything_and_still_dials() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("noisy.sh");
    std::fs::write(
        &script,
        "printf 'caf\\351\\n' >&2; printf 'caf\\351\\n'\n\
         head -c 3000000 /dev/zero | tr '\\0' a; echo\n\
         seq 1 20000\nip link set vd up\necho done\n",
    )
    .unwrap();
    let lab = crate::support::Lab::with_config(Some(&format!(
        "[[interface]]\nname = \"noisy\"\nlink = \"vd\"\n\
         connect = [\"sh\", \"{}\"]\n\
         disconnect = [\"ip\", \"link\", \"set\", \"vd\", \"down\"]\nready = \"link\"\n",
        script.display()
    )));
    lab.add_link("vd");
    let server = lab.service.connect();
    let noisy = handle(&server, "noisy");
    for _ in 0..2 {
        assert_eq!(server.interface_connect_wait(noisy), Ok(()), "it dials");
        let info = server.interface(noisy).unwrap();
        assert_eq!((info.state, info.last_error), (Connected, 0));
        server.interface_disconnect(noisy).unwrap();
        wait_until("noisy is disconnected", || {
            server.interface(noisy).unwrap().state == mprapi::ConnectionState::Disconnected
        });
    }
    let log = lab.service.log();
    assert!(log.contains("caf\u{FFFD}"), "read lossily");
    assert!(log.contains("(2998976 more bytes)"), "the long line is cut");
    assert!(log.contains("output lines dropped"), "the flood is counted");
    let lines = log.lines().filter(|l| l.contains("stdout")).count();
    assert!(lines < 1000, "{lines} lines of output logged");
    assert!(
        lab.service.rss_kib() < 64 * 1024,
        "{} KiB",
        lab.service.rss_kib()
    );
}

/// A demand interface whose trigger device cannot be made (its name is
/// an existing link's, "lo") says so in its last error, where it used to
/// sit DISCONNECTED with no error, never dialing.
#[test]
fn a_trigger_device_that_cannot_be_made_is_the_last_error() {
    let lab = crate::support::Lab::with_config(Some(
        "[[interface]]\nname = \"stuck\"\nlink = \"vd\"\nconnect = [\"true\"]\n\
         dial = \"demand\"\nroutes = [\"192.168.99.0/24\"]\ntrigger_device = \"lo\"\n",
    ));
    let server = lab.service.connect();
    let stuck = handle(&server, "stuck");
    wait_until("the failure is the interface's last error", || {
        server.interface(stuck).unwrap().last_error == WinError::ERROR_INTERFACE_HAS_NO_DEVICES.0
    });
    let listed = stdout_of(&mut lab.service.ddm(&["interfaces"]));
    assert!(
        listed.contains("ERROR_INTERFACE_HAS_NO_DEVICES (925)"),
        "{listed}"
    );
}

/// `ddm router stop` takes the demand interfaces' trigger devices and
/// routes down (packets to them meet no route, instead of being held and
/// dropped), and `ddm router start` brings them back.
#[test]
fn a_stopped_ddm_holds_no_trigger_device_and_no_route() {
    let lab = crate::support::Lab::with_config(Some(
        "[[interface]]\nname = \"held\"\nlink = \"vd\"\nconnect = [\"true\"]\n\
         dial = \"demand\"\nroutes = [\"192.168.98.0/24\"]\n",
    ));
    let trigger_and_route = || {
        let links = lab.router.ip_output(&["-o", "link", "show"]);
        let routes = lab.router.ip_output(&["route", "show", "192.168.98.0/24"]);
        (links.contains("ddm-held"), routes.contains("ddm-held"))
    };
    wait_until("the trigger and its route are up", || {
        trigger_and_route() == (true, true)
    });
    stdout_of(&mut lab.service.ddm(&["router", "stop"]));
    wait_until("the stopped DDM holds neither", || {
        trigger_and_route() == (false, false)
    });
    stdout_of(&mut lab.service.ddm(&["router", "start"]));
    wait_until("both are back", || trigger_and_route() == (true, true));
}

/// A daemon forked by a connect command (`setsid ... &`, as pppd, openvpn
/// --daemon and wireguard-go do) leaves the command's process group and is
/// no child of the service's; it is ended at the hang-up, at the service's
/// clean stop, and, after a SIGKILL of the service, at the next start.
#[test]
fn what_a_connect_command_forks_is_ended_with_the_connection() {
    let tag = format!(
        "{}.{}",
        900 + std::process::id() % 99,
        std::process::id() % 1000
    );
    let daemons = || {
        let out = tool("pgrep")
            .args(["-f", &format!("^sleep {tag}$")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    let mut lab = crate::support::Lab::with_config(Some(&format!(
        "[[interface]]\nname = \"forks\"\nlink = \"vd\"\n\
         connect = [\"sh\", \"-c\", \"setsid sleep {tag} >/dev/null 2>&1 < /dev/null & ip link set vd up\"]\n\
         disconnect = [\"ip\", \"link\", \"set\", \"vd\", \"down\"]\nready = \"link\"\n"
    )));
    lab.add_link("vd");
    let server = lab.service.connect();
    let forks = handle(&server, "forks");
    assert_eq!(server.interface_connect_wait(forks), Ok(()));
    wait_until("the daemon runs", || daemons() == 1);
    server.interface_disconnect(forks).unwrap();
    wait_until("the hang-up ends it", || daemons() == 0);

    assert_eq!(server.interface_connect_wait(forks), Ok(()));
    wait_until("the daemon runs again", || daemons() == 1);
    lab.service.stop_with(nix::sys::signal::Signal::SIGTERM);
    wait_until("the clean stop ends it", || daemons() == 0);

    lab.service.restart();
    let server = lab.service.connect();
    let forks = handle(&server, "forks");
    assert_eq!(server.interface_connect_wait(forks), Ok(()));
    wait_until("the daemon runs once more", || daemons() == 1);
    lab.set_up("vd", false);
    lab.service.kill();
    assert_eq!(daemons(), 1, "a SIGKILL leaves it");
    lab.service.restart();
    wait_until("the next start ends it", || daemons() == 0);
}

/// A storm of reloads, each changing a connected persistent interface's
/// declaration or removing it: when it settles the interface is CONNECTED
/// over a link that is up, and the journal's last state is the service's.
#[test]
fn a_storm_of_reloads_settles_connected_over_a_link_that_is_up() {
    let lab = crate::support::Lab::new();
    lab.add_link("vd");
    reload_storm(
        lab,
        r#"["ip", "link", "set", "vd", "up"]"#,
        r#"["ip", "link", "set", "vd", "down"]"#,
    );
}

/// The same storm where dialing creates the link and hanging up deletes it
/// (as a tunnel's commands do): a hang-up's deletion must never leave it
/// CONNECTED with no link.
#[test]
fn a_storm_of_reloads_settles_connected_when_hanging_up_deletes_the_link() {
    reload_storm(
        crate::support::Lab::new(),
        r#"["sh", "-c", "ip link add vd type veth peer name vdp 2>/dev/null; ip link set vdp up; ip link set vd up"]"#,
        r#"["ip", "link", "del", "vd"]"#,
    );
}

/// Links up before a reload declares them, whose connect command changes
/// nothing the kernel would announce: each interface connects at once, its
/// supervisor told of its link by the router (`vy`, one of its
/// interfaces until then) or reading it (`vx`, left out of the table by
/// `links.exclude`).
#[test]
fn a_reload_declares_links_already_up_and_connects_them() {
    let lab = crate::support::Lab::with_config(Some("[links]\nexclude = [\"vx\"]\n"));
    for link in ["vx", "vy"] {
        lab.add_link(link);
        lab.set_up(link, true);
    }
    lab.wait_for_state("vy", Connected);
    let config = ["vx", "vy"]
        .iter()
        .map(|link| {
            format!(
                "[[interface]]\nname = \"on-{link}\"\nlink = \"{link}\"\n\
                 connect = [\"ip\", \"link\", \"set\", \"{link}\", \"up\"]\n\
                 disconnect = [\"true\"]\ndial = \"persistent\"\n\
                 connect_timeout_secs = 120\n\n"
            )
        })
        .collect::<String>();
    std::fs::write(
        lab.service.config_path(),
        format!("[links]\nexclude = [\"vx\"]\n\n{config}"),
    )
    .unwrap();
    assert!(lab.service.ddm(&["reload"]).status().unwrap().success());
    lab.wait_for_state("on-vx", Connected);
    lab.wait_for_state("on-vy", Connected);
    assert_eq!(
        lab.state_of("vy"),
        None,
        "vy is on-vy's link, not an interface"
    );
}

fn reload_storm(mut lab: crate::support::Lab, connect: &str, disconnect: &str) {
    let declaration = |timeout: u32| {
        format!(
            "[[interface]]\nname = \"storm\"\nlink = \"vd\"\n\
             connect = {connect}\ndisconnect = {disconnect}\n\
             dial = \"persistent\"\nconnect_timeout_secs = {timeout}\n"
        )
    };
    std::fs::write(lab.service.config_path(), declaration(30)).unwrap();
    lab.service.restart_with_config();
    lab.wait_for_state("storm", Connected);
    // Every third configuration removes the interface: the next declares
    // it again while the removed one's supervisor may still be hanging up
    // (or holding orders given before its removal). Each is written whole
    // (a reload must not read half a file).
    let path = lab.service.config_path();
    let reloads: Vec<_> = (0..9)
        .map(|n| {
            let config = if n % 3 == 1 {
                String::new()
            } else {
                declaration(10 + n)
            };
            let written = path.with_extension("new");
            std::fs::write(&written, config).unwrap();
            std::fs::rename(&written, &path).unwrap();
            lab.service.ddm(&["reload"]).spawn().unwrap()
        })
        .collect();
    for mut reload in reloads {
        assert!(reload.wait().unwrap().success());
    }
    // A hang-up deletes the link and a redial makes it: between the two
    // it is not up.
    let link_up = || lab.router.link_is_up("vd");
    wait_until("it settles connected over a link that is up", || {
        lab.state_of("storm") == Some(Connected) && link_up()
    });
    let server = lab.service.connect();
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(100));
        let state = server.interface(handle(&server, "storm")).unwrap().state;
        assert!(
            state != Connected || link_up(),
            "CONNECTED with its link down"
        );
    }
    // The journal's last state is the service's (read apart, they may
    // straddle a change: a hang-up's command may still take a link down
    // and the interface be redialed, which is no lie; it settles).
    let journaled = || {
        server
            .history(mprapi::History {
                transitions_only: true,
                ..mprapi::History::default()
            })
            .map(|e| e.unwrap().event.unwrap())
            .filter(|e| e.name == "storm")
            .last()
            .unwrap()
            .to
    };
    wait_until(
        "the journal's last state is the service's, CONNECTED",
        || {
            let state = server.interface(handle(&server, "storm")).unwrap().state;
            state == Connected && journaled() == Connected as u32
        },
    );
}

#[test]
fn dials_past_max_dials_at_once_wait_their_turn_in_order() {
    // Two interfaces whose connect takes a second; one attempt at a time.
    let mut lab = ddm_lab::Lab::new();
    let mut config = String::from("[limits]\nmax_dials_at_once = 1\n\n");
    for n in 0..2 {
        lab.add_link(&format!("t{n}"));
        config += &format!(
            "[[interface]]\nname = \"turn{n}\"\nlink = \"t{n}\"\n\
             connect = [\"sh\", \"-c\", \"sleep 1; ip link set t{n} up\"]\n\
             disconnect = [\"ip\", \"link\", \"set\", \"t{n}\", \"down\"]\n\
             dial = \"manual\"\nconnect_timeout_secs = 10\n\n"
        );
    }
    std::fs::write(lab.service.config_path(), config).unwrap();
    lab.service.restart_with_config();
    let server = lab.service.connect();
    let handles: Vec<u32> = (0..2)
        .map(|n| handle(&server, &format!("turn{n}")))
        .collect();
    for &h in &handles {
        assert_eq!(server.interface_connect(h), Ok(Connect::Pending));
    }
    // When each became CONNECTED.
    let mut connected = [None, None];
    let deadline = std::time::Instant::now() + PATIENCE;
    while connected.iter().any(Option::is_none) {
        assert!(std::time::Instant::now() < deadline, "{connected:?}");
        for (at, &h) in connected.iter_mut().zip(&handles) {
            if at.is_none() && server.interface(h).unwrap().state == Connected {
                *at = Some(std::time::Instant::now());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let [Some(first), Some(second)] = connected else {
        unreachable!()
    };
    // The second's command started only when the first was connected.
    assert!(
        second >= first + Duration::from_millis(900),
        "turn1 connected {:?} after turn0",
        second.saturating_duration_since(first)
    );
}

/// systemd stops a unit by sending SIGTERM to every process in it, the
/// service's launcher included: the clean stop still runs the disconnect
/// commands (the launcher died of that SIGTERM, and the service left every
/// link up, "the launcher has gone: no command can start any more").
#[test]
fn a_stop_that_signals_every_process_of_the_unit_still_hangs_up() {
    let mut lab = ddm_lab::Lab::new();
    std::fs::write(
        lab.service.config_path(),
        "[[interface]]\nname = \"unit\"\nlink = \"u0\"\n\
         connect = [\"ip\", \"link\", \"add\", \"u0\", \"up\", \"type\", \"ifb\"]\n\
         disconnect = [\"ip\", \"link\", \"del\", \"u0\"]\ndial = \"persistent\"\n",
    )
    .unwrap();
    lab.service.restart_with_config();
    lab.wait_for_state("unit", Connected);
    let status = lab.service.stop_as_systemd_does();
    assert!(status.success(), "{status}");
    assert!(
        !lab.router.has_link("u0"),
        "the disconnect command ran: the link is gone"
    );
}

#[test]
fn a_clean_stop_waits_hang_up_timeout_ms_for_a_hang_up_then_kills_it() {
    // A persistent interface whose disconnect command never ends by itself.
    let mut lab = ddm_lab::Lab::new();
    std::fs::write(
        lab.service.config_path(),
        "[limits]\nhang_up_timeout_ms = 1500\n\n\
         [[interface]]\nname = \"slow\"\nlink = \"h0\"\n\
         connect = [\"ip\", \"link\", \"add\", \"h0\", \"up\", \"type\", \"ifb\"]\n\
         disconnect = [\"sleep\", \"617\"]\ndial = \"persistent\"\n",
    )
    .unwrap();
    lab.service.restart_with_config();
    lab.wait_for_state("slow", Connected);
    let asked = std::time::Instant::now();
    let status = lab.service.stop_with(nix::sys::signal::Signal::SIGTERM);
    let took = asked.elapsed();
    assert!(status.success(), "{status}");
    assert!(
        took >= Duration::from_millis(1500),
        "the hang-up was given its time: {took:?}"
    );
    assert!(
        took < Duration::from_secs(60),
        "not the command's: {took:?}"
    );
    wait_until("the disconnect command is killed", || {
        !stdout_of(tool("ps").args(["-eo", "args"]))
            .lines()
            .any(|l| l == "sleep 617")
    });
}

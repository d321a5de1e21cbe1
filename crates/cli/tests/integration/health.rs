//! Path health: the real service probing through real links to a far end
//! in another namespace. These kernels have no netem: nftables rules at
//! the far end drop packets (all of them, or a random share), and a small
//! responder answers echo late.

use crate::support::*;
use mprapi::{ConnectionState, EntryKind, Server, StreamItem, WinError};
use std::time::{Duration, Instant};

/// A router with `count` uplinks to the far end (`ddm_lab::uplinks`: wan1
/// 10.77.1.1 and fd77:1::1 here, the targets 10.77.1.2 and fd77:1::2
/// there, ...).
fn uplinks(count: u8) -> Lab {
    let lab = Lab::new();
    lab.far.ip(&["link", "set", "lo", "up"]);
    for n in 1..=count {
        ddm_lab::uplinks::add(&lab.router, &lab.far, n);
    }
    lab
}

/// Runs the service again with `text` as its configuration.
fn configure(lab: &mut Lab, text: &str) {
    std::fs::write(lab.service.config_path(), text).unwrap();
    lab.service.restart_with_config();
}

/// A watched uplink `name` on link `link` judged by table `health`.
fn watched(name: &str, link: &str, health: &str) -> String {
    format!("[[interface]]\nname = \"{name}\"\nlink = \"{link}\"\nhealth = \"{health}\"\n")
}

/// Drops at the far end every packet that arrives through `link`'s peer
/// (and, with `what`, only those `what` matches).
fn blackhole(lab: &Lab, link: &str, what: &str) {
    lab.far.nft(&format!(
        "table inet bh_{link} {{\n chain input {{\n  type filter hook input priority 0;\n  iifname \"{link}p\" {what} drop\n }}\n}}\n"
    ));
}

fn heal(lab: &Lab, link: &str) {
    lab.far.nft(&format!("delete table inet bh_{link}\n"));
}

/// The next event of `interface` on `stream` within `limit`.
fn next_of(
    stream: &mprapi::EventStream,
    interface: &str,
    limit: Duration,
) -> Option<mprapi::ConnectionEvent> {
    let deadline = Instant::now() + limit;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match stream.next_timeout(left) {
            Some(StreamItem::Event(e)) if e.interface == interface => return Some(e),
            Some(StreamItem::Event(_)) => {}
            None => return None,
            other => panic!("{other:?}"),
        }
    }
    None
}

/// The next events of dialed interface `name`: its connection lost to a
/// dead path (ERROR_NO_ANSWER), then a new attempt.
fn lost_and_redialed(stream: &mprapi::EventStream, name: &str) {
    let lost = next_of(stream, name, PATIENCE).expect("the loss");
    assert_eq!(
        (lost.from, lost.to, WinError(lost.last_error)),
        (
            ConnectionState::Connected,
            ConnectionState::Disconnected,
            WinError::ERROR_NO_ANSWER
        )
    );
    assert_eq!(
        next_of(stream, name, PATIENCE).map(|e| e.to),
        Some(ConnectionState::Connecting),
        "redialed"
    );
}

fn state(server: &Server, name: &str) -> (ConnectionState, u32) {
    let handle = server.interface_handle(name).unwrap();
    let i = server.interface(handle).unwrap();
    (i.state, i.last_error)
}

/// The last journaled transition of `name`: its reason.
fn last_reason(server: &Server, name: &str) -> String {
    server
        .history(mprapi::History::default())
        .map(Result::unwrap)
        .filter(|e| e.kind == EntryKind::EntryTransition as i32)
        .filter(|e| e.event.as_ref().is_some_and(|t| t.name == name))
        .last()
        .unwrap()
        .reason
}

const FAST: &str = "interval_ms = 200\ntimeout_ms = 400\ndown_after = 3\nup_after = 3\n";

/// One uplink (wan1), watched as "isp" with `[health.isp]` = `table`,
/// CONNECTED.
fn one_uplink(table: &str) -> Lab {
    let mut lab = uplinks(1);
    configure(
        &mut lab,
        &format!("{}[health.isp]\n{table}", watched("isp", "wan1", "isp")),
    );
    lab.wait_for_state("isp", ConnectionState::Connected);
    lab
}

/// A dead path (IPv4 targets on one uplink, IPv6 on the other) takes a
/// watched uplink out of CONNECTED within interval * down_after + timeout,
/// with ERROR_NO_ANSWER, its registered event signaled and the figures in
/// the journal; healed, it is CONNECTED again by itself.
#[test]
fn a_dead_path_leaves_connected_with_no_answer_and_a_healed_one_comes_back() {
    let mut lab = uplinks(2);
    configure(
        &mut lab,
        &format!(
            "{}{}[health.v4]\ntargets = [\"10.77.1.2\"]\n{FAST}[health.v6]\ntargets = [\"fd77:2::2\"]\n{FAST}",
            watched("isp1", "wan1", "v4"),
            watched("isp2", "wan2", "v6"),
        ),
    );
    lab.wait_for_state("isp1", ConnectionState::Connected);
    lab.wait_for_state("isp2", ConnectionState::Connected);
    let (server, event) = lab.service.registered_session();
    let stream = server.subscribe().unwrap();
    let bound = Duration::from_millis(200 * 3 + 400);
    for (name, link) in [("isp1", "wan1"), ("isp2", "wan2")] {
        event.reset();
        let cut = Instant::now();
        blackhole(&lab, link, "");
        let down = next_of(&stream, name, PATIENCE).expect("a transition");
        let took = cut.elapsed();
        assert_eq!(
            (down.from, down.to),
            (ConnectionState::Connected, ConnectionState::Disconnected)
        );
        assert_eq!(WinError(down.last_error), WinError::ERROR_NO_ANSWER);
        assert!(
            took < bound + Duration::from_millis(600),
            "{name}: {took:?}"
        );
        expect_signal(&event, "a health disconnect");
        assert_eq!(
            state(&server, name),
            (ConnectionState::Disconnected, WinError::ERROR_NO_ANSWER.0)
        );
        let reason = last_reason(&server, name);
        assert!(
            reason.starts_with("health down") && reason.contains("no answer from"),
            "{reason}"
        );
        let health = server.health(name).unwrap();
        assert_eq!(health[0].verdict, "down");
        assert!(!health[0].targets[0].answered_last);

        event.reset();
        heal(&lab, link);
        let up = next_of(&stream, name, PATIENCE).expect("back");
        assert_eq!(up.to, ConnectionState::Connected);
        expect_signal(&event, "a health connect");
        assert!(last_reason(&server, name).contains("3 rounds passed in a row"));
    }
    let listed = stdout_of(&mut lab.service.ddm(&["interfaces"]));
    let row = listed.lines().find(|l| l.contains("isp1")).unwrap();
    assert!(
        row.contains("connected") && row.contains(" up ") && row.contains("ms"),
        "{row}"
    );
    let json: serde_json::Value = serde_json::from_str(&stdout_of(
        &mut lab.service.ddm(&["health", "isp2", "--json"]),
    ))
    .unwrap();
    assert_eq!(json[0]["health"], "up");
    assert_eq!(json[0]["targets"][0]["target"], "fd77:2::2");
    assert!(json[0]["rtt_ms"].as_f64().is_some(), "{json}");
}

/// Random loss of 5% with the default settings: no transition in 60 s.
#[test]
fn five_percent_random_loss_changes_nothing_in_a_minute() {
    let lab = one_uplink("targets = [\"10.77.1.2\", \"fd77:1::2\"]\n");
    let server = lab.service.connect();
    let stream = server.subscribe().unwrap();
    blackhole(&lab, "wan1", "numgen random mod 100 < 5");
    assert_eq!(next_of(&stream, "isp", Duration::from_secs(60)), None);
    let health = &server.health("isp").unwrap()[0];
    assert!(health.probes_lost > 0, "the loss was real: {health:?}");
}

/// A TCP target passes when the far end answers (a refusal is an answer)
/// and fails when nothing comes back.
#[test]
fn a_tcp_target_is_probed_by_connecting() {
    let lab = one_uplink(&format!(
        "method = \"tcp\"\ntargets = [\"10.77.1.2:443\", \"[fd77:1::2]:443\"]\nquorum = 2\n{FAST}"
    ));
    blackhole(&lab, "wan1", "tcp dport 443");
    lab.wait_for_state("isp", ConnectionState::Disconnected);
    heal(&lab, "wan1");
    lab.wait_for_state("isp", ConnectionState::Connected);
}

/// Two of three targets must answer: one dead target changes nothing, two
/// take the path down.
#[test]
fn a_quorum_of_two_rides_out_one_dead_target_and_not_two() {
    let mut lab = uplinks(1);
    for address in ["10.77.1.3/24", "10.77.1.4/24"] {
        lab.far.ip(&["addr", "add", address, "dev", "wan1p"]);
    }
    configure(
        &mut lab,
        &format!(
            "{}[health.isp]\ntargets = [\"10.77.1.2\", \"10.77.1.3\", \"10.77.1.4\"]\nquorum = 2\n{FAST}",
            watched("isp", "wan1", "isp")
        ),
    );
    lab.wait_for_state("isp", ConnectionState::Connected);
    let server = lab.service.connect();
    let stream = server.subscribe().unwrap();
    blackhole(&lab, "wan1", "ip daddr 10.77.1.4");
    assert_eq!(next_of(&stream, "isp", Duration::from_secs(3)), None);
    heal(&lab, "wan1");
    blackhole(&lab, "wan1", "ip daddr { 10.77.1.3, 10.77.1.4 }");
    let down = next_of(&stream, "isp", PATIENCE).expect("down");
    assert_eq!(down.to, ConnectionState::Disconnected);
    let reason = last_reason(&server, "isp");
    assert!(
        reason.contains("no answer from 10.77.1.3 10.77.1.4"),
        "{reason}"
    );
}

/// A far end that answers, but later than max_rtt_ms, is a path down.
#[test]
fn answers_slower_than_max_rtt_take_the_path_down() {
    let lab = one_uplink(&format!(
        "targets = [\"10.77.1.2\"]\nmax_rtt_ms = 150\n{FAST}"
    ));
    let slow = ddm_lab::slow_echo::SlowEcho::start(&lab.far, Duration::from_millis(250));
    lab.wait_for_state("isp", ConnectionState::Disconnected);
    let server = lab.service.connect();
    assert_eq!(state(&server, "isp").1, WinError::ERROR_NO_ANSWER.0);
    let reason = last_reason(&server, "isp");
    assert!(reason.contains("rtt 2"), "answered, late: {reason}");
    drop(slow);
    lab.wait_for_state("isp", ConnectionState::Connected);
}

/// Probes leave through the member's own link: the main table's default
/// route goes through wan2, yet wan1's health follows wan1's path.
#[test]
fn probes_leave_through_their_own_link_whatever_the_default_route() {
    let mut lab = uplinks(2);
    lab.far.ip(&["addr", "add", "198.18.0.1/32", "dev", "lo"]);
    lab.router.ip(&[
        "route",
        "add",
        "default",
        "via",
        "10.77.2.2",
        "dev",
        "wan2",
        "metric",
        "10",
    ]);
    lab.router.ip(&[
        "route",
        "add",
        "default",
        "via",
        "10.77.1.2",
        "dev",
        "wan1",
        "metric",
        "20",
    ]);
    let table = format!("[health.far]\ntargets = [\"198.18.0.1\"]\n{FAST}");
    configure(
        &mut lab,
        &format!(
            "{}{}{table}",
            watched("isp1", "wan1", "far"),
            watched("isp2", "wan2", "far")
        ),
    );
    lab.wait_for_state("isp1", ConnectionState::Connected);
    lab.wait_for_state("isp2", ConnectionState::Connected);
    blackhole(&lab, "wan1", "");
    lab.wait_for_state("isp1", ConnectionState::Disconnected);
    let server = lab.service.connect();
    assert_eq!(state(&server, "isp2").0, ConnectionState::Connected);
    heal(&lab, "wan1");
    blackhole(&lab, "wan2", "");
    lab.wait_for_state("isp2", ConnectionState::Disconnected);
    lab.wait_for_state("isp1", ConnectionState::Connected);
}

/// A reload that changes one health table leaves the interfaces of the
/// others alone (no transition, their figures kept); a file with a bad
/// health table is refused with the reason and changes nothing.
#[test]
fn reload_applies_health_tables_and_refuses_bad_ones() {
    let mut lab = uplinks(2);
    let file = |interval: u32, extra: &str| {
        format!(
            "{}{}[health.a]\ntargets = [\"10.77.1.2\"]\ninterval_ms = {interval}\ntimeout_ms = 150\n\
             [health.b]\ntargets = [\"10.77.2.2\"]\ninterval_ms = 200\ntimeout_ms = 400\n{extra}",
            watched("isp1", "wan1", "a"),
            watched("isp2", "wan2", "b"),
        )
    };
    let group = |members: &str, route: &str| {
        format!("[[group]]\nname = \"internet\"\nroutes = [\"{route}\"]\nmembers = {members}\n")
    };
    let dialed = "[[interface]]\nname = \"branch\"\nlink = \"wgb\"\nconnect = [\"true\"]\n\
                  routes = [\"10.20.0.0/16\"]\n";
    configure(&mut lab, &file(200, ""));
    lab.wait_for_state("isp1", ConnectionState::Connected);
    lab.wait_for_state("isp2", ConnectionState::Connected);
    let server = lab.service.connect();
    let stream = server.subscribe().unwrap();
    let rounds_before = server.health("isp2").unwrap()[0].rounds;
    std::fs::write(lab.service.config_path(), file(300, "")).unwrap();
    server.reload().unwrap();
    assert_eq!(
        next_of(&stream, "isp1", Duration::from_secs(2)),
        None,
        "its table changed, not its declaration"
    );
    assert_eq!(next_of(&stream, "isp2", Duration::from_millis(100)), None);
    assert!(
        server.health("isp2").unwrap()[0].rounds > rounds_before,
        "history kept"
    );
    for (bad, why) in [
        (
            file(300, "").replace("health = \"b\"", "health = \"c\""),
            "names no [health",
        ),
        (
            file(300, "").replace("timeout_ms = 400", "timeout_ms = 5000"),
            "interval_ms * down_after",
        ),
        (file(300, "quorum = 2\n"), "quorum"),
        (file(50, ""), "interval_ms"),
        (file(300, "up_after = 0\n"), "up_after"),
        (
            file(300, "").replace("\"10.77.2.2\"", "\"gateway.example\""),
            "not an IPv4 or IPv6 address",
        ),
        (file(300, "down_after = 0\n"), "down_after"),
        (
            file(300, "") + &group("[\"isp1\", \"lte\"]", "0.0.0.0/0"),
            "member \"lte\" is no declared",
        ),
        (
            file(300, "") + &group("[\"isp1\", \"isp1\"]", "0.0.0.0/0"),
            "listed twice",
        ),
        (
            file(300, "") + dialed + &group("[\"isp1\", \"isp2\"]", "10.0.0.0/8"),
            "overlaps interface \"branch\"'s route 10.20.0.0/16",
        ),
    ] {
        std::fs::write(lab.service.config_path(), &bad).unwrap();
        let (error, reason) = server.reload_with_reason().unwrap_err();
        assert_eq!(error, WinError::ERROR_BAD_CONFIGURATION);
        let reason = reason.unwrap_or_default();
        assert!(reason.contains(why), "{why}: {reason}");
    }
    assert_eq!(next_of(&stream, "isp1", Duration::from_millis(500)), None);
    assert_eq!(state(&server, "isp2").0, ConnectionState::Connected);
}

/// A dialed (persistent) interface with health: CONNECTED once its link
/// is up and its health is; a dead path is a lost connection, hung up and
/// dialed again, and UNREACHABLE after its attempts fail; back when the far
/// end answers again.
#[test]
fn a_dialed_interface_with_a_dead_path_is_hung_up_and_redialed() {
    let mut lab = uplinks(0);
    lab.add_link("d0");
    lab.router.ip(&["addr", "add", "10.78.0.1/24", "dev", "d0"]);
    lab.far.ip(&["addr", "add", "10.78.0.2/24", "dev", "d0p"]);
    configure(
        &mut lab,
        &format!(
            "[[interface]]\nname = \"branch\"\nlink = \"d0\"\nhealth = \"far\"\n\
             connect = [\"ip\", \"link\", \"set\", \"d0\", \"up\"]\n\
             disconnect = [\"ip\", \"link\", \"set\", \"d0\", \"down\"]\n\
             dial = \"persistent\"\nconnect_timeout_secs = 2\nredial_attempts = 1\n\
             redial_pause_secs = 1\nunreachable_retry_secs = 2\n\
             [health.far]\ntargets = [\"10.78.0.2\"]\n{FAST}"
        ),
    );
    lab.wait_for_state("branch", ConnectionState::Connected);
    let server = lab.service.connect();
    let stream = server.subscribe().unwrap();
    lab.far.nft(
        "table inet bh_d0 {\n chain input {\n  type filter hook input priority 0;\n  iifname \"d0p\" drop\n }\n}\n",
    );
    lost_and_redialed(&stream, "branch");
    lab.wait_for_state("branch", ConnectionState::Unreachable);
    assert_eq!(state(&server, "branch").1, WinError::ERROR_NO_ANSWER.0);
    lab.far.nft("delete table inet bh_d0\n");
    lab.wait_for_state("branch", ConnectionState::Connected);
}

/// A LAN namespace behind the router (see `ddm_lab::lan`), and the far end
/// answering for 198.18.0.1 (the internet).
fn lan_behind(lab: &Lab) -> Netns {
    lab.far.ip(&["addr", "add", "198.18.0.1/32", "dev", "lo"]);
    ddm_lab::lan::behind(&lab.router, &["wan1", "wan2"])
}

/// The router's route of `prefix` with metric 50 (the group's): its
/// device.
fn group_route_device(lab: &Lab) -> String {
    let route = lab
        .router
        .ip_output(&["route", "show", "default", "metric", "50"]);
    route
        .split_whitespace()
        .skip_while(|w| *w != "dev")
        .nth(1)
        .unwrap_or_default()
        .to_owned()
}

fn pings(lan: &Netns) -> bool {
    lan.command("ping")
        .args(["-c", "1", "-W", "1", "198.18.0.1"])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// A group of two watched uplinks: blackholed, the first gives the
/// group's route to the second (a LAN host's pings go on); healed, the
/// route comes back only after failback_secs; every switch journaled.
#[test]
fn a_group_fails_over_to_the_second_uplink_and_back_after_failback() {
    let mut lab = uplinks(2);
    let lan = lan_behind(&lab);
    // The system's own default routes through each uplink (DHCP's).
    for n in 1..=2 {
        ddm_lab::uplinks::default_route(&lab.router, n);
    }
    configure(
        &mut lab,
        &format!(
            "{}{}[health.isp]\ntargets = [\"198.18.0.1\"]\n{FAST}\
             [[group]]\nname = \"internet\"\nroutes = [\"0.0.0.0/0\"]\nmembers = [\"isp1\", \"isp2\"]\nfailback_secs = 3\n",
            watched("isp1", "wan1", "isp"),
            watched("isp2", "wan2", "isp"),
        ),
    );
    lab.wait_for_state("isp1", ConnectionState::Connected);
    wait_until("the group's route goes through wan1", || {
        group_route_device(&lab) == "wan1"
    });
    assert!(pings(&lan));
    let server = lab.service.connect();
    let stream = server.subscribe().unwrap();
    let before = stream.snapshot().seq;
    blackhole(&lab, "wan1", "");
    lab.wait_for_state("isp1", ConnectionState::Disconnected);
    wait_until("the group's route goes through wan2", || {
        group_route_device(&lab) == "wan2"
    });
    assert!(pings(&lan), "the LAN's traffic goes on through wan2");
    heal(&lab, "wan1");
    lab.wait_for_state("isp1", ConnectionState::Connected);
    let healed = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(group_route_device(&lab), "wan2", "not before failback_secs");
    wait_until("the route comes back to wan1", || {
        group_route_device(&lab) == "wan1"
    });
    assert!(
        healed.elapsed() >= Duration::from_millis(2500),
        "{:?}",
        healed.elapsed()
    );
    assert!(pings(&lan));

    // The switches are numbered events of the typed stream, live and
    // replayed from the journal, between the transitions.
    let switches_in = |items: Vec<StreamItem>| -> Vec<(String, Option<String>, Option<String>)> {
        let mut found = Vec::new();
        for (next, item) in (before + 1..).zip(items) {
            let StreamItem::Event(e) = item else {
                panic!("events only: {item:?}");
            };
            assert_eq!(e.seq, next, "numbered like every other");
            if let Some(s) = e.group_switch {
                found.push((e.interface, s.from, s.to));
            }
        }
        found
    };
    let live: Vec<StreamItem> =
        std::iter::from_fn(|| stream.next_timeout(Duration::from_millis(300))).collect();
    let expected = vec![
        (
            "internet".to_owned(),
            Some("isp1".to_owned()),
            Some("isp2".to_owned()),
        ),
        (
            "internet".to_owned(),
            Some("isp2".to_owned()),
            Some("isp1".to_owned()),
        ),
    ];
    assert_eq!(switches_in(live), expected);
    let resumed = server.subscribe_from(before).unwrap();
    let replayed: Vec<StreamItem> =
        std::iter::from_fn(|| resumed.next_timeout(Duration::from_millis(300))).collect();
    assert_eq!(switches_in(replayed), expected);
    let groups = server.groups().unwrap();
    assert_eq!(
        (groups[0].carrier.as_str(), groups[0].switches),
        ("isp1", 3)
    );
    let switches: Vec<String> = server
        .history(mprapi::History::default())
        .map(Result::unwrap)
        .filter(|e| e.kind == EntryKind::EntryGroupSwitch as i32)
        .map(|e| {
            let event = e.event.unwrap();
            let switch = event.group_switch.unwrap();
            format!(
                "{}: {} -> {}: {}",
                event.name, switch.from, switch.to, e.reason
            )
        })
        .collect();
    assert_eq!(switches.len(), 3, "{switches:?}");
    assert!(
        switches[1].starts_with("internet: isp1 -> isp2"),
        "{switches:?}"
    );
    assert!(switches[2].contains("failback"), "{switches:?}");
    let json: serde_json::Value =
        serde_json::from_str(&stdout_of(&mut lab.service.ddm(&["groups", "--json"]))).unwrap();
    assert_eq!(json[0]["carrier"], "isp1");
    assert_eq!(json[0]["members"][1]["state"], "connected");
}

/// Waits until `name` is in `state` on `server`.
fn wait_state(server: &Server, name: &str, expected: ConnectionState) {
    wait_until(&format!("{name} is {}", expected.name()), || {
        state(server, name).0 == expected
    });
}

/// A group whose last member is a demand WireGuard interface: not dialed
/// while the uplink before it is healthy; when the uplink fails, the
/// routes go to its trigger and the first packet dials it and flows; after
/// failback it is hung up, as not needed (ERROR_BAP_DISCONNECTED).
#[test]
fn a_demand_wireguard_backup_is_dialed_only_while_it_is_needed() {
    use crate::wireguard_lab::WgLab;
    let mut wg = WgLab::new();
    ddm_lab::uplinks::add(&wg.router, &wg.far, 1);
    ddm_lab::uplinks::default_route(&wg.router, 1);
    let config = format!(
        "{}{}[health.isp]\ntargets = [\"10.77.1.2\"]\n{FAST}\
         [[group]]\nname = \"branch\"\nroutes = [\"192.168.20.0/24\"]\nmembers = [\"wan\", \"lte\"]\nfailback_secs = 2\n",
        watched("wan", "wan1", "isp"),
        wg.interface(
            "lte",
            "dial = \"demand\"\nidle_disconnect_secs = 0\ntrigger_src = \"10.9.0.1\"",
        ),
    );
    wg.start(&config);
    let server = wg.service().connect();
    wait_state(&server, "wan", ConnectionState::Connected);
    wait_until("the route goes through the uplink", || {
        wg.route_device().as_deref() == Some("wan1")
    });
    assert!(wg.ping(2));
    assert_eq!(wg.dials(), 0, "not dialed while the uplink is healthy");

    wg.far.nft(
        "table inet bh_wan1 {\n chain input {\n  type filter hook input priority 0;\n  iifname \"wan1p\" drop\n }\n}\n",
    );
    wait_state(&server, "wan", ConnectionState::Disconnected);
    wait_until("the route goes to the backup's trigger", || {
        wg.route_device().as_deref() == Some("ddm-lte")
    });
    assert_eq!(wg.dials(), 0, "dialed by traffic, not by the failure");
    assert!(wg.ping(8), "the first packet dials the backup and flows");
    assert_eq!(wg.dials(), 1);
    wait_state(&server, "lte", ConnectionState::Connected);
    wait_until("the route goes through the tunnel", || {
        wg.route_device().as_deref() == Some(wg.link.as_str())
    });

    wg.far.nft("delete table inet bh_wan1\n");
    wait_state(&server, "wan", ConnectionState::Connected);
    wait_state(&server, "lte", ConnectionState::Disconnected);
    assert_eq!(state(&server, "lte").1, WinError::ERROR_BAP_DISCONNECTED.0);
    assert!(last_reason(&server, "lte").starts_with("not needed: group branch"));
    wg.wait_link_gone();
    assert_eq!(wg.route_device().as_deref(), Some("wan1"));
    assert!(wg.ping(2));
    assert_eq!(wg.dials(), 1);
}

/// A persistent WireGuard interface with health whose far end stops
/// answering (its UDP port dropped): the tunnel's link stays up, yet the
/// interface leaves CONNECTED with ERROR_NO_ANSWER, is redialed, turns
/// UNREACHABLE after its attempts; when the far end answers again it is
/// CONNECTED again by itself.
#[test]
fn a_persistent_tunnel_whose_far_end_goes_silent_is_redialed_and_recovers() {
    use crate::wireguard_lab::WgLab;
    let mut wg = WgLab::new();
    let config = format!(
        "{}[health.tunnel]\ntargets = [\"10.9.0.2\"]\n{FAST}",
        wg.interface(
            "branch",
            "dial = \"persistent\"\nhealth = \"tunnel\"\nroutes = [\"192.168.20.0/24\"]\n\
             redial_attempts = 1\nredial_pause_secs = 1\n\
             connect_timeout_secs = 2\nunreachable_retry_secs = 2",
        ),
    );
    wg.start(&config);
    let server = wg.service().connect();
    wait_state(&server, "branch", ConnectionState::Connected);
    let stream = server.subscribe().unwrap();
    wg.far.nft(
        "table inet silent {\n chain input {\n  type filter hook input priority 0;\n  udp dport 51820 drop\n }\n}\n",
    );
    lost_and_redialed(&stream, "branch");
    wait_state(&server, "branch", ConnectionState::Unreachable);
    wg.far.nft("delete table inet silent\n");
    wait_state(&server, "branch", ConnectionState::Connected);
    assert!(wg.ping(2));
}

/// With `passive`, a round in which the link received packets passes
/// without a probe: a busy link costs no probe traffic; an idle one is
/// probed again.
#[test]
fn a_busy_link_passes_its_rounds_without_probes_when_passive() {
    let lab = one_uplink(&format!(
        "targets = [\"10.77.1.2\"]\npassive = true\n{FAST}"
    ));
    let server = lab.service.connect();
    let figures = || server.health("isp").unwrap().remove(0);
    let traffic = ddm_lab::Process(
        lab.far
            .command("ping")
            .args(["-q", "-i", "0.05", "10.77.1.1"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(500));
    let busy = figures();
    std::thread::sleep(Duration::from_secs(2));
    let later = figures();
    assert!(later.rounds >= busy.rounds + 5, "{busy:?}\n{later:?}");
    assert!(
        later.probes_sent <= busy.probes_sent + 1,
        "no probes while the link is busy: {busy:?}\n{later:?}"
    );
    assert_eq!(later.verdict, "up");
    drop(traffic);
    std::thread::sleep(Duration::from_millis(500));
    let idle = figures();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        figures().probes_sent >= idle.probes_sent + 3,
        "probed again when idle"
    );
}

/// Prometheus sees each probed interface's health, RTT, loss and probes,
/// each target's, and which member carries each group.
#[test]
fn health_and_groups_are_metrics() {
    use crate::metrics::{scrape, value};
    let mut lab = uplinks(2);
    lab.set_up("lo", true);
    configure(
        &mut lab,
        &format!(
            "[metrics]\nlisten = \"127.0.0.1:9731\"\n{}{}[health.isp]\ntargets = [\"10.77.1.2\", \"10.77.1.9\"]\n{FAST}\
             [[group]]\nname = \"internet\"\nroutes = [\"198.18.0.0/24\"]\nmembers = [\"isp1\", \"isp2\"]\n",
            watched("isp1", "wan1", "isp"),
            watched("isp2", "wan2", "isp"),
        ),
    );
    lab.wait_for_state("isp1", ConnectionState::Connected);
    std::thread::sleep(Duration::from_secs(1));
    let samples = scrape(&lab);
    assert_eq!(value(&samples, "ddm_health_up{interface=\"isp1\"}"), 1.0);
    assert!(value(&samples, "ddm_health_rtt_seconds{interface=\"isp1\"}") > 0.0);
    assert_eq!(
        value(&samples, "ddm_health_loss_ratio{interface=\"isp1\"}"),
        0.0
    );
    assert!(value(&samples, "ddm_health_probes_sent_total{interface=\"isp1\"}") >= 4.0);
    assert_eq!(
        value(
            &samples,
            "ddm_health_target_answered{interface=\"isp1\",target=\"10.77.1.2\"}"
        ),
        1.0
    );
    // Nobody has the other target.
    assert_eq!(
        value(
            &samples,
            "ddm_health_target_answered{interface=\"isp1\",target=\"10.77.1.9\"}"
        ),
        0.0
    );
    assert!(value(&samples, "ddm_health_probes_lost_total{interface=\"isp1\"}") >= 2.0);
    assert_eq!(
        value(
            &samples,
            "ddm_group_member_carrying{group=\"internet\",member=\"isp1\",via_trigger=\"false\"}"
        ),
        1.0
    );
    assert_eq!(
        value(&samples, "ddm_group_switches_total{group=\"internet\"}"),
        1.0
    );
    assert_eq!(value(&samples, "ddm_health_rounds_dropped_total"), 0.0);
}

/// A watched uplink follows the DDM: DISCONNECTED while it is stopped (and
/// while disabled), CONNECTED again when it starts (or is enabled), with
/// nothing else changing.
#[test]
fn a_watched_uplink_follows_the_ddm_and_its_enabled_flag() {
    let lab = one_uplink(&format!("targets = [\"10.77.1.2\"]\n{FAST}"));
    let server = lab.service.connect();
    server.set_router_running(false).unwrap();
    server.set_router_running(true).unwrap();
    lab.wait_for_state("isp", ConnectionState::Connected);
    stdout_of(&mut lab.service.ddm(&["disable", "isp"]));
    lab.wait_for_state("isp", ConnectionState::Disconnected);
    stdout_of(&mut lab.service.ddm(&["enable", "isp"]));
    lab.wait_for_state("isp", ConnectionState::Connected);
    let handle = server.interface_handle("isp").unwrap();
    assert_eq!(
        server.interface_connect(handle),
        Ok(mprapi::Connect::Connected),
        "connected already: NO_ERROR, as for a kernel link"
    );
    assert_eq!(
        server.interface_disconnect(handle),
        Err(WinError::ERROR_NOT_SUPPORTED),
        "ddm does not hang up what it does not dial"
    );
}

//! Kernel links become interfaces with the right connection state, and only
//! connects and disconnects are connection events.

use crate::support::*;
use mprapi::{ConnectionState, Event, StreamItem};

#[test]
fn a_veth_brought_up_is_connected_and_brought_down_disconnected() {
    let lab = Lab::new();
    lab.add_link("va");
    lab.wait_for_state("va", ConnectionState::Disconnected);
    lab.set_up("va", true);
    lab.wait_for_state("va", ConnectionState::Connected);
    lab.set_up("va", false);
    lab.wait_for_state("va", ConnectionState::Disconnected);
}

#[test]
fn up_without_carrier_is_not_connected() {
    let lab = Lab::new();
    lab.add_link("va");
    lab.far.ip(&["link", "set", "vap", "down"]);
    lab.set_up("va", true);
    let server = lab.service.connect();
    wait_until("va is enabled", || {
        server
            .interfaces()
            .unwrap()
            .iter()
            .any(|i| i.name == "va" && i.enabled)
    });
    let va = lab.interface("va").unwrap();
    assert_eq!(va.state, ConnectionState::Disconnected);
    assert_eq!(
        va.unreachability_reasons,
        mprapi::unreachability::NO_MEDIA_SENSE
    );
    // Carrier arrives: now it connects.
    lab.far.ip(&["link", "set", "vap", "up"]);
    lab.wait_for_state("va", ConnectionState::Connected);
}

#[test]
fn a_link_deleted_while_connected_disconnects() {
    let lab = Lab::new();
    lab.add_connected_link("va");
    let server = lab.service.connect();
    let stream = server.subscribe().unwrap();
    lab.router.ip(&["link", "del", "va"]);
    // The kernel downs a link before deleting it, so the disconnect may
    // arrive as connected -> disconnected, or as connected -> unreachable
    // when the deletion is the first news: either way, exactly one.
    match stream.next_timeout(PATIENCE) {
        Some(StreamItem::Event(e)) => {
            assert_eq!(
                (e.interface.as_str(), e.from),
                ("va", ConnectionState::Connected)
            );
            assert_ne!(e.to, ConnectionState::Connected);
        }
        other => panic!("expected a disconnect, got {other:?}"),
    }
    wait_until("va is gone", || lab.state_of("va").is_none());
    assert_eq!(
        stream.next_timeout(QUIET),
        None,
        "one disconnect, nothing more"
    );
}

#[test]
fn address_and_mtu_changes_signal_nothing() {
    let lab = Lab::new();
    lab.add_connected_link("va");
    let server = lab.service.connect();
    let event = Event::manual().unwrap();
    server.register_connection_notification(&event).unwrap();
    lab.router.ip(&["link", "set", "va", "mtu", "1400"]);
    lab.router.ip(&["addr", "add", "192.0.2.1/24", "dev", "va"]);
    lab.router.ip(&["link", "set", "va", "alias", "uplink"]);
    expect_silence(&event, "MTU, address and alias changes");
    // The registration is live: a real disconnect does signal.
    lab.set_up("va", false);
    expect_signal(&event, "va went down");
}

#[test]
fn interface_enum_pages_with_more_data_and_a_resume_handle() {
    let lab = Lab::new();
    for name in ["va", "vb", "vc", "vd", "ve"] {
        lab.add_link(name);
    }
    let server = lab.service.connect();
    wait_until("all links are listed", || {
        server.interfaces().unwrap().len() == 6
    });
    let first = server.interface_enum(2, 0).unwrap();
    assert_eq!(first.interfaces.len(), 2);
    assert_eq!(first.total_entries, 6);
    let resume = first
        .resume_handle
        .expect("ERROR_MORE_DATA gives a resume handle");
    let mut names: Vec<String> = first.interfaces.into_iter().map(|i| i.name).collect();
    let rest = server.interface_enum(0, resume).unwrap();
    assert_eq!(
        rest.resume_handle, None,
        "the last page ends the enumeration"
    );
    names.extend(rest.interfaces.into_iter().map(|i| i.name));
    names.sort();
    assert_eq!(names, ["lo", "va", "vb", "vc", "vd", "ve"]);
}

#[test]
fn interface_get_info_by_handle_and_unknown_handles() {
    let lab = Lab::new();
    lab.add_link("va");
    let server = lab.service.connect();
    lab.wait_listed("va");
    let va = lab.interface("va").unwrap();
    assert_eq!(server.interface(va.handle).unwrap(), va);
    assert_eq!(
        server.interface(999_999).unwrap_err(),
        mprapi::WinError::ERROR_INVALID_HANDLE
    );
}

#[test]
fn excluded_links_are_not_interfaces() {
    let lab = Lab::with_config(Some("[links]\nexclude = [\"lo\", \"skip*\"]\n"));
    lab.add_link("va");
    lab.add_link("skip0");
    let server = lab.service.connect();
    lab.wait_listed("va");
    let names: Vec<String> = server
        .interfaces()
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["va"]);
}

#[test]
fn a_netlink_overrun_is_recovered_by_dumping_again() {
    // A receive buffer the kernel's minimum: a burst must overrun it.
    let lab = Lab::with_config(Some("[links]\nreceive_buffer_bytes = 1\n"));
    lab.add_link("va");
    lab.add_link("vb");
    let server = lab.service.connect();
    let event = Event::manual().unwrap();
    server.register_connection_notification(&event).unwrap();
    let burst: String = (0..3000)
        .map(|i| {
            format!(
                "link set {} {}\n",
                if i % 3 == 0 { "vb" } else { "va" },
                if i % 2 == 0 { "up" } else { "down" }
            )
        })
        .chain([
            "link set va down\n".into(),
            "link set vb up\n".into(),
            "link add vc type veth peer name vcp\n".into(),
        ])
        .collect();
    lab.router.ip_batch(&burst);
    wait_until("the service dumped again after the overrun", || {
        lab.service.log().contains("overran")
    });
    wait_until("the table matches the kernel", || {
        let table = server.interfaces().unwrap();
        let state = |name: &str| table.iter().find(|i| i.name == name).map(|i| i.state);
        state("va") == Some(ConnectionState::Disconnected)
            && state("vb") == Some(ConnectionState::Connected)
            && state("vc").is_some()
    });
    assert!(event.is_set(), "the transitions found were signaled");
}

#[test]
fn links_created_and_deleted_by_the_hundred_leave_the_table_matching_the_kernel() {
    // A tiny receive buffer as well: bursts overrun it, dumps reconcile.
    let lab = Lab::with_config(Some("[links]\nreceive_buffer_bytes = 1\n"));
    let create = |range: std::ops::Range<u32>| -> String {
        range
            .map(|i| {
                format!(
                    "link add c{i} type veth peer name d{i}\nlink set c{i} up\nlink set d{i} up\n"
                )
            })
            .collect()
    };
    let delete = |range: std::ops::Range<u32>| -> String {
        range.map(|i| format!("link del c{i}\n")).collect()
    };
    lab.router.ip_batch(&create(0..300));
    lab.router.ip_batch(&delete(0..200));
    lab.router.ip_batch(&create(300..400));
    lab.router.ip_batch(&delete(300..350));
    // The kernel's word: what `ip` lists now.
    let out = tool("ip")
        .args(["-n", &lab.router.name, "-o", "link", "show"])
        .output()
        .unwrap();
    let mut kernel: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split(": ")
                .nth(1)
                .map(|n| n.split('@').next().unwrap().to_string())
        })
        .collect();
    kernel.sort();
    assert_eq!(
        kernel.len(),
        1 + 2 * (100 + 50),
        "the lab made what it meant to"
    );
    let server = lab.service.connect();
    wait_until("the table matches the kernel", || {
        let mut table: Vec<String> = server
            .interfaces()
            .unwrap()
            .into_iter()
            .map(|i| i.name)
            .collect();
        table.sort();
        table == kernel
    });
    let connected = server
        .interfaces()
        .unwrap()
        .iter()
        .filter(|i| i.state == ConnectionState::Connected)
        .count();
    assert_eq!(
        connected,
        2 * (100 + 50),
        "every pair that is left is up with carrier"
    );
}

/// Every connection event is logged (target `ddmd::router`): by the
/// journal's writer when the journal is on, by the router when it is off.
#[test]
fn each_connection_event_is_logged_with_the_journal_on_and_off() {
    for config in [None, Some("journal = false\n")] {
        let lab = Lab::with_config(config);
        lab.add_link("va");
        lab.set_up("va", true);
        lab.wait_for_state("va", ConnectionState::Connected);
        lab.set_up("va", false);
        lab.wait_for_state("va", ConnectionState::Disconnected);
        let logged = |to: &str| {
            lab.service.log().lines().any(|line| {
                line.contains("ddmd::router")
                    && line.contains("connection event")
                    && line.contains("interface=\"va\"")
                    && line.contains(&format!("to=\"{to}\""))
            })
        };
        wait_until("the connect and the disconnect logged", || {
            logged("connected") && logged("disconnected")
        });
    }
}

//! The journal's export to a real NATS JetStream broker over TLS: three
//! routers publishing into one stream while the broker is killed and
//! started again, every entry present once and in each router's order;
//! and a router's certificate that cannot publish as another router.

use crate::nats_lab::{Broker, ROUTERS};
use crate::support::*;
use mprapi::{History, Server};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Waits until the router's export has everything its journal has.
fn wait_exported(server: &Server, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let export = server.journal_status().unwrap().export.unwrap();
        if export.connected && export.behind == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the export is still behind: {export:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn journal_ids(server: &Server) -> Vec<u64> {
    server
        .history(History::default())
        .map(|e| e.unwrap().id)
        .collect()
}

#[test]
fn three_routers_export_every_entry_once_in_order_across_a_broker_restart() {
    let mut broker = Broker::start();
    let labs: Vec<Lab> = ROUTERS
        .iter()
        .enumerate()
        .map(|(i, router)| {
            let lab = Lab::with_config(None);
            let mut export = broker.join(&lab.router, i + 1, router, router);
            if i == 0 {
                // The first router's export is watched in its metrics too.
                export.push_str("\n[metrics]\nlisten = \"127.0.0.1:9731\"\n");
                lab.set_up("lo", true);
            }
            std::fs::write(lab.service.config_path(), export).unwrap();
            lab
        })
        .collect();
    // The configuration is in place: start each service with it.
    let mut labs: Vec<Lab> = labs
        .into_iter()
        .map(|mut lab| {
            lab.service.restart_with_config();
            lab.add_connected_link("va");
            lab
        })
        .collect();
    for (lab, router) in labs.iter().zip(ROUTERS) {
        wait_exported(&lab.service.connect(), router);
    }
    let export_figures = |lab: &Lab| {
        let samples = crate::metrics::scrape(lab);
        let value = |name: &str| crate::metrics::value(&samples, name);
        (
            value("ddm_export_connected"),
            value("ddm_export_entries_behind"),
            value("ddm_export_publish_errors_total"),
        )
    };
    assert_eq!(export_figures(&labs[0]), (1.0, 0.0, 0.0));
    let burst = |labs: &[Lab]| {
        for lab in labs {
            lab.flap("va", 40);
        }
    };
    burst(&labs);
    broker.kill();
    burst(&labs);
    wait_until("the metrics to show the export cut off and behind", || {
        let (connected, behind, errors) = export_figures(&labs[0]);
        connected == 0.0 && behind > 0.0 && errors >= 1.0
    });
    // One router restarts while the broker is away too.
    labs[1].service.kill();
    labs[1].service.restart();
    burst(&labs);
    broker.restart();
    burst(&labs);
    for (lab, router) in labs.iter_mut().zip(ROUTERS) {
        wait_exported(&lab.service.connect(), router);
    }
    let (connected, behind, errors) = export_figures(&labs[0]);
    assert_eq!((connected, behind), (1.0, 0.0));
    assert!(errors >= 1.0, "{errors}");

    let fleet = broker.fleet("test-watch");
    let mut by_router: HashMap<String, Vec<u64>> = HashMap::new();
    for entry in &fleet {
        by_router
            .entry(entry["router"].as_str().unwrap().to_string())
            .or_default()
            .push(entry["id"].as_u64().unwrap());
    }
    for (lab, router) in labs.iter().zip(ROUTERS) {
        let published = by_router.remove(router).unwrap_or_default();
        let journal = journal_ids(&lab.service.connect());
        assert!(journal.len() > 40, "{router} churned: {}", journal.len());
        assert_eq!(
            published, journal,
            "{router}: every entry once, in the journal's order"
        );
    }
    assert!(by_router.is_empty(), "no one else: {:?}", by_router.keys());
    let statuses = labs[0].service.ddm(&["status"]).output().unwrap();
    let statuses = String::from_utf8(statuses.stdout).unwrap();
    assert!(
        statuses.contains("export:  ddm.r1.events connected, 0 entries behind"),
        "{statuses}"
    );

    // The watcher's durable consumer resumes where it left off.
    labs[0].flap("va", 3);
    wait_exported(&labs[0].service.connect(), "r1");
    let later = broker.fleet("test-watch");
    assert!(!later.is_empty());
    assert!(
        later.iter().all(|e| e["router"] == "r1"),
        "only the new ones"
    );
}

#[test]
fn a_routers_certificate_cannot_publish_as_another_router() {
    let broker = Broker::start();
    let mut lab = Lab::with_config(None);
    // r1's certificate, configured to publish as r2.
    let export = broker.join(&lab.router, 1, "r2", "r1");
    std::fs::write(lab.service.config_path(), export).unwrap();
    lab.service.restart_with_config();
    lab.add_connected_link("va");
    let server = lab.service.connect();
    std::thread::sleep(Duration::from_secs(2));
    let export = server.journal_status().unwrap().export.unwrap();
    assert!(export.behind > 0, "nothing acknowledged: {export:?}");
    assert_eq!(export.acked_id, 0);
    let status = lab.service.ddm(&["status"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("entries behind"),
        "ddm status says how far behind"
    );
    assert_eq!(broker.fleet("imposter-check").len(), 0, "nothing stored");
}

/// Entries the broker stored but whose acknowledgements never reached ddm
/// (here: its saved position rewound to 0, as if every acknowledgement had
/// been lost) are not published again once JetStream's duplicate window
/// (1 s, set by `duplicate_window_secs` when ddm creates the stream) has
/// passed: on connecting, the export learns what the stream holds of its
/// journal and goes on after it. Every entry is in the stream once.
#[test]
fn exactly_once_holds_beyond_the_duplicate_window() {
    let broker = Broker::start();
    let mut lab = Lab::with_config(None);
    let export = broker.join(&lab.router, 1, "r1", "r1");
    std::fs::write(
        lab.service.config_path(),
        format!("{export}duplicate_window_secs = 1\n"),
    )
    .unwrap();
    lab.service.restart_with_config();
    lab.add_connected_link("va");
    lab.flap("va", 6);
    let server = lab.service.connect();
    wait_exported(&server, "r1");
    let ids = journal_ids(&server);
    lab.service.stop_with(nix::sys::signal::Signal::SIGTERM);
    let journal = lab.service.state_directory().join("journal.sqlite");
    let connection = ddmd::record::journal::store::open_reader(&journal).unwrap();
    ddmd::record::journal::store::set_setting(&connection, "export_position", 0).unwrap();
    drop(connection);
    std::thread::sleep(Duration::from_millis(1500));
    lab.service.restart();
    let server = lab.service.connect();
    wait_exported(&server, "r1 again");
    let published: Vec<u64> = broker
        .fleet("once")
        .iter()
        .filter(|e| e["router"] == "r1")
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    let mut counts: HashMap<u64, usize> = HashMap::new();
    for id in &published {
        *counts.entry(*id).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "handed twice: {twice:?}");
    for id in &ids {
        assert!(counts.contains_key(id), "entry {id} is in the stream");
    }
    let journal_now = journal_ids(&server).len() as u64;
    assert_eq!(
        broker.stored(),
        journal_now,
        "the stream holds each of the router's entries once"
    );
}

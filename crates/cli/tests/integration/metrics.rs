//! The Prometheus endpoint, scraped with a real HTTP client (curl) in the
//! router's namespace, its figures checked against what the test did.

use crate::support::*;
use mprapi::{ConnectionState, Event};
use std::collections::HashMap;

const CONFIG: &str = "[metrics]\nlisten = \"127.0.0.1:9731\"\n";

/// `curl OPTIONS URL` in the router's namespace for `path` on the endpoint.
fn curl(lab: &Lab, options: &[&str], path: &str) -> std::process::Output {
    lab.router
        .command("curl")
        .arg("-sS")
        .args(options)
        .arg(format!("http://127.0.0.1:9731{path}"))
        .output()
        .unwrap()
}

/// `curl` in the router's namespace: status code, content type and body.
fn fetch(lab: &Lab, path: &str) -> (u16, String, String) {
    let out = curl(lab, &["-w", "\n%{http_code} %{content_type}"], path);
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, last) = text.rsplit_once('\n').unwrap();
    let (code, content_type) = last.split_once(' ').unwrap();
    (
        code.parse().unwrap(),
        content_type.to_owned(),
        body.to_owned(),
    )
}

/// Every sample of a scrape: `name{labels}` to its value.
pub fn scrape(lab: &Lab) -> HashMap<String, f64> {
    let (code, content_type, body) = fetch(lab, "/metrics");
    assert_eq!(code, 200);
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(
        body.trim_end().ends_with("# EOF"),
        "not a whole exposition:\n{body}"
    );
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (sample, value) = l.rsplit_once(' ').unwrap();
            (sample.to_owned(), value.parse().unwrap())
        })
        .collect()
}

pub fn value(samples: &HashMap<String, f64>, sample: &str) -> f64 {
    *samples
        .get(sample)
        .unwrap_or_else(|| panic!("no {sample} in {samples:#?}"))
}

#[test]
fn a_scrape_counts_what_the_test_did() {
    let lab = Lab::with_config(Some(CONFIG));
    lab.set_up("lo", true);
    lab.add_connected_link("m0");
    let before = scrape(&lab);
    assert_eq!(value(&before, "ddm_running"), 1.0);
    assert_eq!(value(&before, "ddm_interface_state{interface=\"m0\"}"), 3.0);
    assert_eq!(
        value(&before, "ddm_interface_connects_total{interface=\"m0\"}"),
        1.0
    );

    // Two registrations (root is admin) and a stream of another session.
    let server = lab.service.connect();
    let events = [Event::auto().unwrap(), Event::auto().unwrap()];
    for event in &events {
        server.register_connection_notification(event).unwrap();
    }
    let watcher = lab.service.connect();
    let _stream = watcher.subscribe().unwrap();

    for _ in 0..3 {
        lab.set_up("m0", false);
        lab.wait_for_state("m0", ConnectionState::Disconnected);
        lab.set_up("m0", true);
        lab.wait_for_state("m0", ConnectionState::Connected);
    }
    let after = scrape(&lab);
    let m0 = |name: &str| value(&after, &format!("ddm_interface_{name}{{interface=\"m0\"}}"));
    assert_eq!(m0("connects_total"), 4.0);
    assert_eq!(m0("disconnects_total"), 3.0);
    assert_eq!(m0("state"), 3.0);
    assert_eq!(
        m0("dial_attempts_total"),
        0.0,
        "a kernel link is not dialed"
    );
    let connected = m0("connected_seconds_total");
    assert!(connected > 0.0, "{connected}");
    assert_eq!(
        value(&after, "ddm_events_committed_total") - value(&before, "ddm_events_committed_total"),
        6.0
    );
    // Six connects and disconnects, each signaling both registrations.
    assert_eq!(
        value(&after, "ddm_signals_written_total") - value(&before, "ddm_signals_written_total"),
        12.0
    );
    assert_eq!(value(&after, "ddm_registrations{role=\"admin\"}"), 2.0);
    assert_eq!(value(&after, "ddm_sessions{role=\"admin\"}"), 2.0);
    assert_eq!(value(&after, "ddm_streams{role=\"admin\"}"), 1.0);
    assert_eq!(value(&after, "ddm_sessions{role=\"status\"}"), 0.0);
    assert_eq!(value(&after, "ddm_stream_events_missed_total"), 0.0);
    let turns = value(&after, "ddm_router_turn_seconds_count");
    assert!(turns > 6.0, "{turns}");
    assert_eq!(
        value(&after, "ddm_router_turn_seconds_bucket{le=\"+Inf\"}"),
        turns
    );

    // A session that speaks garbage is a protocol fault.
    let faults = value(&after, "ddm_protocol_faults_total");
    lab.router.enter(|| {
        use std::io::Write;
        let mut raw = std::os::unix::net::UnixStream::connect(&lab.service.socket).unwrap();
        raw.write_all(&[0xff; 64]).unwrap();
        let _ = std::io::Read::read(&mut raw, &mut [0u8; 64]);
    });
    wait_until("the fault is counted", || {
        value(&scrape(&lab), "ddm_protocol_faults_total") == faults + 1.0
    });

    // The DDM stopped: running is 0, and the registrations are gone.
    server.set_router_running(false).unwrap();
    let stopped = scrape(&lab);
    assert_eq!(value(&stopped, "ddm_running"), 0.0);
    assert_eq!(value(&stopped, "ddm_registrations{role=\"admin\"}"), 0.0);
}

#[test]
fn the_endpoint_answers_only_metrics_and_is_off_by_default() {
    let lab = Lab::with_config(Some(CONFIG));
    lab.set_up("lo", true);
    assert_eq!(fetch(&lab, "/").0, 404);
    assert_eq!(fetch(&lab, "/metrics").0, 200);

    let plain = Lab::new();
    plain.set_up("lo", true);
    let refused = curl(&plain, &[], "/metrics");
    assert!(
        !refused.status.success(),
        "something answered without [metrics]"
    );
}

#[test]
fn a_connection_over_the_limit_waits_and_a_silent_one_is_closed() {
    let lab = Lab::with_config(Some(
        "[metrics]\nlisten = \"127.0.0.1:9731\"\nmax_connections = 1\n",
    ));
    lab.set_up("lo", true);
    // One connection that says nothing holds the only place.
    let mut silent = lab
        .router
        .enter(|| std::net::TcpStream::connect("127.0.0.1:9731").expect("the endpoint"));
    std::thread::sleep(QUIET);
    let waiting = curl(&lab, &["--max-time", "1"], "/metrics");
    assert!(
        !waiting.status.success(),
        "a scrape over max_connections was served"
    );
    // The silent one is closed when its time for headers (5 s) is up...
    silent
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let started = std::time::Instant::now();
    let read = std::io::Read::read(&mut silent, &mut [0u8; 64]).expect("closed, not timed out");
    assert_eq!(read, 0, "the endpoint answered a request never sent");
    assert!(started.elapsed() < std::time::Duration::from_secs(6));
    // ...and the next scrape is served.
    assert_eq!(fetch(&lab, "/metrics").0, 200);
}

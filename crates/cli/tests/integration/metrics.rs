//! The Prometheus endpoint, scraped with a real HTTP client (curl) in the
//! router's namespace, its figures checked against what the test did; its
//! two formats checked by Prometheus' own tools (promtool, and a real
//! Prometheus server scraping it).

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

/// `curl URL` in the router's namespace.
fn curl_url(lab: &Lab, url: &str) -> std::process::Output {
    lab.router
        .command("curl")
        .arg("-sS")
        .arg(url)
        .output()
        .unwrap()
}

/// What Prometheus itself sends.
const PROMETHEUS_ACCEPT: &str = "Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// `curl` in the router's namespace: status code, content type and body,
/// in OpenMetrics (asked for as Prometheus asks).
fn fetch(lab: &Lab, path: &str) -> (u16, String, String) {
    fetch_with(lab, &["-H", PROMETHEUS_ACCEPT], path)
}

/// `curl` with `options`: status code, content type and body.
fn fetch_with(lab: &Lab, options: &[&str], path: &str) -> (u16, String, String) {
    let mut options = options.to_vec();
    options.extend(["-w", "\n%{http_code} %{content_type}"]);
    let out = curl(lab, &options, path);
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
fn a_log_nobody_reads_holds_nothing_up_and_its_dropped_lines_are_counted() {
    let mut lab = Lab::with_config(Some(CONFIG));
    lab.service.restart_with_unread_log();
    lab.set_up("lo", true);
    lab.add_connected_link("m0");
    assert_eq!(value(&scrape(&lab), "ddm_log_lines_dropped_total"), 0.0);
    // A line or more each: far more than the pipe and the log's queue
    // (16,384 lines) hold. The last flip takes the link down.
    lab.flap("m0", 30_000);
    lab.wait_for_state("m0", ConnectionState::Disconnected);
    let server = lab.service.connect();
    assert!(server.server_info().is_ok(), "the service answers");
    let after = scrape(&lab);
    assert!(
        value(&after, "ddm_log_lines_dropped_total") > 0.0,
        "the queue overflowed: {after:?}"
    );
    assert_eq!(value(&after, "ddm_interface_state{interface=\"m0\"}"), 1.0);
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
fn the_text_format_passes_promtool_and_a_real_prometheus_reads_openmetrics() {
    let lab = Lab::with_config(Some(CONFIG));
    lab.set_up("lo", true);
    lab.add_connected_link("m0");
    // Any client that does not ask for OpenMetrics (curl, promtool's
    // users) gets the text format 0.0.4, and promtool finds nothing.
    let (code, content_type, text) = fetch_with(&lab, &[], "/metrics");
    assert_eq!(code, 200);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    ddm_lab::assert_silent(tool("promtool").args(["check", "metrics"]), text.as_bytes());
    for sample in [
        "ddm_build_info{",
        "process_start_time_seconds ",
        "ddm_journal_size_bytes ",
        "ddm_journal_entries_lost_total 0",
        "ddm_journal_write_errors_total 0",
        "ddm_tls_handshakes_refused_total{reason=\"alpn\"} 0",
        "# TYPE ddm_interface_connects_total counter",
    ] {
        assert!(text.contains(sample), "no {sample} in\n{text}");
    }
    let started = text
        .lines()
        .find_map(|l| l.strip_prefix("process_start_time_seconds "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        now - started < 600.0 && started <= now + 1.0,
        "{started} {now}"
    );

    // A real Prometheus, which asks for OpenMetrics, scrapes it every
    // 200 ms: the scrape is up and the samples are there.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        "scrape_configs:\n  - job_name: ddm\n    scrape_interval: 200ms\n    static_configs:\n      - targets: ['127.0.0.1:9731']\n",
    )
    .unwrap();
    let mut prometheus = lab
        .router
        .command({
            ddm_lab::require("prometheus");
            "prometheus"
        })
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .args(["--web.listen-address=127.0.0.1:9090", "--log.level=warn"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let query = |expression: &str| -> Option<String> {
        let out = curl_url(
            &lab,
            &format!("http://127.0.0.1:9090/api/v1/query?query={expression}"),
        );
        let body = String::from_utf8_lossy(&out.stdout).into_owned();
        let value = body.split("\"value\":[").nth(1)?.split(',').nth(1)?;
        Some(
            value
                .trim_matches(|c| c == '"' || c == ']' || c == '}')
                .to_owned(),
        )
    };
    let mut seen = (None, None, None);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        seen = (
            query("up"),
            query("ddm_interface_state%7Binterface%3D%22m0%22%7D"),
            query("ddm_build_info"),
        );
        if seen.0.as_deref() == Some("1") && seen.1.is_some() && seen.2.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let _ = prometheus.kill();
    let _ = prometheus.wait();
    assert_eq!(
        seen.0.as_deref(),
        Some("1"),
        "Prometheus's scrape is not up: {seen:?}"
    );
    assert_eq!(seen.1.as_deref(), Some("3"), "m0 connected: {seen:?}");
    assert_eq!(seen.2.as_deref(), Some("1"), "{seen:?}");
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

/// The metric names in a PromQL expression (ddm's, the process's, `up`).
fn metric_names(expression: &str) -> Vec<String> {
    expression
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| word.starts_with("ddm_") || word.starts_with("process_") || *word == "up")
        .map(str::to_owned)
        .collect()
}

/// Every string value of `key` in a JSON document.
fn strings_of(value: &serde_json::Value, key: &str, found: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match v {
                    serde_json::Value::String(s) if k == key => found.push(s.clone()),
                    _ => strings_of(v, key, found),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| strings_of(v, key, found)),
        _ => {}
    }
}

#[test]
fn the_shipped_alert_rules_and_dashboard_check_and_name_only_metrics_that_exist() {
    let packaging = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging");
    let rules = packaging.join("prometheus/ddm-alerts.yml");
    for args in [
        vec!["check".into(), "rules".into(), rules.clone()],
        vec![
            "test".into(),
            "rules".into(),
            packaging.join("prometheus/ddm-alerts.test.yml"),
        ],
    ] {
        let out = tool("promtool").args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut expressions: Vec<String> = std::fs::read_to_string(&rules)
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr:").map(str::to_owned))
        .collect();
    assert!(expressions.len() >= 5, "{expressions:?}");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(packaging.join("grafana/ddm-dashboard.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let before = expressions.len();
    strings_of(&dashboard, "expr", &mut expressions);
    strings_of(&dashboard, "query", &mut expressions);
    assert!(expressions.len() > before + 10, "the dashboard's queries");

    // Every family a service with a journal and an export has (the
    // broker need not answer), as the text format names them.
    let lab = Lab::with_config(Some(
        "[metrics]\nlisten = \"127.0.0.1:9731\"\n[export]\nservers = [\"nats://127.0.0.1:4999\"]\n",
    ));
    lab.set_up("lo", true);
    let (_, _, text) = fetch_with(&lab, &[], "/metrics");
    let mut known = vec!["up".to_owned()];
    for (name, kind) in text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split_once(' '))
    {
        known.push(name.to_owned());
        if kind == "histogram" {
            known.extend(["_bucket", "_sum", "_count"].map(|s| format!("{name}{s}")));
        }
    }
    for expression in &expressions {
        let names = metric_names(expression);
        assert!(!names.is_empty(), "no metric in {expression}");
        for name in names {
            assert!(
                known.contains(&name),
                "{expression}: no metric {name} in\n{text}"
            );
        }
    }
}

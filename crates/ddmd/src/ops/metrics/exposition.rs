//! A snapshot written out in the OpenMetrics text format, by the
//! `prometheus-client` crate's encoder (one `Collector` per scrape over
//! the snapshot: the numbers are the router's, the format the crate's),
//! and, for a scraper that did not ask for OpenMetrics, turned into
//! Prometheus' text format 0.0.4 ([`text_format`]).

use super::{Outside, Snapshot, TlsRefusal, TURN_BUCKETS};
use ddm_proto::message::{InterfaceHealth, TargetHealth};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use prometheus_client::registry::Unit;
use std::collections::BTreeMap;
use std::fmt::Error;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The two formats of an exposition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    /// Prometheus' text format, version 0.0.4.
    Text,
}

/// Every metric: the process's start time, and the service's, `ddm_`
/// before each name.
pub fn render(snapshot: &Arc<Snapshot>, outside: &Outside, format: Format) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Process {
        started: outside.started,
    }));
    let tls_refused = outside
        .counters
        .tls_refused
        .each_ref()
        .map(|c| c.load(Ordering::Relaxed));
    registry
        .sub_registry_with_prefix("ddm")
        .register_collector(Box::new(Figures {
            snapshot: snapshot.clone(),
            sessions_refused: outside.counters.sessions_refused.load(Ordering::Relaxed),
            protocol_faults: outside.counters.protocol_faults.load(Ordering::Relaxed),
            netlink_overruns: outside.counters.netlink_overruns.load(Ordering::Relaxed),
            health_rounds_dropped: outside
                .counters
                .health_rounds_dropped
                .load(Ordering::Relaxed),
            notices_dropped: outside.notifier.dropped(),
            log_lines_dropped: crate::ops::log::dropped(),
            tls_refused,
            journal_bytes: snapshot.journal.as_ref().map(|j| on_disk(&j.path)),
        }));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)
        .expect("writing to a String cannot fail");
    match format {
        Format::OpenMetrics => text,
        Format::Text => text_format(&text),
    }
}

/// The journal's size on disk: the database and its write-ahead log.
fn on_disk(path: &std::path::Path) -> u64 {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    [path, std::path::Path::new(&wal)]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// An OpenMetrics exposition in Prometheus' text format 0.0.4: a counter's
/// family is named as its samples (`_total`), an info's too (`_info`, a
/// gauge there); `# UNIT` and `# EOF` go. Samples are written alike.
pub fn text_format(openmetrics: &str) -> String {
    let mut renamed = BTreeMap::new();
    for line in openmetrics.lines() {
        if let Some((name, kind)) = line.strip_prefix("# TYPE ").and_then(|t| t.split_once(' ')) {
            let suffix = match kind {
                "counter" => "_total",
                "info" => "_info",
                _ => "",
            };
            renamed.insert(name.to_owned(), (format!("{name}{suffix}"), kind));
        }
    }
    let mut text = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|tag| Some((tag, line.strip_prefix(tag)?)));
        match meta.and_then(|(tag, rest)| Some((tag, rest.split_once(' ')?))) {
            Some((tag, (name, rest))) => {
                let (name, kind) = renamed
                    .get(name)
                    .map_or((name, rest), |(n, k)| (n.as_str(), *k));
                let rest = match (tag, kind) {
                    ("# TYPE ", "info" | "stateset" | "gaugehistogram") => "gauge",
                    ("# TYPE ", "unknown") => "untyped",
                    _ => rest,
                };
                text.push_str(tag);
                text.push_str(name);
                text.push(' ');
                text.push_str(rest);
            }
            None => text.push_str(line),
        }
        text.push('\n');
    }
    text
}

/// The standard process metric ddm has: when it started.
#[derive(Debug)]
struct Process {
    /// Unix time, in seconds (None: /proc did not say).
    started: Option<f64>,
}

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), Error> {
        let Some(started) = self.started else {
            return Ok(());
        };
        gauge(
            &mut encoder,
            ("process_start_time", Some(&Unit::Seconds)),
            "Start time of the process since the Unix epoch",
            started,
        )
    }
}

#[derive(Debug)]
struct Figures {
    snapshot: Arc<Snapshot>,
    sessions_refused: u64,
    protocol_faults: u64,
    netlink_overruns: u64,
    health_rounds_dropped: u64,
    notices_dropped: u64,
    log_lines_dropped: u64,
    tls_refused: [u64; TlsRefusal::ALL.len()],
    journal_bytes: Option<u64>,
}

/// One labelled value per probed interface (`None`: no sample).
fn per_probed<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    snapshot: &Snapshot,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    metric: impl Fn(&InterfaceHealth) -> Option<M>,
    metric_type: MetricType,
) -> Result<(), Error> {
    let mut family = encoder.encode_descriptor(name, help, unit, metric_type)?;
    for health in &snapshot.health {
        if let Some(value) = metric(health) {
            let labels = [("interface", health.name.as_str())];
            value.encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

/// One labelled value per probed target.
fn per_target<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    snapshot: &Snapshot,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    metric: impl Fn(&TargetHealth) -> Option<M>,
) -> Result<(), Error> {
    let mut family = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for health in &snapshot.health {
        for target in &health.targets {
            if let Some(value) = metric(target) {
                let labels = [
                    ("interface", health.name.as_str()),
                    ("target", target.target.as_str()),
                ];
                value.encode(family.encode_family(&labels)?)?;
            }
        }
    }
    Ok(())
}

fn seconds(us: Option<u64>) -> Option<ConstGauge<f64>> {
    us.map(|us| ConstGauge::new(us as f64 / 1e6))
}

/// Which member carries each group's routes, and how often they moved.
fn groups(encoder: &mut DescriptorEncoder, s: &Snapshot) -> Result<(), Error> {
    let mut carrying = encoder.encode_descriptor(
        "group_member_carrying",
        "1 for the member that carries the group's routes (through its trigger: via_trigger), 0 for the others",
        None,
        MetricType::Gauge,
    )?;
    for group in &s.groups {
        for member in &group.members {
            let via = if member.carrying && group.via_trigger {
                "true"
            } else {
                "false"
            };
            let labels = [
                ("group", group.name.as_str()),
                ("member", member.name.as_str()),
                ("via_trigger", via),
            ];
            ConstGauge::new(u64::from(member.carrying)).encode(carrying.encode_family(&labels)?)?;
        }
    }
    let mut switches = encoder.encode_descriptor(
        "group_switches",
        "Times the group's routes moved to another member",
        None,
        MetricType::Counter,
    )?;
    for group in &s.groups {
        ConstCounter::new(group.switches)
            .encode(switches.encode_family(&[("group", group.name.as_str())])?)?;
    }
    Ok(())
}

/// The path health figures.
fn health(encoder: &mut DescriptorEncoder, s: &Snapshot, dropped: u64) -> Result<(), Error> {
    per_probed(
        encoder,
        s,
        "health_up",
        "1 while the path's health is up, 0 while it is down or not yet judged",
        None,
        |h| Some(ConstGauge::new(u64::from(h.verdict == "up"))),
        MetricType::Gauge,
    )?;
    per_probed(
        encoder,
        s,
        "health_rtt",
        "Median round-trip time of the answered probes over the window",
        Some(&Unit::Seconds),
        |h| seconds(h.rtt_us),
        MetricType::Gauge,
    )?;
    per_probed(
        encoder,
        s,
        "health_jitter",
        "Mean difference between a target's consecutive round-trip times",
        Some(&Unit::Seconds),
        |h| seconds(h.jitter_us),
        MetricType::Gauge,
    )?;
    per_probed(
        encoder,
        s,
        "health_loss",
        "Rounds short of the quorum over the window",
        Some(&Unit::Other("ratio".into())),
        |h| Some(ConstGauge::new(h.loss_percent / 100.0)),
        MetricType::Gauge,
    )?;
    per_probed(
        encoder,
        s,
        "health_probes_sent",
        "Probes sent",
        None,
        |h| Some(ConstCounter::new(h.probes_sent)),
        MetricType::Counter,
    )?;
    per_probed(
        encoder,
        s,
        "health_probes_lost",
        "Probes not answered within the timeout",
        None,
        |h| Some(ConstCounter::new(h.probes_lost)),
        MetricType::Counter,
    )?;
    per_target(
        encoder,
        s,
        "health_target_rtt",
        "A target's median round-trip time over the window",
        Some(&Unit::Seconds),
        |t| seconds(t.rtt_us),
    )?;
    per_target(
        encoder,
        s,
        "health_target_answered",
        "1 when the target answered the last round",
        None,
        |t| Some(ConstGauge::new(u64::from(t.answered_last))),
    )?;
    counter(
        encoder,
        "health_rounds_dropped",
        "Health rounds dropped because the queue to the router was full",
        dropped,
    )
}

/// One labelled value per interface.
fn per_interface<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    snapshot: &Snapshot,
    (name, unit): (&str, Option<&Unit>),
    help: &str,
    metric: impl Fn(&super::InterfaceFigures) -> M,
    metric_type: MetricType,
) -> Result<(), Error> {
    let mut family = encoder.encode_descriptor(name, help, unit, metric_type)?;
    for interface in &snapshot.interfaces {
        let labels = [("interface", interface.name.as_str())];
        metric(interface).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// One value per role.
fn per_role(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    counts: &BTreeMap<&'static str, u64>,
) -> Result<(), Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (role, count) in counts {
        ConstGauge::new(*count).encode(family.encode_family(&[("role", *role)])?)?;
    }
    Ok(())
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), Error> {
    let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(value).encode(metric)
}

/// One unlabelled gauge, in `unit` if it has one.
fn gauge<N>(
    encoder: &mut DescriptorEncoder,
    (name, unit): (&str, Option<&Unit>),
    help: &str,
    value: N,
) -> Result<(), Error>
where
    ConstGauge<N>: EncodeMetric,
{
    let metric = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    ConstGauge::new(value).encode(metric)
}

/// The journal's and its export's figures, when they are on.
fn record(
    encoder: &mut DescriptorEncoder,
    s: &Snapshot,
    journal_bytes: Option<u64>,
) -> Result<(), Error> {
    if let Some(journal) = &s.journal {
        counter(
            encoder,
            "journal_entries_lost",
            "Journal entries lost since the service started (a full queue to the journal, failed writes)",
            journal.lost,
        )?;
        counter(
            encoder,
            "journal_write_errors",
            "Writes to the journal's file that failed",
            journal.write_errors,
        )?;
        gauge(
            encoder,
            ("journal_size", Some(&Unit::Bytes)),
            "The journal's file on disk, with its write-ahead log",
            journal_bytes.unwrap_or(0),
        )?;
    }
    if let Some(export) = &s.export {
        gauge(
            encoder,
            ("export_connected", None),
            "1 while the export is connected to the NATS broker",
            u64::from(export.connected),
        )?;
        gauge(
            encoder,
            ("export_entries_behind", None),
            "Journal entries the broker has not acknowledged yet",
            export.behind,
        )?;
        counter(
            encoder,
            "export_publish_errors",
            "Times publishing to the broker failed and the export started again: no broker, a publish refused or not acknowledged in time",
            export.errors,
        )?;
    }
    Ok(())
}

impl Collector for Figures {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), Error> {
        let s = &*self.snapshot;
        let build = Info::new([
            ("version", env!("CARGO_PKG_VERSION")),
            ("revision", crate::REVISION),
        ]);
        build.encode(encoder.encode_descriptor(
            "build",
            "The version of ddm and the git revision it was built from",
            None,
            MetricType::Info,
        )?)?;
        gauge(
            &mut encoder,
            ("running", None),
            "1 while the DDM runs, 0 while it is stopped",
            u64::from(s.running),
        )?;
        per_interface(
            &mut encoder,
            s,
            ("interface_state", None),
            "Connection state: 0 unreachable, 1 disconnected, 2 connecting, 3 connected",
            |i| ConstGauge::new(i.state),
            MetricType::Gauge,
        )?;
        per_interface(
            &mut encoder,
            s,
            ("interface_connects", None),
            "Changes to connected",
            |i| ConstCounter::new(i.connects),
            MetricType::Counter,
        )?;
        per_interface(
            &mut encoder,
            s,
            ("interface_disconnects", None),
            "Changes from connected",
            |i| ConstCounter::new(i.disconnects),
            MetricType::Counter,
        )?;
        per_interface(
            &mut encoder,
            s,
            ("interface_dial_attempts", None),
            "Dial attempts (changes to connecting)",
            |i| ConstCounter::new(i.dial_attempts),
            MetricType::Counter,
        )?;
        per_interface(
            &mut encoder,
            s,
            ("interface_dial_failures", None),
            "Dial attempts that ended with an error",
            |i| ConstCounter::new(i.dial_failures),
            MetricType::Counter,
        )?;
        per_interface(
            &mut encoder,
            s,
            ("interface_dial_refused", None),
            "Packets a demand-dial filter kept from dialing (answered administratively prohibited), since the filter was loaded",
            |i| ConstCounter::new(i.dial_refused),
            MetricType::Counter,
        )?;
        per_interface(
            &mut encoder,
            s,
            ("interface_connected", Some(&Unit::Seconds)),
            "Time connected since the service started",
            |i| ConstCounter::new(i.connected_seconds),
            MetricType::Counter,
        )?;
        per_role(
            &mut encoder,
            "sessions",
            "Open sessions by role",
            &s.sessions,
        )?;
        per_role(
            &mut encoder,
            "registrations",
            "Registered notification events by the session's role",
            &s.registrations,
        )?;
        per_role(
            &mut encoder,
            "streams",
            "Open typed event streams by the session's role",
            &s.streams,
        )?;
        counter(
            &mut encoder,
            "events_committed",
            "Connection events committed (sequence numbers given)",
            s.events_committed,
        )?;
        counter(
            &mut encoder,
            "signals_written",
            "Registered events signaled",
            s.signals_written,
        )?;
        counter(
            &mut encoder,
            "stream_events_missed",
            "Typed stream events dropped because a session's backlog was full",
            s.stream_events_missed,
        )?;
        counter(
            &mut encoder,
            "sessions_refused",
            "Connections refused by a session limit",
            self.sessions_refused,
        )?;
        counter(
            &mut encoder,
            "protocol_faults",
            "Sessions ended for a protocol fault",
            self.protocol_faults,
        )?;
        counter(
            &mut encoder,
            "netlink_overruns",
            "Kernel link notifications lost to a full receive buffer",
            self.netlink_overruns,
        )?;
        counter(
            &mut encoder,
            "netlink_resyncs",
            "Link dumps made again to reconcile after an overrun",
            s.netlink_resyncs,
        )?;
        let mut refused = encoder.encode_descriptor(
            "tls_handshakes_refused",
            "Remote TLS connections refused before a session, by reason",
            None,
            MetricType::Counter,
        )?;
        for (why, count) in TlsRefusal::ALL.iter().zip(self.tls_refused) {
            ConstCounter::new(count).encode(refused.encode_family(&[("reason", why.label())])?)?;
        }
        record(&mut encoder, s, self.journal_bytes)?;
        health(&mut encoder, s, self.health_rounds_dropped)?;
        groups(&mut encoder, s)?;
        counter(
            &mut encoder,
            "systemd_notices_dropped",
            "Notices to systemd dropped because the queue to it was full",
            self.notices_dropped,
        )?;
        counter(
            &mut encoder,
            "log_lines_dropped",
            "Log lines dropped because the queue to the log's writer was full",
            self.log_lines_dropped,
        )?;
        // Counts per bucket; the encoder makes them cumulative.
        let buckets: Vec<(f64, u64)> = TURN_BUCKETS
            .iter()
            .chain([&f64::INFINITY])
            .copied()
            .zip(s.turn_buckets)
            .collect();
        let mut turns = encoder.encode_descriptor(
            "router_turn",
            "Time the router took for one input",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        turns.encode_histogram::<NoLabelSet>(s.turn_seconds, s.turns, &buckets, None)
    }
}

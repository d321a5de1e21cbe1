//! A snapshot written out in the OpenMetrics text format, by the
//! `prometheus-client` crate's encoder (one `Collector` per scrape over
//! the snapshot: the numbers are the router's, the format the crate's).

use super::{Outside, Snapshot, TURN_BUCKETS};
use ddm_proto::message::{InterfaceHealth, TargetHealth};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use prometheus_client::registry::Unit;
use std::collections::BTreeMap;
use std::fmt::Error;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Every metric, `ddm_` before each name.
pub fn render(snapshot: &Arc<Snapshot>, outside: &Outside) -> String {
    let mut registry = Registry::with_prefix("ddm");
    registry.register_collector(Box::new(Figures {
        snapshot: snapshot.clone(),
        sessions_refused: outside.counters.sessions_refused.load(Ordering::Relaxed),
        protocol_faults: outside.counters.protocol_faults.load(Ordering::Relaxed),
        netlink_overruns: outside.counters.netlink_overruns.load(Ordering::Relaxed),
        health_rounds_dropped: outside
            .counters
            .health_rounds_dropped
            .load(Ordering::Relaxed),
        notices_dropped: outside.notifier.dropped(),
    }));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)
        .expect("writing to a String cannot fail");
    text
}

#[derive(Debug)]
struct Figures {
    snapshot: Arc<Snapshot>,
    sessions_refused: u64,
    protocol_faults: u64,
    netlink_overruns: u64,
    health_rounds_dropped: u64,
    notices_dropped: u64,
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
    name: &str,
    help: &str,
    metric: impl Fn(&super::InterfaceFigures) -> M,
    metric_type: MetricType,
) -> Result<(), Error> {
    let mut family = encoder.encode_descriptor(name, help, None, metric_type)?;
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

impl Collector for Figures {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), Error> {
        let s = &*self.snapshot;
        let running = encoder.encode_descriptor(
            "running",
            "1 while the DDM runs, 0 while it is stopped",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(u64::from(s.running)).encode(running)?;
        per_interface(
            &mut encoder,
            s,
            "interface_state",
            "Connection state: 0 unreachable, 1 disconnected, 2 connecting, 3 connected",
            |i| ConstGauge::new(i.state),
            MetricType::Gauge,
        )?;
        per_interface(
            &mut encoder,
            s,
            "interface_connects",
            "Changes to connected",
            |i| ConstCounter::new(i.connects),
            MetricType::Counter,
        )?;
        per_interface(
            &mut encoder,
            s,
            "interface_disconnects",
            "Changes from connected",
            |i| ConstCounter::new(i.disconnects),
            MetricType::Counter,
        )?;
        per_interface(
            &mut encoder,
            s,
            "interface_dial_attempts",
            "Dial attempts (changes to connecting)",
            |i| ConstCounter::new(i.dial_attempts),
            MetricType::Counter,
        )?;
        per_interface(
            &mut encoder,
            s,
            "interface_dial_failures",
            "Dial attempts that ended with an error",
            |i| ConstCounter::new(i.dial_failures),
            MetricType::Counter,
        )?;
        per_interface(
            &mut encoder,
            s,
            "interface_connected_seconds",
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
        health(&mut encoder, s, self.health_rounds_dropped)?;
        groups(&mut encoder, s)?;
        counter(
            &mut encoder,
            "systemd_notices_dropped",
            "Notices to systemd dropped because the queue to it was full",
            self.notices_dropped,
        )?;
        // Counts per bucket; the encoder makes them cumulative.
        let buckets: Vec<(f64, u64)> = TURN_BUCKETS
            .iter()
            .chain([&f64::INFINITY])
            .copied()
            .zip(s.turn_buckets)
            .collect();
        let mut turns = encoder.encode_descriptor(
            "router_turn_seconds",
            "Time the router took for one input",
            None,
            MetricType::Histogram,
        )?;
        turns.encode_histogram::<NoLabelSet>(s.turn_seconds, s.turns, &buckets, None)
    }
}

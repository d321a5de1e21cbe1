//! Workload 7, the journal: notification latency with the journal off and
//! on, in alternating rounds on the same lab (the writer must stay off the
//! notification path); what an entry costs on disk (over the export's
//! run); and how far the export
//! to a real nats-server (in the router's namespace, plain TCP) lags
//! behind the commit at 1,000 changes/s, as a fleet watcher sees it.

use super::latency::sample;
use crate::lab::{on_one_cpu, Lab, Link};
use crate::listeners::Mechanism;
use crate::report::Report;
use crate::stats::Summary;
use ddm_fleet::{self as fleet, FleetWatch};
use ddm_lab::nats::NatsServer;
use ddmd::record::export::Broker;
use mprapi::JournalStatus;
use std::time::{Duration, Instant};

const OFF: &str = "ddm, journal off";
const ON: &str = "ddm, journal on";
const LATENCY: &str = "journal: notification latency";
/// Rounds of the stalled-disk comparison, each half running, half stalled.
const STALL_ROUNDS: usize = 5;
const EXPORT: &str = "journal: export lag at 1000 changes/s";

pub fn run(rounds: usize, flips: usize, export_time: Duration, report: &mut Report) {
    let mut broker = None;
    let mut lab = Lab::with_config(|router, _, _| {
        // Plain TCP on the router's loopback.
        broker = Some(NatsServer::start(router, "host: 127.0.0.1\n"));
        None
    });
    let broker = broker.expect("the broker");
    let port = broker.port;
    latency(&mut lab, rounds, flips, report);
    on_one_cpu(|| stalled(&mut lab, flips, report));
    export_lag(&mut lab, port, export_time, report);
}

/// The disk cannot keep up: another process holds the journal's write
/// lock while the link flips, the writer waits, its queue (8 entries
/// here) fills, and the router goes on without waiting: notification
/// latency as before, what could not be queued counted in a gap. On one
/// CPU, where the comparison is not drowned by cross-CPU wake-ups.
fn stalled(lab: &mut Lab, flips: usize, report: &mut Report) {
    const WORKLOAD: &str = "journal: the disk stalled, one CPU";
    lab.reconfigure(Some("[journal]\nqueue = 8\n"));
    let server = lab.connect();
    let lost_before = server.journal_status().map_or(0, |s| s.lost);
    let mut link = Link::new(lab);
    let times = |link: &mut Link| -> Vec<Duration> {
        sample(lab, link, Mechanism::DdmEvent, flips / STALL_ROUNDS)
            .into_iter()
            .filter_map(|(_, wake)| wake)
            .collect()
    };
    // Rounds that alternate, so that the machine's drift falls on both.
    let (mut running, mut stalled) = (Vec::new(), Vec::new());
    let file = lab.service.state_directory().join("journal.sqlite");
    let blocker = ddmd::record::journal::store::open_reader(&file).expect("the journal file");
    for _ in 0..STALL_ROUNDS {
        running.extend(times(&mut link));
        blocker
            .execute_batch("BEGIN IMMEDIATE")
            .expect("the write lock");
        stalled.extend(times(&mut link));
        blocker.execute_batch("COMMIT").expect("release");
    }
    let lost = server.journal_status().map_or(0, |s| s.lost) - lost_before;
    report.add(
        WORKLOAD,
        "ddm, writer running",
        "us",
        Summary::of_durations(&running),
    );
    report.add(
        WORKLOAD,
        "ddm, writer stalled",
        "us",
        Summary::of_durations(&stalled),
    );
    report.relate(WORKLOAD, "ddm, writer running");
    report.add(
        WORKLOAD,
        "entries lost to the gap",
        "count",
        Summary::of(&[lost as f64]),
    );
    let woken = stalled.len();
    if let (Some(run), Some(stall)) = (
        report.find(WORKLOAD, "ddm, writer running"),
        report.find(WORKLOAD, "ddm, writer stalled"),
    ) {
        let ratio = stall.summary.p50 / run.summary.p50;
        report.target(
            "a stalled journal holds no notification up: p50 within 1.05x, every waiter woken",
            format!(
                "{ratio:.3}x, {woken} of {} woken, {lost} entries counted lost",
                flips / STALL_ROUNDS * STALL_ROUNDS
            ),
            ratio <= 1.05 && woken == flips / STALL_ROUNDS * STALL_ROUNDS,
        );
    }
}

/// Latency with the journal off and on, in alternating rounds, as the
/// scheduler places the processes and on one CPU, where it is judged (as
/// the latency workload's ratios are: see `lab::on_one_cpu`).
fn latency(lab: &mut Lab, rounds: usize, flips: usize, report: &mut Report) {
    measure(lab, rounds, flips, "", report);
    on_one_cpu(|| measure(lab, rounds, flips, ", one CPU", report));
    let workload = format!("{LATENCY}, one CPU");
    if let (Some(off), Some(on)) = (report.find(&workload, OFF), report.find(&workload, ON)) {
        let ratio = on.summary.p50 / off.summary.p50;
        report.target(
            "notification latency p50 with the journal on within 1.05x of off (one CPU)",
            format!("{ratio:.3}x"),
            ratio <= 1.05,
        );
    }
}

fn measure(lab: &mut Lab, rounds: usize, flips: usize, suffix: &str, report: &mut Report) {
    let (mut off, mut on) = (Vec::new(), Vec::new());
    let mut lost = 0;
    for _ in 0..rounds {
        for (config, samples) in [(Some("journal = false\n"), &mut off), (None, &mut on)] {
            lab.reconfigure(config);
            let mut link = Link::new(lab);
            for (_, wake) in sample(lab, &mut link, Mechanism::DdmEvent, flips) {
                match wake {
                    Some(d) => samples.push(d),
                    None => lost += 1,
                }
            }
        }
    }
    super::say_lost("journal latency", lost);
    let workload = format!("{LATENCY}{suffix}");
    report.add(&workload, OFF, "us", Summary::of_durations(&off));
    report.add(&workload, ON, "us", Summary::of_durations(&on));
    report.relate(&workload, OFF);
}

/// What the journal grew by per entry between two of its states.
fn footprint(before: &JournalStatus, after: &JournalStatus, report: &mut Report) {
    let entries = after.last_id.saturating_sub(before.last_id);
    if entries > 0 {
        let bytes = after.bytes.saturating_sub(before.bytes);
        report.add(
            "journal: on disk",
            "bytes per entry",
            "B",
            Summary::of(&[bytes as f64 / entries as f64]),
        );
    }
}

fn export_lag(lab: &mut Lab, port: u16, duration: Duration, report: &mut Report) {
    let config =
        format!("[export]\nservers = [\"nats://127.0.0.1:{port}\"]\nrouter_id = \"bench\"\n");
    lab.reconfigure(Some(&config));
    let server = lab.connect();
    crate::lab::wait_for("the export to catch up", || {
        server
            .journal_status()
            .ok()
            .and_then(|s| s.export)
            .is_some_and(|e| e.connected && e.behind == 0)
    });
    let watch = FleetWatch {
        broker: Broker {
            servers: vec![format!("nats://127.0.0.1:{port}")],
            ..Broker::default()
        },
        stream: "DDM".into(),
        durable: "bench".into(),
        subject: Some("ddm.bench.events.transition".into()),
        idle_timeout: Some(Duration::from_secs(2)),
    };
    let before = server.journal_status().expect("journal status");
    let mut link = Link::new(lab);
    let started = ddm_proto::model::now_unix_ns();
    let lags = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let mut lags = Vec::new();
            let _ = lab.router.enter(|| {
                fleet::watch(&watch, |entry| {
                    let committed = entry["time_unix_ns"].as_u64().unwrap_or(0);
                    if committed >= started {
                        lags.push(Duration::from_nanos(
                            ddm_proto::model::now_unix_ns().saturating_sub(committed),
                        ));
                    }
                    true
                })
            });
            lags
        });
        // Let the watcher catch up with what came before.
        std::thread::sleep(Duration::from_millis(500));
        let start = Instant::now();
        let period = Duration::from_millis(1);
        let mut flips = 0u32;
        while start.elapsed() < duration {
            let due = start + period * flips;
            while Instant::now() < due {
                std::hint::spin_loop();
            }
            link.flip();
            flips += 1;
        }
        watcher.join().expect("the fleet watcher")
    });
    report.add(
        EXPORT,
        "commit to fleet watcher",
        "us",
        Summary::of_durations(&lags),
    );
    let status = server.journal_status().expect("journal status");
    footprint(&before, &status, report);
    report.add(
        EXPORT,
        "entries behind at the end",
        "count",
        Summary::of(&[status.export.map_or(0, |e| e.behind) as f64]),
    );
    if let Some(row) = report.find(EXPORT, "commit to fleet watcher") {
        let p99_ms = row.summary.p99 / 1000.0;
        report.target(
            "export lag p99 at 1,000 changes/s under 100 ms",
            format!("{p99_ms:.1} ms over {} entries", lags.len()),
            p99_ms < 100.0,
        );
    }
}

//! Workload 1, latency: one link flip until one waiting thread wakes, for
//! the kernel floor, the bare relay (alone and on tokio), D-Bus, ddm
//! through `mprapi::Event` and ddm through the typed stream. The
//! mechanisms take turns in rounds, so each is measured on the same
//! machine state; connects and disconnects are reported apart (a connect
//! waits for the carrier, a disconnect does not). Measured twice, as for
//! the round trips, and judged in both: as the scheduler places the
//! processes, and with all of them on one CPU (see `lab::on_one_cpu`).

use super::{say_lost, settle, PATIENCE};
use crate::lab::{on_one_cpu, Lab, Link, LINK};
use crate::listeners::{set_up, Mechanism};
use crate::report::Report;
use crate::stats::Summary;
use crate::wake::wake_times;
use mprapi::{ConnectionState, EventStream, StreamItem};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const STREAM: &str = "ddm (typed stream)";

pub fn run(lab: &Lab, rounds: usize, flips_per_round: usize, report: &mut Report) {
    measure(lab, rounds, flips_per_round, "", report);
    on_one_cpu(|| measure(lab, rounds, flips_per_round, ", one CPU", report));
    judge(report);
}

/// Every mechanism's latency, as rows of "latency: connect{suffix}" and
/// "latency: disconnect{suffix}".
fn measure(lab: &Lab, rounds: usize, flips_per_round: usize, suffix: &str, report: &mut Report) {
    let mut link = Link::new(lab);
    // (direction, mechanism) -> samples
    let mut samples: BTreeMap<(&str, &str), Vec<Duration>> = BTreeMap::new();
    let mut lost = 0;
    for _ in 0..rounds {
        for mechanism in [
            Mechanism::Kernel,
            Mechanism::Relay,
            Mechanism::RelayOnTokio,
            Mechanism::DdmEvent,
            Mechanism::DBus,
        ] {
            for (target, wake) in sample(lab, &mut link, mechanism, flips_per_round) {
                match wake {
                    Some(d) => samples
                        .entry((direction(target), mechanism.name()))
                        .or_default()
                        .push(d),
                    None => lost += 1,
                }
            }
        }
        let server = lab.connect();
        let stream = server.subscribe().expect("subscribe");
        for _ in 0..flips_per_round {
            let target = !link.connected;
            match stream_wake(&stream, target, &mut link) {
                Some(d) => samples
                    .entry((direction(target), STREAM))
                    .or_default()
                    .push(d),
                None => lost += 1,
            }
            settle();
        }
    }
    say_lost("latency", lost);
    for ((dir, mechanism), values) in &samples {
        report.add(
            &format!("latency: {dir}{suffix}"),
            mechanism,
            "us",
            Summary::of_durations(values),
        );
    }
    for dir in ["connect", "disconnect"] {
        report.relate(&format!("latency: {dir}{suffix}"), Mechanism::Kernel.name());
    }
}

/// `flips` flips, each timed until one listener of `mechanism` wakes:
/// (the state flipped to, the time, or None if it never woke).
pub(super) fn sample(
    lab: &Lab,
    link: &mut Link,
    mechanism: Mechanism,
    flips: usize,
) -> Vec<(bool, Option<Duration>)> {
    let listeners = set_up(lab, mechanism, 1, link.connected);
    (0..flips)
        .map(|_| {
            listeners.drain();
            let target = !link.connected;
            let wake = wake_times(&listeners.waiters, target, PATIENCE, || link.flip())[0];
            settle();
            (target, wake)
        })
        .collect()
}

/// Ratios to the relays and D-Bus for both measurements, judged in both:
/// ddm ahead of D-Bus and within 1.15x of the bare relay. The relay on
/// tokio is not judged: it says how much of ddm's gap to the bare relay
/// the runtime alone makes.
fn judge(report: &mut Report) {
    for (dir, suffix) in [
        ("connect", ""),
        ("disconnect", ""),
        ("connect", ", one CPU"),
        ("disconnect", ", one CPU"),
    ] {
        let workload = format!("latency: {dir}{suffix}");
        let p50 = |m: Mechanism| report.find(&workload, m.name()).map(|r| r.summary.p50);
        let (Some(floor), Some(relay), Some(on_tokio), Some(dbus), Some(ddm)) = (
            p50(Mechanism::Kernel),
            p50(Mechanism::Relay),
            p50(Mechanism::RelayOnTokio),
            p50(Mechanism::DBus),
            p50(Mechanism::DdmEvent),
        ) else {
            continue;
        };
        report.note(format!(
            "{dir} latency p50{suffix}: ddm {:.2}x the kernel floor, {:.2}x the bare relay, \
             {:.2}x the relay on tokio (itself {:.2}x the bare relay), {:.2}x D-Bus",
            ddm / floor,
            ddm / relay,
            ddm / on_tokio,
            on_tokio / relay,
            ddm / dbus
        ));
        report.target(
            format!("{dir} latency p50{suffix} ahead of D-Bus"),
            format!("{ddm:.1} us against {dbus:.1} us"),
            ddm < dbus,
        );
        report.target(
            format!("{dir} latency p50{suffix} within 1.15x of the bare relay"),
            format!("{:.2}x", ddm / relay),
            ddm <= 1.15 * relay,
        );
    }
}

fn direction(connected: bool) -> &'static str {
    if connected {
        "connect"
    } else {
        "disconnect"
    }
}

/// One flip, timed until a thread blocked on the typed stream sees it
/// (the lab's link's event: other interfaces may change meanwhile).
pub(super) fn stream_wake(
    stream: &EventStream,
    connected: bool,
    link: &mut Link,
) -> Option<Duration> {
    while stream.next_timeout(Duration::ZERO).is_some() {}
    let wanted = if connected {
        ConnectionState::Connected
    } else {
        ConnectionState::Disconnected
    };
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| loop {
            match stream.next_timeout(PATIENCE)? {
                StreamItem::Event(e) if e.to == wanted && e.interface == LINK => {
                    return Some(Instant::now())
                }
                StreamItem::End(_) => return None,
                _ => {}
            }
        });
        std::thread::sleep(Duration::from_millis(3));
        let start = link.flip();
        waiter.join().expect("stream waiter").map(|t| t - start)
    })
}

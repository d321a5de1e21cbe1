//! Workload 1, latency: one link flip until one waiting thread wakes, for
//! the kernel floor, D-Bus, ddm through `mprapi::Event` and ddm through the
//! typed stream. The mechanisms take turns in rounds, so each is measured
//! on the same machine state; connects and disconnects are reported apart
//! (a connect waits for the carrier, a disconnect does not).

use super::{say_lost, settle, PATIENCE};
use crate::lab::{Lab, Link};
use crate::listeners::{set_up, Mechanism};
use crate::report::Report;
use crate::stats::Summary;
use crate::wake::wake_times;
use mprapi::{ConnectionState, EventStream, StreamItem};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const STREAM: &str = "ddm (typed stream)";

pub fn run(lab: &Lab, rounds: usize, flips_per_round: usize, report: &mut Report) {
    let mut link = Link::new(lab);
    // (direction, mechanism) -> samples
    let mut samples: BTreeMap<(&str, &str), Vec<Duration>> = BTreeMap::new();
    let mut lost = 0;
    for _ in 0..rounds {
        for mechanism in [
            Mechanism::Kernel,
            Mechanism::Relay,
            Mechanism::DdmEvent,
            Mechanism::DBus,
        ] {
            let listeners = set_up(lab, mechanism, 1, link.connected);
            for _ in 0..flips_per_round {
                listeners.drain();
                let target = !link.connected;
                match wake_times(&listeners.waiters, target, PATIENCE, || link.flip())[0] {
                    Some(d) => samples
                        .entry((direction(target), mechanism.name()))
                        .or_default()
                        .push(d),
                    None => lost += 1,
                }
                settle();
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
            &format!("latency: {dir}"),
            mechanism,
            "us",
            Summary::of_durations(values),
        );
    }
    for dir in ["connect", "disconnect"] {
        let workload = format!("latency: {dir}");
        report.relate(&workload, Mechanism::Kernel.name());
        let (Some(floor), Some(ddm)) = (
            report
                .find(&workload, Mechanism::Kernel.name())
                .map(|r| r.summary),
            report
                .find(&workload, Mechanism::DdmEvent.name())
                .map(|r| r.summary),
        ) else {
            continue;
        };
        let (p50, p99) = (ddm.p50 / floor.p50, ddm.p99 / floor.p99);
        report.target(
            format!("{dir} latency p50 within 1.3x, p99 within 2x of the kernel floor"),
            format!("p50 {p50:.2}x, p99 {p99:.2}x"),
            p50 <= 1.3 && p99 <= 2.0,
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

/// One flip, timed until a thread blocked on the typed stream sees it.
fn stream_wake(stream: &EventStream, connected: bool, link: &mut Link) -> Option<Duration> {
    while stream.next_timeout(Duration::ZERO).is_some() {}
    let wanted = if connected {
        ConnectionState::Connected
    } else {
        ConnectionState::Disconnected
    };
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| loop {
            match stream.next_timeout(PATIENCE)? {
                StreamItem::Event(e) if e.to == wanted => return Some(Instant::now()),
                StreamItem::End(_) => return None,
                _ => {}
            }
        });
        std::thread::sleep(Duration::from_millis(3));
        let start = link.flip();
        waiter.join().expect("stream waiter").map(|t| t - start)
    })
}

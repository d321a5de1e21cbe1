//! Workload 2, fan-out: N clients each waiting for the same flip: the time
//! until the last one wakes, and the median client's. ddm sessions with one
//! registration each, beside N raw rtnetlink listeners (the kernel's own
//! multicast, the floor) and N D-Bus subscribers.

use super::{say_lost, settle, PATIENCE};
use crate::dbus_anchor;
use crate::lab::{descriptor_limit, Lab, Link, SPARE_DESCRIPTORS};
use crate::listeners::{set_up, Mechanism};
use crate::report::Report;
use crate::stats::Summary;
use crate::wake::wake_times;
use std::time::Duration;

pub fn run(lab: &Lab, sizes: &[usize], flips: usize, report: &mut Report) {
    let mut link = Link::new(lab);
    for &n in sizes {
        let last = format!("fan-out {n}: last woken");
        let median = format!("fan-out {n}: median client");
        for mechanism in [Mechanism::Kernel, Mechanism::DBus, Mechanism::DdmEvent] {
            // A ddm client holds a socket and an eventfd here, and the
            // service a socket and the eventfd's copy.
            if mechanism == Mechanism::DdmEvent && 2 * n + SPARE_DESCRIPTORS > descriptor_limit() {
                eprintln!(
                    "!!! fan-out {n}: ddm skipped: {} descriptors needed, this machine allows {}",
                    2 * n + SPARE_DESCRIPTORS,
                    descriptor_limit()
                );
                continue;
            }
            if mechanism == Mechanism::DBus && n > dbus_anchor::MOST_SUBSCRIBERS {
                eprintln!(
                    "!!! fan-out {n}: D-Bus skipped: libdbus watches descriptors below 1024 only"
                );
                continue;
            }
            let listeners = set_up(lab, mechanism, n, link.connected);
            let (mut lasts, mut medians, mut lost) = (Vec::new(), Vec::new(), 0);
            for _ in 0..flips {
                listeners.drain();
                let target = !link.connected;
                let times = wake_times(&listeners.waiters, target, PATIENCE, || link.flip());
                let mut woke: Vec<Duration> = times.iter().flatten().copied().collect();
                lost += n - woke.len();
                woke.sort();
                if let (Some(max), Some(mid)) = (woke.last(), woke.get(woke.len() / 2)) {
                    lasts.push(*max);
                    medians.push(*mid);
                }
                settle();
            }
            say_lost(&format!("fan-out {n}, {}", mechanism.name()), lost);
            report.add(&last, mechanism.name(), "us", Summary::of_durations(&lasts));
            report.add(
                &median,
                mechanism.name(),
                "us",
                Summary::of_durations(&medians),
            );
        }
        report.relate(&last, Mechanism::Kernel.name());
        report.relate(&median, Mechanism::Kernel.name());
        if n == 1000 {
            let p50 = |m: Mechanism| report.find(&last, m.name()).map(|r| r.summary.p50);
            if let (Some(kernel), Some(dbus), Some(ddm)) = (
                p50(Mechanism::Kernel),
                p50(Mechanism::DBus),
                p50(Mechanism::DdmEvent),
            ) {
                report.target_every_run(
                    "fan-out to 1,000: last client woken within 0.8x of the kernel's own multicast",
                    format!("{:.2}x the kernel's", ddm / kernel),
                    ddm <= 0.8 * kernel,
                );
                report.target(
                    "fan-out to 1,000: at most half of dbus-daemon's time",
                    format!("{:.2}x dbus-daemon's", ddm / dbus),
                    ddm <= dbus / 2.0,
                );
            }
        }
    }
}

//! Workload 5, churn: link changes at a fixed rate with 100 registered
//! sessions, the journal on: the service's CPU (the journal's writer
//! thread included), and the counts of missed signals and of journal
//! entries lost to gaps, which must both be zero. The service writes each registered eventfd once per committed
//! change, so a session's eventfd counter is exactly the signals it got;
//! the sequence number in a stream's opening snapshot, read before and
//! after, gives the number of changes committed (no stream stays open
//! during the run: it would be load of its own).

use crate::lab::{Lab, Link};
use crate::report::Report;
use crate::stats::Summary;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

const SESSIONS: usize = 100;

/// Reads (and so clears) an eventfd's counter.
fn take_count(event: &mprapi::Event) -> u64 {
    let mut counter = [0u8; 8];
    match nix::unistd::read(event.as_fd(), &mut counter) {
        Ok(8) => u64::from_ne_bytes(counter),
        _ => 0,
    }
}

/// Journal entries the service has lost since it started.
fn journal_lost(witness: &mprapi::Server) -> u64 {
    witness.journal_status().map_or(0, |s| s.lost)
}

/// The service's sequence number once it has stopped moving.
fn quiet_seq(witness: &mprapi::Server) -> u64 {
    let seq = || witness.subscribe().expect("subscribe").snapshot().seq;
    let mut seen = seq();
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = seq();
        if now == seen {
            return now;
        }
        seen = now;
    }
}

pub fn run(lab: &Lab, rates: &[u32], duration: Duration, report: &mut Report) {
    let mut link = Link::new(lab);
    let sessions: Vec<(mprapi::Server, mprapi::Event)> =
        (0..SESSIONS).map(|_| lab.registered_session()).collect();
    let witness = lab.connect();
    for &rate in rates {
        let first = quiet_seq(&witness);
        for (_, event) in &sessions {
            take_count(event);
        }
        let lost_before = journal_lost(&witness);
        let cpu_before = lab.service_cpu();
        let start = Instant::now();
        let period = Duration::from_secs_f64(1.0 / f64::from(rate));
        let mut flips = 0u64;
        while start.elapsed() < duration {
            let due = start + period.mul_f64(flips as f64);
            while Instant::now() < due {
                std::hint::spin_loop();
            }
            link.flip();
            flips += 1;
        }
        let elapsed = start.elapsed();
        let cpu = lab.service_cpu() - cpu_before;
        let committed = quiet_seq(&witness) - first;
        let journal_gaps = journal_lost(&witness) - lost_before;
        let missed: u64 = sessions
            .iter()
            .map(|(_, e)| committed.saturating_sub(take_count(e)))
            .sum();
        let workload = format!("churn {rate}/s, {SESSIONS} sessions");
        let achieved = flips as f64 / elapsed.as_secs_f64();
        let cpu_share = cpu.as_secs_f64() / elapsed.as_secs_f64() * 100.0;
        report.add(
            &workload,
            "link flips achieved",
            "/s",
            Summary::of(&[achieved]),
        );
        report.add(
            &workload,
            "changes committed",
            "count",
            Summary::of(&[committed as f64]),
        );
        report.add(&workload, "ddm service CPU", "%", Summary::of(&[cpu_share]));
        report.add(
            &workload,
            "missed signals (must be 0)",
            "count",
            Summary::of(&[missed as f64]),
        );
        report.add(
            &workload,
            "journal entries lost to gaps (must be 0)",
            "count",
            Summary::of(&[journal_gaps as f64]),
        );
        report.target(
            format!("churn at {rate}/s: zero journal gaps"),
            format!("{journal_gaps} entries lost"),
            journal_gaps == 0,
        );
        if missed > 0 {
            eprintln!("!!! churn at {rate}/s: {missed} signals missed");
        }
        report.target(
            format!("churn at {rate}/s: zero missed signals"),
            format!(
                "{missed} missed of {} expected",
                committed * SESSIONS as u64
            ),
            missed == 0,
        );
        if rate >= 10_000 {
            report.target(
                format!("churn at {rate}/s with {SESSIONS} sessions, journal on, under one core"),
                format!("{cpu_share:.1}% of a core at {achieved:.0} flips/s"),
                cpu_share < 100.0,
            );
        }
    }
}

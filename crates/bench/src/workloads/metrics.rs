//! Workload 9, metrics: notification latency while Prometheus scrapes the
//! service's `/metrics` a hundred times a second, against none, in
//! alternating rounds on one lab. A scrape costs the router one snapshot
//! and is written out on the endpoint's own thread: it must not hold a
//! notification up. Also: how long a scrape takes.

use super::latency::sample;
use crate::lab::{Lab, Link, Netns};
use crate::listeners::Mechanism;
use crate::report::Report;
use crate::stats::Summary;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const WORKLOAD: &str = "metrics: notification latency";
const QUIET: &str = "ddm, not scraped";
const SCRAPED: &str = "ddm, scraped 100/s";
const PERIOD: Duration = Duration::from_millis(10);
const ENDPOINT: &str = "127.0.0.1:9731";

pub fn run(rounds: usize, flips: usize, report: &mut Report) {
    let lab = Lab::with_config(|router, _, _| {
        router.ip(&["link", "set", "lo", "up"]);
        Some(format!("[metrics]\nlisten = \"{ENDPOINT}\"\n"))
    });
    let mut link = Link::new(&lab);
    let (mut quiet, mut scraped, mut scrapes) = (Vec::new(), Vec::new(), Vec::new());
    let mut lost = 0;
    for _ in 0..rounds {
        for (samples, scraping) in [(&mut quiet, false), (&mut scraped, true)] {
            let stop = AtomicBool::new(false);
            std::thread::scope(|scope| {
                let scraper = scraping.then(|| scope.spawn(|| scrape_until(&lab.router, &stop)));
                for (_, wake) in sample(&lab, &mut link, Mechanism::DdmEvent, flips) {
                    match wake {
                        Some(d) => samples.push(d),
                        None => lost += 1,
                    }
                }
                stop.store(true, Ordering::Relaxed);
                if let Some(scraper) = scraper {
                    scrapes.extend(scraper.join().expect("the scraper"));
                }
            });
        }
    }
    super::say_lost("metrics latency", lost);
    report.add(WORKLOAD, QUIET, "us", Summary::of_durations(&quiet));
    report.add(WORKLOAD, SCRAPED, "us", Summary::of_durations(&scraped));
    report.relate(WORKLOAD, QUIET);
    report.add(
        "metrics: one scrape",
        "GET /metrics, whole response",
        "us",
        Summary::of_durations(&scrapes),
    );
    if let (Some(q), Some(s)) = (report.find(WORKLOAD, QUIET), report.find(WORKLOAD, SCRAPED)) {
        let ratio = s.summary.p50 / q.summary.p50;
        report.target(
            "scrapes hold no notification up: p50 scraped 100/s within 1.10x of not scraped",
            format!("{ratio:.3}x, {} scrapes", scrapes.len()),
            ratio <= 1.10 && !scrapes.is_empty(),
        );
    }
}

/// Scrapes every `PERIOD` from the router's namespace until `stop`; what
/// each scrape took.
fn scrape_until(router: &Netns, stop: &AtomicBool) -> Vec<Duration> {
    router.enter(|| {
        let mut took = Vec::new();
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            took.push(scrape());
            next += PERIOD;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        took
    })
}

/// One whole scrape over a new connection, as Prometheus makes it.
fn scrape() -> Duration {
    let started = Instant::now();
    let mut stream = std::net::TcpStream::connect(ENDPOINT).expect("the metrics endpoint");
    stream
        .write_all(
            b"GET /metrics HTTP/1.1\r\nHost: ddm\r\nConnection: close\r\n\
              Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n\r\n",
        )
        .expect("send the request");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("the response");
    assert!(
        response.starts_with(b"HTTP/1.1 200") && response.ends_with(b"# EOF\n"),
        "a scrape got {}",
        String::from_utf8_lossy(&response)
    );
    started.elapsed()
}

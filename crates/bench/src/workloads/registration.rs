//! Workload 3, registration cost: a register and a deregister round trip on
//! one session, one call at a time, and the throughput of 16 sessions at
//! once; beside a Unix-socket ping-pong between two processes (the floor
//! for any request and reply) and D-Bus AddMatch / RemoveMatch.

use crate::dbus_anchor;
use crate::lab::{Lab, Process};
use crate::report::Report;
use crate::stats::Summary;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WORKLOAD: &str = "round trip, one session";
const THROUGHPUT: &str = "throughput, 16 sessions";
const PING_PONG: &str = "Unix ping-pong (2 processes)";
const SESSIONS: usize = 16;

/// A socket whose other end is an echo process.
fn echo_peer() -> (UnixStream, Process) {
    let (mine, theirs) = UnixStream::pair().expect("socketpair");
    let child = Command::new(std::env::current_exe().expect("own path"))
        .arg("__echo")
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::null())
        .spawn()
        .expect("echo process");
    (mine, Process(child))
}

/// The echo process (`ddm-bench __echo`): returns every byte on stdin.
pub fn echo_main() -> ! {
    let stdin = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .expect("stdin");
    let mut socket = UnixStream::from(stdin);
    let mut byte = [0u8; 1];
    while socket.read_exact(&mut byte).is_ok() && socket.write_all(&byte).is_ok() {}
    std::process::exit(0)
}

fn ping(socket: &mut UnixStream) {
    let mut byte = [7u8];
    socket.write_all(&byte).expect("ping");
    socket.read_exact(&mut byte).expect("pong");
}

fn timed(mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

pub fn run(lab: &Lab, iterations: usize, duration: Duration, report: &mut Report) {
    let (mut socket, _echo) = echo_peer();
    let server = lab.connect();
    let event = mprapi::Event::auto().expect("eventfd");
    let bus = dbus_anchor::client(&lab.bus_address);
    // Interleaved, one of each per iteration: this machine's noise then
    // falls on every mechanism alike.
    let (mut pings, mut registers, mut deregisters, mut adds, mut removes) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..iterations {
        pings.push(timed(|| ping(&mut socket)));
        registers.push(timed(|| {
            server
                .register_connection_notification(&event)
                .expect("register")
        }));
        deregisters.push(timed(|| {
            server
                .deregister_connection_notification(&event)
                .expect("deregister")
        }));
        adds.push(timed(|| {
            bus.add_match_no_cb(dbus_anchor::MATCH_RULE)
                .expect("AddMatch")
        }));
        removes.push(timed(|| {
            bus.remove_match_no_cb(dbus_anchor::MATCH_RULE)
                .expect("RemoveMatch")
        }));
    }

    for (mechanism, values) in [
        (PING_PONG, &pings),
        ("ddm Register", &registers),
        ("ddm Deregister", &deregisters),
        ("D-Bus AddMatch", &adds),
        ("D-Bus RemoveMatch", &removes),
    ] {
        report.add(WORKLOAD, mechanism, "us", Summary::of_durations(values));
    }
    report.relate(WORKLOAD, PING_PONG);
    for call in ["ddm Register", "ddm Deregister"] {
        if let (Some(row), Some(floor)) = (
            report.find(WORKLOAD, call),
            report.find(WORKLOAD, PING_PONG),
        ) {
            let ratio = row.summary.p50 / floor.summary.p50;
            report.target(
                format!("{call} round trip p50 within 2x of a Unix-socket ping-pong"),
                format!("{ratio:.2}x"),
                ratio <= 2.0,
            );
        }
    }

    throughput(lab, duration, report);
}

/// Calls per second over 16 sessions at once, each doing `pair` (two
/// calls) as fast as it can for `duration`.
fn per_second<S: Send>(sessions: Vec<S>, duration: Duration, pair: impl Fn(&mut S) + Sync) -> f64 {
    let start = Instant::now();
    let calls: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = sessions
            .into_iter()
            .map(|mut session| {
                let pair = &pair;
                scope.spawn(move || {
                    let mut calls = 0;
                    while start.elapsed() < duration {
                        pair(&mut session);
                        calls += 2;
                    }
                    calls
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("worker")).sum()
    });
    calls as f64 / start.elapsed().as_secs_f64()
}

fn throughput(lab: &Lab, duration: Duration, report: &mut Report) {
    let peers: Vec<(UnixStream, Process)> = (0..SESSIONS).map(|_| echo_peer()).collect();
    let pings = per_second(peers, duration, |(socket, _)| {
        ping(socket);
        ping(socket);
    });
    let sessions: Vec<_> = (0..SESSIONS)
        .map(|_| (lab.connect(), mprapi::Event::auto().expect("eventfd")))
        .collect();
    let ddm = per_second(sessions, duration, |(server, event)| {
        server
            .register_connection_notification(event)
            .expect("register");
        server
            .deregister_connection_notification(event)
            .expect("deregister");
    });
    let buses: Vec<_> = (0..SESSIONS)
        .map(|_| dbus_anchor::client(&lab.bus_address))
        .collect();
    let dbus = per_second(buses, duration, |bus| {
        bus.add_match_no_cb(dbus_anchor::MATCH_RULE)
            .expect("AddMatch");
        bus.remove_match_no_cb(dbus_anchor::MATCH_RULE)
            .expect("RemoveMatch");
    });
    for (mechanism, value) in [
        (PING_PONG, pings),
        ("ddm Register + Deregister", ddm),
        ("D-Bus AddMatch + RemoveMatch", dbus),
    ] {
        report.add(THROUGHPUT, mechanism, "call/s", Summary::of(&[value]));
    }
    report.relate(THROUGHPUT, PING_PONG);
}

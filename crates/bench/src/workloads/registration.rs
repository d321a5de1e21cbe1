//! Workload 3, registration cost: a register and a deregister round trip on
//! one session, one call at a time, and the throughput of 16 sessions at
//! once; beside a Unix-socket ping-pong between two processes (the floor
//! for any request and reply), the same ping-pong passing an eventfd by
//! SCM_RIGHTS each round, the receiver setting it non-blocking and closing
//! it (the physical cost of a Register), and D-Bus AddMatch / RemoveMatch.
//!
//! The round trips are measured twice: as the scheduler places the
//! processes, and with every process involved on one CPU. On a virtual
//! machine a wake-up that crosses CPUs can cost tens of microseconds and
//! comes and goes from run to run; on one CPU what is left is the work each
//! mechanism does. The targets judge both. Calls come in turns of a few
//! back to back, as programs make them; the first call of a turn, which
//! finds its server asleep, is reported apart.

use crate::dbus_anchor;
use crate::lab::{on_one_cpu, Lab, Process};
use crate::report::Report;
use crate::stats::Summary;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WORKLOAD: &str = "round trip, back to back";
const ONE_CPU: &str = "round trip, back to back, one CPU";
const FIRST_CALL: &str = "round trip, first call";
const FIRST_CALL_ONE_CPU: &str = "round trip, first call, one CPU";
const THROUGHPUT: &str = "throughput, 16 sessions";
const PING_PONG: &str = "Unix ping-pong (2 processes)";
const FD_PING_PONG: &str = "ping-pong + eventfd by SCM";
const SESSIONS: usize = 16;

/// A socket whose other end is an echo process (`__echo` or `__echo-fd`).
fn echo_peer(role: &str) -> (UnixStream, Process) {
    let (mine, theirs) = UnixStream::pair().expect("socketpair");
    let child = Command::new(std::env::current_exe().expect("own path"))
        .arg(role)
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::null())
        .spawn()
        .expect("echo process");
    (mine, Process(child))
}

/// The descriptor echo (`ddm-bench __echo-fd`): takes each byte with the
/// descriptor that came with it, sets the descriptor non-blocking and
/// closes it, as the service does with a Register's eventfd (and as its
/// Deregister does), and returns the byte.
pub fn echo_fd_main() -> ! {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut socket = stdin_socket();
    let mut byte = [0u8; 1];
    loop {
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let mut iov = [std::io::IoSliceMut::new(&mut byte)];
        let fds: Vec<OwnedFd> = match recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(message) if message.bytes == 1 => message
                .cmsgs()
                .into_iter()
                .flatten()
                .filter_map(|c| match c {
                    // SAFETY: the kernel just installed these descriptors.
                    ControlMessageOwned::ScmRights(fds) => Some(fds),
                    _ => None,
                })
                .flatten()
                .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
                .collect(),
            _ => std::process::exit(0),
        };
        for fd in fds {
            let flags = fcntl(&fd, FcntlArg::F_GETFL).expect("F_GETFL");
            let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
            fcntl(&fd, FcntlArg::F_SETFL(flags)).expect("F_SETFL");
        }
        if socket.write_all(&byte).is_err() {
            std::process::exit(0);
        }
    }
}

/// One round of the descriptor ping-pong: a byte with `fd` attached, and
/// the byte back.
fn ping_with_fd(socket: &mut UnixStream, fd: std::os::fd::RawFd) {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let byte = [7u8];
    sendmsg::<()>(
        socket.as_raw_fd(),
        &[std::io::IoSlice::new(&byte)],
        &[ControlMessage::ScmRights(&[fd])],
        MsgFlags::empty(),
        None,
    )
    .expect("ping with a descriptor");
    let mut back = [0u8];
    socket.read_exact(&mut back).expect("pong");
}

/// An echo process's standard input: its end of the socket pair.
fn stdin_socket() -> UnixStream {
    let stdin = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .expect("stdin");
    UnixStream::from(stdin)
}

/// The echo process (`ddm-bench __echo`): returns every byte on stdin.
pub fn echo_main() -> ! {
    let mut socket = stdin_socket();
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
    round_trips(lab, iterations, Placement::Scheduler, report);
    on_one_cpu(|| round_trips(lab, iterations, Placement::OneCpu, report));
    for (call, dbus) in [
        ("ddm Register", "D-Bus AddMatch"),
        ("ddm Deregister", "D-Bus RemoveMatch"),
    ] {
        judge(report, WORKLOAD, call, FD_PING_PONG, 2.0);
        judge(report, ONE_CPU, call, PING_PONG, 2.0);
        for workload in [WORKLOAD, ONE_CPU] {
            if let (Some(ours), Some(theirs)) =
                (report.find(workload, call), report.find(workload, dbus))
            {
                let speedup = theirs.summary.p50 / ours.summary.p50;
                report.target(
                    format!("{call} at least 3x faster than {dbus} ({workload})"),
                    format!("{speedup:.2}x"),
                    speedup >= 3.0,
                );
            }
        }
    }
    if let (Some(register), Some(physical)) = (
        report.find(ONE_CPU, "ddm Register"),
        report.find(ONE_CPU, FD_PING_PONG),
    ) {
        report.note(format!(
            "Register's gap to the physical cost of passing an eventfd (one CPU): {:.1} us at p50 ({:.2}x)",
            register.summary.p50 - physical.summary.p50,
            register.summary.p50 / physical.summary.p50
        ));
    }
    throughput(lab, duration, report);
}

/// `call`'s p50 in `workload` within `limit` times `anchor`'s.
fn judge(report: &mut Report, workload: &str, call: &str, anchor: &str, limit: f64) {
    if let (Some(row), Some(floor)) = (report.find(workload, call), report.find(workload, anchor)) {
        let ratio = row.summary.p50 / floor.summary.p50;
        report.target(
            format!("{call} round trip p50 within {limit}x of the {anchor} ({workload})"),
            format!("{ratio:.2}x"),
            ratio <= limit,
        );
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Placement {
    Scheduler,
    OneCpu,
}

/// Calls made back to back by each mechanism in turn: a program rarely
/// makes one call alone. The first call of a turn follows the other
/// mechanisms' calls, and finds its server asleep (and, placed by the
/// scheduler, perhaps on a CPU that must be woken first): it is reported
/// apart, as the first call, and the others as back to back.
const TURN: usize = 8;

/// Every mechanism's round trip, in turns of [`TURN`] calls, one turn of
/// each per round: this machine's noise then falls on every mechanism
/// alike. (A register is followed by its deregister, an AddMatch by its
/// RemoveMatch.)
fn round_trips(lab: &Lab, iterations: usize, placement: Placement, report: &mut Report) {
    let (mut socket, _echo) = echo_peer("__echo");
    let (mut fd_socket, _fd_echo) = echo_peer("__echo-fd");
    let server = lab.connect();
    let event = mprapi::Event::auto().expect("eventfd");
    let bus = dbus_anchor::client(&lab.bus_address);
    // [first call of a turn, back to back] for each of the six.
    let mut samples: [[Vec<Duration>; 2]; 6] = Default::default();
    let mut take = |which: usize, call: usize, d: Duration| {
        samples[which][usize::from(call > 0)].push(d);
    };
    for round in 0..iterations.div_ceil(TURN) {
        // Each goes first in turn, after the same pause.
        for turn in 0..4 {
            for call in 0..TURN {
                match (round + turn) % 4 {
                    0 => take(0, call, timed(|| ping(&mut socket))),
                    1 => take(
                        1,
                        call,
                        timed(|| ping_with_fd(&mut fd_socket, event.as_raw_fd())),
                    ),
                    2 => {
                        take(
                            2,
                            call,
                            timed(|| {
                                server
                                    .register_connection_notification(&event)
                                    .expect("register")
                            }),
                        );
                        take(
                            3,
                            call + 1,
                            timed(|| {
                                server
                                    .deregister_connection_notification(&event)
                                    .expect("deregister")
                            }),
                        );
                    }
                    _ => {
                        take(
                            4,
                            call,
                            timed(|| {
                                bus.add_match_no_cb(dbus_anchor::MATCH_RULE)
                                    .expect("AddMatch")
                            }),
                        );
                        take(
                            5,
                            call + 1,
                            timed(|| {
                                bus.remove_match_no_cb(dbus_anchor::MATCH_RULE)
                                    .expect("RemoveMatch")
                            }),
                        );
                    }
                }
            }
        }
    }
    let mechanisms = [
        PING_PONG,
        FD_PING_PONG,
        "ddm Register",
        "ddm Deregister",
        "D-Bus AddMatch",
        "D-Bus RemoveMatch",
    ];
    let (back_to_back, first) = match placement {
        Placement::Scheduler => (WORKLOAD, FIRST_CALL),
        Placement::OneCpu => (ONE_CPU, FIRST_CALL_ONE_CPU),
    };
    for (mechanism, [cold, warm]) in mechanisms.iter().zip(&samples) {
        report.add(back_to_back, mechanism, "us", Summary::of_durations(warm));
        // A deregister always follows its register: it has no first call.
        if !cold.is_empty() {
            report.add(first, mechanism, "us", Summary::of_durations(cold));
        }
    }
    report.relate(back_to_back, PING_PONG);
    report.relate(first, PING_PONG);
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
    let peers: Vec<(UnixStream, Process)> = (0..SESSIONS).map(|_| echo_peer("__echo")).collect();
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

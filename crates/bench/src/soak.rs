//! The soak: many sessions in several processes registering, deregistering,
//! disconnecting, reconnecting and being killed while the link flaps,
//! checked from the clients' side all along.
//!
//! Each round: churn (workers mutate at random while the link flaps; a
//! worker may be SIGKILLed and replaced), then a checkpoint: workers drain
//! their registered events, the coordinator makes one change and waits
//! until a witness stream has seen it committed, and every event that was
//! registered must then be signaled (G1: else it is *missed*). A
//! deregistered event is drained when its Deregister returns and kept open:
//! any signal on it after that is *late* (G2). At the end, with every
//! worker gone, the service must hold no session but the coordinator's, no
//! registration, and its descriptors and memory must be back within 10% of
//! where they stood after a warm-up round (G3; the warm-up lets the
//! allocator reach its working size first).
//!
//! Halfway through, the service itself is SIGKILLed: every open session
//! must get ERROR_DDM_NOT_RUNNING within a second, and once it is started
//! again a reconnecting handle must come back, register again and signal
//! its event once. The G3 baseline is then taken again, on the new process.
//!
//! Among the flapping link, declared interfaces (`declared`) connect, fail,
//! time out, turn UNREACHABLE, get connected and disconnected by an
//! administrator and hang up, so their commits mix with the link's; the
//! counts cover them as any other change. Before the end measurement their
//! trouble stops and their attempts settle.
//!
//! An eighth of the way through, a client with a registration and a typed
//! stream is stopped (SIGSTOP) for 30 seconds (a quarter of a shorter run)
//! while the rounds go on: the service's memory must stay bounded, another
//! client's wake-up time must not move, and on SIGCONT the stuck client
//! must find its event signaled and its stream saying how many events it
//! missed.

use crate::declared;
use crate::dice::Dice;
use crate::lab::{wait_for, Lab, Link};
use mprapi::{Event, ReconnectingServer, Server, StreamItem, WinError};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// Declared interfaces in the soak.
const DECLARED: usize = 4;
/// Random acts on them before each baseline.
const WARM_UP_STEPS: usize = 200;

/// What the witness saw the declared interfaces do.
#[derive(Default)]
struct DialTally {
    connects: u64,
    failures: u64,
    unreachable: u64,
    hang_ups: u64,
}

impl DialTally {
    fn count(&mut self, event: &mprapi::ConnectionEvent) {
        use mprapi::ConnectionState::*;
        if !event.interface.starts_with("dial") {
            return;
        }
        match (event.from, event.to) {
            (_, Connected) => self.connects += 1,
            (Connecting, Unreachable) => self.unreachable += 1,
            (Connecting, _) => self.failures += 1,
            (Connected, _) => self.hang_ups += 1,
            _ => {}
        }
    }
}

/// Registrations a session holds at most.
const PER_SESSION: usize = 3;
/// How long a checkpoint waits for a signal before counting it missed.
const VERIFY_MS: u64 = 3000;

/// A worker's reply to a checkpoint.
#[derive(Default, Debug, Clone, Copy)]
struct Counts {
    expected: u64,
    missed: u64,
    late: u64,
}

struct Worker {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl Worker {
    fn spawn(socket: &Path, sessions: usize, seed: u64) -> Worker {
        let mut child = Command::new(std::env::current_exe().expect("own path"))
            .args([
                "__soak-worker",
                socket.to_str().expect("UTF-8 path"),
                &sessions.to_string(),
                &seed.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("soak worker");
        let input = child.stdin.take().unwrap();
        let output = BufReader::new(child.stdout.take().unwrap());
        Worker {
            child,
            input,
            output,
        }
    }

    fn send(&mut self, command: &str) {
        writeln!(self.input, "{command}").expect("worker gone");
    }

    fn reply(&mut self) -> String {
        let mut line = String::new();
        self.output.read_line(&mut line).expect("worker reply");
        line.trim().to_string()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `command` to every worker and collects their replies.
fn all(workers: &mut [Worker], command: &str) -> Vec<String> {
    workers.iter_mut().for_each(|w| w.send(command));
    workers.iter_mut().map(Worker::reply).collect()
}

fn parse_counts(reply: &str) -> Counts {
    let numbers: Vec<u64> = reply
        .split_whitespace()
        .skip(1)
        .filter_map(|n| n.parse().ok())
        .collect();
    match numbers[..] {
        [expected, missed, late] => Counts {
            expected,
            missed,
            late,
        },
        _ => panic!("bad worker reply {reply:?}"),
    }
}

/// What stopping a client showed.
struct Stuck {
    rss_growth_kib: u64,
    wake_before_us: f64,
    wake_during_us: f64,
    signaled: bool,
    missed: u64,
}

/// A client that will be stopped: one registration and a typed stream.
fn spawn_stuck(socket: &Path) -> Worker {
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .args(["__soak-stuck", socket.to_str().expect("UTF-8 path")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("stuck client");
    let input = child.stdin.take().unwrap();
    let mut output = BufReader::new(child.stdout.take().unwrap());
    let mut ready = String::new();
    output.read_line(&mut ready).expect("stuck client ready");
    Worker {
        child,
        input,
        output,
    }
}

/// The stuck client (`ddm-bench __soak-stuck SOCKET`): registers, opens a
/// stream, says "ready"; on "report" says whether its event is signaled
/// and how many events its stream reports missed.
pub fn stuck_main(socket: &str) -> ! {
    let server = Server::connect_socket(Path::new(socket)).expect("connect");
    let event = Event::auto().expect("eventfd");
    server
        .register_connection_notification(&event)
        .expect("register");
    let stream = server.subscribe().expect("subscribe");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    for _ in std::io::stdin().lines().map_while(Result::ok) {
        let signaled = event.is_set();
        let mut missed = 0;
        while let Some(item) = stream.next_timeout(Duration::from_millis(300)) {
            if let StreamItem::Missed(n) = item {
                missed += n;
            }
        }
        let _ = writeln!(out, "reported {} {missed}", u8::from(signaled));
        let _ = out.flush();
    }
    std::process::exit(0)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// What the outage halfway through showed.
#[derive(Default)]
struct Outage {
    sessions: u64,
    /// Sessions whose call did not fail with ERROR_DDM_NOT_RUNNING
    /// within a second.
    slow: u64,
    reconnected: bool,
}

fn spawn_workers(socket: &Path, count: usize, per_worker: usize, seed: &mut u64) -> Vec<Worker> {
    (0..count)
        .map(|_| {
            *seed += 1;
            Worker::spawn(socket, per_worker, *seed)
        })
        .collect()
}

/// Opens and registers every session once and closes them all, then takes
/// the service's descriptors and RSS as the G3 baseline.
fn warm_up(
    lab: &Lab,
    witness: &Server,
    count: usize,
    per_worker: usize,
    seed: &mut u64,
) -> (usize, u64) {
    let own = witness.sessions().map_or(1, |s| s.len());
    let mut workers = spawn_workers(&lab.service.socket, count, per_worker, seed);
    // Long enough for the allocator to reach the size the rounds need.
    for _ in 0..6 {
        all(&mut workers, "churn 400");
    }
    drop(workers);
    wait_for("the warm-up sessions to close", || {
        witness.sessions().is_ok_and(|s| s.len() == own)
    });
    (descriptors(lab), lab.service_rss())
}

/// SIGKILLs the service, has every worker call on every open session, and
/// starts the service again; a reconnecting handle must come back.
fn outage(lab: &mut Lab, workers: &mut [Worker]) -> Outage {
    let handle =
        ReconnectingServer::connect_socket(&lab.service.socket).expect("reconnecting handle");
    let event = Event::auto().expect("eventfd");
    handle
        .register_connection_notification(&event)
        .expect("register");
    lab.service.kill();
    let mut report = Outage::default();
    for reply in all(workers, "probe") {
        let numbers: Vec<u64> = reply
            .split_whitespace()
            .skip(1)
            .filter_map(|n| n.parse().ok())
            .collect();
        report.sessions += numbers.first().copied().unwrap_or(0);
        report.slow += numbers.get(1).copied().unwrap_or(0);
    }
    lab.restart_service();
    report.reconnected = handle.wait_connected(ddm_lab::PATIENCE)
        && event.wait(Some(ddm_lab::PATIENCE))
        && !event.wait(Some(Duration::from_millis(300)));
    report
}

/// Runs the soak for `minutes` with `sessions` sessions over `processes`
/// workers; prints the counts; true when nothing was missed, late or leaked.
pub fn run(minutes: f64, sessions: usize, processes: usize) -> bool {
    let mut lab = Lab::with_config(|router, far, _| Some(declared::declare(router, far, DECLARED)));
    let mut churn = declared::Churn::new(&lab.far.name, DECLARED);
    let mut link = Link::new(&lab);
    let per_worker = sessions.div_ceil(processes);
    let mut seed = 1u64;
    let mut witness = lab.connect();
    churn.exercise(&witness, WARM_UP_STEPS);
    let (mut fds_start, mut rss_start) = warm_up(&lab, &witness, processes, per_worker, &mut seed);
    let mut workers = spawn_workers(&lab.service.socket, processes, per_worker, &mut seed);

    let mut stream = witness.subscribe().expect("witness stream");
    let mut first_seq = stream.snapshot().seq;
    let mut last_seq = first_seq;
    let (mut totals, mut rounds, mut kills, mut changes) = (Counts::default(), 0u64, 0u64, 0u64);
    let mut outage_report = None;
    let mut tally = DialTally::default();
    let mut dice = Dice(0x9e37_79b9_7f4a_7c15);
    let total = Duration::from_secs_f64(minutes * 60.0);
    let (started, deadline) = (Instant::now(), Instant::now() + total);
    // The stuck client, and a bystander whose wake-up is timed.
    let stop_for = (total / 4).min(Duration::from_secs(30));
    let mut stuck = Some(spawn_stuck(&lab.service.socket));
    let mut stopped_at: Option<(Instant, u64)> = None;
    let mut stuck_report = None;
    let (mut wakes_before, mut wakes_during) = (Vec::new(), Vec::new());
    let mut bystander = lab.connect();
    let mut bystander_event = Event::auto().expect("eventfd");
    bystander
        .register_connection_notification(&bystander_event)
        .expect("register");
    while Instant::now() < deadline {
        rounds += 1;
        if let Some(worker) = stuck.as_mut() {
            let pid = nix::unistd::Pid::from_raw(worker.child.id() as i32);
            match stopped_at {
                None if started.elapsed() >= total / 8 => {
                    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP)
                        .expect("SIGSTOP");
                    stopped_at = Some((Instant::now(), lab.service_rss()));
                }
                Some((at, rss)) if at.elapsed() >= stop_for => {
                    let growth = lab.service_rss().saturating_sub(rss) / 1024;
                    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT)
                        .expect("SIGCONT");
                    worker.send("report");
                    let reply = worker.reply();
                    let numbers: Vec<u64> = reply
                        .split_whitespace()
                        .skip(1)
                        .filter_map(|n| n.parse().ok())
                        .collect();
                    stuck_report = Some(Stuck {
                        rss_growth_kib: growth,
                        wake_before_us: median(&mut wakes_before),
                        wake_during_us: median(&mut wakes_during),
                        signaled: numbers.first() == Some(&1),
                        missed: numbers.get(1).copied().unwrap_or(0),
                    });
                    stuck = None;
                }
                _ => {}
            }
        }
        if outage_report.is_none() && started.elapsed() >= total / 2 {
            changes += last_seq.max(stream_seq(&stream, &mut tally)) - first_seq;
            drop(stream);
            churn.calm(&witness);
            outage_report = Some(outage(&mut lab, &mut workers));
            witness = lab.connect();
            bystander = lab.connect();
            bystander_event = Event::auto().expect("eventfd");
            bystander
                .register_connection_notification(&bystander_event)
                .expect("register");
            drop(workers);
            churn.exercise(&witness, WARM_UP_STEPS);
            (fds_start, rss_start) = warm_up(&lab, &witness, processes, per_worker, &mut seed);
            workers = spawn_workers(&lab.service.socket, processes, per_worker, &mut seed);
            stream = witness.subscribe().expect("witness stream");
            first_seq = stream.snapshot().seq;
            last_seq = first_seq;
        }
        // Churn, with the link flapping.
        workers.iter_mut().for_each(|w| w.send("churn 400"));
        let churn_end = Instant::now() + Duration::from_millis(400);
        while Instant::now() < churn_end {
            link.flip();
            if dice.below(4) == 0 {
                churn.step(&witness);
            }
            std::thread::sleep(Duration::from_millis(2 + dice.below(15) as u64));
        }
        for worker in workers.iter_mut() {
            worker.reply();
        }
        if dice.below(3) == 0 {
            let victim = dice.below(workers.len());
            seed += 1;
            workers[victim] = Worker::spawn(&lab.service.socket, per_worker, seed); // the old one is SIGKILLed on drop
            kills += 1;
        }
        // Checkpoint: once the churn's last changes have landed, drain
        // every registered event, make one change, wait for its commit.
        std::thread::sleep(Duration::from_millis(100));
        last_seq = last_seq.max(stream_seq(&stream, &mut tally));
        for reply in all(&mut workers, "arm") {
            totals.late += reply
                .split_whitespace()
                .nth(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        }
        bystander_event.reset();
        let flipped = link.flip();
        totals.expected += 1;
        if bystander_event.wait(Some(Duration::from_millis(VERIFY_MS))) {
            let wake = flipped.elapsed().as_secs_f64() * 1e6;
            match (stopped_at, &stuck) {
                (None, _) => wakes_before.push(wake),
                (Some(_), Some(_)) => wakes_during.push(wake),
                _ => {}
            }
        } else {
            totals.missed += 1;
        }
        last_seq = wait_for_commit(&stream, last_seq, &mut tally);
        for reply in all(&mut workers, &format!("verify {VERIFY_MS}")) {
            let c = parse_counts(&reply);
            totals.expected += c.expected;
            totals.missed += c.missed;
            totals.late += c.late;
        }
    }

    // The end: every worker gone, nothing left behind.
    churn.calm(&witness);
    drop(workers);
    drop(stuck);
    drop(bystander);
    wait_for("the sessions to close", || {
        witness.sessions().is_ok_and(|s| s.len() == 1)
    });
    std::thread::sleep(Duration::from_millis(500));
    let left: u32 = witness
        .sessions()
        .map_or(0, |s| s.iter().map(|s| s.registrations).sum());
    let (fds_end, rss_end) = (descriptors(&lab), lab.service_rss());
    let fd_leak = fds_end > fds_start + fds_start / 10;
    let rss_leak = rss_end > rss_start + rss_start / 10;
    let leaks = u64::from(left) + u64::from(fd_leak) + u64::from(rss_leak);
    changes += stream_seq(&stream, &mut tally).max(last_seq) - first_seq;

    println!("soak: {minutes} min, {sessions} sessions in {processes} processes, {rounds} rounds, {kills} workers SIGKILLed, {DECLARED} declared interfaces dialing among them");
    println!("changes committed:      {changes}");
    println!(
        "declared interfaces:    {} connects, {} failed attempts, {} times unreachable, {} hang-ups or losses",
        tally.connects, tally.failures, tally.unreachable, tally.hang_ups
    );
    println!("signals expected:       {}", totals.expected);
    println!("signals missed:         {} (must be 0)", totals.missed);
    println!("late signals:           {} (must be 0)", totals.late);
    println!(
        "leaks:                  {leaks} (must be 0): registrations left {left}, descriptors {fds_start} -> {fds_end}, RSS {} -> {} KiB",
        rss_start / 1024,
        rss_end / 1024
    );
    let outage_clean = match &outage_report {
        Some(o) => {
            println!(
                "service SIGKILLed:      {} open sessions, {} without ERROR_DDM_NOT_RUNNING within 1 s (must be 0); reconnecting handle {}",
                o.sessions,
                o.slow,
                if o.reconnected { "came back and signaled once" } else { "DID NOT come back and signal once" }
            );
            o.slow == 0 && o.reconnected && o.sessions > 0
        }
        None => true,
    };
    let stuck_clean = match &stuck_report {
        Some(st) => {
            println!(
                "client SIGSTOPped {:.0} s: service RSS grew {} KiB (bound 1024); a bystander woke in {:.0} us p50 before, {:.0} us during; on SIGCONT its event was {} and its stream reported {} missed",
                stop_for.as_secs_f64(),
                st.rss_growth_kib,
                st.wake_before_us,
                st.wake_during_us,
                if st.signaled { "signaled" } else { "NOT signaled" },
                st.missed
            );
            st.rss_growth_kib < 1024
                && st.signaled
                && st.wake_during_us <= 2.0 * st.wake_before_us + 1000.0
        }
        None => true,
    };
    let clean = totals.missed == 0
        && totals.late == 0
        && leaks == 0
        && totals.expected > 0
        && outage_clean
        && stuck_clean;
    if !clean {
        eprintln!("!!! the soak found a fault");
    }
    clean
}

fn descriptors(lab: &Lab) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", lab.service.pid())).map_or(0, |d| d.count())
}

/// Waits until the witness sees a commit after `seq`; returns the new seq.
fn wait_for_commit(stream: &mprapi::EventStream, seq: u64, tally: &mut DialTally) -> u64 {
    let deadline = Instant::now() + ddm_lab::PATIENCE;
    let mut latest = seq;
    while latest <= seq {
        assert!(Instant::now() < deadline, "no commit seen after a flip");
        if let Some(StreamItem::Event(e)) = stream.next_timeout(Duration::from_millis(100)) {
            tally.count(&e);
            latest = latest.max(e.seq);
        }
    }
    // Take what else is queued, so the next wait starts from the newest.
    latest.max(stream_seq(stream, tally))
}

/// The newest seq among items already queued on the stream.
fn stream_seq(stream: &mprapi::EventStream, tally: &mut DialTally) -> u64 {
    let mut latest = 0;
    while let Some(item) = stream.next_timeout(Duration::ZERO) {
        if let StreamItem::Event(e) = item {
            tally.count(&e);
            latest = latest.max(e.seq);
        }
    }
    latest
}

/// One session slot of a worker.
#[derive(Default)]
struct Slot {
    server: Option<Server>,
    registered: Vec<Event>,
    /// Deregistered, drained when Deregister returned, kept open: any
    /// signal on them is late.
    graveyard: Vec<Event>,
}

/// The worker process (`ddm-bench __soak-worker SOCKET SESSIONS SEED`).
pub fn worker_main(socket: &str, sessions: usize, seed: u64) -> ! {
    let socket = PathBuf::from(socket);
    let mut slots: Vec<Slot> = (0..sessions).map(|_| Slot::default()).collect();
    let mut dice = Dice(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lines().map_while(Result::ok) {
        let mut words = line.split_whitespace();
        let reply = match (
            words.next(),
            words.next().and_then(|n| n.parse::<u64>().ok()),
        ) {
            (Some("churn"), Some(ms)) => {
                churn(&mut slots, &socket, &mut dice, Duration::from_millis(ms));
                "done".to_string()
            }
            (Some("arm"), _) => {
                let late = check_graveyards(&mut slots);
                slots
                    .iter()
                    .flat_map(|s| &s.registered)
                    .for_each(Event::reset);
                format!("armed {late}")
            }
            (Some("verify"), Some(ms)) => {
                let c = verify(&mut slots, Duration::from_millis(ms));
                format!("verified {} {} {}", c.expected, c.missed, c.late)
            }
            (Some("probe"), _) => {
                let (open, slow) = probe(&mut slots);
                format!("probed {open} {slow}")
            }
            _ => "unknown".to_string(),
        };
        let _ = writeln!(out, "{reply}");
        let _ = out.flush();
    }
    std::process::exit(0)
}

/// Calls on every open session of a service that is gone: each must fail
/// with ERROR_DDM_NOT_RUNNING within a second. Returns (open, slow); the
/// sessions are dropped.
fn probe(slots: &mut [Slot]) -> (u64, u64) {
    let (mut open, mut slow) = (0, 0);
    for slot in slots.iter_mut() {
        if let Some(server) = slot.server.take() {
            open += 1;
            let start = Instant::now();
            let failed_fast = server.server_info().err() == Some(WinError::ERROR_DDM_NOT_RUNNING);
            if !failed_fast || start.elapsed() > Duration::from_secs(1) {
                slow += 1;
            }
            slot.registered.clear();
        }
    }
    (open, slow)
}

fn churn(slots: &mut [Slot], socket: &Path, dice: &mut Dice, time: Duration) {
    let end = Instant::now() + time;
    while Instant::now() < end {
        let slot = dice.below(slots.len());
        let slot = &mut slots[slot];
        if slot
            .server
            .as_ref()
            .is_some_and(|s| s.wait_closed(Duration::ZERO))
        {
            // The service went away: this session is gone.
            slot.server = None;
            slot.registered.clear();
        }
        match (dice.below(10), &slot.server) {
            (_, None) => slot.server = Server::connect_socket(socket).ok(),
            (0, Some(_)) => {
                // Disconnect: the service drops the registrations itself.
                slot.server = None;
                slot.registered.clear();
            }
            (1..=5, Some(server)) if slot.registered.len() < PER_SESSION => {
                let event = Event::auto().expect("eventfd");
                if server.register_connection_notification(&event).is_ok() {
                    slot.registered.push(event);
                }
            }
            (_, Some(server)) if !slot.registered.is_empty() => {
                let event = slot
                    .registered
                    .swap_remove(dice.below(slot.registered.len()));
                if server.deregister_connection_notification(&event).is_ok() {
                    event.reset();
                    slot.graveyard.push(event);
                    if slot.graveyard.len() > PER_SESSION {
                        slot.graveyard.remove(0);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Counts (and clears) signals on deregistered events.
fn check_graveyards(slots: &mut [Slot]) -> u64 {
    let mut late = 0;
    for event in slots.iter().flat_map(|s| &s.graveyard) {
        if event.is_set() {
            late += 1;
            event.reset();
        }
    }
    late
}

fn verify(slots: &mut [Slot], time: Duration) -> Counts {
    let deadline = Instant::now() + time;
    let mut counts = Counts::default();
    for event in slots.iter().flat_map(|s| &s.registered) {
        counts.expected += 1;
        if !event.wait(Some(deadline.saturating_duration_since(Instant::now()))) {
            counts.missed += 1;
        }
    }
    counts.late = check_graveyards(slots);
    counts
}

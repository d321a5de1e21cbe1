//! Workload 11, scale: a router of thousands of declared interfaces.
//!
//! N persistent interfaces whose connect command makes a cheap link (`ip
//! link add sN up type ifb`, ready when the link is up) and whose
//! disconnect command deletes it, in a private namespace. For each N:
//!
//! - from the service's start until every interface is CONNECTED, and the
//!   service's CPU time by then;
//! - a client's calls all along (one `MprAdminServerGetInfo` every 200 ms,
//!   as `ddm status` makes): the slowest answer;
//! - the watchdog (WATCHDOG_USEC of 200 ms, so a notice every 100 ms): the
//!   longest gap between two notices, from the start until every interface
//!   is up and through the stops;
//! - `router stop` (MprAdminServerStop) until every interface is hung up
//!   (and its link deleted), then `router start`, and a clean stop
//!   (SIGTERM) until the service has ended and every link is gone.
//!
//! And the memory of 1,000 demand interfaces (a trigger device each), from
//! the service's resident size with and without them, and how long a clean
//! stop of the service with them takes.

use crate::lab::{Netns, Process};
use crate::report::Report;
use crate::stats::Summary;
use mprapi::{ConnectionState, StreamItem};
use std::collections::HashSet;
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WORKLOAD: &str = "scale: persistent interfaces";
const DEMAND: &str = "scale: demand interfaces";
/// The watchdog's timeout given to the service (it notifies every half).
const WATCHDOG: Duration = Duration::from_millis(200);
/// How often the client asks, as a `ddm status` loop would.
const ASK_EVERY: Duration = Duration::from_millis(200);
/// How long any one phase may take before the workload gives up on it.
const PHASE_LIMIT: Duration = Duration::from_secs(60);

pub fn run(sizes: &[usize], demand: usize, report: &mut Report) {
    let mut cpu_per_interface = Vec::new();
    for &n in sizes {
        let figures = persistent(n);
        let label = |what: &str| format!("{what}, {n} interfaces");
        let ms = |d: Duration| Summary::of(&[d.as_secs_f64() * 1e3]);
        report.add(
            WORKLOAD,
            &label("all CONNECTED after"),
            "ms",
            ms(figures.connected),
        );
        report.add(
            WORKLOAD,
            &label("service CPU by then"),
            "ms",
            ms(figures.cpu),
        );
        report.add(
            WORKLOAD,
            &label("slowest client call"),
            "ms",
            ms(figures.slowest_call),
        );
        report.add(
            WORKLOAD,
            &label("longest watchdog gap"),
            "ms",
            ms(figures.watchdog_gap),
        );
        report.add(
            WORKLOAD,
            &label("router stop, all hung up"),
            "ms",
            ms(figures.router_stop),
        );
        report.add(
            WORKLOAD,
            &label("clean stop, all hung up"),
            "ms",
            ms(figures.clean_stop),
        );
        report.add(
            WORKLOAD,
            &label("links left by a clean stop"),
            "",
            Summary::of(&[figures.left_up as f64]),
        );
        report.add(
            WORKLOAD,
            &label("the links deleted by hand"),
            "ms",
            ms(figures.by_hand),
        );
        cpu_per_interface.push((
            n,
            figures.cpu.as_secs_f64() / n as f64,
            figures.made_by_hand.as_secs_f64() / n as f64,
        ));
        if n >= 5000 {
            let within = |d: Duration, limit: Duration| d <= limit;
            report.target(
                format!("{n} persistent interfaces all CONNECTED within 10 s of the start"),
                format!(
                    "{:.1} s (the links made by hand: {:.1} s)",
                    figures.connected.as_secs_f64(),
                    figures.made_by_hand.as_secs_f64()
                ),
                within(figures.connected, Duration::from_secs(10)),
            );
            report.target(
                format!(
                    "every client call answered within 100 ms while {n} interfaces start and stop"
                ),
                format!("slowest {:.1} ms", figures.slowest_call.as_secs_f64() * 1e3),
                within(figures.slowest_call, Duration::from_millis(100)),
            );
            report.target(
                format!("no watchdog gap over 1 s with {n} interfaces"),
                format!("longest {:.0} ms", figures.watchdog_gap.as_secs_f64() * 1e3),
                within(figures.watchdog_gap, Duration::from_secs(1)),
            );
            report.target(
                format!("router stop and a clean stop hang all {n} up within 5 s"),
                format!(
                    "{:.1} s and {:.1} s, {} left up (the kernel alone: {:.1} s)",
                    figures.router_stop.as_secs_f64(),
                    figures.clean_stop.as_secs_f64(),
                    figures.left_up,
                    figures.by_hand.as_secs_f64()
                ),
                within(figures.router_stop, Duration::from_secs(5))
                    && within(figures.clean_stop, Duration::from_secs(5))
                    && figures.left_up == 0,
            );
            let slack = |d: Duration| d <= figures.by_hand.mul_f64(1.2) + Duration::from_secs(1);
            report.target(
                format!("router stop and a clean stop of {n} within 1.2x the same deletions by hand + 1 s"),
                format!(
                    "{:.2}x and {:.2}x",
                    figures.router_stop.as_secs_f64() / figures.by_hand.as_secs_f64(),
                    figures.clean_stop.as_secs_f64() / figures.by_hand.as_secs_f64()
                ),
                slack(figures.router_stop) && slack(figures.clean_stop) && figures.left_up == 0,
            );
        }
    }
    if let (Some(first), Some(last)) = (cpu_per_interface.first(), cpu_per_interface.last()) {
        if last.0 > first.0 {
            // Judged within 1.5x, not 1.0x: the kernel's own time a link
            // grows over the same range (printed beside it), and the
            // service's system calls with it.
            let growth = last.1 / first.1;
            report.target(
                format!(
                    "service CPU grows no faster than N (CPU per interface at {} over at {})",
                    last.0, first.0
                ),
                format!(
                    "{growth:.2}x (the kernel's time a link made by hand: {:.2}x)",
                    last.2 / first.2
                ),
                growth <= 1.5,
            );
        }
    }
    let (bytes, stop) = demand_memory(demand);
    report.add(
        DEMAND,
        &format!("service memory per interface, {demand} interfaces"),
        "B",
        Summary::of(&[bytes]),
    );
    report.add(
        DEMAND,
        &format!("clean stop, {demand} interfaces"),
        "ms",
        Summary::of(&[stop.as_secs_f64() * 1e3]),
    );
    report.target(
        format!("a clean stop of {demand} demand interfaces within 5 s"),
        format!("{:.1} s", stop.as_secs_f64()),
        stop <= Duration::from_secs(5),
    );
    report.target(
        format!("{demand} demand interfaces under 8 KiB each"),
        format!("{:.0} B each", bytes),
        bytes < 8192.0,
    );
}

struct Figures {
    connected: Duration,
    cpu: Duration,
    slowest_call: Duration,
    watchdog_gap: Duration,
    router_stop: Duration,
    clean_stop: Duration,
    /// Links still there once a clean stop has ended the service.
    left_up: usize,
    /// The same links made by hand (the floor for a start).
    made_by_hand: Duration,
    /// The same links deleted by hand (the floor for a stop).
    by_hand: Duration,
}

/// The `[[interface]]` tables of `n` interfaces of `mode`, on ifb links.
fn declarations(n: usize, mode: &str) -> String {
    let mut config = String::with_capacity(n * 200);
    for i in 0..n {
        config.push_str(&format!(
            "[[interface]]\nname = \"s{i}\"\nlink = \"s{i}\"\n\
             connect = [\"ip\", \"link\", \"add\", \"s{i}\", \"up\", \"type\", \"ifb\"]\n\
             disconnect = [\"ip\", \"link\", \"del\", \"s{i}\"]\n\
             dial = \"{mode}\"\n"
        ));
        if mode == "demand" {
            config.push_str(&format!(
                "routes = [\"10.{}.{}.0/24\"]\n",
                100 + i / 256,
                i % 256
            ));
        }
        config.push('\n');
    }
    config.push_str(&format!("[limits]\nmax_interfaces = {}\n", n.max(1)));
    config
}

/// The service started by hand in `netns`, with the watchdog's notices
/// sent to `notify`.
struct Started {
    process: Process,
    socket: std::path::PathBuf,
}

fn start(netns: &Netns, dir: &Path, config: &str, notify: &Path) -> Started {
    let path = dir.join("ddm.toml");
    std::fs::write(&path, config).expect("configuration");
    let socket = dir.join("ddm.sock");
    let log = std::fs::File::create(dir.join("ddm.log")).expect("log");
    let process = Process(
        Command::new("ip")
            .args(["netns", "exec", &netns.name])
            .arg(std::env::current_exe().expect("own path"))
            .arg("__serve")
            .arg("--socket")
            .arg(&socket)
            .arg("--config")
            .arg(&path)
            .env("STATE_DIRECTORY", dir.join("state"))
            .env("NOTIFY_SOCKET", notify)
            .env("WATCHDOG_USEC", WATCHDOG.as_micros().to_string())
            .env_remove("WATCHDOG_PID")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the service"),
    );
    Started { process, socket }
}

/// Listens for the service's notices and keeps the longest gap between
/// two WATCHDOG=1 while `measuring`.
struct Watchdog {
    longest: Arc<Mutex<Duration>>,
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    fn listen(path: &Path) -> Watchdog {
        let socket = UnixDatagram::bind(path).expect("notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let longest = Arc::new(Mutex::new(Duration::ZERO));
        let measuring = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (longest, measuring, stop) = (longest.clone(), measuring.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut last: Option<Instant> = None;
                let mut buffer = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    let got = socket.recv(&mut buffer);
                    let now = Instant::now();
                    if !measuring.load(Ordering::Relaxed) {
                        last = None;
                        continue;
                    }
                    if let Ok(n) = got {
                        if buffer[..n].windows(10).any(|w| w == b"WATCHDOG=1") {
                            if let Some(before) = last {
                                let mut l = longest.lock().unwrap();
                                *l = (*l).max(now - before);
                            }
                            last = Some(now);
                        }
                    } else if let Some(before) = last {
                        // No notice yet: the gap so far counts too.
                        let mut l = longest.lock().unwrap();
                        *l = (*l).max(now - before);
                    }
                }
            })
        };
        Watchdog {
            longest,
            measuring,
            stop,
            thread: Some(thread),
        }
    }

    fn pause(&self, paused: bool) {
        self.measuring.store(!paused, Ordering::Relaxed);
    }

    fn longest(&self) -> Duration {
        *self.longest.lock().unwrap()
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A client asking every [`ASK_EVERY`]; keeps the slowest answer.
struct Asker {
    slowest: Arc<Mutex<Duration>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Asker {
    fn start(socket: &Path) -> Asker {
        let slowest = Arc::new(Mutex::new(Duration::ZERO));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (slowest, stop, socket) = (slowest.clone(), stop.clone(), socket.to_owned());
            std::thread::spawn(move || {
                let server = mprapi::Server::connect_socket(&socket).expect("a session");
                while !stop.load(Ordering::Relaxed) {
                    let asked = Instant::now();
                    let answered = server.server_info().is_ok();
                    let took = asked.elapsed();
                    if answered || !stop.load(Ordering::Relaxed) {
                        let mut s = slowest.lock().unwrap();
                        *s = (*s).max(took);
                    }
                    std::thread::sleep(ASK_EVERY.saturating_sub(took));
                }
            })
        };
        Asker {
            slowest,
            stop,
            thread: Some(thread),
        }
    }

    fn slowest(mut self) -> Duration {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        *self.slowest.lock().unwrap()
    }
}

/// `router stop` or `router start`, asked again if the answer is late
/// (a service that stalls may still have done it).
fn set_running(server: &mprapi::Server, run: bool) {
    let deadline = Instant::now() + PHASE_LIMIT;
    while server.set_router_running(run).is_err() && server.is_service_running() != run {
        assert!(
            Instant::now() < deadline,
            "the router did not start or stop"
        );
    }
}

/// A session with the service on `socket`, once it answers.
fn session(socket: &Path) -> mprapi::Server {
    let deadline = Instant::now() + PHASE_LIMIT;
    loop {
        if let Ok(server) = mprapi::Server::connect_socket(socket) {
            return server;
        }
        assert!(
            Instant::now() < deadline,
            "the service did not answer in {PHASE_LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The links `s*` in `netns`.
fn links_left(netns: &Netns) -> usize {
    netns
        .ip_output(&["-o", "link", "show", "type", "ifb"])
        .lines()
        .filter(|l| l.contains(": s"))
        .count()
}

/// Waits until `n` interfaces are CONNECTED, as a program would: on the
/// typed stream, one snapshot and then the changes. (Reading the whole
/// list over and over would cost the service work that grows with N at
/// every read, and be counted in its CPU.) Fails after `limit`.
fn wait_connected(server: &mprapi::Server, n: usize, limit: Duration, what: &str) {
    let deadline = Instant::now() + limit;
    let stream = server
        .subscribe_bounded(4 * n + 1024)
        .expect("a typed stream");
    let mut connected: HashSet<u32> = stream
        .snapshot()
        .interfaces
        .iter()
        .filter(|i| i.state == ConnectionState::Connected)
        .map(|i| i.handle)
        .collect();
    while connected.len() < n {
        let left = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_else(|| panic!("{what} in {limit:?}: {} of {n}", connected.len()));
        match stream.next_timeout(left) {
            Some(StreamItem::Event(event)) if event.group_switch.is_none() => {
                if event.to == ConnectionState::Connected {
                    connected.insert(event.handle);
                } else {
                    connected.remove(&event.handle);
                }
            }
            Some(StreamItem::Event(_)) | None => {}
            Some(other) => panic!("{what}: the stream said {other:?}"),
        }
    }
}

fn persistent(n: usize) -> Figures {
    let (router, _far) = ddm_lab::lab::namespaces();
    let dir = tempfile::Builder::new()
        .prefix("ddm-bench-scale-")
        .tempdir()
        .expect("a directory");
    let watchdog = Watchdog::listen(&dir.path().join("notify"));
    let started_at = Instant::now();
    let mut service = start(
        &router,
        dir.path(),
        &declarations(n, "persistent"),
        &dir.path().join("notify"),
    );
    let server = session(&service.socket);
    let asker = Asker::start(&service.socket);
    wait_connected(
        &server,
        n,
        PHASE_LIMIT.saturating_sub(started_at.elapsed()),
        "all connected",
    );
    let connected = started_at.elapsed();
    let cpu = process_cpu(service.process.0.id());

    let stopping = Instant::now();
    set_running(&server, false);
    while links_left(&router) > 0 {
        assert!(
            stopping.elapsed() < PHASE_LIMIT,
            "router stop did not hang up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let router_stop = stopping.elapsed();
    // The watchdog is not judged while the router restarts every
    // interface: the start was judged already.
    set_running(&server, true);
    wait_connected(&server, n, PHASE_LIMIT, "all reconnected");
    drop(server);
    let slowest_call = asker.slowest();
    let stopping = Instant::now();
    // `ip netns exec` execs the program it runs: its pid is the service's.
    let pid = nix::unistd::Pid::from_raw(service.process.0.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let _ = service.process.0.wait();
    let clean_stop = stopping.elapsed();
    let left_up = links_left(&router);

    watchdog.pause(true);
    let (made_by_hand, by_hand) = by_hand(&router, n);
    Figures {
        connected,
        cpu,
        slowest_call,
        watchdog_gap: watchdog.longest(),
        router_stop,
        clean_stop,
        left_up,
        made_by_hand,
        by_hand,
    }
}

/// The kernel's part of a start and of a stop: `n` such links made by
/// `ip link add`, then deleted by `ip link del`, one process a link, as
/// many at once as the service runs by default (what a stop left goes
/// first).
fn by_hand(router: &Netns, n: usize) -> (Duration, Duration) {
    let dels: String = (0..n).map(|i| format!("link del s{i}\n")).collect();
    fed(
        Command::new("ip").args(["-n", &router.name, "-force", "-batch", "-"]),
        &dels,
    );
    let made = timed_xargs(router, n, &["link", "add", "{}", "up", "type", "ifb"]);
    let deleted = timed_xargs(router, n, &["link", "del", "{}"]);
    (made, deleted)
}

/// `ip -n <router> ARGS` for s0 .. s(n-1) in place of `{}`, as many at
/// once as the service runs commands; how long they all took.
fn timed_xargs(router: &Netns, n: usize, args: &[&str]) -> Duration {
    let names: String = (0..n).map(|i| format!("s{i}\n")).collect();
    let at_once = ddmd::core::limits::Limits::default().max_dials_at_once;
    let started = Instant::now();
    fed(
        Command::new("xargs")
            .args(["-P", &at_once.to_string(), "-I{}", "ip", "-n", &router.name])
            .args(args),
        &names,
    );
    started.elapsed()
}

/// Runs `command` with `input` on its stdin (its errors unread: a link
/// already gone is no failure here), to its end.
fn fed(command: &mut Command, input: &str) {
    let mut child = command
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes());
    let _ = child.wait();
}

/// CPU time of process `pid`: the sum of its threads' time on a CPU, in
/// nanoseconds (`/proc/PID/task/*/schedstat`). Its clock ticks
/// (`/proc/PID/stat`) count in 10 ms: a tenth of what 1,000 interfaces
/// cost, too coarse for a ratio. A thread that has ended is not counted;
/// the service's threads last as long as it does.
fn process_cpu(pid: u32) -> Duration {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the service's threads");
    let nanos: u64 = tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|line| line.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(nanos)
}

/// Resident bytes of process `pid`.
fn process_rss(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        * 1024.0
}

/// Bytes of the service's memory per demand interface (its resident size
/// with `n` of them, less its size with none), and how long a clean stop
/// (SIGTERM) of the service with `n` takes, to its end.
fn demand_memory(n: usize) -> (f64, Duration) {
    let rss_with = |count: usize| {
        let (router, _far) = ddm_lab::lab::namespaces();
        let dir = tempfile::Builder::new()
            .prefix("ddm-bench-scale-")
            .tempdir()
            .expect("a directory");
        let notify = dir.path().join("notify");
        let _listener = UnixDatagram::bind(&notify).expect("notify socket");
        let config = if count == 0 {
            String::new()
        } else {
            declarations(count, "demand")
        };
        let mut service = start(&router, dir.path(), &config, &notify);
        let server = session(&service.socket);
        // Every trigger device made.
        let deadline = Instant::now() + PHASE_LIMIT;
        while router
            .ip_output(&["-o", "link", "show", "type", "tun"])
            .lines()
            .count()
            < count
        {
            assert!(
                Instant::now() < deadline,
                "the demand triggers were not made"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(500));
        drop(server);
        let rss = process_rss(service.process.0.id());
        let stopping = Instant::now();
        let pid = nix::unistd::Pid::from_raw(service.process.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = service.process.0.wait();
        (rss, stopping.elapsed())
    };
    let (none, _) = rss_with(0);
    let (some, stop) = rss_with(n);
    ((some - none).max(0.0) / n as f64, stop)
}

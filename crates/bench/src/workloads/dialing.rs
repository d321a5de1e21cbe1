//! Workload 6, dialing: figures for demand-dial interfaces, in a lab of
//! their own (two WireGuard tunnels, a filtered demand interface and 100
//! declared veth interfaces).
//!
//! 1. Demand dial: from the first datagram to a demand interface's route
//!    until its echo returns through the tunnel ddm dialed for it, against
//!    the bare dial of the same tunnel in the same run (the same script
//!    run by hand, a route added, a datagram sent, its echo awaited); over
//!    IPv4, and over IPv6 against the bare dial over IPv6. Target: at most
//!    1.2x the bare dial plus 5 ms, for each.
//! 2. Redial: a persistent interface's link deleted, until datagrams sent
//!    every millisecond are echoed again, against the same bare dial.
//! 3. Flapping: the latency of a link's notification (as workload 1
//!    measures it) quiet, and while 100 declared interfaces are connected,
//!    disconnected, lose carrier and redial all along; and the router's
//!    longest turn over the whole run, from the service's log.
//! 4. Refused: the same latency while a datagram a millisecond goes to a
//!    demand interface whose filter refuses it (dropped, counted and
//!    answered "administratively prohibited" every time). Target: the
//!    ratio to the floor within 1.25x of quiet's (noise).

use super::latency::stream_wake;
use super::{say_lost, settle, PATIENCE};
use crate::declared;
use crate::lab::{wait_for, Lab, Link};
use crate::listeners::{set_up, Mechanism};
use crate::report::Report;
use crate::stats::Summary;
use crate::tunnel::{self, Tunnel};
use crate::wake::wake_times;
use mprapi::ConnectionState;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ECHO_PORT: u16 = 7;
/// A pause between dials of one tunnel: WireGuard's responder limits the
/// handshakes it takes from one address, and refuses an initiation whose
/// (whitened, 16 ms) timestamp is not newer than the last one's.
pub(super) const HANDSHAKE_SPACING: Duration = Duration::from_millis(150);
const DECLARED: usize = 100;
const DEMAND: &str = "demand dial: first datagram to its echo";
const DEMAND6: &str = "demand dial over IPv6: first datagram to its echo";
/// The filtered demand interface's route: nothing dials it.
const REFUSED_TO: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const REDIAL: &str = "redial: link lost to traffic again";
const BARE: &str = "bare dial (script, route, datagram)";

pub fn run(rounds: usize, flips: usize, report: &mut Report) {
    let mut tunnels = Vec::new();
    let mut lab = Lab::with_config(|router, far, dir| {
        tunnel::underlay(router, far);
        tunnels = (0..2).map(|n| Tunnel::new(router, far, dir, n)).collect();
        let mut config =
            tunnels[0].declaration("demand", "dial = \"demand\"\nidle_disconnect_secs = 0");
        config += &tunnels[1].declaration("persistent", "dial = \"persistent\"");
        config += &format!(
            "[[interface]]\nname = \"filtered\"\nlink = \"nolink0\"\nconnect = [\"true\"]\n\
             dial = \"demand\"\nroutes = [\"{REFUSED_TO}/32\"]\ndial_on = [\"tcp dport 22\"]\n"
        );
        config += &declared::declare(router, far, DECLARED);
        Some(config)
    });
    let echo = Echo::start(&lab, Ipv4Addr::UNSPECIFIED);
    let echo6 = [tunnels[0].lan6, tunnels[0].bare_lan6].map(|a| Echo::start(&lab, a));
    let server = lab.connect();
    let t = &tunnels[0];
    let mut families = [
        Family::new(&lab, DEMAND, "", t.bare_lan.into(), t.lan.into()),
        Family::new(
            &lab,
            DEMAND6,
            " over IPv6",
            t.bare_lan6.into(),
            t.lan6.into(),
        ),
    ];

    let (mut redial, mut lost) = (Vec::new(), 0);
    let demand_handle = server.interface_handle("demand").expect("demand interface");
    let persistent = server
        .interface_handle("persistent")
        .expect("persistent interface");
    wait_for("the persistent interface", || {
        server
            .interface(persistent)
            .is_ok_and(|i| i.state == ConnectionState::Connected)
    });
    eprintln!("        demand dial and redial, {rounds} rounds");
    let mut persistent_since = Instant::now();
    for _ in 0..rounds {
        let t = &tunnels[0];
        t.tear_down(&lab.router);
        for family in &mut families {
            let start = Instant::now();
            t.dial_by_hand(&lab.router);
            match echo_after(
                &family.client,
                family.bare_to,
                start,
                Duration::from_millis(5),
            ) {
                Some(d) => family.bare.push(d),
                None => lost += 1,
            }
            t.tear_down(&lab.router);
            std::thread::sleep(HANDSHAKE_SPACING);

            match echo_after(&family.client, family.ddm_to, Instant::now(), PATIENCE) {
                Some(d) => family.demand.push(d),
                None => lost += 1,
            }
            let _ = server.interface_disconnect(demand_handle);
            wait_for("the demand tunnel to go", || !t.exists(&lab.router));
            t.tear_down(&lab.router);
            std::thread::sleep(HANDSHAKE_SPACING);
        }

        let t = &tunnels[1];
        // A connection lost before the redial pause is redialed after it.
        std::thread::sleep(tunnel::REDIAL_PAUSE.saturating_sub(persistent_since.elapsed()));
        let start = Instant::now();
        t.tear_down_link_only(&lab.router);
        match echo_after(&families[0].client, t.lan, start, Duration::from_millis(1)) {
            Some(d) => redial.push(d),
            None => lost += 1,
        }
        wait_for("the persistent interface to be back", || {
            server
                .interface(persistent)
                .is_ok_and(|i| i.state == ConnectionState::Connected)
        });
        persistent_since = Instant::now();
        std::thread::sleep(HANDSHAKE_SPACING);
    }
    say_lost("dialing", lost);
    let ms = |values: &[Duration]| {
        Summary::of(
            &values
                .iter()
                .map(|d| d.as_secs_f64() * 1e3)
                .collect::<Vec<_>>(),
        )
    };
    for family in &families {
        report.add(family.workload, BARE, "ms", ms(&family.bare));
        report.add(
            family.workload,
            "ddm (demand, held and re-sent)",
            "ms",
            ms(&family.demand),
        );
        report.relate(family.workload, BARE);
    }
    report.add(REDIAL, BARE, "ms", ms(&families[0].bare));
    report.add(REDIAL, "ddm (persistent, redialed)", "ms", ms(&redial));
    report.relate(REDIAL, BARE);
    for family in &families {
        if let (Some(b), Some(d)) = (ms(&family.bare), ms(&family.demand)) {
            report.target(
                format!(
                    "demand dial{} p50 at most 1.2x the bare dial + 5 ms",
                    family.said
                ),
                format!(
                    "{:.1} ms against {:.1} ms (limit {:.1} ms)",
                    d.p50,
                    b.p50,
                    1.2 * b.p50 + 5.0
                ),
                d.p50 <= 1.2 * b.p50 + 5.0,
            );
        }
    }
    drop(echo);
    drop(echo6);

    flapping(&lab, flips, report);
    drop(server);
    let log = lab.stop_service();
    drop(tunnels);
    if let Some(us) = longest_turn(&log) {
        report.note(format!(
            "router's longest turn over the dialing run ({DECLARED} declared interfaces flapping): {us} us"
        ));
        report.target(
            "the router never blocked: longest turn under 10 ms",
            format!("{us} us"),
            us < 10_000,
        );
    }
}

/// One family's demand dial: the bare dial's times and ddm's, to the far
/// addresses of that family, from a socket of it.
struct Family {
    workload: &'static str,
    /// How the target names it ("" or " over IPv6").
    said: &'static str,
    client: UdpSocket,
    bare_to: IpAddr,
    ddm_to: IpAddr,
    bare: Vec<Duration>,
    demand: Vec<Duration>,
}

impl Family {
    fn new(
        lab: &Lab,
        workload: &'static str,
        said: &'static str,
        bare_to: IpAddr,
        ddm_to: IpAddr,
    ) -> Family {
        let any = if bare_to.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let client = lab
            .router
            .enter(|| UdpSocket::bind(any))
            .expect("UDP socket");
        client.set_nonblocking(true).expect("non-blocking");
        Family {
            workload,
            said,
            client,
            bare_to,
            ddm_to,
            bare: Vec::new(),
            demand: Vec::new(),
        }
    }
}

/// Sends a datagram to `to` every `every` until one is echoed; the time
/// since `start`, or None after PATIENCE.
pub(super) fn echo_after(
    client: &UdpSocket,
    to: impl Into<IpAddr>,
    start: Instant,
    every: Duration,
) -> Option<Duration> {
    let to = to.into();
    let mut reply = [0u8; 16];
    while client.recv(&mut reply).is_ok() {}
    let mut next_send = Instant::now();
    while start.elapsed() < PATIENCE {
        if Instant::now() >= next_send {
            let _ = client.send_to(b"ping", (to, ECHO_PORT));
            next_send = Instant::now() + every;
        }
        if client.recv(&mut reply).is_ok() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    None
}

/// Notification latency (the kernel floor, and ddm's typed stream, which
/// names the interface: registered events wake for every interface's
/// change) with the declared interfaces quiet, then busy.
fn flapping(lab: &Lab, flips: usize, report: &mut Report) {
    const WORKLOAD: &str = "latency: connect and disconnect";
    const STREAM: &str = "ddm (typed stream)";
    let server = lab.connect();
    declared::Churn::new(&lab.far.name, DECLARED).calm(&server);
    let mut link = Link::new(lab);
    let mut measure = |label: &str, report: &mut Report| {
        let workload = format!("{WORKLOAD}, {label}");
        let listeners = set_up(lab, Mechanism::Kernel, 1, link.connected);
        let mut floor = Vec::new();
        for _ in 0..flips {
            listeners.drain();
            let target = !link.connected;
            floor.extend(wake_times(&listeners.waiters, target, PATIENCE, || link.flip())[0]);
            settle();
        }
        let stream = server.subscribe().expect("subscribe");
        let mut ddm = Vec::new();
        for _ in 0..flips {
            let target = !link.connected;
            ddm.extend(stream_wake(&stream, target, &mut link));
            settle();
        }
        report.add(
            &workload,
            Mechanism::Kernel.name(),
            "us",
            Summary::of_durations(&floor),
        );
        report.add(&workload, STREAM, "us", Summary::of_durations(&ddm));
        report.relate(&workload, Mechanism::Kernel.name());
    };
    eprintln!("        notification latency, declared interfaces quiet");
    measure("declared quiet", report);
    let refusing = Arc::new(AtomicBool::new(true));
    let refused_traffic = {
        let refusing = refusing.clone();
        let sender = lab
            .router
            .enter(|| UdpSocket::bind("0.0.0.0:0"))
            .expect("UDP socket");
        std::thread::spawn(move || {
            let mut sent = 0u64;
            while refusing.load(Ordering::Relaxed) {
                let _ = sender.send_to(b"refused", (REFUSED_TO, 9));
                sent += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            sent
        })
    };
    eprintln!("        notification latency, a refused datagram every millisecond");
    measure("a refused datagram every ms", report);
    refusing.store(false, Ordering::Relaxed);
    let sent = refused_traffic.join().expect("sender");
    let refused = server
        .interface(
            server
                .interface_handle("filtered")
                .expect("the filtered interface"),
        )
        .ok()
        .and_then(|i| i.dial_filter)
        .map_or(0, |f| f.refused);
    let busy = Arc::new(AtomicBool::new(true));
    let trouble = {
        let (busy, far) = (busy.clone(), lab.far.name.clone());
        let socket = lab.service.socket.clone();
        std::thread::spawn(move || {
            let server = mprapi::Server::connect_socket(&socket).expect("connect");
            let mut churn = declared::Churn::new(&far, DECLARED);
            let mut acts = 0u64;
            while busy.load(Ordering::Relaxed) {
                churn.step(&server);
                acts += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            acts
        })
    };
    let busy_label = format!("{DECLARED} declared flapping");
    eprintln!("        notification latency, {DECLARED} declared interfaces flapping");
    measure(&busy_label, report);
    busy.store(false, Ordering::Relaxed);
    let acts = trouble.join().expect("flapper");
    let ratio = |label: &str| {
        report
            .find(&format!("{WORKLOAD}, {label}"), STREAM)
            .and_then(|r| r.ratio.as_ref().map(|(x, _)| *x))
    };
    let (quiet, refusing, loaded) = (
        ratio("declared quiet"),
        ratio("a refused datagram every ms"),
        ratio(&busy_label),
    );
    if let (Some(quiet), Some(refusing)) = (quiet, refusing) {
        report.note(format!(
            "{refused} of {sent} datagrams to a filtered demand interface refused, none dialed"
        ));
        report.target(
            "refused packets cost nothing measurable: notification latency with a refused datagram every ms (ratio to the floor within 1.25x of quiet)",
            format!("{refusing:.2}x against {quiet:.2}x"),
            refusing <= 1.25 * quiet && refused > 0,
        );
    }
    if let (Some(quiet), Some(loaded)) = (quiet, loaded) {
        report.note(format!(
            "with {DECLARED} declared interfaces flapping ({acts} acts): ddm {loaded:.2}x the kernel floor, quiet {quiet:.2}x"
        ));
        report.target(
            "notification latency unchanged by flapping declared interfaces (ratio to the floor within 1.5x of quiet)",
            format!("{loaded:.2}x against {quiet:.2}x"),
            loaded <= 1.5 * quiet,
        );
    }
}

fn longest_turn(log: &str) -> Option<u64> {
    log.lines()
        .filter_map(|l| l.split("longest_turn_us=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .max()
}

/// A UDP echo server in the far namespace, on one address (or every
/// address: answers then leave from whichever the route gives, which a
/// masquerading router would not take for answers).
pub(super) struct Echo {
    running: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Echo {
    pub(super) fn start(lab: &Lab, address: impl Into<IpAddr>) -> Echo {
        let address = address.into();
        let socket = lab
            .far
            .enter(|| UdpSocket::bind((address, ECHO_PORT)))
            .expect("echo socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let running = Arc::new(AtomicBool::new(true));
        let flag = running.clone();
        let thread = std::thread::spawn(move || {
            let mut buffer = [0u8; 1500];
            while flag.load(Ordering::Relaxed) {
                if let Ok((n, from)) = socket.recv_from(&mut buffer) {
                    let _ = socket.send_to(&buffer[..n], from);
                }
            }
        });
        Echo {
            running,
            thread: Some(thread),
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.running.store(false, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

//! Workload 8, remote administration over TLS 1.3, in a lab of its own:
//! the clients are in the far namespace and reach the service over a veth
//! pair. Notification latency of a remote registration against a local
//! one and a TLS ping-pong over the same link (one record each way, the
//! floor of anything sent over TLS); Register and Deregister round trips
//! against that ping-pong; fan-out to many remote sessions; and what a
//! remote session costs the service.

use super::latency::sample;
use super::{say_lost, settle, PATIENCE};
use crate::lab::{Lab, Link};
use crate::listeners::Mechanism;
use crate::report::Report;
use crate::stats::Summary;
use crate::wake::{wake_times, Kind, Waiter};
use ddm_test_ca::{Ca, Flaw};
use mprapi::{Event, Server};
use rustls::pki_types::pem::PemObject;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROUTER: &str = "10.90.0.1";
const LATENCY: &str = "remote: notification latency";
const ROUND_TRIP: &str = "remote: round trip";
const LOCAL: &str = "ddm local (mprapi::Event)";
const REMOTE: &str = "ddm remote over TLS 1.3";
const PING_PONG: &str = "TLS 1.3 ping-pong (1 byte)";
/// The TLS echo server's port, beside the service's.
const ECHO_PORT: u16 = 4851;

/// The CA, the router's certificate and the bench client's, in `dir`.
fn certificates(dir: &Path) -> Ca {
    let ca = Ca::new(dir, "bench");
    ca.server("router", &[ROUTER]);
    ca.client("bench", "bench", None, Flaw::None);
    ca
}

pub fn run(rounds: usize, flips: usize, calls: usize, fanout: usize, report: &mut Report) {
    let mut ca = None;
    let lab = Lab::with_config(|router, far, dir| {
        let issued = certificates(dir);
        let ca_file = issued.ca_file();
        ca = Some(issued);
        router.ip(&[
            "link", "add", "rt0", "type", "veth", "peer", "name", "ft0", "netns", &far.name,
        ]);
        router.ip(&["addr", "add", &format!("{ROUTER}/24"), "dev", "rt0"]);
        router.ip(&["link", "set", "rt0", "up"]);
        far.ip(&["addr", "add", "10.90.0.2/24", "dev", "ft0"]);
        far.ip(&["link", "set", "ft0", "up"]);
        Some(format!(
            "[links]\nexclude = [\"rt0\"]\n[access]\nadmin_identities = [\"bench\"]\n\
             [limits]\nmax_sessions_per_identity = {}\n\
             [remote]\nlisten = \"{ROUTER}:4850\"\ncertificate = \"{d}/router.pem\"\n\
             key = \"{d}/router.key\"\nclient_ca = \"{ca}\"\n",
            fanout + 16,
            d = dir.display(),
            ca = ca_file.display()
        ))
    });
    let ca = ca.expect("the lab's CA");
    let client = ca.client_config("bench");
    let connect = || {
        lab.far
            .enter(|| Server::connect_remote(ROUTER, &client))
            .expect("a remote session")
    };
    let echo = echo_server(&lab);
    let tls = ping_pong_client(&ca);
    let ping_pong = ping_pongs(&lab, &tls, calls);
    report.add(LATENCY, PING_PONG, "us", Summary::of_durations(&ping_pong));
    latency(&lab, &connect, rounds, flips, report);
    round_trips(&lab, &connect, &tls, calls, "", report);
    crate::lab::on_one_cpu(|| round_trips(&lab, &connect, &tls, calls, ", one CPU", report));
    fan_out(&lab, &connect, fanout, flips, report);
    judge(report);
    drop(echo);
}

fn latency(
    lab: &Lab,
    connect: &dyn Fn() -> Server,
    rounds: usize,
    flips: usize,
    report: &mut Report,
) {
    let mut link = Link::new(lab);
    let (mut local, mut remote, mut lost) = (Vec::new(), Vec::new(), 0);
    for _ in 0..rounds {
        for (target, wake) in sample(lab, &mut link, Mechanism::DdmEvent, flips) {
            let _ = target;
            match wake {
                Some(d) => local.push(d),
                None => lost += 1,
            }
        }
        let server = connect();
        let event = Event::auto().expect("eventfd");
        server
            .register_connection_notification(&event)
            .expect("register");
        let waiters = [Waiter {
            fd: event.as_raw_fd(),
            kind: Kind::EventFd,
        }];
        for _ in 0..flips {
            waiters[0].drain();
            let target = !link.connected;
            match wake_times(&waiters, target, PATIENCE, || link.flip())[0] {
                Some(d) => remote.push(d),
                None => lost += 1,
            }
            settle();
        }
    }
    say_lost("remote latency", lost);
    report.add(LATENCY, LOCAL, "us", Summary::of_durations(&local));
    report.add(LATENCY, REMOTE, "us", Summary::of_durations(&remote));
    report.relate(LATENCY, LOCAL);
}

/// Register and Deregister round trips, beside the TLS ping-pong measured
/// right before them, as the other round trips are: as scheduled, and on
/// one CPU, where the target is judged.
fn round_trips(
    lab: &Lab,
    connect: &dyn Fn() -> Server,
    tls: &Arc<rustls::ClientConfig>,
    calls: usize,
    suffix: &str,
    report: &mut Report,
) {
    let workload = format!("{ROUND_TRIP}{suffix}");
    let ping_pong = ping_pongs(lab, tls, calls);
    report.add(
        &workload,
        PING_PONG,
        "us",
        Summary::of_durations(&ping_pong),
    );
    let server = connect();
    let event = Event::auto().expect("eventfd");
    let (mut register, mut deregister) = (Vec::new(), Vec::new());
    for _ in 0..calls {
        let start = Instant::now();
        server
            .register_connection_notification(&event)
            .expect("register");
        register.push(start.elapsed());
        let start = Instant::now();
        server
            .deregister_connection_notification(&event)
            .expect("deregister");
        deregister.push(start.elapsed());
    }
    report.add(
        &workload,
        "ddm Register (remote)",
        "us",
        Summary::of_durations(&register),
    );
    report.add(
        &workload,
        "ddm Deregister (remote)",
        "us",
        Summary::of_durations(&deregister),
    );
    report.relate(&workload, PING_PONG);
}

fn fan_out(lab: &Lab, connect: &dyn Fn() -> Server, n: usize, flips: usize, report: &mut Report) {
    let workload = format!("remote: fan-out {n}");
    let rss_before = lab.service_rss();
    let sessions: Vec<(Server, Event)> = (0..n)
        .map(|_| {
            let server = connect();
            let event = Event::auto().expect("eventfd");
            server
                .register_connection_notification(&event)
                .expect("register");
            (server, event)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let per_session = lab.service_rss().saturating_sub(rss_before) as f64 / n as f64;
    report.add(
        "remote: memory",
        "service RSS per remote session",
        "B",
        Summary::of(&[per_session]),
    );
    report.target(
        "a remote session costs the service under 64 KiB, TLS buffers included",
        format!("{:.1} KiB", per_session / 1024.0),
        per_session < 64.0 * 1024.0,
    );
    let waiters: Vec<Waiter> = sessions
        .iter()
        .map(|(_, event)| Waiter {
            fd: event.as_raw_fd(),
            kind: Kind::EventFd,
        })
        .collect();
    let mut link = Link::new(lab);
    let (mut lasts, mut lost) = (Vec::new(), 0);
    for _ in 0..flips.min(20) {
        waiters.iter().for_each(Waiter::drain);
        let target = !link.connected;
        let times = wake_times(&waiters, target, PATIENCE, || link.flip());
        let woke: Vec<Duration> = times.iter().flatten().copied().collect();
        lost += n - woke.len();
        if let Some(last) = woke.iter().max() {
            lasts.push(*last);
        }
        settle();
    }
    say_lost(&workload, lost);
    report.add(
        &format!("{workload}: last woken"),
        REMOTE,
        "us",
        Summary::of_durations(&lasts),
    );
}

/// The targets: remote latency within 1.3x of local plus half a TLS
/// ping-pong; Register within 2x of the ping-pong.
fn judge(report: &mut Report) {
    let p50 = |report: &Report, workload: &str, mechanism: &str| {
        report.find(workload, mechanism).map(|r| r.summary.p50)
    };
    if let (Some(local), Some(remote), Some(ping)) = (
        p50(report, LATENCY, LOCAL),
        p50(report, LATENCY, REMOTE),
        p50(report, LATENCY, PING_PONG),
    ) {
        let bound = 1.3 * (local + ping / 2.0);
        report.target(
            "remote notification latency p50 within 1.3x of local + half a TLS ping-pong",
            format!("{remote:.1} us against {bound:.1} us"),
            remote <= bound,
        );
    }
    let one_cpu = format!("{ROUND_TRIP}, one CPU");
    for (workload, placement) in [(ROUND_TRIP, ""), (one_cpu.as_str(), " (one CPU)")] {
        if let (Some(register), Some(ping)) = (
            p50(report, workload, "ddm Register (remote)"),
            p50(report, workload, PING_PONG),
        ) {
            report.target(
                format!("remote Register round trip p50 within 2x of a TLS ping-pong{placement}"),
                format!("{:.2}x", register / ping),
                register <= 2.0 * ping,
            );
        }
    }
}

/// A TLS 1.3 echo server (one byte back for each) in the router's
/// namespace, with the router's certificate; it ends with the process.
fn echo_server(lab: &Lab) -> std::thread::JoinHandle<()> {
    let listener = lab
        .router
        .enter(|| std::net::TcpListener::bind((ROUTER, ECHO_PORT)))
        .expect("the echo port");
    let dir = lab.dir.clone();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_no_client_auth()
        .with_single_cert(
            rustls::pki_types::CertificateDer::pem_file_iter(dir.join("router.pem"))
                .expect("router.pem")
                .collect::<Result<Vec<_>, _>>()
                .expect("router.pem"),
            rustls::pki_types::PrivateKeyDer::from_pem_file(dir.join("router.key"))
                .expect("router.key"),
        )
        .expect("the echo server's TLS"),
    );
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = stream.set_nodelay(true);
            let connection = rustls::ServerConnection::new(config.clone()).expect("TLS");
            let mut tls = rustls::StreamOwned::new(connection, stream);
            let mut byte = [0u8; 1];
            while tls.read_exact(&mut byte).is_ok() {
                if tls.write_all(&byte).and_then(|()| tls.flush()).is_err() {
                    break;
                }
            }
        }
    })
}

/// The ping-pong's client side: TLS 1.3, trusting the lab's CA.
fn ping_pong_client(ca: &Ca) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca.ca_file()).expect("the CA") {
        roots.add(cert.expect("the CA")).expect("the CA");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .expect("TLS 1.3")
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}

/// `n` one-byte round trips over TLS 1.3 from the far namespace.
fn ping_pongs(lab: &Lab, tls: &Arc<rustls::ClientConfig>, n: usize) -> Vec<Duration> {
    let stream = lab
        .far
        .enter(|| std::net::TcpStream::connect((ROUTER, ECHO_PORT)))
        .expect("the echo server");
    let _ = stream.set_nodelay(true);
    let name = rustls::pki_types::ServerName::try_from(ROUTER).expect("name");
    let connection = rustls::ClientConnection::new(tls.clone(), name).expect("TLS");
    let mut tls = rustls::StreamOwned::new(connection, stream);
    let mut byte = [7u8; 1];
    // The handshake, and a warm-up.
    for _ in 0..10 {
        tls.write_all(&byte).expect("ping");
        tls.read_exact(&mut byte).expect("pong");
    }
    (0..n)
        .map(|_| {
            let start = Instant::now();
            tls.write_all(&byte).expect("ping");
            tls.read_exact(&mut byte).expect("pong");
            start.elapsed()
        })
        .collect()
}

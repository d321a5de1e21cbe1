//! Workload 10, path health: how soon a dead path is seen (from the
//! nftables rule that drops everything to the DISCONNECTED event, against
//! the configured bound `interval_ms * down_after`), how soon a group's
//! traffic flows through the next member (to the first datagram answered
//! through it, against the detection of the same trial), what probing
//! costs (the service's CPU per probe against fping's for the same 1,000
//! targets at the same rate, in the same run; memory per target), and
//! whether 100 probed interfaces slow notifications (against none, in
//! alternating rounds).

use super::dialing::{echo_after, Echo, HANDSHAKE_SPACING};
use super::latency::sample;
use crate::lab::{on_one_cpu, Lab, Link, Netns, Process};
use crate::listeners::Mechanism;
use crate::report::Report;
use crate::stats::Summary;
use crate::tunnel::{self, Tunnel};
use mprapi::{ConnectionState, StreamItem};
use std::net::{Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const DETECTION: &str = "health: detection";
const FAILOVER: &str = "health: failover, hot standby";
const DEMAND: &str = "health: failover, demand WireGuard";
const COST: &str = "health: CPU per probe";
const LATENCY: &str = "health: notification latency";

/// The probing of detection and failover: a bound of 200 * 3 = 600 ms.
const INTERVAL_MS: u64 = 200;
const DOWN_AFTER: u64 = 3;
const TIMEOUT_MS: u64 = 400;

fn table(name: &str, targets: &[String], interval_ms: u64, timeout_ms: u64) -> String {
    let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        "[health.{name}]\ntargets = [{}]\ninterval_ms = {interval_ms}\ntimeout_ms = {timeout_ms}\n\
         down_after = {DOWN_AFTER}\nup_after = 3\n",
        targets.join(", ")
    )
}

fn watched(name: &str, link: &str, health: &str) -> String {
    format!("[[interface]]\nname = \"{name}\"\nlink = \"{link}\"\nhealth = \"{health}\"\n")
}

/// Uplink n (`ddm_lab::uplinks`), with the system's own default route
/// through it.
fn uplink(router: &Netns, far: &Netns, n: u8) {
    ddm_lab::uplinks::add(router, far, n);
    ddm_lab::uplinks::default_route(router, n);
}

fn blackhole(far: &Netns, peer: &str, on: bool) {
    far.nft(&if on {
        format!("table inet bench_bh {{\n chain input {{\n  type filter hook input priority 0;\n  iifname \"{peer}\" drop\n }}\n}}\n")
    } else {
        "delete table inet bench_bh\n".to_owned()
    });
}

pub fn run(
    trials: usize,
    cost_time: Duration,
    latency_rounds: usize,
    latency_flips: usize,
    report: &mut Report,
) {
    detection_and_failover(trials, report);
    demand_failover(trials.div_ceil(2), report);
    // As the scheduler places the processes, and all of them on one CPU.
    for (suffix, one_cpu) in [("", false), (", one CPU", true)] {
        let measure = |report: &mut Report| {
            probe_cost(cost_time, suffix, report);
            latency(latency_rounds, latency_flips, suffix, report);
        };
        if one_cpu {
            on_one_cpu(|| measure(report));
        } else {
            measure(report);
        }
    }
}

/// Detection and hot-standby failover, trial after trial on one lab: two
/// watched uplinks in a group, a LAN namespace sending a datagram every
/// 2 ms to an echo server behind the far end.
fn detection_and_failover(trials: usize, report: &mut Report) {
    let lab = Lab::with_config(|router, far, _| {
        uplink(router, far, 1);
        uplink(router, far, 2);
        far.ip(&["link", "set", "lo", "up"]);
        far.ip(&["addr", "add", "198.18.0.1/32", "dev", "lo"]);
        let targets = ["198.18.0.1".to_owned()];
        Some(format!(
            "{}{}{}[[group]]\nname = \"internet\"\nroutes = [\"198.18.0.0/24\"]\n\
             members = [\"isp1\", \"isp2\"]\nfailback_secs = 1\n",
            watched("isp1", "wan1", "isp"),
            watched("isp2", "wan2", "isp"),
            table("isp", &targets, INTERVAL_MS, TIMEOUT_MS),
        ))
    });
    let lan = ddm_lab::lan::behind(&lab.router, &["wan1", "wan2"]);
    let stop = AtomicBool::new(false);
    let _echo = Echo::start(&lab, Ipv4Addr::new(198, 18, 0, 1));
    let client = lan.enter(|| UdpSocket::bind("10.99.0.2:0").expect("the client socket"));
    client
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let started = Instant::now();
    // Each datagram carries when it was sent (microseconds since
    // `started`); an answer is recorded with when it came back.
    let answers: Mutex<Vec<(u64, Instant)>> = Mutex::new(Vec::new());
    let server = lab.connect();
    let (mut detections, mut failovers) = (Vec::new(), Vec::new());
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let sent = started.elapsed().as_micros() as u64;
                let _ = client.send_to(&sent.to_be_bytes(), "198.18.0.1:7");
                next += Duration::from_millis(2);
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        });
        scope.spawn(|| {
            let mut buffer = [0u8; 64];
            while !stop.load(Ordering::Relaxed) {
                if let Ok(8) = client.recv(&mut buffer) {
                    let sent = u64::from_be_bytes(buffer[..8].try_into().unwrap());
                    answers.lock().unwrap().push((sent, Instant::now()));
                }
            }
        });
        for _ in 0..trials {
            wait_carrier(&server, "isp1");
            let stream = server.subscribe().expect("subscribe");
            // From the moment the rule is in place (nft has returned).
            blackhole(&lab.far, "wan1p", true);
            let cut = Instant::now();
            let cut_us = (cut - started).as_micros() as u64;
            let seen = loop {
                match stream.next_timeout(super::PATIENCE) {
                    Some(StreamItem::Event(e))
                        if e.interface == "isp1" && e.to == ConnectionState::Disconnected =>
                    {
                        break Some(Instant::now());
                    }
                    Some(_) => {}
                    None => break None,
                }
            };
            wait_carrier(&server, "isp2");
            let deadline = Instant::now() + super::PATIENCE;
            let through = loop {
                let first = answers
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|(sent, _)| *sent > cut_us)
                    .map(|(_, at)| *at);
                if first.is_some() || Instant::now() > deadline {
                    break first;
                }
                std::thread::sleep(Duration::from_millis(5));
            };
            if let (Some(seen), Some(through)) = (seen, through) {
                detections.push(seen - cut);
                failovers.push(through - cut);
            }
            blackhole(&lab.far, "wan1p", false);
        }
        stop.store(true, Ordering::Relaxed);
    });
    let bound = Duration::from_millis(INTERVAL_MS * DOWN_AFTER);
    report.add(
        DETECTION,
        "configured bound interval*down_after",
        "us",
        Summary::of_durations(&vec![bound; detections.len().max(1)]),
    );
    report.add(
        DETECTION,
        "drop rule to DISCONNECTED",
        "us",
        Summary::of_durations(&detections),
    );
    report.relate(DETECTION, "configured bound interval*down_after");
    failover_rows(report, FAILOVER, "wan2", &detections, &failovers);
    if let (Some(d), Some(f)) = (
        Summary::of_durations(&detections),
        Summary::of_durations(&failovers),
    ) {
        let limit = (bound + Duration::from_millis(TIMEOUT_MS + 100)).as_secs_f64() * 1e6;
        report.target(
            format!(
                "detection p99 within interval*down_after + timeout_ms + 100 ms ({:.0} ms), every trial",
                limit / 1e3,
            ),
            format!(
                "{} of {trials} trials, p50 {:.0} ms, p99 {:.0} ms",
                detections.len(),
                d.p50 / 1e3,
                d.p99 / 1e3
            ),
            d.p99 <= limit && detections.len() == trials,
        );
        let worst = detections
            .iter()
            .zip(&failovers)
            .map(|(d, f)| f.saturating_sub(*d))
            .max()
            .unwrap_or_default();
        report.target(
            "hot-standby failover within detection + 200 ms, every trial",
            format!(
                "failover p50 {:.0} ms, p99 {:.0} ms; at most {:.0} ms after detection",
                f.p50 / 1e3,
                f.p99 / 1e3,
                worst.as_secs_f64() * 1e3
            ),
            worst <= Duration::from_millis(200),
        );
    }
}

/// Failover to a demand WireGuard backup: an uplink and the tunnel in a
/// group; the uplink's path cut, datagrams to the far end dial the tunnel
/// through its trigger. Against the detection of the same trial and the
/// bare dial of the same tunnel (its script and a route by hand).
fn demand_failover(trials: usize, report: &mut Report) {
    let mut tunnel = None;
    let lab = Lab::with_config(|router, far, dir| {
        tunnel::underlay(router, far);
        let t = Tunnel::new(router, far, dir, 0);
        uplink(router, far, 1);
        let config = format!(
            "{}{}{}[[group]]\nname = \"branch\"\nroutes = [\"{}/32\"]\nmembers = [\"wan\", \"lte\"]\nfailback_secs = 1\n",
            watched("wan", "wan1", "isp"),
            table("isp", &["10.77.1.2".to_owned()], INTERVAL_MS, TIMEOUT_MS),
            t.member_declaration("lte", "dial = \"demand\"\nidle_disconnect_secs = 0"),
            t.lan,
        );
        tunnel = Some(t);
        Some(config)
    });
    let t = tunnel.expect("the tunnel");
    let _echo = Echo::start(&lab, Ipv4Addr::UNSPECIFIED);
    let client = lab
        .router
        .enter(|| UdpSocket::bind("0.0.0.0:0"))
        .expect("UDP socket");
    client.set_nonblocking(true).expect("non-blocking");
    let server = lab.connect();
    let (mut bare, mut detections, mut failovers) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..trials {
        wait_carrier(&server, "wan");
        let start = Instant::now();
        t.dial_by_hand(&lab.router);
        let by_hand = echo_after(&client, t.bare_lan, start, Duration::from_millis(5));
        t.tear_down(&lab.router);
        std::thread::sleep(HANDSHAKE_SPACING);
        let stream = server.subscribe().expect("subscribe");
        blackhole(&lab.far, "wan1p", true);
        let cut = Instant::now();
        let (seen, through) = std::thread::scope(|scope| {
            let traffic = scope.spawn(|| echo_after(&client, t.lan, cut, Duration::from_millis(1)));
            let seen = loop {
                match stream.next_timeout(super::PATIENCE) {
                    Some(StreamItem::Event(e))
                        if e.interface == "wan" && e.to == ConnectionState::Disconnected =>
                    {
                        break Some(cut.elapsed());
                    }
                    Some(_) => {}
                    None => break None,
                }
            };
            (seen, traffic.join().expect("the traffic"))
        });
        if let (Some(b), Some(s), Some(f)) = (by_hand, seen, through) {
            bare.push(b);
            detections.push(s);
            failovers.push(f);
        }
        blackhole(&lab.far, "wan1p", false);
        crate::lab::wait_for("the backup hung up", || !t.exists(&lab.router));
        t.tear_down(&lab.router);
        std::thread::sleep(HANDSHAKE_SPACING);
    }
    report.add(
        DEMAND,
        "bare dial of the tunnel",
        "us",
        Summary::of_durations(&bare),
    );
    failover_rows(report, DEMAND, "the tunnel", &detections, &failovers);
    if let Some(b) = Summary::of_durations(&bare) {
        let bare_p50 = Duration::from_secs_f64(b.p50 / 1e6);
        let worst = detections
            .iter()
            .zip(&failovers)
            .map(|(d, f)| f.saturating_sub(*d + bare_p50))
            .max()
            .unwrap_or_default();
        report.target(
            "demand-backup failover within detection + the bare dial + 200 ms, every trial",
            format!(
                "{} trials; at most {:.0} ms beyond detection + bare dial ({:.0} ms)",
                failovers.len(),
                worst.as_secs_f64() * 1e3,
                b.p50 / 1e3
            ),
            worst <= Duration::from_millis(200) && failovers.len() == trials,
        );
    }
}

/// A failover's rows: the detection, and the first datagram through the
/// next member against it.
fn failover_rows(
    report: &mut Report,
    workload: &str,
    through: &str,
    detections: &[Duration],
    failovers: &[Duration],
) {
    const DETECTED: &str = "drop rule to DISCONNECTED";
    report.add(workload, DETECTED, "us", Summary::of_durations(detections));
    report.add(
        workload,
        &format!("drop rule to a datagram through {through}"),
        "us",
        Summary::of_durations(failovers),
    );
    report.relate(workload, DETECTED);
}

/// Waits until `name` carries the group's routes (is CONNECTED).
fn wait_carrier(server: &mprapi::Server, name: &str) {
    crate::lab::wait_for(&format!("{name} connected"), || {
        server
            .groups()
            .is_ok_and(|g| g.iter().any(|g| g.carrier == name))
    });
}

/// The service probing 1,000 targets twice a second, against fping
/// probing the same targets at the same rate, each for `time`.
fn probe_cost(time: Duration, suffix: &str, report: &mut Report) {
    let workload = format!("{COST}{suffix}");
    const TARGETS: usize = 1000;
    let targets: Vec<String> = (0..TARGETS)
        .map(|i| format!("10.80.{}.{}", i / 250, 1 + i % 250))
        .collect();
    let mut lab = Lab::with_config(|router, far, _| {
        uplink(router, far, 1);
        let lines: String = targets
            .iter()
            .map(|t| format!("addr add {t}/32 dev lo\n"))
            .collect();
        far.ip(&["link", "set", "lo", "up"]);
        far.ip_batch(&lines);
        router.ip(&["route", "add", "10.80.0.0/16", "via", "10.77.1.2"]);
        None
    });
    let bare_rss = lab.service_rss();
    lab.reconfigure(Some(&format!(
        "{}{}",
        watched("isp", "wan1", "many"),
        table("many", &targets, 500, 400)
    )));
    let server = lab.connect();
    crate::lab::wait_for("the path is up", || {
        server
            .health("isp")
            .is_ok_and(|h| h.first().is_some_and(|h| h.verdict == "up"))
    });
    std::thread::sleep(Duration::from_secs(1));
    let probes = || server.health("isp").expect("health")[0].probes_sent;
    let service = lab.service.pid();
    let (cpu, sent) = (cpu_of(service), probes());
    std::thread::sleep(time);
    let (ddm_cpu, ddm_probes) = (cpu_of(service) - cpu, probes() - sent);
    let probed_rss = lab.service_rss();
    lab.reconfigure(None);

    // fping: every target every 500 ms, packets 0.5 ms apart at most.
    let fping = Process(
        lab.router
            .command("fping")
            .args(["-q", "-l", "-p", "500", "-i", "0", "-t", "400"])
            .args(&targets)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("fping"),
    );
    std::thread::sleep(Duration::from_secs(1));
    let pid = fping.pid();
    let before = cpu_of(pid);
    std::thread::sleep(time);
    let fping_cpu = cpu_of(pid) - before;
    drop(fping);
    let fping_probes = (TARGETS as f64 * time.as_secs_f64() / 0.5) as u64;
    let per = |cpu: Duration, probes: u64| cpu.as_secs_f64() * 1e6 / probes.max(1) as f64;
    let (ours, theirs) = (per(ddm_cpu, ddm_probes), per(fping_cpu, fping_probes));
    report.add(
        &workload,
        "fping, same targets and rate",
        "us",
        Summary::of(&[theirs]),
    );
    report.add(
        &workload,
        "ddm serve, 1000 targets at 2/s",
        "us",
        Summary::of(&[ours]),
    );
    report.relate(&workload, "fping, same targets and rate");
    let rss_per_target = (probed_rss.saturating_sub(bare_rss)) as f64 / TARGETS as f64;
    report.note(format!(
        "health{suffix}: {ddm_probes} probes in {:.0} s cost the service {:.0} ms of CPU; fping {fping_probes} in {:.0} ms; \
         memory {:.0} B per probed target",
        time.as_secs_f64(),
        ddm_cpu.as_secs_f64() * 1e3,
        fping_cpu.as_secs_f64() * 1e3,
        rss_per_target
    ));
    report.target(
        format!("probe cost within 1.0x fping's CPU per probe{suffix}"),
        format!(
            "{:.2}x ({ours:.1} us against {theirs:.1} us)",
            ours / theirs
        ),
        ours <= theirs,
    );
}

/// CPU time process `pid` has run, all its threads (schedstat: in
/// nanoseconds, where /proc/PID/stat counts ticks of 10 ms).
fn cpu_of(pid: i32) -> Duration {
    let nanos: u64 = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .filter_map(|task| {
            let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
            stat.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum();
    Duration::from_nanos(nanos)
}

/// Notification latency (the lab's link flipped, a registered event
/// waiting) with 100 probed interfaces, against none, alternating.
fn latency(rounds: usize, flips: usize, suffix: &str, report: &mut Report) {
    let workload = format!("{LATENCY}{suffix}");
    const PROBED: usize = 100;
    let mut lab = Lab::with_config(|router, far, _| {
        let lines: String = (0..PROBED)
            .map(|i| {
                format!(
                    "link add hp{i} type veth peer name hq{i} netns {far}\n\
                     addr add 10.81.{a}.{b}/31 dev hp{i}\nlink set hp{i} up\n",
                    far = far.name,
                    a = i / 100,
                    b = 2 * (i % 100),
                )
            })
            .collect();
        router.ip_batch(&lines);
        let far_lines: String = (0..PROBED)
            .map(|i| {
                format!(
                    "addr add 10.81.{a}.{b}/31 dev hq{i}\nlink set hq{i} up\n",
                    a = i / 100,
                    b = 2 * (i % 100) + 1,
                )
            })
            .collect();
        far.ip_batch(&far_lines);
        None
    });
    let probed: String = (0..PROBED)
        .map(|i| {
            let target = format!("10.81.{}.{}", i / 100, 2 * (i % 100) + 1);
            format!(
                "{}{}",
                watched(&format!("probed{i}"), &format!("hp{i}"), &format!("t{i}")),
                table(&format!("t{i}"), &[target], 500, 400)
            )
        })
        .collect();
    let mut link = Link::new(&lab);
    let (mut bare, mut busy) = (Vec::new(), Vec::new());
    let mut longest = Vec::new();
    let mut lost = 0;
    for _ in 0..rounds {
        for (config, samples) in [(None, &mut bare), (Some(probed.as_str()), &mut busy)] {
            let log = lab.reconfigure(config);
            longest.extend(longest_turn(&log).filter(|_| config.is_none()));
            if config.is_some() {
                let server = lab.connect();
                crate::lab::wait_for("the probed interfaces are up", || {
                    server
                        .health("")
                        .is_ok_and(|h| h.len() == PROBED && h.iter().all(|h| h.verdict == "up"))
                });
            }
            link = Link::new(&lab);
            for (_, wake) in sample(&lab, &mut link, Mechanism::DdmEvent, flips) {
                match wake {
                    Some(d) => samples.push(d),
                    None => lost += 1,
                }
            }
        }
    }
    longest.extend(longest_turn(&lab.reconfigure(None)));
    drop(link);
    super::say_lost("health latency", lost);
    report.add(
        &workload,
        "no probed interface",
        "us",
        Summary::of_durations(&bare),
    );
    report.add(
        &workload,
        "100 probed interfaces",
        "us",
        Summary::of_durations(&busy),
    );
    report.relate(&workload, "no probed interface");
    if let Some(turn) = longest.iter().max() {
        report.note(format!(
            "health{suffix}: the router's longest turn with 100 probed interfaces: {turn} us"
        ));
    }
    if let (Some(b), Some(p)) = (
        report.find(&workload, "no probed interface"),
        report.find(&workload, "100 probed interfaces"),
    ) {
        let ratio = p.summary.p50 / b.summary.p50;
        report.target(
            format!("100 probed interfaces leave notification latency unchanged: p50 within 1.10x{suffix}"),
            format!("{ratio:.3}x"),
            ratio <= 1.10,
        );
    }
}

/// The `longest_turn_us` a stopped service logged.
fn longest_turn(log: &str) -> Option<u64> {
    log.lines()
        .rev()
        .find_map(|l| l.split("longest_turn_us=").nth(1))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

//! The probes of one interface: a task beside the router, never in it.
//! While the interface's link is connected it starts a round every
//! `interval_ms` (a probe to each target through the link: ICMP echo, or a
//! TCP connect), and reports each round, in order, once every target has
//! answered or `timeout_ms` has passed. Rounds may overlap (a timeout
//! longer than the interval). With `passive`, a round in which the link
//! received packets is reported as passed without a probe.
//!
//! Reports go to the router through a bounded queue that never waits: a
//! round that finds it full is counted as dropped. The task ends when the
//! router drops its `Probed` handle. Every interface's task runs on one
//! thread of their own (`Probing`), so that probing never competes with
//! the router's thread; each starts its rounds at its own phase of the
//! interval, so that many interfaces do not probe in one burst.

use super::config::{HealthConfig, Method, Target};
use super::echo::Echo;
use crate::links::LinkState;
use crate::ops::metrics::Counters;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

/// A round's outcome, for the router.
#[derive(Debug, Clone)]
pub struct HealthRound {
    pub handle: u32,
    /// The configuration the round was probed with (`Probed::configure`).
    pub generation: u64,
    /// Each target's RTT, in the table's order; None: lost.
    pub rtts: Vec<Option<Duration>>,
    /// The link received packets: passed without a probe.
    pub passive: bool,
}

/// The router's handle on an interface's probes.
#[derive(Debug)]
pub struct Probed {
    link: watch::Sender<Option<LinkState>>,
    config: watch::Sender<(u64, Arc<HealthConfig>)>,
}

impl Probed {
    /// The link as it is now (probed only while connected); the same
    /// state again changes nothing (rounds under way go on), whatever its
    /// counters say.
    pub fn link(&self, link: Option<LinkState>) {
        let link = link.map(LinkState::without_stats);
        self.link.send_if_modified(|current| {
            let modified = *current != link;
            *current = link;
            modified
        });
    }

    /// A new table, named by `generation` in the rounds that follow.
    pub fn configure(&self, generation: u64, config: Arc<HealthConfig>) {
        self.config.send_replace((generation, config));
    }
}

/// Where rounds go, and where those that found the queue full are
/// counted.
#[derive(Clone)]
pub struct Rounds {
    pub queue: mpsc::Sender<HealthRound>,
    pub counters: Arc<Counters>,
}

impl Rounds {
    fn report(&self, round: HealthRound) {
        if self.queue.try_send(round).is_err() {
            self.counters
                .health_rounds_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The probes' thread and its runtime.
#[derive(Clone)]
pub struct Probing {
    runtime: tokio::runtime::Handle,
    rounds: Rounds,
}

impl Probing {
    /// Starts the thread; rounds go to `rounds`. The thread lives as long
    /// as the process (an idle runtime costs nothing).
    pub fn start(rounds: Rounds) -> std::io::Result<Probing> {
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("ddm-probes".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match runtime {
                    Ok(runtime) => {
                        let _ = sender.send(Ok(runtime.handle().clone()));
                        runtime.block_on(std::future::pending::<()>());
                    }
                    Err(e) => {
                        let _ = sender.send(Err(e));
                    }
                }
            })?;
        let runtime = receiver
            .recv()
            .map_err(|_| std::io::Error::other("the probes' thread ended"))??;
        Ok(Probing { runtime, rounds })
    }

    /// Starts probing for interface `handle`.
    pub fn spawn(&self, handle: u32, generation: u64, config: Arc<HealthConfig>) -> Probed {
        let (link, link_changes) = watch::channel(None);
        let (config, config_changes) = watch::channel((generation, config));
        self.runtime.spawn(run(
            handle,
            link_changes,
            config_changes,
            self.rounds.clone(),
        ));
        Probed { link, config }
    }
}

async fn run(
    handle: u32,
    mut link: watch::Receiver<Option<LinkState>>,
    mut config: watch::Receiver<(u64, Arc<HealthConfig>)>,
    rounds: Rounds,
) {
    loop {
        let current = link.borrow_and_update().clone();
        let (generation, table) = config.borrow_and_update().clone();
        let probing = async {
            match current.filter(LinkState::is_connected) {
                Some(link) => probe(handle, &link.name, generation, &table, &rounds).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = probing => {}
            changed = link.changed() => if changed.is_err() { return },
            changed = config.changed() => if changed.is_err() { return },
        }
    }
}

/// A round under way.
struct Pending {
    seq: u16,
    deadline: Instant,
    sent: Instant,
    rtts: Vec<Option<Duration>>,
    answered: usize,
    passive: bool,
}

impl Pending {
    fn complete(&self, now: Instant) -> bool {
        self.passive || self.answered == self.rtts.len() || now >= self.deadline
    }
}

/// Probes `link` round after round, until the future is dropped.
async fn probe(handle: u32, link: &str, generation: u64, config: &HealthConfig, rounds: &Rounds) {
    let targets = config.parsed_targets();
    // Which target a reply is from: one lookup per reply, however many.
    let index_of: std::collections::HashMap<std::net::IpAddr, usize> = targets
        .iter()
        .enumerate()
        .map(|(i, t)| (t.address(), i))
        .collect();
    let echo = match config.method {
        Method::Icmp => {
            let v4 = targets.iter().any(|t| t.address().is_ipv4());
            let v6 = targets.iter().any(|t| t.address().is_ipv6());
            // A random identifier: two services, or a restart, never take
            // each other's replies.
            let identifier = (std::process::id() as u16) ^ (handle as u16).rotate_left(8);
            match Echo::open(link, v4, v6, identifier) {
                Ok(echo) => Some(echo),
                Err(e) => {
                    tracing::error!(
                        link,
                        "health probes cannot be sent (ICMP needs CAP_NET_RAW): {e}"
                    );
                    None
                }
            }
        }
        Method::Tcp => None,
    };
    let mut connects: JoinSet<(u16, usize, Option<Duration>)> = JoinSet::new();
    let mut pending: VecDeque<Pending> = VecDeque::new();
    // Its own phase: a fixed fraction of the interval, spread by handle.
    let spread = f64::from(handle.wrapping_mul(2_654_435_761)) / f64::from(u32::MAX);
    let phase = config.interval().mul_f64(spread);
    let mut interval = tokio::time::interval_at(Instant::now() + phase, config.interval());
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut seq: u16 = 0;
    let mut received = rx_packets(link);
    loop {
        let deadline = pending.front().map(|p| p.deadline);
        tokio::select! {
            _ = interval.tick() => {
                seq = seq.wrapping_add(1);
                let now = Instant::now();
                let mut round = Pending {
                    seq,
                    deadline: now + config.timeout(),
                    sent: now,
                    rtts: vec![None; targets.len()],
                    answered: 0,
                    passive: false,
                };
                if config.passive {
                    let now_received = rx_packets(link);
                    round.passive = now_received.is_some() && now_received != received;
                    received = now_received;
                }
                if !round.passive {
                    for (index, target) in targets.iter().enumerate() {
                        match (target, &echo) {
                            (Target::Icmp(address), Some(echo)) => {
                                let _ = echo.send(*address, seq);
                            }
                            (Target::Icmp(_), None) => {}
                            (Target::Tcp(address), _) => {
                                let (address, link) = (*address, link.to_owned());
                                let timeout = config.timeout();
                                connects.spawn(async move {
                                    let rtt = tokio::time::timeout(timeout, connect(address, &link))
                                        .await
                                        .ok()
                                        .flatten();
                                    (seq, index, rtt)
                                });
                            }
                        }
                    }
                }
                pending.push_back(round);
            }
            reply = async { echo.as_ref()?.receive().await.ok() }, if echo.is_some() => {
                if let Some(reply) = reply {
                    answer(&mut pending, reply.seq, index_of.get(&reply.from).copied());
                }
            }
            Some(Ok((seq, index, rtt))) = connects.join_next(), if !connects.is_empty() => {
                if rtt.is_some() {
                    answer(&mut pending, seq, Some(index));
                }
            }
            () = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            } => {}
        }
        let now = Instant::now();
        while pending.front().is_some_and(|p| p.complete(now)) {
            let Some(round) = pending.pop_front() else {
                break;
            };
            rounds.report(HealthRound {
                handle,
                generation,
                rtts: if round.passive {
                    Vec::new()
                } else {
                    round.rtts
                },
                passive: round.passive,
            });
        }
    }
}

/// Records an answer to round `seq` from target `index`.
fn answer(pending: &mut VecDeque<Pending>, seq: u16, index: Option<usize>) {
    let Some(index) = index else { return };
    let now = Instant::now();
    if let Some(round) = pending
        .iter_mut()
        .find(|p| p.seq == seq && now < p.deadline)
    {
        if let Some(slot @ None) = round.rtts.get_mut(index) {
            *slot = Some(now - round.sent);
            round.answered += 1;
        }
    }
}

/// A TCP connect through `link`: its time when the far end answered (an
/// accept, or a refusal: the path works either way).
async fn connect(address: std::net::SocketAddr, link: &str) -> Option<Duration> {
    let socket = match address {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .ok()?;
    socket.bind_device(Some(link.as_bytes())).ok()?;
    let started = Instant::now();
    match socket.connect(address).await {
        Ok(_) => Some(started.elapsed()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Some(started.elapsed()),
        Err(_) => None,
    }
}

/// The packets `link` has received, from sysfs.
fn rx_packets(link: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/sys/class/net/{link}/statistics/rx_packets"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

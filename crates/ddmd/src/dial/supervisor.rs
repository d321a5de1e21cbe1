//! One supervisor task per declared interface: it carries out what the
//! router decides (dial, hang up) and reports what happens (traffic on
//! the trigger, ready, failed, lost, idle) as inputs. It owns the
//! interface's processes, trigger device and routes; the router owns its
//! state. Orders are handled one at a time, so a dial ordered after a
//! hang-up starts once the hang-up is done.
//!
//! An attempt: the connect command starts; when the link is up the routes
//! move to it and held packets are sent again; with `ready = "link"` that
//! is CONNECTED, with `ready = "wireguard"` CONNECTED waits for a
//! handshake newer than the attempt (provoked by one datagram when no held
//! packet does it). Not ready in `connect_timeout_secs`: ERROR_NO_ANSWER.
//! A failure or loss is only reported: the router answers with a hang-up,
//! which ends the processes (SIGTERM for a supervised one, else the
//! disconnect command) and moves the routes back to the trigger.

use super::activity::Counters;
use super::command;
use super::declaration::{Declaration, DialMode, Ready, Route};
use super::launcher::{Launched, Launcher};
use super::leftovers;
use super::net::Net;
use super::sources::Sources;
use super::trigger::Trigger;
use super::wireguard;
use crate::links::{LinkState, LinkStats};
use ddm_proto::WinError;
use futures_channel::mpsc::TryRecvError;
use futures_util::StreamExt;
use std::collections::VecDeque;
use std::future::pending;
use std::io;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio_util::task::task_tracker::TaskTrackerToken;
use tokio_util::task::TaskTracker;

/// How often readiness is polled while waiting for a WireGuard handshake.
const HANDSHAKE_POLL: Duration = Duration::from_millis(5);
/// How long held packets have to start a WireGuard handshake themselves
/// before a probe helps: wireguard-go keeps, without sending, a packet
/// that reaches it before it has finished coming up.
const HELD_FIRST: Duration = Duration::from_millis(50);
/// Probes are sent again this often until the handshake comes.
const PROBE_AGAIN: Duration = Duration::from_secs(1);
/// How long a hang-up waits for the wireguard-go of a deleted tunnel to
/// let go of its API socket, so that the next dial can start a new one.
const WIREGUARD_RELEASE: Duration = Duration::from_secs(1);
/// How long a supervised connection has to end after SIGTERM.
const TERMINATE_GRACE: Duration = Duration::from_secs(5);

/// What the router orders.
#[derive(Debug)]
pub enum Order {
    /// The first link dump is in: set up the trigger and its routes, and
    /// adopt the link as connection `adopt` (found up after a restart), or
    /// clean up a link left behind.
    Start {
        adopt: Option<u64>,
    },
    Dial(u64),
    HangUp,
    /// Drop the held packets: no dial will come.
    Discard,
    /// The interface's kernel link changed or went away.
    Link(Option<LinkState>),
    /// The router knows nothing of the link the interface names now (its
    /// table leaves it out): read it.
    ReadLink,
    /// A new declaration (after a reload): hang up, take down the
    /// trigger, and wait for `Start`.
    Replace(Arc<Declaration>),
    /// The same declaration with other demand-dial filters (after a
    /// reload): the trigger takes them; nothing else changes.
    Refilter(Arc<Declaration>),
    /// Hang up, remove the routes and the trigger, and end.
    Stop(oneshot::Sender<()>),
    /// The DDM stopped (true): hang up, remove the routes and the trigger,
    /// and wait; or started again (false): set the trigger up again.
    Pause(bool),
}

/// Where the router sends a supervisor its orders. futures' unbounded
/// channel rather than tokio's: a router keeps one per declared
/// interface, thousands of them mostly idle, and tokio's takes 1.8 KiB
/// when made (a cache-padded channel and a first block of 32 slots) where
/// futures' takes about 120 bytes, and a small node per order sent.
pub type Orders = futures_channel::mpsc::UnboundedSender<Order>;
/// Where a supervisor takes its orders.
pub type OrderReceiver = futures_channel::mpsc::UnboundedReceiver<Order>;

/// A supervisor's orders: the router's end and the supervisor's.
pub fn orders() -> (Orders, OrderReceiver) {
    futures_channel::mpsc::unbounded()
}

/// What a supervisor reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// A packet for the routes arrived on the trigger.
    Demand,
    Ready(u64),
    /// The attempt failed, or the connection was lost.
    Failed(u64, WinError),
    Idle(u64),
    /// The demand interface's trigger device could not be made (a name
    /// taken by another link, no /dev/net/tun): traffic cannot dial it.
    NoTrigger(WinError),
    /// A connection ended: the bytes its link received and sent, and how
    /// long it was up (RRAS's accounting).
    Carried {
        rx_bytes: u64,
        tx_bytes: u64,
        connected: Duration,
    },
}

#[derive(Debug)]
pub struct Reported {
    pub handle: u32,
    pub report: Report,
}

/// What every supervisor shares.
#[derive(Clone)]
pub struct Surroundings {
    /// The service's socket: with an interface's name, its processes'
    /// mark (see `leftovers`).
    pub service: Arc<str>,
    pub net: Net,
    pub launcher: Launcher,
    pub reports: mpsc::Sender<Reported>,
    /// Attempts under way and disconnect commands running at once
    /// (`limits.max_dials_at_once`): one ordered past them waits its turn,
    /// in order, so that starting or stopping thousands of interfaces
    /// does not run thousands of commands at once; demand triggers are
    /// made in turns too.
    pub turns: Arc<Semaphore>,
    /// Demand interfaces whose first trigger is not yet made (or failed):
    /// the service says it is ready once there are none (see `serve`).
    pub setting_up: TaskTracker,
}

/// Starts the supervisor of interface `handle`.
pub fn spawn(
    handle: u32,
    declaration: Arc<Declaration>,
    left_behind: bool,
    surroundings: &Surroundings,
    tasks: &TaskTracker,
) -> Orders {
    let (orders, receiver) = orders();
    let src = declaration.trigger_sources();
    let Surroundings {
        service,
        net,
        launcher,
        reports,
        turns,
        setting_up,
    } = surroundings.clone();
    let supervisor = Supervisor {
        first_trigger: (declaration.dial == DialMode::Demand).then(|| setting_up.token()),
        trigger_turn: None,
        handle,
        service,
        left_behind,
        routes: declaration.routes(),
        declaration,
        net,
        launcher,
        reports,
        turns,
        trigger: None,
        trigger_index: None,
        src,
        link: None,
        phase: Phase::Idle,
        backlog: VecDeque::new(),
    };
    tasks.spawn(supervisor.run(receiver));
    orders
}

struct Supervisor {
    handle: u32,
    /// The service's socket: with the interface's name, its processes'
    /// mark.
    service: Arc<str>,
    /// A run before this one left processes of this interface.
    left_behind: bool,
    declaration: Arc<Declaration>,
    routes: Vec<Route>,
    net: Net,
    launcher: Launcher,
    reports: mpsc::Sender<Reported>,
    turns: Arc<Semaphore>,
    trigger: Option<Trigger>,
    trigger_index: Option<u32>,
    /// Held until the first trigger is made or has failed.
    first_trigger: Option<TaskTrackerToken>,
    /// The turn to make the trigger in, taken before the order that makes
    /// it is handled (see `run`).
    trigger_turn: Option<OwnedSemaphorePermit>,
    /// The source addresses of the trigger routes: `trigger_src` and
    /// `trigger_src6`, or else the link's addresses once a connection has
    /// shown them.
    src: Sources,
    link: Option<LinkState>,
    phase: Phase,
    /// Orders taken from the channel to see whether an end follows them
    /// (see `unless_ended`), not yet handled; None: the router is gone.
    backlog: VecDeque<Option<Order>>,
}

enum Phase {
    Idle,
    /// A dial ordered, waiting for its turn (see [`Surroundings::turns`]).
    Queued(u64),
    /// Boxed, as `Up`: an idle supervisor's task holds no room for them.
    Dialing(Box<Dialing>),
    Up(Box<Up>),
}

struct Dialing {
    attempt: u64,
    /// Its place among the attempts under way, given back when it ends.
    _turn: OwnedSemaphorePermit,
    child: Option<Launched>,
    started: SystemTime,
    deadline: Instant,
    /// The routes point at the link.
    routed: bool,
    /// When to send the next datagram that provokes a handshake.
    probe_at: Instant,
    /// When to read the handshakes next (a deadline, not a delay: packets
    /// caught meanwhile must not put it off).
    poll_at: Instant,
    /// A failure was reported; waiting for the hang-up.
    reported: bool,
}

struct Up {
    attempt: u64,
    child: Option<Launched>,
    /// The link's counters when it came up, and when they were read last
    /// (for idle time, and for what the connection carried if the link is
    /// gone by the hang-up).
    at_connect: Option<Counters>,
    since: Instant,
    counters: Option<Counters>,
    quiet_since: Instant,
    /// When to read the link's counters next.
    check_at: Instant,
    reported: bool,
}

/// What woke the supervisor.
enum Wake {
    Order(Option<Order>),
    Turn(OwnedSemaphorePermit),
    Packet(io::Result<()>),
    Exited(io::Result<ExitStatus>),
    Timeout,
    Poll,
    IdleCheck,
}

async fn exit_of(child: Option<&mut Launched>) -> io::Result<ExitStatus> {
    match child {
        Some(child) => child.wait().await,
        None => pending().await,
    }
}

async fn catch(trigger: Option<&mut Trigger>) -> io::Result<()> {
    match trigger {
        Some(trigger) => trigger.catch().await,
        None => pending().await,
    }
}

impl Supervisor {
    fn name(&self) -> &str {
        &self.declaration.name
    }

    fn link_up(&self) -> bool {
        self.link.as_ref().is_some_and(LinkState::is_connected)
    }

    async fn report(&self, report: Report) {
        let _ = self
            .reports
            .send(Reported {
                handle: self.handle,
                report,
            })
            .await;
    }

    async fn run(mut self, mut orders: OrderReceiver) {
        loop {
            let wake = match self.backlog.pop_front() {
                Some(order) => Wake::Order(order),
                None => self.next(&mut orders).await,
            };
            let wake = self.unless_ended(wake, &mut orders);
            if self.makes_trigger(&wake) {
                // Triggers are made in turns, and the turn is waited for
                // here: a thousand supervisors waiting for theirs at a
                // start hold nothing more, where boxed handlings waiting
                // would leave holes in the heap once done.
                self.trigger_turn = self.turns.clone().acquire_owned().await.ok();
            }
            // Boxed: the task of an idle supervisor (thousands of them)
            // then holds only what waits, not room for the largest thing
            // it ever does.
            if !Box::pin(self.handle(wake)).await {
                return;
            }
        }
    }

    /// `wake`, or the end of the supervisor if one is queued behind it
    /// (Stop, or the router gone): the end makes moot every order before
    /// it. An interface removed by a reload must not run a dial ordered
    /// before its removal while the interface declared in its place dials
    /// the same link. What those orders said of the link still counts (the
    /// hang-up removes the routes through it).
    fn unless_ended(&mut self, wake: Wake, orders: &mut OrderReceiver) -> Wake {
        let Wake::Order(Some(order)) = wake else {
            return wake;
        };
        while self.backlog.back().is_none_or(Option::is_some) {
            match orders.try_recv() {
                Ok(queued) => self.backlog.push_back(Some(queued)),
                Err(TryRecvError::Closed) => self.backlog.push_back(None),
                Err(TryRecvError::Empty) => break,
            }
        }
        let Some(end) = self
            .backlog
            .iter()
            .position(|o| matches!(o, None | Some(Order::Stop(_))))
        else {
            return Wake::Order(Some(order));
        };
        for moot in std::iter::once(Some(order)).chain(self.backlog.drain(..end)) {
            if let Some(Order::Link(link)) = moot {
                self.link = link;
            }
        }
        Wake::Order(self.backlog.pop_front().flatten())
    }

    /// Whether handling `wake` makes the demand trigger.
    fn makes_trigger(&self, wake: &Wake) -> bool {
        self.declaration.dial == DialMode::Demand
            && self.trigger.is_none()
            && matches!(
                wake,
                Wake::Order(Some(Order::Start { .. } | Order::Pause(false)))
            )
    }

    /// Acts on what woke it; false when the supervisor ends.
    async fn handle(&mut self, wake: Wake) -> bool {
        match wake {
            Wake::Order(Some(Order::Stop(done))) => {
                self.stop().await;
                let _ = done.send(());
                return false;
            }
            Wake::Order(None) => {
                self.stop().await;
                return false;
            }
            Wake::Order(Some(order)) => self.on_order(order).await,
            Wake::Turn(turn) => self.on_turn(turn).await,
            Wake::Packet(caught) => self.on_packet(caught).await,
            Wake::Exited(status) => self.on_exit(status).await,
            Wake::Timeout => self.fail(WinError::ERROR_NO_ANSWER).await,
            Wake::Poll => self.poll_handshake().await,
            Wake::IdleCheck => self.check_idle().await,
        }
        true
    }

    async fn next(&mut self, orders: &mut OrderReceiver) -> Wake {
        let link_up = self.link_up();
        let declaration = &self.declaration;
        let catching = !matches!(self.phase, Phase::Up(_));
        let queued = matches!(self.phase, Phase::Queued(_));
        let turns = self.turns.clone();
        let (child, timeout, poll, idle_check) = match &mut self.phase {
            Phase::Idle | Phase::Queued(_) => (None, None, None, None),
            Phase::Dialing(d) => (
                d.child.as_mut(),
                (!d.reported).then_some(d.deadline),
                (!d.reported && d.routed && link_up && declaration.ready == Ready::Wireguard)
                    .then_some(d.poll_at),
                None,
            ),
            Phase::Up(u) => (
                u.child.as_mut(),
                None,
                None,
                (!u.reported
                    && declaration.dial == DialMode::Demand
                    && declaration.idle_disconnect_secs > 0)
                    .then_some(u.check_at),
            ),
        };
        let trigger = self.trigger.as_mut().filter(|_| catching);
        // One timer for the earliest of the three: an idle supervisor's
        // task holds one sleep, not three.
        let first = [timeout, poll, idle_check].into_iter().flatten().min();
        tokio::select! {
            biased;
            order = orders.next() => Wake::Order(order),
            Ok(turn) = turns.acquire_owned(), if queued => Wake::Turn(turn),
            status = exit_of(child) => Wake::Exited(status),
            () = super::sleep_until(first) => {
                if timeout == first {
                    Wake::Timeout
                } else if poll == first {
                    Wake::Poll
                } else {
                    Wake::IdleCheck
                }
            }
            caught = catch(trigger) => Wake::Packet(caught),
        }
    }

    async fn on_order(&mut self, order: Order) {
        match order {
            Order::Start { adopt } => self.start(adopt).await,
            Order::Dial(attempt) => self.dial(attempt).await,
            Order::HangUp => self.hang_up().await,
            Order::Discard => self.discard_held(),
            Order::Link(link) => {
                let before = std::mem::replace(&mut self.link, link);
                self.progress(before.map(|l| l.index)).await;
            }
            Order::ReadLink => self.link = self.read_link().await,
            Order::Replace(declaration) => {
                self.stop().await;
                if declaration.link != self.declaration.link {
                    self.link = None;
                }
                self.routes = declaration.routes();
                self.src = declaration.trigger_sources();
                self.declaration = declaration;
            }
            Order::Refilter(declaration) => {
                if let Some(trigger) = &mut self.trigger {
                    trigger.set_filter(declaration.filter.clone());
                }
                self.declaration = declaration;
            }
            Order::Pause(true) => self.stop().await,
            Order::Pause(false) => self.set_up_demand().await,
            Order::Stop(_) => unreachable!("handled by run"),
        }
    }

    async fn start(&mut self, adopt: Option<u64>) {
        self.set_up_demand().await;
        match adopt {
            Some(attempt) => {
                tracing::info!(interface = self.name(), link = ?self.declaration.link, "adopted the link, found up");
                // What it carried before the start is not this run's to
                // count: accounting starts now.
                let at_connect = self.counters(None).await;
                self.phase = Phase::Up(Box::new(Up {
                    attempt,
                    child: None,
                    at_connect,
                    since: Instant::now(),
                    counters: None,
                    quiet_since: Instant::now(),
                    check_at: Instant::now(),
                    reported: false,
                }));
                self.route_to_link().await;
            }
            None => {
                if self.link.is_some() {
                    tracing::info!(interface = self.name(), link = ?self.declaration.link, "cleaning up the link left behind");
                    self.disconnect_command().await;
                }
                // What a run before this one left (after a SIGKILL).
                if std::mem::take(&mut self.left_behind) {
                    leftovers::end(self.mark(), leftovers::GRACE).await;
                }
            }
        }
    }

    /// A demand interface's trigger and routes, or the report that they
    /// cannot be made.
    async fn set_up_demand(&mut self) {
        if self.declaration.dial != DialMode::Demand || self.trigger.is_some() {
            return;
        }
        let turn = match self.trigger_turn.take() {
            Some(turn) => Ok(turn),
            None => self.turns.clone().acquire_owned().await,
        };
        let made = self.set_up_trigger().await;
        drop(turn);
        self.first_trigger = None;
        if let Err(e) = made {
            tracing::error!(
                interface = self.name(),
                "cannot set up the trigger device {:?}: {e}",
                self.declaration.trigger_device
            );
            self.report(Report::NoTrigger(WinError::ERROR_INTERFACE_HAS_NO_DEVICES))
                .await;
        }
    }

    async fn set_up_trigger(&mut self) -> io::Result<()> {
        let declaration = self.declaration.clone();
        let trigger = Trigger::create(
            &declaration.trigger_device,
            declaration.hold_packets,
            declaration.filter.clone(),
        )
        .await?;
        let index = self
            .net
            .index_of(&declaration.trigger_device)
            .await?
            .ok_or_else(|| io::Error::other("the tun vanished"))?;
        self.net.set_up(index).await?;
        for src in self.src.iter() {
            self.net.add_address(index, src).await?;
        }
        self.net.route_via(&self.routes, index, self.src).await?;
        self.trigger = Some(trigger);
        self.trigger_index = Some(index);
        Ok(())
    }

    async fn dial(&mut self, attempt: u64) {
        if !matches!(self.phase, Phase::Idle) {
            self.hang_up().await;
        }
        match self.turns.clone().try_acquire_owned() {
            Ok(turn) => self.start_attempt(attempt, turn).await,
            Err(_) => self.phase = Phase::Queued(attempt),
        }
    }

    async fn on_turn(&mut self, turn: OwnedSemaphorePermit) {
        if let Phase::Queued(attempt) = self.phase {
            self.start_attempt(attempt, turn).await;
        }
    }

    /// Runs the connect command of `attempt`, whose turn it is.
    async fn start_attempt(&mut self, attempt: u64, turn: OwnedSemaphorePermit) {
        let (child, failure) = match command::start(
            &self.launcher,
            &self.declaration.name,
            &self.mark(),
            "connect",
            &self.declaration.connect,
        )
        .await
        {
            Ok(child) => (Some(child), None),
            Err(error) => (None, Some(error)),
        };
        self.phase = Phase::Dialing(Box::new(Dialing {
            attempt,
            _turn: turn,
            child,
            started: SystemTime::now(),
            deadline: Instant::now() + self.declaration.connect_timeout(),
            routed: false,
            probe_at: Instant::now(),
            poll_at: Instant::now(),
            reported: failure.is_some(),
        }));
        match failure {
            None => self.progress(None).await,
            Some(error) => self.report(Report::Failed(attempt, error)).await,
        }
    }

    /// Acts on the link's state: routes and readiness while dialing, loss
    /// while up. The state is read from the kernel afresh: a notification
    /// queued behind a hang-up and a dial may be older than both, and must
    /// not make a new attempt look ready (or a new connection look lost).
    /// `before`: the index of the link known before the last notification.
    async fn progress(&mut self, before: Option<u32>) {
        let mut stats = None;
        if matches!(self.phase, Phase::Dialing(_) | Phase::Up(_)) {
            let announced = self.link.take();
            self.link = self.link_now(announced.as_ref().map(|l| l.index), before);
            // The counters the notification carried, if it named the link
            // there is now.
            stats = announced
                .filter(|a| self.link.as_ref().is_some_and(|now| now.index == a.index))
                .and_then(|a| a.stats);
        }
        let link_up = self.link_up();
        match &mut self.phase {
            Phase::Dialing(d) if !d.reported && link_up => {
                let attempt = d.attempt;
                if !d.routed {
                    d.routed = true;
                    if self.route_to_link().await {
                        // Held packets went out after the counters were
                        // read: not the connection's start.
                        stats = None;
                    }
                }
                if self.declaration.ready == Ready::Link {
                    self.become_up(attempt, stats).await;
                }
            }
            Phase::Up(_) if !link_up => self.lost("link lost").await,
            _ => {}
        }
    }

    /// The connection is lost (`why`): reported once, the hang-up follows.
    async fn lost(&mut self, why: &str) {
        let Phase::Up(u) = &mut self.phase else {
            return;
        };
        if u.reported {
            return;
        }
        u.reported = true;
        let attempt = u.attempt;
        tracing::info!(interface = self.name(), "{why}");
        self.report(Report::Failed(
            attempt,
            WinError::ERROR_REMOTE_DISCONNECTION,
        ))
        .await;
    }

    /// The interface's link now: the one the notifications name
    /// (`announced`), else the one known before them, if it still exists
    /// under the declared name. A link there under another index is
    /// announced by a notification still to come. (Asked by index, at once
    /// and without the RTNL lock: see `link_ioctl`.)
    fn link_now(&self, announced: Option<u32>, before: Option<u32>) -> Option<LinkState> {
        let name = &self.declaration.link;
        announced
            .into_iter()
            .chain(before.filter(|b| Some(*b) != announced))
            .find_map(|index| match self.net.link_at(index, name) {
                Ok(now) => now,
                Err(e) => {
                    tracing::debug!(interface = self.name(), "cannot read the link: {e}");
                    None
                }
            })
    }

    /// The declared link now, asked by its name (rtnetlink: by ioctl the
    /// kernel would run modprobe for a name no link has).
    async fn read_link(&self) -> Option<LinkState> {
        let name = &self.declaration.link;
        match self.net.index_of(name).await {
            Ok(index) => self.net.link_at(index?, name).ok()?,
            Err(e) => {
                tracing::debug!(interface = self.name(), "cannot read the link: {e}");
                None
            }
        }
    }

    async fn link_exists(&self) -> bool {
        matches!(self.net.index_of(&self.declaration.link).await, Ok(Some(_)))
    }

    /// The link's WireGuard peers, read off the runtime's thread (the call
    /// blocks); None when they cannot be read.
    async fn peers(&self) -> Option<wireguard::Peers> {
        let link = self.declaration.link.clone();
        tokio::task::spawn_blocking(move || wireguard::peers(&link))
            .await
            .ok()?
            .ok()
    }

    /// What idle time is measured from (see `activity`); None when the
    /// link cannot be read.
    /// The link's counters now: `read` when they were just read, else
    /// read from the kernel.
    async fn counters(&self, read: Option<LinkStats>) -> Option<Counters> {
        let stats = match read {
            Some(stats) => stats,
            None => self.net.stats(&self.declaration.link).await.ok()??,
        };
        let tunnel_tx_bytes = match self.declaration.ready {
            Ready::Wireguard => self.peers().await.map(|peers| peers.tx_bytes),
            Ready::Link => None,
        };
        Some(Counters {
            rx_packets: stats.rx_packets,
            tx_packets: stats.tx_packets,
            rx_bytes: stats.rx_bytes,
            tx_bytes: stats.tx_bytes,
            tunnel_tx_bytes,
        })
    }

    /// The attempt is ready: the connection is up, its counters starting
    /// at `stats` when they were just read.
    async fn become_up(&mut self, attempt: u64, stats: Option<LinkStats>) {
        let child = match &mut self.phase {
            Phase::Dialing(d) => d.child.take(),
            _ => None,
        };
        let counters = self.counters(stats).await;
        self.phase = Phase::Up(Box::new(Up {
            attempt,
            child,
            at_connect: counters,
            since: Instant::now(),
            counters,
            quiet_since: Instant::now(),
            check_at: Instant::now() + idle_interval(&self.declaration),
            reported: false,
        }));
        self.report(Report::Ready(attempt)).await;
    }

    /// Routes to the link and sends the held packets; whether it sent any.
    async fn route_to_link(&mut self) -> bool {
        let Some(index) = self.link.as_ref().map(|l| l.index) else {
            return false;
        };
        if let Err(e) = self
            .net
            .route_via(&self.routes, index, self.declaration.trigger_sources())
            .await
        {
            tracing::warn!(
                interface = self.name(),
                "cannot route through the link: {e}"
            );
        }
        let link_addresses = self.learn_src(index).await;
        let Some(trigger) = &mut self.trigger else {
            return false;
        };
        match trigger.release(&self.declaration.link, link_addresses) {
            Ok(0) => false,
            Ok(sent) => {
                if let Phase::Dialing(d) = &mut self.phase {
                    d.probe_at = Instant::now() + HELD_FIRST;
                }
                if trigger.dropped > 0 {
                    tracing::info!(
                        interface = ?self.declaration.name,
                        sent,
                        dropped_in_all = trigger.dropped,
                        "held packets sent again; some did not fit (hold_packets)"
                    );
                } else {
                    tracing::debug!(interface = ?self.declaration.name, sent, "held packets sent again");
                }
                true
            }
            Err(e) => {
                tracing::warn!(interface = ?self.declaration.name, "cannot send held packets: {e}");
                // Some may have gone.
                true
            }
        }
    }

    /// For each family without `trigger_src`/`trigger_src6`: the link's
    /// address, which the trigger device and its routes take from now on,
    /// so that later packets routed to the trigger leave from the
    /// tunnel's address. Returns those learned (none of a family given).
    async fn learn_src(&mut self, link: u32) -> Sources {
        let given = self.declaration.trigger_sources();
        // Nothing to learn without a trigger (a persistent or manual
        // interface), or with both sources given.
        if self.trigger.is_none() || (given.v4.is_some() && given.v6.is_some()) {
            return Sources::default();
        }
        let Ok(link_addresses) = self.net.addresses(link).await else {
            return Sources::default();
        };
        let mut learned = Sources::default();
        for address in link_addresses.iter() {
            if given.of_family(address).is_some() {
                continue;
            }
            learned.set(address);
            if self.src.of_family(address) == Some(address) {
                continue;
            }
            if let Some(trigger) = self.trigger_index {
                if let Err(e) = self.net.add_address(trigger, address).await {
                    tracing::debug!(
                        interface = self.name(),
                        "cannot give the trigger {address}: {e}"
                    );
                    continue;
                }
            }
            tracing::info!(interface = self.name(), %address, "trigger routes take the link's address as their source");
            self.src.set(address);
        }
        learned
    }

    async fn poll_handshake(&mut self) {
        let Phase::Dialing(d) = &self.phase else {
            return;
        };
        let (attempt, started, probe_at) = (d.attempt, d.started, d.probe_at);
        if let Phase::Dialing(d) = &mut self.phase {
            d.poll_at = Instant::now() + HANDSHAKE_POLL;
        }
        let Some(peers) = self.peers().await else {
            return;
        };
        if wireguard::handshake_since(&peers, started) {
            self.become_up(attempt, None).await;
            return;
        }
        if Instant::now() >= probe_at {
            if let Phase::Dialing(d) = &mut self.phase {
                d.probe_at = Instant::now() + PROBE_AGAIN;
            }
            if let Some(to) = peers.probe {
                if let Err(e) = wireguard::provoke_handshake(&self.declaration.link, to) {
                    tracing::debug!(interface = self.name(), "cannot provoke a handshake: {e}");
                }
            }
        }
    }

    async fn check_idle(&mut self) {
        let counters = self.counters(None).await;
        let idle = Duration::from_secs(self.declaration.idle_disconnect_secs);
        let interval = idle_interval(&self.declaration);
        let Phase::Up(u) = &mut self.phase else {
            return;
        };
        u.check_at = Instant::now() + interval;
        let active = match (&counters, &u.counters) {
            (Some(now), Some(before)) => now.active_since(before),
            (now, before) => now != before,
        };
        u.counters = counters;
        if active {
            u.quiet_since = Instant::now();
        } else if u.quiet_since.elapsed() >= idle {
            u.reported = true;
            let attempt = u.attempt;
            tracing::info!(interface = self.name(), "idle");
            self.report(Report::Idle(attempt)).await;
        }
    }

    async fn on_packet(&mut self, caught: io::Result<()>) {
        if let Err(e) = caught {
            tracing::error!(
                interface = self.name(),
                "the trigger device failed: {e}; demand dialing stops"
            );
            self.trigger = None;
            return;
        }
        let first = self.trigger.as_ref().is_some_and(|t| t.held_count() == 1);
        if matches!(self.phase, Phase::Idle) && first {
            self.report(Report::Demand).await;
        }
    }

    async fn on_exit(&mut self, status: io::Result<ExitStatus>) {
        let error = status.map_or(WinError::ERROR_PROCESS_ABORTED, command::error_of);
        let supervised = self.declaration.is_supervised();
        match &mut self.phase {
            Phase::Dialing(d) => {
                d.child = None;
                if supervised || !error.is_ok() {
                    d.reported = true;
                    let attempt = d.attempt;
                    let error = if error.is_ok() {
                        WinError::ERROR_FROM_DEVICE
                    } else {
                        error
                    };
                    tracing::info!(
                        interface = self.name(),
                        code = error.0,
                        "connect command ended before ready"
                    );
                    self.report(Report::Failed(attempt, error)).await;
                }
            }
            Phase::Up(u) => {
                u.child = None;
                // A connect command that sets things up may still be
                // finishing when the link comes up: only a supervised
                // process is the connection.
                if !supervised {
                    if !error.is_ok() {
                        tracing::warn!(
                            interface = self.name(),
                            code = error.0,
                            "connect command failed after the link came up"
                        );
                    }
                    return;
                }
                self.lost("connection process ended").await;
            }
            Phase::Idle | Phase::Queued(_) => {}
        }
    }

    async fn fail(&mut self, error: WinError) {
        if let Phase::Dialing(d) = &mut self.phase {
            d.reported = true;
            let attempt = d.attempt;
            tracing::info!(interface = self.name(), "not ready in time");
            self.report(Report::Failed(attempt, error)).await;
        }
    }

    /// Drops the held packets, saying how many went (and how many the
    /// trigger has dropped in all, over its limit included).
    fn discard_held(&mut self) {
        let Some(trigger) = &mut self.trigger else {
            return;
        };
        let (held, before) = (trigger.held_count(), trigger.dropped);
        trigger.discard();
        if held > 0 || trigger.dropped > before {
            tracing::info!(
                interface = ?self.declaration.name,
                dropped = held,
                dropped_in_all = trigger.dropped,
                "held packets dropped: no connection for them"
            );
        }
    }

    /// The mark of this interface's processes.
    fn mark(&self) -> String {
        leftovers::mark(&self.service, &self.declaration.name)
    }

    async fn disconnect_command(&self) {
        if !self.declaration.disconnect.is_empty() {
            // A hang-up's command waits its turn as a dial does.
            let _turn = self.turns.clone().acquire_owned().await;
            command::run(
                &self.launcher,
                &self.declaration.name,
                &self.mark(),
                "disconnect",
                &self.declaration.disconnect,
                self.declaration.connect_timeout(),
            )
            .await;
        }
    }

    /// Ends the attempt or connection and puts the routes back; a
    /// connection's bytes are reported first.
    async fn hang_up(&mut self) {
        let child = match std::mem::replace(&mut self.phase, Phase::Idle) {
            // Nothing was started: nothing to undo.
            Phase::Idle | Phase::Queued(_) => return,
            Phase::Dialing(d) => d.child,
            Phase::Up(u) => {
                self.account(&u).await;
                u.child
            }
        };
        if let Some(mut child) = child {
            command::terminate(&self.declaration.name, &mut child, TERMINATE_GRACE).await;
        }
        match self.trigger_index {
            Some(trigger) => {
                if let Err(e) = self.net.route_via(&self.routes, trigger, self.src).await {
                    tracing::warn!(
                        interface = self.name(),
                        "cannot route back to the trigger: {e}"
                    );
                }
            }
            None => {
                if let Some(link) = &self.link {
                    let _ = self.net.delete_routes(&self.routes, link.index).await;
                }
            }
        }
        self.disconnect_command().await;
        leftovers::end(self.mark(), leftovers::GRACE).await;
        if self.declaration.ready == Ready::Wireguard && !self.link_exists().await {
            wireguard::wait_released(&self.declaration.link, WIREGUARD_RELEASE).await;
        }
        self.discard_held();
        tracing::info!(interface = self.name(), "hung up");
    }

    /// Reports what connection `up` carried: the link's counters now (or
    /// when last read, if it is gone) less those when it came up.
    async fn account(&self, up: &Up) {
        let Some(at_connect) = up.at_connect else {
            return;
        };
        let Some(now) = self.counters(None).await.or(up.counters) else {
            return;
        };
        self.report(Report::Carried {
            rx_bytes: now.rx_bytes.saturating_sub(at_connect.rx_bytes),
            tx_bytes: now.tx_bytes.saturating_sub(at_connect.tx_bytes),
            connected: up.since.elapsed(),
        })
        .await;
    }

    async fn stop(&mut self) {
        self.hang_up().await;
        if let Some(index) = self.trigger_index.take() {
            let _ = self.net.delete_routes(&self.routes, index).await;
        }
        if let Some(trigger) = self.trigger.take() {
            // In turns, as they were made.
            let _turn = self.turns.clone().acquire_owned().await;
            trigger.close().await;
        }
    }
}

/// How often a connected demand interface's counters are read.
fn idle_interval(declaration: &Declaration) -> Duration {
    (Duration::from_secs(declaration.idle_disconnect_secs) / 5)
        .clamp(Duration::from_millis(100), Duration::from_secs(5))
}

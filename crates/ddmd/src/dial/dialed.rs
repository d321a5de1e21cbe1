//! The router's side of the declared interfaces: their machines, their
//! kernel links, the callers waiting for an attempt, and the orders that
//! go to their supervisors. The router calls in with what happened and
//! commits the transitions that come back.

use super::declaration::{Declaration, Declared, DialMode};
use super::group_routes::RouteOrder;
use super::groups::{Groups, Member, Switched};
use super::hours::{DialoutHours, WeekTime};
use super::lookup::Lookup;
use super::machine::{Action, Connecting, Machine};
use super::supervisor::{self, Order, Orders, Report, Reported};
use crate::core::notify::Target;
use crate::core::outbox::{LateReply, Outbox};
use crate::core::table::{InterfaceTable, Transition};
use crate::groups::choose::Can;
use crate::health::config::{HealthConfig, HealthTables};
use crate::health::monitor::{Monitor, Verdict};
use crate::health::prober::{HealthRound, Probed};
use crate::links::LinkState;
use ddm_proto::message::{
    FilterRule, GroupInfo, GroupMember, Interface, InterfaceConnect, InterfaceHealth,
};
use ddm_proto::model::{interface_type, ConnectionState};
use ddm_proto::WinError;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// Starts the supervisor of an interface and returns its order queue.
pub type Spawner = Box<dyn FnMut(u32, Arc<Declaration>) -> Orders + Send>;

/// Starts the probes of an interface (handle, generation, table).
pub type ProbeSpawner = Box<dyn FnMut(u32, u64, Arc<HealthConfig>) -> Probed + Send>;

/// The last error of a connection whose path stopped working.
pub const HEALTH_DOWN: WinError = WinError::ERROR_NO_ANSWER;

/// Why an attempt failed whose link was ready but whose health never came
/// up.
const HEALTH_LATE: &str = "health: no round passed within connect_timeout_secs";

/// The local time, for dial-out hours.
pub trait Clock: Send {
    fn week_time(&self) -> WeekTime;
}

/// The system's local time.
pub struct LocalClock;

impl Clock for LocalClock {
    fn week_time(&self) -> WeekTime {
        WeekTime::now()
    }
}

/// Someone waiting for an attempt to complete.
pub enum Waiter {
    /// A Connect's event: signaled once.
    Event {
        session: u64,
        event: u64,
        target: Target,
        /// The session's, for a target that is the session.
        outbox: Arc<Outbox>,
    },
    /// A synchronous Connect's reply.
    Reply { session: u64, reply: LateReply },
}

struct DialedInterface {
    handle: u32,
    declaration: Arc<Declaration>,
    hours: DialoutHours,
    machine: Machine,
    orders: Orders,
    link: Option<LinkState>,
    waiters: Vec<Waiter>,
    /// Boxed: most interfaces have none, and keep no room for it.
    health: Option<Box<Health>>,
    /// Its entry in `Dialed::timers`.
    timer: Option<Instant>,
}

/// An interface's path health: its verdict, and its probes.
struct Health {
    monitor: Monitor,
    probed: Probed,
    /// Names the table the rounds must have been probed with.
    generation: u64,
    /// A dialed interface whose attempt is ready (its link up) waits for
    /// its health until this deadline, as CONNECTING.
    ready: Option<(u64, Instant)>,
}

impl DialedInterface {
    fn order(&self, order: Order) {
        let _ = self.orders.unbounded_send(order);
    }

    fn apply(&self, actions: Vec<Action>) {
        for action in actions {
            self.order(match action {
                Action::Dial(attempt) => Order::Dial(attempt),
                Action::HangUp => Order::HangUp,
                Action::Discard => Order::Discard,
            });
        }
    }

    /// Its link changed (it was connected: `was`): its probes and its
    /// health are told (a watched interface's state follows in `step`).
    fn link_changed(&mut self, was: bool) {
        let connected = self.link.as_ref().is_some_and(LinkState::is_connected);
        if let Some(health) = &mut self.health {
            health.probed.link(self.link.clone());
            if connected && !was {
                health.monitor.link_up();
            } else if was && !connected {
                health.monitor.link_down();
            }
        }
    }

    /// What this interface can do for a group now.
    fn member(&self) -> Member {
        let state = self.machine.state();
        let demand = self.declaration.dial == DialMode::Demand;
        let judged = self
            .health
            .as_ref()
            .is_none_or(|h| h.monitor.verdict() != Verdict::Pending);
        let link_up = self.link.as_ref().is_some_and(LinkState::is_connected);
        let can = match state {
            ConnectionState::Connected => Can::Carry,
            _ if link_up && !judged => Can::Pending,
            ConnectionState::Disconnected | ConnectionState::Connecting
                if demand && self.machine.may_dial_now() =>
            {
                Can::Trigger
            }
            _ => Can::No,
        };
        Member {
            can,
            link: self.declaration.link.clone(),
            trigger: self.declaration.trigger_device.clone(),
        }
    }

    /// When something of its own is due: its machine's timer, or the end
    /// of its attempt's wait for health.
    fn due(&self) -> Option<Instant> {
        let ready = self.health.as_ref().and_then(|h| Some(h.ready?.1));
        self.machine.deadline().into_iter().chain(ready).min()
    }

    /// A watched interface: CONNECTED while its link is connected and its
    /// health (if any) up; `error` is its last error when it leaves.
    fn observe(&mut self, error: WinError) {
        let connected = self.link.as_ref().is_some_and(LinkState::is_connected);
        let healthy = self
            .health
            .as_ref()
            .is_none_or(|h| h.monitor.verdict() == Verdict::Up);
        self.machine.observe(connected && healthy, error);
    }

    fn to_interface(&self) -> Interface {
        let figures = self.health.as_ref().map(|h| h.monitor.figures());
        Interface {
            health: figures.as_ref().map_or("", |f| f.verdict.name()).into(),
            health_rtt_us: figures
                .as_ref()
                .and_then(|f| f.rtt)
                .map(|rtt| rtt.as_micros() as u64),
            health_loss_percent: figures.as_ref().map_or(0.0, |f| f.loss_percent),
            name: self.declaration.name.clone(),
            handle: self.handle,
            enabled: self.machine.enabled(),
            if_type: interface_type::FULL_ROUTER,
            connection_state: self.machine.state() as u32,
            unreachability_reasons: self.machine.unreachability_reasons(),
            last_error: self.machine.last_error().0,
            dial: self.declaration.dial.wire() as i32,
            link: self.declaration.link.clone(),
            dial_filter: self
                .declaration
                .filter
                .as_ref()
                .map_or("", |f| f.key())
                .into(),
            dial_filter_rules: self
                .declaration
                .filter
                .iter()
                .flat_map(|f| f.counts())
                .map(|(rule, matched)| FilterRule {
                    rule: rule.into(),
                    matched,
                })
                .collect(),
            dial_refused: self.declaration.filter.as_ref().map_or(0, |f| f.refused()),
            // The router's state dates it.
            since_unix_ns: 0,
        }
    }
}

pub struct Dialed {
    interfaces: BTreeMap<u32, DialedInterface>,
    /// The interfaces by link and trigger name, and by link index.
    lookup: Lookup,
    spawn: Spawner,
    probe: Option<ProbeSpawner>,
    tables: HealthTables,
    /// The last generation given to a health table.
    generation: u64,
    groups: Groups,
    clock: Box<dyn Clock>,
    /// During a link dump: the indexes of claimed links it reported.
    reconciling: Option<HashSet<u32>>,
    /// `start` has run: watched interfaces follow their links.
    started: bool,
    /// Each interface's next due time, in order: the next deadline, and
    /// the interfaces due, without a pass over thousands of them.
    timers: BTreeSet<(Instant, u32)>,
    /// The interfaces with dial-out hours (looked at every minute).
    with_hours: BTreeSet<u32>,
}

impl Dialed {
    pub fn new(spawn: Spawner, clock: Box<dyn Clock>) -> Self {
        Dialed {
            interfaces: BTreeMap::new(),
            lookup: Lookup::default(),
            spawn,
            probe: None,
            tables: HealthTables::new(),
            generation: 0,
            groups: Groups::default(),
            clock,
            reconciling: None,
            started: false,
            timers: BTreeSet::new(),
            with_hours: BTreeSet::new(),
        }
    }

    /// Probes the paths of interfaces with `health` through `spawn`.
    pub fn probing(&mut self, spawn: ProbeSpawner) {
        self.probe = Some(spawn);
    }

    /// Adds the declared interfaces of the configuration the service
    /// starts with, with the handles `handle` gives, and the health tables
    /// they name; `start` starts them.
    pub fn declare(&mut self, declared: Declared, mut handle: impl FnMut() -> u32) {
        self.tables = declared.health;
        for declaration in declared.interfaces {
            self.add(handle(), Arc::new(declaration));
        }
        self.groups.set(declared.groups);
    }

    /// Moves the groups' routes through `orders`.
    pub fn routing_groups(&mut self, orders: mpsc::UnboundedSender<RouteOrder>) {
        self.groups.routing(orders);
    }

    /// After an input: each group's carrier chosen again from what its
    /// members can do now; the switches, and the transitions of demand
    /// members no group needs any more (hung up).
    pub fn regroup(&mut self) -> (Vec<Transition>, Vec<Switched>) {
        // Before the start, members' links are not all known yet.
        if self.groups.is_empty() || !self.started {
            return (Vec::new(), Vec::new());
        }
        let interfaces = &self.interfaces;
        let member = |name: &str| {
            let d = interfaces.values().find(|d| d.declaration.name == name)?;
            Some(d.member())
        };
        let switches = self.groups.decide(member, Instant::now());
        let mut transitions = Vec::new();
        for switch in &switches {
            tracing::info!(group = switch.group, "group switch: {}", switch.describe());
            let Some(from) = &switch.from else { continue };
            if self.groups.carries(from) {
                continue;
            }
            if let Some(handle) = self.handle_of(from) {
                let reason = format!(
                    "not needed: group {} moved to {}",
                    switch.group,
                    switch.to.as_deref().unwrap_or("none")
                );
                transitions.extend(self.step(handle, reason, |d| d.machine.not_needed()));
            }
        }
        (transitions, switches)
    }

    /// The groups with their members' states and health: `ddm groups`,
    /// the metrics.
    pub fn groups(&self) -> Vec<GroupInfo> {
        self.groups
            .views()
            .into_iter()
            .map(|g| GroupInfo {
                members: g
                    .members
                    .iter()
                    .map(|name| {
                        let interface = self.handle_of(name).and_then(|h| self.get(h));
                        GroupMember {
                            name: name.clone(),
                            state: interface.as_ref().map_or(0, |i| i.connection_state),
                            health: interface.map(|i| i.health).unwrap_or_default(),
                            carrying: g.carrier.as_ref() == Some(name),
                        }
                    })
                    .collect(),
                name: g.name,
                routes: g.routes,
                carrier: g.carrier.unwrap_or_default(),
                via_trigger: g.via_trigger,
                since_unix_ns: g.since.map_or(0, ddm_proto::model::unix_ns),
                switches: g.switches,
                failback_secs: g.failback_secs,
            })
            .collect()
    }

    fn add(&mut self, handle: u32, declaration: Arc<Declaration>) {
        let hours = declaration.hours();
        let machine = Machine::new(&declaration, hours.allows(self.clock.week_time()));
        let orders = if declaration.is_watched() {
            // Nothing to run: its orders go nowhere.
            supervisor::orders().0
        } else {
            (self.spawn)(handle, declaration.clone())
        };
        let health = self.health_of(handle, &declaration);
        self.lookup.declare(handle, &declaration);
        self.interfaces.insert(
            handle,
            DialedInterface {
                handle,
                declaration,
                hours,
                machine,
                orders,
                link: None,
                waiters: Vec::new(),
                health,
                timer: None,
            },
        );
        self.retime(handle);
    }

    /// Files `handle`'s due time (and dial-out hours) anew after a change.
    fn retime(&mut self, handle: u32) {
        let Some(d) = self.interfaces.get_mut(&handle) else {
            return;
        };
        let due = d.due();
        if due != d.timer {
            if let Some(at) = d.timer {
                self.timers.remove(&(at, handle));
            }
            if let Some(at) = due {
                self.timers.insert((at, handle));
            }
            d.timer = due;
        }
        if d.hours.is_always() {
            self.with_hours.remove(&handle);
        } else {
            self.with_hours.insert(handle);
        }
    }

    /// The health of a new interface, probing, if it names a table.
    fn health_of(&mut self, handle: u32, declaration: &Declaration) -> Option<Box<Health>> {
        let table = self.tables.get(declaration.health.as_ref()?)?.clone();
        let table = Arc::new(table);
        let spawn = self.probe.as_mut()?;
        self.generation += 1;
        Some(Box::new(Health {
            monitor: Monitor::new(table.clone()),
            probed: spawn(handle, self.generation, table),
            generation: self.generation,
            ready: None,
        }))
    }

    /// A link changed; true if it belongs to a declared interface (its
    /// link or its trigger device: then it is not an interface of its
    /// own), with the transitions of watched interfaces it makes.
    pub fn link_changed(&mut self, link: &LinkState) -> (bool, Vec<Transition>) {
        if let Some(seen) = &mut self.reconciling {
            seen.insert(link.index);
        }
        let mut claimed = false;
        // In handle order, as a pass over them all would find them.
        let mut changed = BTreeMap::new();
        for handle in self.lookup.named(&link.name) {
            let Some(d) = self.interfaces.get(handle) else {
                continue;
            };
            let is_ours = d.declaration.link == link.name;
            claimed |= is_ours || d.declaration.trigger_device == link.name;
            if is_ours {
                changed.insert(*handle, Some(link.clone()));
            }
        }
        // What had this link and no longer names it (a rename).
        for handle in self.lookup.at_index(link.index) {
            changed.entry(*handle).or_insert(None);
        }
        let transitions = changed
            .into_iter()
            .flat_map(|(handle, link)| self.set_link(handle, link))
            .collect();
        (claimed, transitions)
    }

    /// A link was deleted; true if it belonged to a declared interface,
    /// with the transitions of watched interfaces it makes.
    pub fn link_deleted(&mut self, index: u32) -> (bool, Vec<Transition>) {
        let ours: Vec<u32> = self.lookup.at_index(index).to_vec();
        let transitions = ours
            .iter()
            .flat_map(|handle| self.set_link(*handle, None))
            .collect();
        (!ours.is_empty(), transitions)
    }

    fn set_link(&mut self, handle: u32, link: Option<LinkState>) -> Vec<Transition> {
        if let Some(d) = self.interfaces.get(&handle) {
            let (from, to) = (d.link.as_ref(), link.as_ref());
            self.lookup
                .moved(handle, from.map(|l| l.index), to.map(|l| l.index));
        }
        self.step(handle, "link", |d| {
            let was = d.link.as_ref().is_some_and(LinkState::is_connected);
            d.link = link;
            d.order(Order::Link(d.link.clone()));
            d.link_changed(was);
            Vec::new()
        })
    }

    pub fn begin_reconcile(&mut self) {
        self.reconciling = Some(HashSet::new());
    }

    /// The dump is complete: declared links it did not report are gone.
    pub fn end_reconcile(&mut self) -> Vec<Transition> {
        let Some(seen) = self.reconciling.take() else {
            return Vec::new();
        };
        let gone: Vec<u32> = self
            .interfaces
            .values()
            .filter_map(|d| d.link.as_ref().map(|l| l.index))
            .filter(|index| !seen.contains(index))
            .collect();
        gone.into_iter()
            .flat_map(|index| self.link_deleted(index).1)
            .collect()
    }

    /// The first link dump is in: adopt links found up (after a crash),
    /// start the rest.
    pub fn start(&mut self) -> Vec<Transition> {
        self.started = true;
        let handles: Vec<u32> = self.interfaces.keys().copied().collect();
        handles
            .into_iter()
            .flat_map(|h| self.start_one(h, "service start"))
            .collect()
    }

    fn start_one(&mut self, handle: u32, reason: &'static str) -> Vec<Transition> {
        self.step(handle, reason, |d| {
            let adoptable = d.link.as_ref().is_some_and(LinkState::is_connected)
                && !d.declaration.is_supervised()
                && !d.declaration.is_watched()
                && d.health.is_none()
                && d.machine.may_dial_now();
            if adoptable {
                d.machine.adopt();
                d.order(Order::Start {
                    adopt: Some(d.machine.attempt()),
                });
                Vec::new()
            } else {
                d.order(Order::Start { adopt: None });
                d.machine.start()
            }
        })
    }

    /// Runs `f` on one interface's machine, sends the orders it gives, and
    /// returns the transitions to commit; completes the waiters of an
    /// attempt that ended.
    fn step(
        &mut self,
        handle: u32,
        reason: impl Into<Cow<'static, str>>,
        f: impl FnOnce(&mut DialedInterface) -> Vec<Action>,
    ) -> Vec<Transition> {
        let reason = reason.into();
        let Some(d) = self.interfaces.get_mut(&handle) else {
            return Vec::new();
        };
        let mut from = d.machine.state();
        let actions = f(d);
        d.apply(actions);
        if self.started {
            // A watched interface is what its link and health say, after
            // whatever happened (enabled again, the DDM started again).
            d.observe(WinError::NO_ERROR);
        }
        let last_error = d.machine.last_error();
        let mut transitions = Vec::new();
        for to in d.machine.take_entered() {
            if from == ConnectionState::Connecting && to != ConnectionState::Connecting {
                let result = if to == ConnectionState::Connected {
                    WinError::NO_ERROR
                } else {
                    last_error
                };
                complete(std::mem::take(&mut d.waiters), result);
            }
            transitions.push(Transition {
                handle,
                name: d.declaration.name.clone(),
                from,
                to,
                last_error: last_error.0,
                reason: reason.clone(),
            });
            from = to;
        }
        self.retime(handle);
        transitions
    }

    /// A supervisor's report.
    pub fn report(&mut self, reported: Reported) -> Vec<Transition> {
        let now = Instant::now();
        let reason = match reported.report {
            Report::Demand => "demand",
            Report::Ready(_) => "ready",
            Report::Failed(..) => "failed",
            Report::Idle(_) => "idle",
            Report::NoTrigger(_) => "no trigger",
            Report::Carried { .. } => return Vec::new(),
        };
        self.step(reported.handle, reason, |d| match reported.report {
            Report::Demand => d.machine.demand(),
            Report::Ready(attempt) => {
                match &mut d.health {
                    // CONNECTED once its health is up too.
                    Some(health) if health.monitor.verdict() != Verdict::Up => {
                        let deadline = now + d.declaration.connect_timeout();
                        health.ready = Some((attempt, deadline));
                    }
                    _ => d.machine.connected(attempt, now),
                }
                Vec::new()
            }
            Report::Failed(attempt, error) => d.machine.failed(attempt, error, now),
            Report::Idle(attempt) => d.machine.idle(attempt),
            Report::NoTrigger(error) => {
                d.machine.cannot_be_triggered(error);
                Vec::new()
            }
            Report::Carried { .. } => Vec::new(),
        })
    }

    /// A round of an interface's probes: judged, and what its verdict
    /// changes committed (a watched interface follows it; a dialed one
    /// becomes CONNECTED when its attempt is ready and its health up, and
    /// loses its connection when its health goes down).
    pub fn round(&mut self, round: HealthRound) -> Vec<Transition> {
        let now = Instant::now();
        let Some(health) = self
            .interfaces
            .get_mut(&round.handle)
            .and_then(|d| d.health.as_mut())
        else {
            return Vec::new();
        };
        if round.generation != health.generation {
            return Vec::new();
        }
        let Some(change) =
            health
                .monitor
                .round(round.rtts, round.passive, std::time::SystemTime::now())
        else {
            return Vec::new();
        };
        tracing::info!(handle = round.handle, "{}", change.why);
        self.step(round.handle, change.why, |d| {
            if d.declaration.is_watched() {
                d.observe(HEALTH_DOWN);
                return Vec::new();
            }
            let Some(health) = &mut d.health else {
                return Vec::new();
            };
            let attempt = d.machine.attempt();
            match (change.to, d.machine.state(), health.ready) {
                (Verdict::Up, ConnectionState::Connecting, Some((ready, _)))
                    if ready == attempt =>
                {
                    health.ready = None;
                    d.machine.connected(attempt, now);
                    Vec::new()
                }
                (Verdict::Down, ConnectionState::Connected, _) => {
                    d.machine.failed(attempt, HEALTH_DOWN, now)
                }
                (Verdict::Down, ConnectionState::Connecting, Some((ready, _)))
                    if ready == attempt =>
                {
                    health.ready = None;
                    d.machine.failed(attempt, HEALTH_DOWN, now)
                }
                _ => Vec::new(),
            }
        })
    }

    /// The path health of the probed interfaces (all, or the one named).
    pub fn health(&self, name: &str) -> Vec<InterfaceHealth> {
        self.interfaces
            .values()
            .filter(|d| name.is_empty() || d.declaration.name == name)
            .filter_map(|d| {
                let health = d.health.as_ref()?;
                Some(crate::health::report::interface_health(
                    &d.declaration.name,
                    d.handle,
                    d.declaration.health.as_deref().unwrap_or_default(),
                    &health.monitor.figures(),
                ))
            })
            .collect()
    }

    pub fn owns(&self, handle: u32) -> bool {
        self.interfaces.contains_key(&handle)
    }

    /// MprAdminInterfaceConnect of a declared interface. `waiter` is
    /// told when the attempt completes, at once when it is connected
    /// already.
    pub fn connect(
        &mut self,
        request: &InterfaceConnect,
        waiter: Option<Waiter>,
    ) -> (Result<Connecting, WinError>, Vec<Transition>) {
        let mut result = Err(WinError::ERROR_INVALID_HANDLE);
        let mut done_already = None;
        let transitions = self.step(request.handle, "connect request", |d| {
            match d.machine.connect() {
                Ok((connecting, actions)) => {
                    result = Ok(connecting);
                    match connecting {
                        Connecting::Started => d.waiters.extend(waiter),
                        Connecting::Already => done_already = waiter,
                    }
                    actions
                }
                Err(e) => {
                    result = Err(e);
                    Vec::new()
                }
            }
        });
        connected_already(done_already);
        (result, transitions)
    }

    pub fn disconnect(&mut self, handle: u32) -> (Result<(), WinError>, Vec<Transition>) {
        let mut result = Err(WinError::ERROR_INVALID_HANDLE);
        let transitions = self.step(handle, "disconnect request", |d| {
            match d.machine.disconnect() {
                Ok(actions) => {
                    result = Ok(());
                    actions
                }
                Err(e) => {
                    result = Err(e);
                    Vec::new()
                }
            }
        });
        (result, transitions)
    }

    pub fn set_enabled(&mut self, handle: u32, enabled: bool) -> Vec<Transition> {
        let reason = if enabled { "enabled" } else { "disabled" };
        self.step(handle, reason, |d| d.machine.set_enabled(enabled))
    }

    /// The DDM stopped (hang everything up, dial nothing) or started.
    pub fn pause(&mut self, paused: bool) -> Vec<Transition> {
        // First the supervisors: a stopped DDM holds no trigger and no
        // route (a started one dials only once its trigger is back).
        for d in self.interfaces.values() {
            d.order(Order::Pause(paused));
        }
        let handles: Vec<u32> = self.interfaces.keys().copied().collect();
        handles
            .into_iter()
            .flat_map(|h| {
                let reason = if paused { "DDM stopped" } else { "DDM started" };
                self.step(h, reason, |d| d.machine.pause(paused))
            })
            .collect()
    }

    /// When `tick` must next run: a machine's timer, or the next minute
    /// for interfaces with dial-out hours.
    pub fn deadline(&self) -> Option<Instant> {
        let timer = self.timers.first().map(|&(at, _)| at);
        let minute = (!self.with_hours.is_empty()).then(next_minute);
        timer
            .into_iter()
            .chain(minute)
            .chain(self.groups.deadline())
            .min()
    }

    /// Timers due and dial-out windows opening or closing.
    pub fn tick(&mut self) -> Vec<Transition> {
        let now = Instant::now();
        let week_time = self.clock.week_time();
        // Only the interfaces with something due (or dial-out hours to
        // look at): with thousands declared, a timer is one interface's.
        let due = self.timers.range(..=(now, u32::MAX)).map(|&(_, h)| h);
        let handles: BTreeSet<u32> = due.chain(self.with_hours.iter().copied()).collect();
        let mut transitions = Vec::new();
        for handle in handles {
            transitions.extend(self.step(handle, "timer", |d| {
                let mut actions = d.machine.window(d.hours.allows(week_time));
                actions.extend(d.machine.tick(now));
                actions
            }));
            transitions.extend(self.step(handle, HEALTH_LATE, |d| {
                let Some(health) = &mut d.health else {
                    return Vec::new();
                };
                match health.ready {
                    Some((attempt, deadline)) if deadline <= now => {
                        health.ready = None;
                        d.machine.failed(attempt, HEALTH_DOWN, now)
                    }
                    _ => Vec::new(),
                }
            }));
        }
        transitions
    }

    /// The declared interfaces whose handle is above `handle`, in handle
    /// order.
    pub fn after(&self, handle: u32) -> impl Iterator<Item = Interface> + '_ {
        self.interfaces
            .range(handle.saturating_add(1)..)
            .map(|(_, d)| d.to_interface())
    }

    /// How many interfaces are declared.
    pub fn declared_count(&self) -> usize {
        self.interfaces.len()
    }

    /// How many declared interfaces are CONNECTED.
    pub fn connected(&self) -> usize {
        self.interfaces
            .values()
            .filter(|d| d.machine.state() == ConnectionState::Connected)
            .count()
    }

    pub fn get(&self, handle: u32) -> Option<Interface> {
        self.interfaces
            .get(&handle)
            .map(DialedInterface::to_interface)
    }

    pub fn handle_of(&self, name: &str) -> Option<u32> {
        self.interfaces
            .values()
            .find(|d| d.declaration.name == name)
            .map(|d| d.handle)
    }

    /// A session closed: its waiters go with it (their descriptors are
    /// closed).
    pub fn session_closed(&mut self, session: u64) {
        for d in self.interfaces.values_mut() {
            d.waiters.retain(|w| match w {
                Waiter::Event { session: s, .. } | Waiter::Reply { session: s, .. } => {
                    *s != session
                }
            });
        }
    }

    /// A new configuration: interfaces whose declaration did not change
    /// are left alone; changed ones start again with the new one (same
    /// handle); removed ones go (their supervisor hangs up and ends); new
    /// ones are added.
    pub fn reload(&mut self, declared: Declared, table: &mut InterfaceTable) -> Vec<Transition> {
        let Declared {
            interfaces: declarations,
            health: tables,
            groups,
        } = declared;
        self.groups.set(groups);
        let changed_tables = std::mem::replace(&mut self.tables, tables) != self.tables;
        let mut transitions = Vec::new();
        let mut kept = HashSet::new();
        let mut added = Vec::new();
        for declaration in declarations {
            kept.insert(declaration.name.clone());
            match self.handle_of(&declaration.name) {
                Some(h) if *self.interfaces[&h].declaration == declaration => {
                    if changed_tables {
                        self.retable(h);
                    }
                }
                Some(h)
                    if self.interfaces[&h]
                        .declaration
                        .differs_only_in_filters(&declaration) =>
                {
                    if let Some(d) = self.interfaces.get_mut(&h) {
                        d.declaration = Arc::new(declaration);
                        d.order(Order::Refilter(d.declaration.clone()));
                    }
                    if changed_tables {
                        self.retable(h);
                    }
                }
                Some(h) => {
                    transitions.extend(self.replace(h, Arc::new(declaration), table));
                }
                None => added.push(declaration),
            }
        }
        let removed: Vec<u32> = self
            .interfaces
            .values()
            .filter(|d| !kept.contains(&d.declaration.name))
            .map(|d| d.handle)
            .collect();
        for h in removed {
            let (gone, link) = self.remove(h);
            transitions.extend(gone);
            transitions.extend(release(link, table));
        }
        for declaration in added {
            let h = table.allocate_handle();
            let name = declaration.name.clone();
            let link = declaration.link.clone();
            self.add(h, Arc::new(declaration));
            transitions.extend(self.claim(h, &link, table));
            // It appears: from UNREACHABLE, as an interface the journal
            // has not seen is.
            transitions.push(Transition {
                handle: h,
                name,
                from: ConnectionState::Unreachable,
                to: ConnectionState::Disconnected,
                last_error: 0,
                reason: "added".into(),
            });
            transitions.extend(self.start_one(h, "reload"));
        }
        transitions
    }

    /// An unchanged interface whose health table may have changed: its
    /// verdict and history stay; its probes take the new table.
    fn retable(&mut self, handle: u32) {
        let Some(d) = self.interfaces.get_mut(&handle) else {
            return;
        };
        let (Some(health), Some(name)) = (&mut d.health, &d.declaration.health) else {
            return;
        };
        let Some(table) = self.tables.get(name) else {
            return;
        };
        if **health.monitor.config() == *table {
            return;
        }
        let table = Arc::new(table.clone());
        self.generation += 1;
        health.generation = self.generation;
        health.monitor.reconfigure(table.clone());
        health.probed.configure(self.generation, table);
    }

    /// `handle` starts again with `declaration`. Its link, if it names
    /// another, is a kernel interface again, and the one it names now (if
    /// the table has it) is its link.
    fn replace(
        &mut self,
        handle: u32,
        declaration: Arc<Declaration>,
        table: &mut InterfaceTable,
    ) -> Vec<Transition> {
        let week_time = self.clock.week_time();
        let Some(d) = self.interfaces.get_mut(&handle) else {
            return Vec::new();
        };
        let from = d.machine.state();
        // Its supervisor hangs the old connection up first: its link is not
        // one to adopt. The supervisor keeps what it knew of a link that
        // keeps its name.
        self.lookup
            .moved(handle, d.link.as_ref().map(|l| l.index), None);
        self.lookup.forget(handle, &d.declaration);
        self.lookup.declare(handle, &declaration);
        let relinked = d.declaration.link != declaration.link;
        let released = d.link.take().filter(|_| relinked);
        d.hours = declaration.hours();
        d.machine = Machine::new(&declaration, d.hours.allows(week_time));
        d.declaration = declaration.clone();
        d.order(Order::Replace(declaration.clone()));
        let health = self.health_of(handle, &declaration);
        let Some(d) = self.interfaces.get_mut(&handle) else {
            return Vec::new();
        };
        d.health = health;
        let waiters = std::mem::take(&mut d.waiters);
        complete(waiters, WinError::ERROR_INTERFACE_DISCONNECTED);
        let mut transitions = Vec::new();
        if from != ConnectionState::Disconnected {
            transitions.push(Transition {
                handle,
                name: d.declaration.name.clone(),
                from,
                to: ConnectionState::Disconnected,
                last_error: 0,
                reason: "reload".into(),
            });
        }
        if relinked {
            transitions.extend(release(released, table));
            transitions.extend(self.claim(handle, &declaration.link, table));
        }
        transitions.extend(self.start_one(handle, "reload"));
        transitions
    }

    /// The kernel link named `link`, if the table has it as an interface,
    /// is `handle`'s link from now on, and its supervisor is told of it:
    /// a connect command that finds it up already changes nothing the
    /// kernel would announce. A link the table leaves out
    /// (`links.exclude`), the supervisor reads.
    fn claim(&mut self, handle: u32, link: &str, table: &mut InterfaceTable) -> Vec<Transition> {
        let Some((link, gone)) = table.claim(link) else {
            if !table.admits(link) {
                if let Some(d) = self.interfaces.get(&handle) {
                    d.order(Order::ReadLink);
                }
            }
            return Vec::new();
        };
        gone.into_iter().chain(self.link_changed(&link).1).collect()
    }

    /// Removes `handle`: its transition, and what was known of its link.
    fn remove(&mut self, handle: u32) -> (Vec<Transition>, Option<LinkState>) {
        let Some(d) = self.interfaces.remove(&handle) else {
            return (Vec::new(), None);
        };
        if let Some(at) = d.timer {
            self.timers.remove(&(at, handle));
        }
        self.with_hours.remove(&handle);
        self.lookup.forget(handle, &d.declaration);
        self.lookup
            .moved(handle, d.link.as_ref().map(|l| l.index), None);
        let (done, _) = oneshot::channel();
        d.order(Order::Stop(done));
        complete(d.waiters, WinError::ERROR_NO_SUCH_INTERFACE);
        let from = d.machine.state();
        let gone = (from != ConnectionState::Unreachable)
            .then(|| Transition {
                handle,
                name: d.declaration.name.clone(),
                from,
                to: ConnectionState::Unreachable,
                last_error: d.machine.last_error().0,
                reason: "removed".into(),
            })
            .into_iter()
            .collect();
        (gone, d.link)
    }

    /// Stops every supervisor (after a hang-up); the receivers fire as
    /// each is done.
    pub fn stop_all(&mut self) -> Vec<oneshot::Receiver<()>> {
        self.interfaces
            .values()
            .map(|d| {
                let (done, stopped) = oneshot::channel();
                d.order(Order::Stop(done));
                stopped
            })
            .collect()
    }
}

/// A Connect of what is connected already: its event is set at once; a
/// synchronous Connect's reply is the call's own (NO_ERROR at once), so
/// nothing comes later.
pub fn connected_already(waiter: Option<Waiter>) {
    if let Some(waiter @ Waiter::Event { .. }) = waiter {
        complete(vec![waiter], WinError::NO_ERROR);
    }
}

/// A link no declaration names any more is a kernel interface again, as
/// it would be at a start: the table has it from now on (a link that is
/// up is an interface that connects).
fn release(link: Option<LinkState>, table: &mut InterfaceTable) -> Option<Transition> {
    let transition = table.update(link?)?;
    Some(Transition {
        reason: "undeclared".into(),
        ..transition
    })
}

/// Tells every waiter the attempt is over, with `result`.
fn complete(waiters: Vec<Waiter>, result: WinError) {
    for waiter in waiters {
        match waiter {
            Waiter::Reply { reply, .. } => reply.send(result.into()),
            Waiter::Event {
                event,
                target,
                outbox,
                ..
            } => crate::core::notify::signal(&target, event, &outbox),
        }
    }
}

/// The start of the next minute of the wall clock.
fn next_minute() -> Instant {
    let into_minute = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() % 60_000) as u64;
    Instant::now() + Duration::from_millis(60_000 - into_minute)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A clock the test moves.
    struct TestClock(Arc<Mutex<WeekTime>>);

    impl Clock for TestClock {
        fn week_time(&self) -> WeekTime {
            *self.0.lock().unwrap()
        }
    }

    fn at(weekday: u8, hour: u16) -> WeekTime {
        WeekTime {
            weekday,
            minute: hour * 60,
        }
    }

    /// A spawner whose supervisors' orders the test reads, one receiver a
    /// supervisor in the order they were spawned.
    fn spawner() -> (Spawner, Arc<Mutex<Vec<supervisor::OrderReceiver>>>) {
        let orders = Arc::new(Mutex::new(Vec::new()));
        let sink = orders.clone();
        let spawner: Spawner = Box::new(move |_, _| {
            let (sender, receiver) = supervisor::orders();
            sink.lock().unwrap().push(receiver);
            sender
        });
        (spawner, orders)
    }

    fn declared(declarations: Vec<Declaration>) -> Declared {
        Declared {
            interfaces: declarations,
            ..Declared::default()
        }
    }

    /// A persistent interface named `name` on link `link`.
    fn persistent(name: &str, link: &str) -> Declaration {
        Declaration {
            name: name.into(),
            link: link.into(),
            connect: vec!["up".into()],
            dial: DialMode::Persistent,
            ..Declaration::default()
        }
    }

    /// A reload that removes an interface gives its link back to the table
    /// (an interface of the kernel again, as at a start); one that declares
    /// it again, or names it instead of another link, takes it and tells
    /// the supervisor: a connect command that finds the link up already
    /// changes nothing the kernel would announce, and a supervisor that
    /// knew nothing of it would wait for its timeout.
    #[test]
    fn a_link_undeclared_is_an_interface_again_and_declared_again_its_supervisor_knows_it() {
        let (spawner, orders) = spawner();
        let mut table =
            InterfaceTable::new(crate::core::table::LinkFilter::new(&["*".into()], &[]));
        let mut dialed = Dialed::new(spawner, Box::new(TestClock(Arc::new(Mutex::new(at(0, 9))))));
        dialed.declare(declared(vec![persistent("storm", "vd")]), || 1);
        dialed.start();
        let up = LinkState {
            index: 40,
            name: "vd".into(),
            flags: (libc::IFF_UP | libc::IFF_RUNNING) as u32,
            operstate: crate::links::IF_OPER_UP,
            stats: None,
        };
        assert!(dialed.link_changed(&up).0, "vd is storm's link");
        let link_orders = |supervisor: usize| -> Vec<Option<LinkState>> {
            std::iter::from_fn(|| orders.lock().unwrap()[supervisor].try_recv().ok())
                .filter_map(|order| match order {
                    Order::Link(link) => Some(link),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(link_orders(0), vec![Some(up.clone())]);

        let undeclared = dialed.reload(declared(vec![]), &mut table);
        let released = undeclared
            .iter()
            .find(|t| t.name == "vd")
            .expect("vd connects as an interface of the kernel");
        assert_eq!(
            (released.from, released.to, &*released.reason),
            (
                ConnectionState::Unreachable,
                ConnectionState::Connected,
                "undeclared"
            )
        );
        assert!(table.handle_of("vd").is_some());

        let declared_again = dialed.reload(declared(vec![persistent("storm", "vd")]), &mut table);
        assert!(declared_again
            .iter()
            .any(|t| t.name == "vd" && t.to == ConnectionState::Unreachable));
        assert_eq!(table.handle_of("vd"), None, "vd is storm's link again");
        assert_eq!(link_orders(1), vec![Some(up.clone())]);

        // Declared on another link instead: vd is the kernel's again, and
        // the link it names now is its supervisor's.
        let other = LinkState {
            index: 41,
            name: "ve".into(),
            ..up.clone()
        };
        assert_eq!(
            table.update(other.clone()).map(|t| t.to),
            Some(ConnectionState::Connected)
        );
        dialed.reload(declared(vec![persistent("storm", "ve")]), &mut table);
        assert!(table.handle_of("vd").is_some());
        assert_eq!(table.handle_of("ve"), None);
        assert_eq!(link_orders(1), vec![Some(other)]);
    }

    #[test]
    fn dialout_hours_open_and_close_with_the_clock() {
        let clock = Arc::new(Mutex::new(at(0, 9)));
        let (spawner, orders) = spawner();
        let mut dialed = Dialed::new(spawner, Box::new(TestClock(clock.clone())));
        let declaration = Declaration {
            name: "metered".into(),
            link: "ppp0".into(),
            connect: vec!["up".into()],
            trigger_device: "ddm-metered".into(),
            dialout_hours: vec!["Mon-Fri 08:00-18:00".into()],
            ..Declaration::default()
        };
        dialed.declare(declared(vec![declaration]), || 7);
        dialed.start();
        assert!(dialed.deadline().is_some(), "the next minute is checked");
        let connect = InterfaceConnect {
            handle: 7,
            event: 0,
            synchronous: false,
        };
        let (started, _) = dialed.connect(&connect, None);
        assert_eq!(started, Ok(Connecting::Started));
        dialed.report(Reported {
            handle: 7,
            report: Report::Ready(1),
        });
        assert_eq!(
            dialed.get(7).unwrap().connection_state,
            ConnectionState::Connected as u32
        );

        // 18:00: the window closes on the connection.
        *clock.lock().unwrap() = at(0, 18);
        let closed = dialed.tick();
        assert_eq!(
            closed
                .iter()
                .map(|t| (t.from, t.to, t.last_error))
                .collect::<Vec<_>>(),
            vec![(
                ConnectionState::Connected,
                ConnectionState::Unreachable,
                WinError::ERROR_DIALOUT_HOURS_RESTRICTION.0
            )]
        );
        let orders: Vec<Order> =
            std::iter::from_fn(|| orders.lock().unwrap()[0].try_recv().ok()).collect();
        assert!(matches!(orders.last(), Some(Order::HangUp)), "{orders:?}");
        let interface = dialed.get(7).unwrap();
        assert_eq!(
            interface.unreachability_reasons,
            ddm_proto::model::unreachability::DIALOUT_HOURS_RESTRICTION
        );
        assert_eq!(
            dialed.connect(&connect, None).0,
            Err(WinError::ERROR_DIALOUT_HOURS_RESTRICTION)
        );

        // Tuesday 08:00: reachable again.
        *clock.lock().unwrap() = at(1, 8);
        let opened = dialed.tick();
        assert_eq!(
            opened.last().map(|t| t.to),
            Some(ConnectionState::Disconnected)
        );
        assert_eq!(dialed.connect(&connect, None).0, Ok(Connecting::Started));
    }
}

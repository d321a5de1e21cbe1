//! The router's side of the declared interfaces: their machines, their
//! kernel links, the callers waiting for an attempt, and the orders that
//! go to their supervisors. The router calls in with what happened and
//! commits the transitions that come back.

use super::declaration::Declaration;
use super::hours::{DialoutHours, WeekTime};
use super::machine::{Action, Connecting, Machine};
use super::supervisor::{Order, Report, Reported};
use crate::core::notify::Target;
use crate::core::outbox::{LateReply, Outbox};
use crate::core::table::{InterfaceTable, Transition};
use crate::links::LinkState;
use ddm_proto::message::{Interface, InterfaceConnect};
use ddm_proto::model::{interface_type, ConnectionState};
use ddm_proto::WinError;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// Starts the supervisor of an interface and returns its order queue.
pub type Spawner = Box<dyn FnMut(u32, Arc<Declaration>) -> mpsc::UnboundedSender<Order> + Send>;

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
    orders: mpsc::UnboundedSender<Order>,
    link: Option<LinkState>,
    waiters: Vec<Waiter>,
}

impl DialedInterface {
    fn order(&self, order: Order) {
        let _ = self.orders.send(order);
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

    fn to_interface(&self) -> Interface {
        Interface {
            name: self.declaration.name.clone(),
            handle: self.handle,
            enabled: self.machine.enabled(),
            if_type: interface_type::FULL_ROUTER,
            connection_state: self.machine.state() as u32,
            unreachability_reasons: self.machine.unreachability_reasons(),
            last_error: self.machine.last_error().0,
            dial: self.declaration.dial.wire() as i32,
            link: self.declaration.link.clone(),
        }
    }
}

pub struct Dialed {
    interfaces: BTreeMap<u32, DialedInterface>,
    spawn: Spawner,
    clock: Box<dyn Clock>,
    /// During a link dump: the indexes of claimed links it reported.
    reconciling: Option<HashSet<u32>>,
}

impl Dialed {
    pub fn new(spawn: Spawner, clock: Box<dyn Clock>) -> Self {
        Dialed {
            interfaces: BTreeMap::new(),
            spawn,
            clock,
            reconciling: None,
        }
    }

    /// Adds the declared interfaces of the configuration the service
    /// starts with, with the handles `handle` gives; `start` starts them.
    pub fn declare(&mut self, declarations: Vec<Declaration>, mut handle: impl FnMut() -> u32) {
        for declaration in declarations {
            self.add(handle(), Arc::new(declaration));
        }
    }

    fn add(&mut self, handle: u32, declaration: Arc<Declaration>) {
        let hours = declaration.hours();
        let machine = Machine::new(&declaration, hours.allows(self.clock.week_time()));
        let orders = (self.spawn)(handle, declaration.clone());
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
            },
        );
    }

    /// A link changed; true if it belongs to a declared interface (its
    /// link or its trigger device: then it is not an interface of its own).
    pub fn link_changed(&mut self, link: &LinkState) -> bool {
        if let Some(seen) = &mut self.reconciling {
            seen.insert(link.index);
        }
        let mut claimed = false;
        for d in self.interfaces.values_mut() {
            let is_ours = d.declaration.link == link.name;
            claimed |= is_ours || d.declaration.trigger_device == link.name;
            let was_ours = d.link.as_ref().is_some_and(|l| l.index == link.index);
            if is_ours || was_ours {
                d.link = is_ours.then(|| link.clone());
                d.order(Order::Link(d.link.clone()));
            }
        }
        claimed
    }

    /// A link was deleted; true if it belonged to a declared interface.
    pub fn link_deleted(&mut self, index: u32) -> bool {
        let mut ours = false;
        for d in self.interfaces.values_mut() {
            if d.link.as_ref().is_some_and(|l| l.index == index) {
                d.link = None;
                d.order(Order::Link(None));
                ours = true;
            }
        }
        ours
    }

    pub fn begin_reconcile(&mut self) {
        self.reconciling = Some(HashSet::new());
    }

    /// The dump is complete: declared links it did not report are gone.
    pub fn end_reconcile(&mut self) {
        let Some(seen) = self.reconciling.take() else {
            return;
        };
        let gone: Vec<u32> = self
            .interfaces
            .values()
            .filter_map(|d| d.link.as_ref().map(|l| l.index))
            .filter(|index| !seen.contains(index))
            .collect();
        for index in gone {
            self.link_deleted(index);
        }
    }

    /// The first link dump is in: adopt links found up (after a crash),
    /// start the rest.
    pub fn start(&mut self) -> Vec<Transition> {
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
        reason: &'static str,
        f: impl FnOnce(&mut DialedInterface) -> Vec<Action>,
    ) -> Vec<Transition> {
        let Some(d) = self.interfaces.get_mut(&handle) else {
            return Vec::new();
        };
        let mut from = d.machine.state();
        let actions = f(d);
        d.apply(actions);
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
                reason: reason.into(),
            });
            from = to;
        }
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
                d.machine.connected(attempt, now);
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
        let timers = self
            .interfaces
            .values()
            .filter_map(|d| d.machine.deadline());
        let minute = self
            .interfaces
            .values()
            .any(|d| !d.hours.is_always())
            .then(next_minute);
        timers.chain(minute).min()
    }

    /// Timers due and dial-out windows opening or closing.
    pub fn tick(&mut self) -> Vec<Transition> {
        let now = Instant::now();
        let week_time = self.clock.week_time();
        let handles: Vec<u32> = self.interfaces.keys().copied().collect();
        let mut transitions = Vec::new();
        for handle in handles {
            transitions.extend(self.step(handle, "timer", |d| {
                let mut actions = d.machine.window(d.hours.allows(week_time));
                actions.extend(d.machine.tick(now));
                actions
            }));
        }
        transitions
    }

    pub fn interfaces(&self) -> impl Iterator<Item = Interface> + '_ {
        self.interfaces.values().map(DialedInterface::to_interface)
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
    pub fn reload(
        &mut self,
        declarations: Vec<Declaration>,
        table: &mut InterfaceTable,
    ) -> Vec<Transition> {
        let mut transitions = Vec::new();
        let mut kept = HashSet::new();
        let mut added = Vec::new();
        for declaration in declarations {
            kept.insert(declaration.name.clone());
            match self.handle_of(&declaration.name) {
                Some(h) if *self.interfaces[&h].declaration == declaration => {}
                Some(h) => {
                    transitions.extend(self.replace(h, Arc::new(declaration)));
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
            transitions.extend(self.remove(h));
        }
        for declaration in added {
            let h = table.allocate_handle();
            // A kernel link it names is its link now, not an interface.
            let claimed = table.claim(&declaration.link);
            let name = declaration.name.clone();
            self.add(h, Arc::new(declaration));
            if let Some((link, gone)) = claimed {
                transitions.extend(gone);
                self.link_changed(&link);
            }
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

    fn replace(&mut self, handle: u32, declaration: Arc<Declaration>) -> Vec<Transition> {
        let week_time = self.clock.week_time();
        let Some(d) = self.interfaces.get_mut(&handle) else {
            return Vec::new();
        };
        let from = d.machine.state();
        // Its supervisor hangs the old connection up first: its link is not
        // one to adopt.
        d.link = None;
        d.hours = declaration.hours();
        d.machine = Machine::new(&declaration, d.hours.allows(week_time));
        d.declaration = declaration.clone();
        d.order(Order::Replace(declaration));
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
        transitions.extend(self.start_one(handle, "reload"));
        transitions
    }

    fn remove(&mut self, handle: u32) -> Vec<Transition> {
        let Some(d) = self.interfaces.remove(&handle) else {
            return Vec::new();
        };
        let (done, _) = oneshot::channel();
        d.order(Order::Stop(done));
        complete(d.waiters, WinError::ERROR_NO_SUCH_INTERFACE);
        let from = d.machine.state();
        (from != ConnectionState::Unreachable)
            .then(|| Transition {
                handle,
                name: d.declaration.name.clone(),
                from,
                to: ConnectionState::Unreachable,
                last_error: d.machine.last_error().0,
                reason: "removed".into(),
            })
            .into_iter()
            .collect()
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

    #[test]
    fn dialout_hours_open_and_close_with_the_clock() {
        let clock = Arc::new(Mutex::new(at(0, 9)));
        let orders = Arc::new(Mutex::new(Vec::new()));
        let sink = orders.clone();
        let spawner: Spawner = Box::new(move |_, _| {
            let (sender, receiver) = mpsc::unbounded_channel();
            sink.lock().unwrap().push(receiver);
            sender
        });
        let mut dialed = Dialed::new(spawner, Box::new(TestClock(clock.clone())));
        let declaration = Declaration {
            name: "metered".into(),
            link: "ppp0".into(),
            connect: vec!["up".into()],
            trigger_device: "ddm-metered".into(),
            dialout_hours: vec!["Mon-Fri 08:00-18:00".into()],
            ..Declaration::default()
        };
        dialed.declare(vec![declaration], || 7);
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

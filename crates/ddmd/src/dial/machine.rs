//! One declared interface's connection state, as RRAS keeps it: pure
//! logic, driven by the router with the time and what happened, answering
//! with what to do (dial, hang up). Nothing here runs a command or waits,
//! so every path (redial, UNREACHABLE and its growing retry interval,
//! dial-out hours, disabling) is unit-tested with a clock the test moves.
//!
//! DISCONNECTED -> CONNECTING -> CONNECTED, or back to DISCONNECTED with
//! the last error and CONNECTION_FAILURE; after `redial_attempts` failures
//! in a row, UNREACHABLE until a retry (persistent: a dial; otherwise:
//! DISCONNECTED again, ready to dial) or an administrator's Connect.

use super::declaration::{Declaration, DialMode};
use ddm_proto::model::{unreachability, ConnectionState};
use ddm_proto::WinError;
use std::time::{Duration, Instant};
use ConnectionState::*;

/// What the router must have done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start attempt `attempt`: run the connect command, wait for ready.
    Dial(u64),
    /// End the attempt or connection: disconnect command or SIGTERM,
    /// routes back to the trigger.
    HangUp,
    /// Drop the packets held for a dial that will not happen.
    Discard,
}

/// What an administrator's Connect started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connecting {
    /// Already connected: nothing to wait for.
    Already,
    /// An attempt began.
    Started,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// Dial again after a failure or a loss.
    Redial,
    /// UNREACHABLE is over.
    Retry,
}

#[derive(Debug, Clone)]
struct Policy {
    /// Watched, not dialed: its state follows its link and health.
    watched: bool,
    mode: DialMode,
    redial_attempts: u32,
    redial_pause: Duration,
    retry_first: Duration,
    retry_step: Duration,
    retry_max: Duration,
}

#[derive(Debug, Clone)]
pub struct Machine {
    policy: Policy,
    state: ConnectionState,
    enabled: bool,
    /// The DDM is stopped: nothing dials.
    paused: bool,
    /// Inside the dial-out hours.
    in_window: bool,
    last_error: WinError,
    /// CONNECTION_FAILURE after a failure; the others are derived.
    failure_reason: bool,
    attempt: u64,
    failures: u32,
    retries: u32,
    timer: Option<(Instant, Timer)>,
    /// A persistent interface an administrator disconnected stays down
    /// until connected or enabled again.
    held_down: bool,
    /// The states entered since the router last looked.
    entered: Vec<ConnectionState>,
    /// When the attempt now connected became ready (None: adopted at a
    /// start, long enough ago).
    connected_at: Option<Instant>,
}

impl Machine {
    /// A declared interface before the service has looked at its link:
    /// DISCONNECTED; `start` or `adopt` next.
    pub fn new(declaration: &Declaration, in_window: bool) -> Machine {
        Machine {
            policy: Policy {
                watched: declaration.is_watched(),
                mode: declaration.dial,
                redial_attempts: declaration.redial_attempts,
                redial_pause: Duration::from_secs(declaration.redial_pause_secs),
                retry_first: Duration::from_secs(declaration.unreachable_retry_secs),
                retry_step: Duration::from_secs(declaration.unreachable_retry_step_secs),
                retry_max: Duration::from_secs(declaration.unreachable_retry_max_secs),
            },
            state: Disconnected,
            enabled: declaration.enabled,
            paused: false,
            in_window,
            last_error: WinError::NO_ERROR,
            failure_reason: false,
            attempt: 0,
            failures: 0,
            retries: 0,
            timer: None,
            held_down: false,
            entered: Vec::new(),
            connected_at: None,
        }
    }

    /// Starts it: DISCONNECTED (a persistent one dials at once), or
    /// UNREACHABLE outside its hours.
    pub fn start(&mut self) -> Vec<Action> {
        self.settle()
    }

    fn set(&mut self, state: ConnectionState) {
        if state != self.state {
            self.state = state;
            self.entered.push(state);
        }
    }

    /// The states entered since the last call, in order.
    pub fn take_entered(&mut self) -> Vec<ConnectionState> {
        std::mem::take(&mut self.entered)
    }

    pub fn state(&self) -> ConnectionState {
        self.state
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn last_error(&self) -> WinError {
        self.last_error
    }

    /// The current attempt (or connection); reports about others are stale.
    pub fn attempt(&self) -> u64 {
        self.attempt
    }

    /// MPR_INTERFACE_* bits.
    pub fn unreachability_reasons(&self) -> u32 {
        let mut reasons = 0;
        if !self.enabled {
            reasons |= unreachability::ADMIN_DISABLED;
        }
        if self.paused {
            reasons |= unreachability::SERVICE_PAUSED;
        }
        if !self.in_window {
            reasons |= unreachability::DIALOUT_HOURS_RESTRICTION;
        }
        if self.failure_reason && self.state != Connected && self.state != Connecting {
            reasons |= unreachability::CONNECTION_FAILURE;
        }
        reasons
    }

    /// When `tick` must next be called.
    pub fn deadline(&self) -> Option<Instant> {
        self.timer.map(|(at, _)| at)
    }

    fn may_dial(&self) -> bool {
        self.enabled && !self.paused && self.in_window
    }

    fn dial(&mut self) -> Vec<Action> {
        self.attempt += 1;
        self.set(Connecting);
        self.timer = None;
        vec![Action::Dial(self.attempt)]
    }

    /// Moves a quiet interface to where it belongs: UNREACHABLE outside
    /// its hours, DISCONNECTED otherwise, dialing if it is persistent.
    fn settle(&mut self) -> Vec<Action> {
        if matches!(self.state, Connected | Connecting) {
            return Vec::new();
        }
        if !self.in_window && self.enabled {
            self.set(Unreachable);
            self.timer = None;
            return Vec::new();
        }
        if self.state == Unreachable && self.timer.is_some() {
            return Vec::new();
        }
        self.set(Disconnected);
        if self.policy.mode == DialMode::Persistent
            && self.may_dial()
            && !self.held_down
            && self.timer.is_none()
        {
            return self.dial();
        }
        Vec::new()
    }

    /// A watched interface: what its link and health say now. CONNECTED
    /// when `up` (and enabled, the DDM running); otherwise DISCONNECTED,
    /// with `error` as the last error when it leaves CONNECTED.
    pub fn observe(&mut self, up: bool, error: WinError) {
        if !self.policy.watched {
            return;
        }
        if up && self.enabled && !self.paused {
            if self.state != Connected {
                self.last_error = WinError::NO_ERROR;
                self.set(Connected);
            }
        } else if self.state == Connected {
            self.last_error = error;
            self.set(Disconnected);
        }
    }

    /// MprAdminInterfaceConnect.
    pub fn connect(&mut self) -> Result<(Connecting, Vec<Action>), WinError> {
        if self.policy.watched {
            // As for a kernel link: ddm does not dial it.
            return match self.state {
                Connected => Ok((Connecting::Already, Vec::new())),
                _ => Err(WinError::ERROR_NOT_SUPPORTED),
            };
        }
        if !self.enabled {
            return Err(WinError::ERROR_INTERFACE_DISABLED);
        }
        if !self.in_window {
            return Err(WinError::ERROR_DIALOUT_HOURS_RESTRICTION);
        }
        if self.paused {
            return Err(WinError::ERROR_DDM_NOT_RUNNING);
        }
        match self.state {
            Connected => Ok((Connecting::Already, Vec::new())),
            Connecting => Err(WinError::ERROR_ALREADY_CONNECTING),
            Disconnected | Unreachable => {
                self.failures = 0;
                self.retries = 0;
                self.held_down = false;
                Ok((Connecting::Started, self.dial()))
            }
        }
    }

    /// MprAdminInterfaceDisconnect: hangs up or cancels the attempt.
    pub fn disconnect(&mut self) -> Result<Vec<Action>, WinError> {
        if self.policy.watched {
            return Err(WinError::ERROR_NOT_SUPPORTED);
        }
        self.held_down = self.policy.mode == DialMode::Persistent;
        match self.state {
            Connected | Connecting => {
                Ok(self.hang_up(Disconnected, WinError::ERROR_INTERFACE_DISCONNECTED))
            }
            Disconnected | Unreachable => {
                if self.timer.take().is_some() && self.state == Unreachable {
                    self.set(Disconnected);
                }
                Err(WinError::ERROR_INTERFACE_NOT_CONNECTED)
            }
        }
    }

    fn hang_up(&mut self, to: ConnectionState, error: WinError) -> Vec<Action> {
        self.set(to);
        self.last_error = error;
        self.failure_reason = false;
        self.timer = None;
        vec![Action::HangUp]
    }

    /// A demand interface whose group no longer sends it traffic: hung up
    /// (ERROR_BAP_DISCONNECTED: dropped by the bandwidth policy, not idle).
    pub fn not_needed(&mut self) -> Vec<Action> {
        match self.state {
            Connected | Connecting if self.policy.mode == DialMode::Demand => {
                self.hang_up(Disconnected, WinError::ERROR_BAP_DISCONNECTED)
            }
            _ => Vec::new(),
        }
    }

    /// MprAdminInterfaceSetInfo's fEnabled.
    pub fn set_enabled(&mut self, enabled: bool) -> Vec<Action> {
        if enabled == self.enabled {
            return Vec::new();
        }
        self.enabled = enabled;
        if enabled {
            self.held_down = false;
            self.failures = 0;
            return self.settle();
        }
        self.timer = None;
        match self.state {
            Connected | Connecting => {
                self.hang_up(Disconnected, WinError::ERROR_INTERFACE_DISCONNECTED)
            }
            _ => {
                self.set(Disconnected);
                Vec::new()
            }
        }
    }

    /// The DDM stopped (`true`) or started again.
    pub fn pause(&mut self, paused: bool) -> Vec<Action> {
        if paused == self.paused {
            return Vec::new();
        }
        self.paused = paused;
        if !paused {
            return self.settle();
        }
        self.timer = None;
        match self.state {
            Connected | Connecting => {
                self.hang_up(Disconnected, WinError::ERROR_INTERFACE_DISCONNECTED)
            }
            _ => Vec::new(),
        }
    }

    /// Traffic arrived for a demand interface's routes.
    pub fn demand(&mut self) -> Vec<Action> {
        match self.state {
            Connecting | Connected => Vec::new(),
            Disconnected if self.policy.mode == DialMode::Demand && self.may_dial() => self.dial(),
            _ => vec![Action::Discard],
        }
    }

    /// The attempt is ready: CONNECTED.
    pub fn connected(&mut self, attempt: u64, now: Instant) {
        if attempt != self.attempt || self.state != Connecting {
            return;
        }
        self.set(Connected);
        self.connected_at = Some(now);
        self.last_error = WinError::NO_ERROR;
        self.failure_reason = false;
        self.failures = 0;
        self.retries = 0;
    }

    /// Its trigger could not be made: traffic cannot dial it, which its
    /// last error says (CONNECTION_FAILURE among its reasons) until an
    /// attempt is made.
    pub fn cannot_be_triggered(&mut self, error: WinError) {
        if matches!(self.state, Disconnected | Unreachable) {
            self.last_error = error;
            self.failure_reason = true;
        }
    }

    /// True when it may dial now (enabled, DDM running, in its hours).
    pub fn may_dial_now(&self) -> bool {
        self.may_dial()
    }

    /// A link found connected at start (after a crash): CONNECTED without
    /// a dial, as connection number `attempt()`.
    pub fn adopt(&mut self) {
        self.attempt += 1;
        self.set(Connected);
        self.connected_at = None;
    }

    /// The attempt failed (`error`), or the connection was lost.
    pub fn failed(&mut self, attempt: u64, error: WinError, now: Instant) -> Vec<Action> {
        if attempt != self.attempt || !matches!(self.state, Connecting | Connected) {
            return Vec::new();
        }
        let was_connected = self.state == Connected;
        self.last_error = error;
        self.failure_reason = true;
        let mut actions = vec![Action::HangUp];
        if was_connected {
            // A lost connection: persistent ones dial again at once, unless
            // it lasted less than the redial pause (a connection lost as
            // soon as it is made would otherwise be dialed without end).
            self.set(Disconnected);
            self.failures = 0;
            let brief = self
                .connected_at
                .is_some_and(|at| now.saturating_duration_since(at) < self.policy.redial_pause);
            if self.policy.mode == DialMode::Persistent && self.may_dial() {
                if brief {
                    self.timer = Some((now + self.policy.redial_pause, Timer::Redial));
                } else {
                    actions.extend(self.dial());
                }
            }
            return actions;
        }
        self.failures = self.failures.saturating_add(1);
        if self.failures <= self.policy.redial_attempts {
            self.set(Disconnected);
            self.timer = Some((now + self.policy.redial_pause, Timer::Redial));
        } else {
            self.set(Unreachable);
            let interval = self
                .policy
                .retry_step
                .saturating_mul(self.retries)
                .saturating_add(self.policy.retry_first)
                .min(self.policy.retry_max);
            self.retries = self.retries.saturating_add(1);
            self.timer = Some((now + interval, Timer::Retry));
        }
        actions
    }

    /// A demand interface carried no traffic for its idle time.
    pub fn idle(&mut self, attempt: u64) -> Vec<Action> {
        if attempt != self.attempt || self.state != Connected {
            return Vec::new();
        }
        self.hang_up(Disconnected, WinError::ERROR_IDLE_DISCONNECTED)
    }

    /// The dial-out window opened or closed.
    pub fn window(&mut self, open: bool) -> Vec<Action> {
        if open == self.in_window {
            return Vec::new();
        }
        self.in_window = open;
        if open {
            if self.state == Unreachable {
                self.timer = None;
            }
            return self.settle();
        }
        match self.state {
            Connected | Connecting => {
                let mut actions =
                    self.hang_up(Unreachable, WinError::ERROR_DIALOUT_HOURS_RESTRICTION);
                if !self.enabled {
                    self.set(Disconnected);
                }
                actions.extend(self.settle());
                actions
            }
            _ => self.settle(),
        }
    }

    /// The timer is due when `now` has reached `deadline()`.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        let Some((at, timer)) = self.timer else {
            return Vec::new();
        };
        if now < at {
            return Vec::new();
        }
        self.timer = None;
        match timer {
            Timer::Redial if self.state == Disconnected && self.may_dial() && !self.held_down => {
                self.dial()
            }
            Timer::Retry if self.state == Unreachable => {
                self.set(Disconnected);
                self.failures = 0;
                if self.policy.mode == DialMode::Persistent && self.may_dial() {
                    self.dial()
                } else {
                    Vec::new()
                }
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declaration(mode: DialMode) -> Declaration {
        Declaration {
            name: "branch".into(),
            link: "wg0".into(),
            connect: vec!["up".into()],
            dial: mode,
            redial_attempts: 2,
            redial_pause_secs: 5,
            unreachable_retry_secs: 600,
            unreachable_retry_step_secs: 600,
            unreachable_retry_max_secs: 1500,
            ..Declaration::default()
        }
    }

    /// The tests' clock, an hour on: what connected at the real now has
    /// been connected long enough for a loss to redial at once.
    fn later() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    fn machine(mode: DialMode) -> (Machine, Instant) {
        let now = later();
        let mut m = Machine::new(&declaration(mode), true);
        assert_eq!(m.start(), vec![]);
        (m, now)
    }

    fn started(mode: DialMode, in_window: bool) -> (Machine, Vec<Action>) {
        let mut m = Machine::new(&declaration(mode), in_window);
        let actions = m.start();
        (m, actions)
    }

    const S5: Duration = Duration::from_secs(5);

    #[test]
    fn a_manual_connect_dials_and_connects() {
        let (mut m, _) = machine(DialMode::Manual);
        assert_eq!(m.state(), Disconnected);
        let (started, actions) = m.connect().unwrap();
        assert_eq!(
            (started, actions),
            (Connecting::Started, vec![Action::Dial(1)])
        );
        assert_eq!(m.state(), Connecting);
        assert_eq!(m.connect(), Err(WinError::ERROR_ALREADY_CONNECTING));
        m.connected(1, Instant::now());
        assert_eq!(m.state(), Connected);
        assert_eq!(m.take_entered(), vec![Connecting, Connected]);
        assert_eq!(m.connect().unwrap().0, Connecting::Already);
        assert_eq!(m.disconnect(), Ok(vec![Action::HangUp]));
        assert_eq!(m.last_error(), WinError::ERROR_INTERFACE_DISCONNECTED);
        assert_eq!(m.disconnect(), Err(WinError::ERROR_INTERFACE_NOT_CONNECTED));
    }

    #[test]
    fn failures_redial_then_unreachable_with_a_growing_interval() {
        let (mut m, mut now) = machine(DialMode::Manual);
        m.connect().unwrap();
        let timeout = WinError::ERROR_NO_ANSWER;
        assert_eq!(m.failed(1, timeout, now), vec![Action::HangUp]);
        assert_eq!(m.state(), Disconnected);
        assert_eq!(m.last_error(), timeout);
        assert_eq!(
            m.unreachability_reasons(),
            unreachability::CONNECTION_FAILURE
        );
        assert_eq!(m.tick(now), vec![], "not yet");
        now += S5;
        assert_eq!(m.tick(now), vec![Action::Dial(2)]);
        m.failed(2, timeout, now);
        now += S5;
        assert_eq!(m.tick(now), vec![Action::Dial(3)]);
        m.take_entered();
        m.failed(3, timeout, now);
        assert_eq!(m.state(), Unreachable, "two redials, then unreachable");
        assert_eq!(
            m.take_entered(),
            vec![Unreachable],
            "straight from CONNECTING"
        );
        assert_eq!(m.deadline(), Some(now + Duration::from_secs(600)));
        now += Duration::from_secs(600);
        assert_eq!(m.tick(now), vec![], "a manual interface becomes reachable");
        assert_eq!(m.state(), Disconnected);
        m.connect().unwrap();
        assert_eq!(m.failed(4, timeout, now), vec![Action::HangUp]);
        m.connected(4, Instant::now());
        assert_eq!(m.state(), Disconnected, "a stale report changes nothing");
    }

    #[test]
    fn a_persistent_interface_dials_at_start_and_after_a_loss_and_retries_unreachable() {
        let now = later();
        let (mut m, actions) = started(DialMode::Persistent, true);
        assert_eq!(actions, vec![Action::Dial(1)]);
        m.connected(1, Instant::now());
        m.take_entered();
        let lost = m.failed(1, WinError::ERROR_REMOTE_DISCONNECTION, now);
        assert_eq!(lost, vec![Action::HangUp, Action::Dial(2)]);
        assert_eq!(
            m.take_entered(),
            vec![Disconnected, Connecting],
            "a loss is a disconnect"
        );
        let mut now = now;
        for attempt in 2..=4 {
            m.failed(attempt, WinError::ERROR_NO_ANSWER, now);
            now += S5;
            m.tick(now);
        }
        assert_eq!(m.state(), Unreachable);
        // 600 s, then 1200 s, then at most 1500 s.
        for wait in [600, 1200, 1500, 1500] {
            let attempt = m.attempt();
            assert_eq!(
                m.deadline(),
                Some(now - S5 + Duration::from_secs(wait)),
                "{wait}"
            );
            now = m.deadline().unwrap();
            assert_eq!(m.tick(now), vec![Action::Dial(attempt + 1)]);
            for a in attempt + 1..=attempt + 3 {
                m.failed(a, WinError::ERROR_NO_ANSWER, now);
                now += S5;
                m.tick(now);
            }
        }
        let attempt = m.attempt();
        now = m.deadline().unwrap();
        m.tick(now);
        m.connected(attempt + 1, Instant::now());
        assert_eq!((m.state(), m.unreachability_reasons()), (Connected, 0));
    }

    #[test]
    fn an_administrators_disconnect_keeps_a_persistent_interface_down() {
        let now = later();
        let (mut m, _) = started(DialMode::Persistent, true);
        m.connected(1, Instant::now());
        assert_eq!(m.disconnect(), Ok(vec![Action::HangUp]));
        assert_eq!(m.tick(now + Duration::from_secs(3600)), vec![]);
        assert_eq!(m.state(), Disconnected);
        assert_eq!(m.connect().unwrap().1, vec![Action::Dial(2)]);
    }

    #[test]
    fn demand_dials_only_a_demand_interface_that_may() {
        let (mut d, _) = machine(DialMode::Demand);
        assert_eq!(d.demand(), vec![Action::Dial(1)]);
        assert_eq!(d.demand(), vec![], "already dialing");
        d.connected(1, Instant::now());
        assert_eq!(d.idle(1), vec![Action::HangUp]);
        assert_eq!(d.last_error(), WinError::ERROR_IDLE_DISCONNECTED);
        d.set_enabled(false);
        assert_eq!(d.demand(), vec![Action::Discard]);
        let (mut manual, _) = machine(DialMode::Manual);
        assert_eq!(manual.demand(), vec![Action::Discard]);
    }

    #[test]
    fn disabled_interfaces_hang_up_and_refuse_connect() {
        let (mut m, _) = machine(DialMode::Manual);
        m.connect().unwrap();
        assert_eq!(m.set_enabled(false), vec![Action::HangUp]);
        assert_eq!(m.state(), Disconnected);
        assert_eq!(m.unreachability_reasons(), unreachability::ADMIN_DISABLED);
        assert_eq!(m.connect(), Err(WinError::ERROR_INTERFACE_DISABLED));
        m.set_enabled(true);
        assert_eq!(m.unreachability_reasons(), 0);
        assert!(m.connect().is_ok());
    }

    #[test]
    fn dialout_hours_close_on_a_connection_and_open_again() {
        let (mut m, actions) = started(DialMode::Persistent, false);
        assert_eq!(actions, vec![]);
        assert_eq!(m.state(), Unreachable);
        assert_eq!(
            m.unreachability_reasons(),
            unreachability::DIALOUT_HOURS_RESTRICTION
        );
        assert_eq!(m.connect(), Err(WinError::ERROR_DIALOUT_HOURS_RESTRICTION));
        assert_eq!(m.window(true), vec![Action::Dial(1)]);
        m.connected(1, Instant::now());
        assert_eq!(m.window(false), vec![Action::HangUp]);
        assert_eq!(m.state(), Unreachable);
        assert_eq!(m.last_error(), WinError::ERROR_DIALOUT_HOURS_RESTRICTION);
    }

    #[test]
    fn a_stopped_ddm_hangs_up_and_dials_nothing() {
        let (mut m, _) = started(DialMode::Persistent, true);
        m.connected(1, Instant::now());
        assert_eq!(m.pause(true), vec![Action::HangUp]);
        assert_eq!(m.connect(), Err(WinError::ERROR_DDM_NOT_RUNNING));
        assert_eq!(m.pause(false), vec![Action::Dial(2)]);
    }

    #[test]
    fn a_connection_lost_as_soon_as_made_is_redialed_after_the_pause() {
        let now = later();
        let (mut m, actions) = started(DialMode::Persistent, true);
        assert_eq!(actions, vec![Action::Dial(1)]);
        m.connected(1, now);
        let lost = m.failed(1, WinError::ERROR_REMOTE_DISCONNECTION, now + S5 / 10);
        assert_eq!(lost, vec![Action::HangUp], "not at once");
        assert_eq!(m.deadline(), Some(now + S5 / 10 + S5));
        assert_eq!(m.tick(now + S5 / 10 + S5), vec![Action::Dial(2)]);
        m.connected(2, now + S5 * 2);
        let lost = m.failed(2, WinError::ERROR_REMOTE_DISCONNECTION, now + S5 * 4);
        assert_eq!(
            lost,
            vec![Action::HangUp, Action::Dial(3)],
            "a lasting one: at once"
        );
    }

    #[test]
    fn a_trigger_that_cannot_be_made_is_the_last_error() {
        let (mut m, _) = started(DialMode::Demand, true);
        m.cannot_be_triggered(WinError::ERROR_INTERFACE_HAS_NO_DEVICES);
        assert_eq!(m.state(), Disconnected);
        assert_eq!(m.last_error(), WinError::ERROR_INTERFACE_HAS_NO_DEVICES);
        assert_ne!(
            m.unreachability_reasons() & unreachability::CONNECTION_FAILURE,
            0
        );
    }
}

//! What the calls return, in Rust terms (the wire forms live in ddm-proto).

use ddm_proto::message::{self, Role};
use ddm_proto::model::ConnectionState;
use ddm_proto::WinError;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `MPR_SERVER_0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerInfo {
    /// True while the DDM is stopped: the router is in LAN-only mode.
    pub lan_only_mode: bool,
    pub up_time: Duration,
    pub total_ports: u32,
    pub ports_in_use: u32,
}

impl From<message::ServerInfo> for ServerInfo {
    fn from(m: message::ServerInfo) -> Self {
        ServerInfo {
            lan_only_mode: m.lan_only_mode,
            up_time: Duration::from_secs(m.up_time.into()),
            total_ports: m.total_ports,
            ports_in_use: m.ports_in_use,
        }
    }
}

/// `MPR_INTERFACE_0`, and beyond it the link and the path health.
#[derive(Debug, Clone, PartialEq)]
pub struct InterfaceInfo {
    pub name: String,
    /// Stays the same while the interface exists; never reused while the
    /// service runs.
    pub handle: u32,
    pub enabled: bool,
    /// A `ROUTER_INTERFACE_TYPE` (see `ddm_proto::model::interface_type`).
    pub if_type: u32,
    pub state: ConnectionState,
    /// `MPR_INTERFACE_*` bits (see `ddm_proto::model::unreachability`).
    pub unreachability_reasons: u32,
    pub last_error: u32,
    /// How a declared interface dials; `DialMode::DialNone` for a kernel
    /// link.
    pub dial: message::DialMode,
    /// The kernel link (a kernel link's own name).
    pub link: String,
    /// Path health, for an interface with a health table: "up", "down" or
    /// "pending"; empty without one. [`crate::Server::health`] has the
    /// figures per target.
    pub health: String,
    /// The median RTT of its probes over the window.
    pub health_rtt: Option<std::time::Duration>,
    /// Rounds lost (short of the quorum) over the window, in percent.
    pub health_loss_percent: f64,
    /// A demand interface's filters in force (`dial_on`, `dial_except`),
    /// with their counts; `None` without.
    pub dial_filter: Option<DialFilterInfo>,
    /// When it last changed state; when the service started if it has
    /// not changed since.
    pub since: std::time::SystemTime,
}

/// Demand-dial filters in force and what they counted since they were
/// loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialFilterInfo {
    /// "dial_on" (only this traffic dials) or "dial_except" (all but this).
    pub kind: String,
    /// Each rule and the packets that matched it.
    pub rules: Vec<(String, u64)>,
    /// Packets refused: they did not dial, and their senders were told
    /// "administratively prohibited".
    pub refused: u64,
}

impl From<message::Interface> for InterfaceInfo {
    fn from(m: message::Interface) -> Self {
        InterfaceInfo {
            dial: message::DialMode::try_from(m.dial).unwrap_or(message::DialMode::DialNone),
            link: m.link,
            health: m.health,
            health_rtt: m.health_rtt_us.map(std::time::Duration::from_micros),
            health_loss_percent: m.health_loss_percent,
            dial_filter: (!m.dial_filter.is_empty()).then(|| DialFilterInfo {
                kind: m.dial_filter,
                rules: m
                    .dial_filter_rules
                    .into_iter()
                    .map(|r| (r.rule, r.matched))
                    .collect(),
                refused: m.dial_refused,
            }),
            state: ConnectionState::from_u32(m.connection_state),
            since: std::time::UNIX_EPOCH + std::time::Duration::from_nanos(m.since_unix_ns),
            name: m.name,
            handle: m.handle,
            enabled: m.enabled,
            if_type: m.if_type,
            unreachability_reasons: m.unreachability_reasons,
            last_error: m.last_error,
        }
    }
}

/// One page of `MprAdminInterfaceEnum`.
#[derive(Debug, Clone, PartialEq)]
pub struct InterfacePage {
    pub interfaces: Vec<InterfaceInfo>,
    pub total_entries: u32,
    /// Where the next page starts; `None` when this was the last.
    pub resume_handle: Option<u32>,
}

/// One session, as `ddm registrations` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub session: u64,
    pub pid: i32,
    pub uid: u32,
    pub role: Role,
    pub registrations: u32,
    pub subscribed: bool,
    /// A remote session: its certificate's identity and address (empty
    /// for a local one).
    pub identity: String,
    pub address: String,
}

impl From<message::SessionEntry> for SessionInfo {
    fn from(m: message::SessionEntry) -> Self {
        SessionInfo {
            session: m.session,
            pid: m.pid,
            uid: m.uid,
            role: Role::try_from(m.role).unwrap_or(Role::None),
            registrations: m.registrations,
            subscribed: m.subscribed,
            identity: m.identity,
            address: m.address,
        }
    }
}

/// One change of an interface's state: a connect (`to == Connected`), a
/// disconnect (`from == Connected`), or for a declared interface any other
/// (CONNECTING, a failed attempt, UNREACHABLE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionEvent {
    /// The service's commit sequence number: consecutive, no gaps but those
    /// a `Missed` marker reports.
    pub seq: u64,
    pub handle: u32,
    pub interface: String,
    pub from: ConnectionState,
    pub to: ConnectionState,
    /// When the service committed it.
    pub time: SystemTime,
    /// The interface's last error after the change.
    pub last_error: u32,
    /// Set when this numbered change is a group's switch, not an
    /// interface's transition: `interface` is then the group's name and
    /// `handle`, `from`, `to` and `last_error` mean nothing. No registered
    /// event is signaled for it.
    pub group_switch: Option<GroupSwitch>,
}

/// A group's routes moved from one member to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSwitch {
    /// The member that carried them; None: none did.
    pub from: Option<String>,
    /// The member that carries them now; None: none can.
    pub to: Option<String>,
    /// Through `to`'s trigger: a demand member the first packet dials.
    pub via_trigger: bool,
    pub reason: String,
}

impl From<message::GroupSwitch> for GroupSwitch {
    fn from(m: message::GroupSwitch) -> Self {
        let member = |name: String| (!name.is_empty()).then_some(name);
        GroupSwitch {
            from: member(m.from),
            to: member(m.to),
            via_trigger: m.via_trigger,
            reason: m.reason,
        }
    }
}

impl From<message::ConnectionEvent> for ConnectionEvent {
    fn from(m: message::ConnectionEvent) -> Self {
        ConnectionEvent {
            group_switch: m.group_switch.map(Into::into),
            seq: m.seq,
            handle: m.handle,
            interface: m.name,
            from: ConnectionState::from_u32(m.from),
            to: ConnectionState::from_u32(m.to),
            time: UNIX_EPOCH + Duration::from_nanos(m.time_unix_ns),
            last_error: m.last_error,
        }
    }
}

/// What `Server::interface_connect` started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connect {
    /// The interface was connected already.
    Connected,
    /// An attempt is under way (PENDING).
    Pending,
}

/// What a stream yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamItem {
    Event(ConnectionEvent),
    /// This many sequence numbers were skipped here: events dropped
    /// because the consumer was slow (exact), or, in a replay, numbers the
    /// journal does not have: deleted by retention or lost to a full disk
    /// (exact), or reserved by a service that was killed, which may have
    /// given some of them to changes it had not yet journaled (at most).
    Missed(u64),
    /// The stream is over: ERROR_DDM_NOT_RUNNING when the DDM stopped or
    /// the service went away. Every later call to `next` says the same.
    End(WinError),
}

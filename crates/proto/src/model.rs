//! The router's vocabulary, with the values of mprapi.h: connection states,
//! interface types and unreachability reasons.

/// `ROUTER_CONNECTION_STATE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ConnectionState {
    Unreachable = 0,
    Disconnected = 1,
    Connecting = 2,
    Connected = 3,
}

impl ConnectionState {
    /// The state for a wire value; unknown values read as unreachable.
    pub fn from_u32(value: u32) -> Self {
        match value {
            1 => ConnectionState::Disconnected,
            2 => ConnectionState::Connecting,
            3 => ConnectionState::Connected,
            _ => ConnectionState::Unreachable,
        }
    }

    /// Lower-case name, as `ddm interfaces` and `ddm watch` print it.
    pub fn name(self) -> &'static str {
        match self {
            ConnectionState::Unreachable => "unreachable",
            ConnectionState::Disconnected => "disconnected",
            ConnectionState::Connecting => "connecting",
            ConnectionState::Connected => "connected",
        }
    }
}

/// `ROUTER_INTERFACE_TYPE` values.
pub mod interface_type {
    pub const CLIENT: u32 = 0;
    pub const HOME_ROUTER: u32 = 1;
    pub const FULL_ROUTER: u32 = 2;
    pub const DEDICATED: u32 = 3;
    pub const INTERNAL: u32 = 4;
    pub const LOOPBACK: u32 = 5;
    pub const TUNNEL1: u32 = 6;
    pub const DIALOUT: u32 = 7;

    /// Lower-case name for display.
    pub fn name(value: u32) -> &'static str {
        match value {
            CLIENT => "client",
            HOME_ROUTER => "home_router",
            FULL_ROUTER => "full_router",
            DEDICATED => "dedicated",
            INTERNAL => "internal",
            LOOPBACK => "loopback",
            TUNNEL1 => "tunnel1",
            DIALOUT => "dialout",
            _ => "unknown",
        }
    }
}

/// `MPR_INTERFACE_*` unreachability reason bits.
pub mod unreachability {
    pub const OUT_OF_RESOURCES: u32 = 0x1;
    pub const ADMIN_DISABLED: u32 = 0x2;
    pub const CONNECTION_FAILURE: u32 = 0x4;
    pub const SERVICE_PAUSED: u32 = 0x8;
    pub const DIALOUT_HOURS_RESTRICTION: u32 = 0x10;
    pub const NO_MEDIA_SENSE: u32 = 0x20;
    pub const NO_DEVICE: u32 = 0x40;
}

/// The longest `connect_timeout_secs` a declared interface may have: it
/// bounds how long a synchronous Connect can wait.
pub const MAX_CONNECT_TIMEOUT_SECS: u64 = 600;

/// The time now as the wire carries it (`time_unix_ns`): nanoseconds since
/// 1970, UTC.
pub fn now_unix_ns() -> u64 {
    unix_ns(std::time::SystemTime::now())
}

/// A time as the wire carries it: nanoseconds since 1970 (0 before).
pub fn unix_ns(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

//! `[limits]`: what bounds the service's memory, whatever clients do.

use crate::bounds::within;
use serde::Deserialize;
use std::time::Duration;

/// The smallest `max_frame_bytes`: one reply must hold the largest
/// interface entry there can be (a 256-character name of 4-byte
/// characters), so that a page of `MprAdminInterfaceEnum` is never empty.
pub const MIN_FRAME_BYTES: usize = 2048;
/// The largest `max_frame_bytes`: 16 MiB.
pub const MAX_FRAME_BYTES: usize = 16 << 20;
/// The most `max_sessions` (and per user or identity).
pub const MAX_SESSIONS: usize = 1_000_000;
/// The most `max_interfaces`.
pub const MAX_INTERFACES: usize = 100_000;

/// The limits that bound the service's memory. Each refusal is a clear error.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest frame body accepted or sent, in bytes.
    pub max_frame_bytes: usize,
    /// Sessions open at once; the next is refused with RPC_S_SERVER_TOO_BUSY.
    pub max_sessions: usize,
    /// Of those, how many only admin callers may use.
    pub admin_reserved_sessions: usize,
    /// Sessions one user (other than an admin) may have open at once.
    pub max_sessions_per_user: usize,
    /// Sessions one remote identity (other than an admin) may have open.
    pub max_sessions_per_identity: usize,
    /// Connections (other than an admin's) that may be in their handshake
    /// at once.
    pub max_pending_handshakes: usize,
    /// Registrations per session; the next gets ERROR_NOT_ENOUGH_QUOTA.
    pub max_registrations_per_session: usize,
    /// Typed streams per session; the next gets ERROR_NOT_ENOUGH_QUOTA.
    pub max_streams_per_session: usize,
    /// Time a new connection has to send its Hello.
    pub handshake_timeout_ms: u64,
    /// Typed events queued per subscribed session before they are counted
    /// as missed.
    pub stream_backlog: usize,
    /// How long a shutdown waits for sessions to write what they hold.
    pub shutdown_timeout_ms: u64,
    /// How long a shutdown waits for the declared interfaces to hang up
    /// before it kills the commands left (thousands of links whose
    /// hang-up deletes them take the kernel tens of seconds).
    pub hang_up_timeout_ms: u64,
    /// Interfaces a configuration may declare.
    pub max_interfaces: usize,
    /// How long a session stays awake after answering a request, for the
    /// client's next one, before the service sleeps (0: at once). A
    /// service that sleeps must be woken for the next call, which costs
    /// tens of microseconds when the wake-up crosses CPUs; staying awake
    /// costs at most this much CPU time per request, and gives way to any
    /// other thread that wants the CPU.
    pub session_spin_us: u64,
    /// Dial attempts under way (connect commands started and not yet
    /// connected or failed), disconnect commands running and demand
    /// triggers being made, at once; one ordered past them waits its turn,
    /// in order. A dial's
    /// `connect_timeout_secs` starts with its turn. Read at the start.
    pub max_dials_at_once: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: ddm_proto::frame::DEFAULT_MAX_FRAME,
            max_sessions: 16_384,
            admin_reserved_sessions: 16,
            max_sessions_per_user: 256,
            max_sessions_per_identity: 64,
            max_pending_handshakes: 64,
            max_registrations_per_session: 256,
            max_streams_per_session: 64,
            handshake_timeout_ms: 5_000,
            stream_backlog: 1_024,
            shutdown_timeout_ms: 2_000,
            hang_up_timeout_ms: 30_000,
            max_interfaces: 10_000,
            session_spin_us: 50,
            max_dials_at_once: 64,
        }
    }
}

impl Limits {
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms)
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout_ms)
    }

    pub fn hang_up_timeout(&self) -> Duration {
        Duration::from_millis(self.hang_up_timeout_ms)
    }

    pub fn session_spin(&self) -> Duration {
        Duration::from_micros(self.session_spin_us)
    }

    /// Every limit in its range.
    pub fn check(&self) -> Result<(), String> {
        let ranges = [
            within(
                "limits.max_frame_bytes",
                self.max_frame_bytes,
                MIN_FRAME_BYTES..=MAX_FRAME_BYTES,
            ),
            within("limits.max_sessions", self.max_sessions, 1..=MAX_SESSIONS),
            within(
                "limits.admin_reserved_sessions",
                self.admin_reserved_sessions,
                0..=self.max_sessions.saturating_sub(1),
            ),
            within(
                "limits.max_sessions_per_user",
                self.max_sessions_per_user,
                1..=MAX_SESSIONS,
            ),
            within(
                "limits.max_sessions_per_identity",
                self.max_sessions_per_identity,
                1..=MAX_SESSIONS,
            ),
            within(
                "limits.max_pending_handshakes",
                self.max_pending_handshakes,
                1..=65_536,
            ),
            within(
                "limits.max_registrations_per_session",
                self.max_registrations_per_session,
                1..=65_536,
            ),
            within(
                "limits.max_streams_per_session",
                self.max_streams_per_session,
                1..=4_096,
            ),
            within(
                "limits.handshake_timeout_ms",
                self.handshake_timeout_ms,
                100..=600_000,
            ),
            within("limits.stream_backlog", self.stream_backlog, 1..=1_048_576),
            within(
                "limits.shutdown_timeout_ms",
                self.shutdown_timeout_ms,
                0..=600_000,
            ),
            within(
                "limits.hang_up_timeout_ms",
                self.hang_up_timeout_ms,
                0..=600_000,
            ),
            within(
                "limits.max_interfaces",
                self.max_interfaces,
                1..=MAX_INTERFACES,
            ),
            within("limits.session_spin_us", self.session_spin_us, 0..=1_000),
            within(
                "limits.max_dials_at_once",
                self.max_dials_at_once,
                1..=65_536,
            ),
        ];
        ranges.into_iter().collect()
    }
}

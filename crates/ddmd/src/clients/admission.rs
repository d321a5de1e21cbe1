//! Who may open a session, decided when a connection is accepted.
//!
//! Anyone on the machine may connect (the socket is 0666), so one user
//! must not be able to take every session. As dbus-daemon does for the
//! system bus, there are three limits: sessions in all, sessions per user,
//! and connections still in their handshake (the cheapest to open and
//! hold). A number of sessions is kept for administrators, whom neither the
//! per-user nor the handshake limit applies to, and root always gets in.
//! A refused connection is told RPC_S_SERVER_TOO_BUSY and closed. Remote
//! peers are counted by their certificate's identity, as local ones by
//! their uid (`max_sessions_per_identity`).

use crate::core::limits::Limits;
use crate::ops::metrics::Counters;
use ddm_proto::message::Role;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// All sessions open to the caller's role are taken.
    Sessions,
    /// The caller's user (or remote identity) has its most sessions open.
    PerUser,
    /// Too many connections have not finished their handshake.
    Handshakes,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Sessions => "too many sessions",
            Refusal::PerUser => "too many sessions for this user",
            Refusal::Handshakes => "too many connections in the handshake",
        }
    }
}

/// Who a connection comes from, as admission counts it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Who {
    /// A local user.
    User(u32),
    /// A remote peer, by its certificate's identity.
    Remote(String),
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    handshaking: usize,
    per_peer: HashMap<Who, usize>,
}

/// The session counts, shared by every listener.
#[derive(Debug)]
pub struct Admission {
    limits: Limits,
    counts: Mutex<Counts>,
    /// Counts connections refused by a limit, for the metrics.
    counters: Arc<Counters>,
}

impl Admission {
    pub fn new(limits: &Limits, counters: Arc<Counters>) -> Arc<Self> {
        Arc::new(Admission {
            limits: limits.clone(),
            counts: Mutex::new(Counts::default()),
            counters,
        })
    }

    /// Admits a connection from `who` with `role`, or says why not. The
    /// ticket holds its place until it is dropped.
    pub fn admit(self: &Arc<Self>, who: Who, role: Role) -> Result<Ticket, Refusal> {
        let admitted = self.try_admit(who, role);
        if admitted.is_err() {
            self.counters
                .sessions_refused
                .fetch_add(1, Ordering::Relaxed);
        }
        admitted
    }

    fn try_admit(self: &Arc<Self>, who: Who, role: Role) -> Result<Ticket, Refusal> {
        let limits = &self.limits;
        let mut counts = self.lock();
        let per_peer = match who {
            Who::User(_) => limits.max_sessions_per_user,
            Who::Remote(_) => limits.max_sessions_per_identity,
        };
        if who != Who::User(0) {
            if role == Role::Admin {
                if counts.total >= limits.max_sessions {
                    return Err(Refusal::Sessions);
                }
            } else {
                let open_to_others = limits
                    .max_sessions
                    .saturating_sub(limits.admin_reserved_sessions);
                if counts.total >= open_to_others {
                    return Err(Refusal::Sessions);
                }
                if counts.per_peer.get(&who).copied().unwrap_or(0) >= per_peer {
                    return Err(Refusal::PerUser);
                }
                if counts.handshaking >= limits.max_pending_handshakes {
                    return Err(Refusal::Handshakes);
                }
            }
        }
        counts.total += 1;
        counts.handshaking += 1;
        *counts.per_peer.entry(who.clone()).or_default() += 1;
        Ok(Ticket {
            admission: self.clone(),
            who,
            handshaking: true,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// An admitted connection's place; given back on drop.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    who: Who,
    handshaking: bool,
}

impl Ticket {
    /// The handshake is done: the connection no longer counts as pending.
    pub fn established(&mut self) {
        if std::mem::take(&mut self.handshaking) {
            self.admission.lock().handshaking -= 1;
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut counts = self.admission.lock();
        counts.total -= 1;
        if self.handshaking {
            counts.handshaking -= 1;
        }
        if let Some(n) = counts.per_peer.get_mut(&self.who) {
            *n -= 1;
            if *n == 0 {
                counts.per_peer.remove(&self.who);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_identities_are_counted_apart_from_users() {
        let limits = Limits {
            max_sessions_per_identity: 2,
            ..Limits::default()
        };
        let a = Admission::new(&limits, Arc::default());
        let alice = || Who::Remote("spiffe://example.org/alice".into());
        let held: Vec<Ticket> = (0..2)
            .map(|_| a.admit(alice(), Role::Monitor).unwrap())
            .collect();
        assert_eq!(
            a.admit(alice(), Role::Monitor).unwrap_err(),
            Refusal::PerUser
        );
        assert!(a.admit(Who::Remote("bob".into()), Role::Monitor).is_ok());
        assert!(
            a.admit(alice(), Role::Admin).is_ok(),
            "admins are not limited"
        );
        drop(held);
        assert!(a.admit(alice(), Role::Monitor).is_ok());
    }

    fn admission() -> Arc<Admission> {
        Admission::new(
            &Limits {
                max_sessions: 10,
                admin_reserved_sessions: 2,
                max_sessions_per_user: 5,
                max_pending_handshakes: 3,
                ..Limits::default()
            },
            Arc::default(),
        )
    }

    #[test]
    fn handshakes_are_limited_until_established() {
        let a = admission();
        let mut held: Vec<Ticket> = (0..3)
            .map(|_| a.admit(Who::User(7), Role::Status).unwrap())
            .collect();
        assert_eq!(
            a.admit(Who::User(8), Role::Monitor).unwrap_err(),
            Refusal::Handshakes
        );
        held[0].established();
        let another = a.admit(Who::User(8), Role::Monitor).unwrap();
        drop(held.pop());
        drop(another);
        assert!(a.admit(Who::User(8), Role::Monitor).is_ok());
    }

    #[test]
    fn one_user_cannot_take_more_than_its_share() {
        let a = admission();
        let mut held = Vec::new();
        for _ in 0..5 {
            let mut t = a.admit(Who::User(7), Role::Status).unwrap();
            t.established();
            held.push(t);
        }
        assert_eq!(
            a.admit(Who::User(7), Role::Status).unwrap_err(),
            Refusal::PerUser
        );
        assert!(
            a.admit(Who::User(8), Role::Status).is_ok(),
            "another user still gets in"
        );
    }

    #[test]
    fn the_reserve_is_for_administrators_and_root_always_gets_in() {
        let a = admission();
        let mut held = Vec::new();
        for uid in 0..8 {
            let mut t = a.admit(Who::User(100 + uid), Role::Status).unwrap();
            t.established();
            held.push(t);
        }
        assert_eq!(
            a.admit(Who::User(200), Role::Monitor).unwrap_err(),
            Refusal::Sessions
        );
        for _ in 0..2 {
            let mut t = a.admit(Who::User(300), Role::Admin).unwrap();
            t.established();
            held.push(t);
        }
        assert_eq!(
            a.admit(Who::User(300), Role::Admin).unwrap_err(),
            Refusal::Sessions
        );
        assert!(
            a.admit(Who::User(0), Role::Admin).is_ok(),
            "root always gets in"
        );
        held.truncate(0);
        assert_eq!(a.lock().total, 0);
        assert!(a.lock().per_peer.is_empty());
    }
}

//! Which member of a group carries its routes: pure logic, with the time
//! passed in, unit-tested with a clock the test moves.
//!
//! The routes go through the first member, in order, that can carry
//! traffic: one that is CONNECTED (with health: healthy), or, when none
//! before it can, a demand member that may dial (through its trigger, so
//! that traffic dials it). A group with no carrier yet waits for a member
//! whose health is being judged before it takes one after it (at a start,
//! the expensive backup is not chosen while the uplink before it is being
//! probed). When the carrier can no longer carry, the
//! routes move at once; when a better member could carry, they move back
//! only after it has been able to for `failback`, without a break.

use std::time::{Duration, Instant};

/// What a member can do for the group now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Can {
    /// CONNECTED (and healthy): the routes go through its link.
    Carry,
    /// A demand member that may dial: the routes go to its trigger.
    Trigger,
    /// Its link is up and its health not judged yet: a group with no
    /// carrier waits for it rather than choose a member after it.
    Pending,
    No,
}

impl Can {
    fn carries(self) -> bool {
        matches!(self, Can::Carry | Can::Trigger)
    }
}

/// Where the routes go: a member, through its link or its trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Carrier {
    pub member: usize,
    pub via_trigger: bool,
}

/// A change of carrier, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switch {
    pub from: Option<Carrier>,
    pub to: Option<Carrier>,
    pub why: &'static str,
}

#[derive(Debug, Clone)]
pub struct Chooser {
    failback: Duration,
    carrier: Option<Carrier>,
    /// Since when the carrier carries.
    since: Option<Instant>,
    /// A better member that can carry, and since when it can.
    better: Option<(usize, Instant)>,
}

impl Chooser {
    pub fn new(failback: Duration) -> Chooser {
        Chooser {
            failback,
            carrier: None,
            since: None,
            better: None,
        }
    }

    pub fn carrier(&self) -> Option<Carrier> {
        self.carrier
    }

    pub fn since(&self) -> Option<Instant> {
        self.since
    }

    pub fn set_failback(&mut self, failback: Duration) {
        self.failback = failback;
    }

    /// When a failback hold ends (the next `decide` must run by then).
    pub fn deadline(&self) -> Option<Instant> {
        self.better.map(|(_, since)| since + self.failback)
    }

    /// What the members can do now (in the group's order): the switch to
    /// make, if any.
    pub fn decide(&mut self, members: &[Can], now: Instant) -> Option<Switch> {
        if self.carrier.is_none()
            && members
                .iter()
                .find(|c| **c != Can::No)
                .is_some_and(|c| *c == Can::Pending)
        {
            return None;
        }
        let first = members
            .iter()
            .position(|c| c.carries())
            .map(|member| Carrier {
                member,
                via_trigger: members[member] == Can::Trigger,
            });
        let (current, candidate) = match (self.carrier, first) {
            (None, None) => return None,
            (current, None) => {
                return self.switch(current, None, now, "no member can carry traffic")
            }
            (None, Some(first)) => {
                return self.switch(None, Some(first), now, "a member can carry traffic")
            }
            (Some(current), Some(first)) => (current, first),
        };
        if candidate == current {
            self.better = None;
            return None;
        }
        let still = members[current.member].carries();
        if !still {
            return self.switch(
                Some(current),
                Some(candidate),
                now,
                "the carrier cannot carry traffic",
            );
        }
        if candidate.member == current.member {
            // Its own link now, or its trigger again.
            let why = if candidate.via_trigger {
                "the carrier went back to its trigger"
            } else {
                "the carrier connected"
            };
            return self.switch(Some(current), Some(candidate), now, why);
        }
        if candidate.member > current.member {
            // Only a member before it can be first while it still carries.
            self.better = None;
            return None;
        }
        let since = match self.better {
            Some((member, since)) if member == candidate.member => since,
            _ => {
                self.better = Some((candidate.member, now));
                now
            }
        };
        if now.saturating_duration_since(since) >= self.failback {
            return self.switch(
                Some(current),
                Some(candidate),
                now,
                "failback: a better member has carried for failback_secs",
            );
        }
        None
    }

    fn switch(
        &mut self,
        from: Option<Carrier>,
        to: Option<Carrier>,
        now: Instant,
        why: &'static str,
    ) -> Option<Switch> {
        self.carrier = to;
        self.since = to.map(|_| now);
        self.better = None;
        Some(Switch { from, to, why })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Can::*;

    fn link(member: usize) -> Option<Carrier> {
        Some(Carrier {
            member,
            via_trigger: false,
        })
    }

    fn trigger(member: usize) -> Option<Carrier> {
        Some(Carrier {
            member,
            via_trigger: true,
        })
    }

    #[test]
    fn the_first_that_can_carry_and_at_once_when_the_carrier_fails() {
        let now = Instant::now();
        let mut c = Chooser::new(Duration::from_secs(30));
        assert_eq!(c.decide(&[Carry, Carry, Trigger], now).unwrap().to, link(0));
        assert_eq!(c.decide(&[Carry, Carry, Trigger], now), None);
        let failover = c.decide(&[No, Carry, Trigger], now).unwrap();
        assert_eq!((failover.from, failover.to), (link(0), link(1)));
        assert_eq!(c.decide(&[No, No, Trigger], now).unwrap().to, trigger(2));
        assert_eq!(c.decide(&[No, No, Carry], now).unwrap().to, link(2));
        assert_eq!(c.decide(&[No, No, No], now).unwrap().to, None);
    }

    #[test]
    fn failback_waits_for_the_better_member_to_carry_without_a_break() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let mut c = Chooser::new(Duration::from_secs(30));
        c.decide(&[No, Carry], at(0));
        assert_eq!(c.decide(&[Carry, Carry], at(1)), None);
        assert_eq!(c.deadline(), Some(at(31)));
        // A break starts the hold again.
        assert_eq!(c.decide(&[No, Carry], at(20)), None);
        assert_eq!(c.decide(&[Carry, Carry], at(21)), None);
        assert_eq!(c.decide(&[Carry, Carry], at(50)), None);
        let back = c.decide(&[Carry, Carry], at(51)).unwrap();
        assert_eq!((back.from, back.to), (link(1), link(0)));
        assert!(back.why.starts_with("failback"));
    }

    #[test]
    fn a_group_with_no_carrier_waits_for_a_member_being_judged() {
        let now = Instant::now();
        let mut c = Chooser::new(Duration::ZERO);
        assert_eq!(c.decide(&[Pending, Trigger], now), None);
        assert_eq!(c.decide(&[Carry, Trigger], now).unwrap().to, link(0));
        // With a carrier, a member being judged is not one yet.
        assert_eq!(c.decide(&[Pending, Trigger], now).unwrap().to, trigger(1));
    }

    #[test]
    fn a_demand_member_before_a_connected_one_takes_the_routes_to_its_trigger() {
        let now = Instant::now();
        let mut c = Chooser::new(Duration::ZERO);
        assert_eq!(c.decide(&[No, Trigger, Carry], now).unwrap().to, trigger(1));
        assert_eq!(c.decide(&[No, Carry, Carry], now).unwrap().to, link(1));
        // Failback at once without a hold.
        assert_eq!(c.decide(&[Carry, Carry, Carry], now).unwrap().to, link(0));
    }
}

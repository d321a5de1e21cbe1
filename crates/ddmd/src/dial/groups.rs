//! The router's side of the groups: each group's chooser, fed with what
//! its members can do after every input, and the route orders and switch
//! records that come out. The members are declared interfaces; what they
//! can do is read from their machines (`Dialed::regroup`).

use super::group_routes::{RouteOrder, Through};
use crate::groups::choose::{Can, Carrier, Chooser};
use crate::groups::config::{GroupConfig, Prefix};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;

/// A member as the chooser needs it.
#[derive(Debug, Clone)]
pub struct Member {
    pub can: Can,
    pub link: String,
    pub trigger: String,
}

/// A switch made: for the journal, the log and the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switched {
    pub group: String,
    pub from: Option<String>,
    pub to: Option<String>,
    /// `to`'s trigger: a demand member, dialed by the first packet.
    pub via_trigger: bool,
    pub why: &'static str,
}

impl Switched {
    /// "wan1 -> wan2 (why)", for the journal's reason and the log.
    pub fn describe(&self) -> String {
        let name = |m: &Option<String>| m.clone().unwrap_or_else(|| "none".into());
        let trigger = if self.via_trigger {
            " (its trigger)"
        } else {
            ""
        };
        format!(
            "{} -> {}{trigger}: {}",
            name(&self.from),
            name(&self.to),
            self.why
        )
    }
}

struct Group {
    config: GroupConfig,
    prefixes: Vec<Prefix>,
    chooser: Chooser,
    /// When the carrier began carrying, on the wall clock.
    since: Option<SystemTime>,
    switches: u64,
}

/// What `ddm groups` shows of a group.
#[derive(Debug, Clone)]
pub struct GroupView {
    pub name: String,
    pub routes: Vec<String>,
    pub members: Vec<String>,
    pub carrier: Option<String>,
    pub via_trigger: bool,
    pub since: Option<SystemTime>,
    pub switches: u64,
    pub failback_secs: u64,
}

#[derive(Default)]
pub struct Groups {
    groups: Vec<Group>,
    orders: Option<mpsc::UnboundedSender<RouteOrder>>,
}

impl Groups {
    /// Routes move through `orders` (without: nothing is routed, as in
    /// the router's unit tests).
    pub fn routing(&mut self, orders: mpsc::UnboundedSender<RouteOrder>) {
        self.orders = Some(orders);
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The groups a configuration declares: a group kept by name keeps its
    /// carrier (a changed member list or failback applies from the next
    /// decision); prefixes no group routes any more are removed.
    pub fn set(&mut self, configs: Vec<GroupConfig>) {
        let mut old: Vec<Group> = std::mem::take(&mut self.groups);
        for config in configs {
            let failback = Duration::from_secs(config.failback_secs);
            let prefixes = config.prefixes();
            let group = match old.iter().position(|g| g.config.name == config.name) {
                Some(at) => {
                    let mut group = old.remove(at);
                    let gone: Vec<Prefix> = group
                        .prefixes
                        .iter()
                        .filter(|p| !prefixes.contains(p))
                        .copied()
                        .collect();
                    self.remove_routes(&group.config, gone);
                    group.chooser.set_failback(failback);
                    if group.config.members != config.members {
                        // Its carrier is named by position: choose afresh.
                        group.chooser = Chooser::new(failback);
                    }
                    group.config = config;
                    group.prefixes = prefixes;
                    group
                }
                None => Group {
                    chooser: Chooser::new(failback),
                    config,
                    prefixes,
                    since: None,
                    switches: 0,
                },
            };
            self.groups.push(group);
        }
        for group in old {
            self.remove_routes(&group.config, group.prefixes);
        }
    }

    fn remove_routes(&self, config: &GroupConfig, prefixes: Vec<Prefix>) {
        if prefixes.is_empty() {
            return;
        }
        self.order(RouteOrder {
            group: config.name.clone(),
            prefixes,
            metric: config.route_metric,
            through: None,
        });
    }

    fn order(&self, order: RouteOrder) {
        if let Some(orders) = &self.orders {
            let _ = orders.send(order);
        }
    }

    /// When a failback hold ends.
    pub fn deadline(&self) -> Option<Instant> {
        self.groups
            .iter()
            .filter_map(|g| g.chooser.deadline())
            .min()
    }

    /// Each group decides with what its members can do now (`member`
    /// answers for a name); the switches made, their routes ordered.
    pub fn decide(
        &mut self,
        member: impl Fn(&str) -> Option<Member>,
        now: Instant,
    ) -> Vec<Switched> {
        let mut switched = Vec::new();
        for group in &mut self.groups {
            let members: Vec<Option<Member>> = group
                .config
                .members
                .iter()
                .map(|name| member(name))
                .collect();
            let cans: Vec<Can> = members
                .iter()
                .map(|m| m.as_ref().map_or(Can::No, |m| m.can))
                .collect();
            let Some(switch) = group.chooser.decide(&cans, now) else {
                continue;
            };
            group.switches += 1;
            group.since = switch.to.map(|_| SystemTime::now());
            let name =
                |carrier: Option<Carrier>| carrier.map(|c| group.config.members[c.member].clone());
            let through = switch.to.and_then(|to| {
                let m = members[to.member].as_ref()?;
                Some(Through {
                    link: if to.via_trigger {
                        m.trigger.clone()
                    } else {
                        m.link.clone()
                    },
                    trigger: to.via_trigger,
                })
            });
            let order = RouteOrder {
                group: group.config.name.clone(),
                prefixes: group.prefixes.clone(),
                metric: group.config.route_metric,
                through,
            };
            if let Some(orders) = &self.orders {
                let _ = orders.send(order);
            }
            switched.push(Switched {
                group: group.config.name.clone(),
                from: name(switch.from),
                to: name(switch.to),
                via_trigger: switch.to.is_some_and(|c| c.via_trigger),
                why: switch.why,
            });
        }
        switched
    }

    /// Whether `member` carries a group's routes now.
    pub fn carries(&self, member: &str) -> bool {
        self.groups.iter().any(|g| {
            g.chooser
                .carrier()
                .is_some_and(|c| g.config.members[c.member] == member)
        })
    }

    pub fn views(&self) -> Vec<GroupView> {
        self.groups
            .iter()
            .map(|g| GroupView {
                name: g.config.name.clone(),
                routes: g.prefixes.iter().map(Prefix::to_string).collect(),
                members: g.config.members.clone(),
                carrier: g
                    .chooser
                    .carrier()
                    .map(|c| g.config.members[c.member].clone()),
                via_trigger: g.chooser.carrier().is_some_and(|c| c.via_trigger),
                since: g.since,
                switches: g.switches,
                failback_secs: g.config.failback_secs,
            })
            .collect()
    }
}

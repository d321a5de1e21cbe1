//! The interface table: kernel link states in, connection transitions out.
//!
//! Pure logic, no I/O: the link monitor feeds it what the kernel reports and
//! it answers with the transitions into or out of CONNECTED that the router
//! must commit. Keeping it free of sockets lets the unit tests walk through
//! every path, including reconciliation after a netlink overrun.

use crate::links::LinkState;
use ddm_proto::message::Interface;
use ddm_proto::model::{interface_type, ConnectionState};
use std::collections::{BTreeMap, HashMap, HashSet};

/// One committed change of an interface's connected-ness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub handle: u32,
    pub name: String,
    pub from: ConnectionState,
    pub to: ConnectionState,
    /// The interface's last error after it (always 0 for kernel links).
    pub last_error: u32,
    /// Why, for the journal: what a declared interface's machine was told,
    /// or "resync", or what a health verdict was made of; empty for a
    /// kernel link's change.
    pub reason: std::borrow::Cow<'static, str>,
}

#[derive(Debug)]
struct Entry {
    handle: u32,
    link: LinkState,
}

/// Which link names become interfaces.
#[derive(Debug, Clone)]
pub struct LinkFilter {
    include: Vec<glob::Pattern>,
    exclude: Vec<glob::Pattern>,
}

impl LinkFilter {
    /// Builds a filter from globs already checked by the config.
    pub fn new(include: &[String], exclude: &[String]) -> Self {
        let compile = |globs: &[String]| {
            globs
                .iter()
                .filter_map(|g| glob::Pattern::new(g).ok())
                .collect()
        };
        LinkFilter {
            include: compile(include),
            exclude: compile(exclude),
        }
    }

    fn admits(&self, name: &str) -> bool {
        self.include.iter().any(|p| p.matches(name))
            && !self.exclude.iter().any(|p| p.matches(name))
    }
}

/// The kernel links that are router interfaces, keyed by link index.
/// Declared interfaces live beside them (`dial::Dialed`), with handles
/// from the same counter.
#[derive(Debug)]
pub struct InterfaceTable {
    by_index: BTreeMap<u32, Entry>,
    /// Link index by handle, and by name: a router of thousands of links
    /// finds one, or a page of them in handle order, without a pass over
    /// them all.
    by_handle: BTreeMap<u32, u32>,
    by_name: HashMap<String, u32>,
    next_handle: u32,
    filter: LinkFilter,
    /// During a reconciliation: the links the kernel has reported since it
    /// began. The rest are gone.
    reconciling: Option<HashSet<u32>>,
}

impl InterfaceTable {
    pub fn new(filter: LinkFilter) -> Self {
        InterfaceTable {
            by_index: BTreeMap::new(),
            by_handle: BTreeMap::new(),
            by_name: HashMap::new(),
            next_handle: 1,
            filter,
            reconciling: None,
        }
    }

    /// Applies a link's new state. A link the filter does not admit (also
    /// after a rename) is treated as absent.
    pub fn update(&mut self, link: LinkState) -> Option<Transition> {
        if let Some(seen) = &mut self.reconciling {
            seen.insert(link.index);
        }
        if !self.filter.admits(&link.name) {
            return self.remove(link.index);
        }
        match self.by_index.get_mut(&link.index) {
            Some(entry) => {
                let from = entry.link.state();
                if entry.link.name != link.name {
                    if self.by_name.get(&entry.link.name) == Some(&link.index) {
                        self.by_name.remove(&entry.link.name);
                    }
                    self.by_name.insert(link.name.clone(), link.index);
                }
                entry.link = link;
                let to = entry.link.state();
                (from != to).then(|| Transition {
                    handle: entry.handle,
                    name: entry.link.name.clone(),
                    from,
                    to,
                    last_error: 0,
                    reason: "".into(),
                })
            }
            None => {
                let handle = self.allocate_handle();
                let transition = link.is_connected().then(|| Transition {
                    handle,
                    name: link.name.clone(),
                    from: ConnectionState::Unreachable,
                    to: ConnectionState::Connected,
                    last_error: 0,
                    reason: "".into(),
                });
                self.by_handle.insert(handle, link.index);
                self.by_name.insert(link.name.clone(), link.index);
                self.by_index.insert(link.index, Entry { handle, link });
                transition
            }
        }
    }

    /// Forgets a deleted link; a connected one yields a disconnect.
    pub fn remove(&mut self, index: u32) -> Option<Transition> {
        if let Some(seen) = &mut self.reconciling {
            seen.remove(&index);
        }
        let entry = self.by_index.remove(&index)?;
        self.by_handle.remove(&entry.handle);
        if self.by_name.get(&entry.link.name) == Some(&index) {
            self.by_name.remove(&entry.link.name);
        }
        entry.link.is_connected().then_some(Transition {
            handle: entry.handle,
            name: entry.link.name,
            from: ConnectionState::Connected,
            to: ConnectionState::Unreachable,
            last_error: 0,
            reason: "".into(),
        })
    }

    /// The kernel link named `name` stops being an interface of its own: a
    /// declared interface takes it (a reload declared it). Its state, and
    /// its going as a transition when it was connected.
    pub fn claim(&mut self, name: &str) -> Option<(LinkState, Option<Transition>)> {
        let index = *self.by_name.get(name)?;
        let link = self.by_index[&index].link.clone();
        let transition = self.remove(index).map(|t| Transition {
            reason: "declared".into(),
            ..t
        });
        Some((link, transition))
    }

    /// Whether a link named `name` would be one of the table's interfaces
    /// (else the table knows nothing of it, whatever the kernel has).
    pub fn admits(&self, name: &str) -> bool {
        self.filter.admits(name)
    }

    /// A handle no interface has had since the service started, for a
    /// kernel link or a declared interface.
    pub fn allocate_handle(&mut self) -> u32 {
        let handle = self.next_handle;
        self.next_handle = self.next_handle.wrapping_add(1).max(1);
        handle
    }

    /// A full dump is starting: from now on, track which links it reports.
    pub fn begin_reconcile(&mut self) {
        self.reconciling = Some(HashSet::new());
    }

    /// The dump is complete: links it did not report are gone.
    pub fn end_reconcile(&mut self) -> Vec<Transition> {
        let Some(seen) = self.reconciling.take() else {
            return Vec::new();
        };
        let gone: Vec<u32> = self
            .by_index
            .keys()
            .copied()
            .filter(|index| !seen.contains(index))
            .collect();
        gone.into_iter().filter_map(|i| self.remove(i)).collect()
    }

    /// Every interface, in handle order.
    #[cfg(test)]
    pub fn interfaces(&self) -> Vec<Interface> {
        self.after(0).collect()
    }

    /// The interfaces whose handle is above `handle`, in handle order.
    pub fn after(&self, handle: u32) -> impl Iterator<Item = Interface> + '_ {
        self.by_handle
            .range(handle.saturating_add(1)..)
            .map(|(_, index)| to_interface(&self.by_index[index]))
    }

    /// How many links are CONNECTED.
    pub fn connected(&self) -> usize {
        self.by_index
            .values()
            .filter(|entry| entry.link.state() == ConnectionState::Connected)
            .count()
    }

    /// The handle of the interface named exactly `name`.
    pub fn handle_of(&self, name: &str) -> Option<u32> {
        let index = self.by_name.get(name)?;
        Some(self.by_index[index].handle)
    }

    pub fn contains(&self, handle: u32) -> bool {
        self.by_handle.contains_key(&handle)
    }

    pub fn get(&self, handle: u32) -> Option<Interface> {
        let index = self.by_handle.get(&handle)?;
        Some(to_interface(&self.by_index[index]))
    }

    pub fn len(&self) -> usize {
        self.by_index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_index.is_empty()
    }
}

fn to_interface(entry: &Entry) -> Interface {
    let link = &entry.link;
    Interface {
        name: link.name.clone(),
        handle: entry.handle,
        enabled: link.is_up(),
        if_type: if link.is_loopback() {
            interface_type::LOOPBACK
        } else {
            interface_type::DEDICATED
        },
        connection_state: link.state() as u32,
        unreachability_reasons: link.unreachability_reasons(),
        last_error: 0,
        dial: ddm_proto::message::DialMode::DialNone as i32,
        link: link.name.clone(),
        ..Interface::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::links::{IFF_LOOPBACK, IFF_RUNNING, IFF_UP, IF_OPER_UNKNOWN, IF_OPER_UP};
    use ddm_proto::model::unreachability;
    use ConnectionState::*;

    fn link(index: u32, name: &str, up: bool, carrier: bool) -> LinkState {
        let mut flags = 0;
        if up {
            flags |= IFF_UP;
        }
        if up && carrier {
            flags |= IFF_RUNNING;
        }
        LinkState {
            index,
            name: name.into(),
            flags,
            operstate: if up && carrier { IF_OPER_UP } else { 2 },
            stats: None,
        }
    }

    fn table() -> InterfaceTable {
        InterfaceTable::new(LinkFilter::new(&["*".into()], &["skip*".into()]))
    }

    #[test]
    fn links_are_found_by_handle_and_name_through_renames_and_removals() {
        let mut t = table();
        t.update(link(7, "a", true, true));
        t.update(link(3, "b", true, true));
        let (a, b) = (t.handle_of("a").unwrap(), t.handle_of("b").unwrap());
        assert_eq!(t.get(a).unwrap().name, "a");
        // Handle order, whatever the link indexes.
        let after: Vec<u32> = t.after(0).map(|i| i.handle).collect();
        assert_eq!(after, vec![a, b]);
        assert_eq!(t.after(a).map(|i| i.name).collect::<Vec<_>>(), vec!["b"]);
        // Renamed: the new name finds it, the old one nothing.
        t.update(link(7, "c", true, true));
        assert_eq!(t.handle_of("c"), Some(a));
        assert_eq!(t.handle_of("a"), None);
        // Another link takes the old name.
        t.update(link(9, "a", true, true));
        assert_ne!(t.handle_of("a"), Some(a));
        t.remove(3);
        assert_eq!((t.get(b), t.handle_of("b")), (None, None));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn up_with_carrier_connects_and_down_disconnects() {
        let mut t = table();
        assert_eq!(t.update(link(2, "veth0", false, false)), None);
        let up = t.update(link(2, "veth0", true, true)).unwrap();
        assert_eq!((up.from, up.to), (Disconnected, Connected));
        assert_eq!(
            t.update(link(2, "veth0", true, true)),
            None,
            "no change, no event"
        );
        let down = t.update(link(2, "veth0", false, false)).unwrap();
        assert_eq!(
            (down.from, down.to, down.handle),
            (Connected, Disconnected, up.handle)
        );
    }

    #[test]
    fn up_without_carrier_is_not_connected() {
        let mut t = table();
        assert_eq!(t.update(link(2, "veth0", true, false)), None);
        let i = &t.interfaces()[0];
        assert_eq!(i.connection_state, Disconnected as u32);
        assert_eq!(i.unreachability_reasons, unreachability::NO_MEDIA_SENSE);
        assert!(i.enabled);
    }

    #[test]
    fn unknown_operstate_with_running_is_connected() {
        let mut t = table();
        let lo = LinkState {
            index: 1,
            name: "lo".into(),
            flags: IFF_UP | IFF_RUNNING | IFF_LOOPBACK,
            operstate: IF_OPER_UNKNOWN,
            stats: None,
        };
        let tr = t.update(lo).unwrap();
        assert_eq!((tr.from, tr.to), (Unreachable, Connected));
        assert_eq!(t.interfaces()[0].if_type, interface_type::LOOPBACK);
    }

    #[test]
    fn deleting_a_connected_link_disconnects() {
        let mut t = table();
        t.update(link(3, "eth1", true, true));
        let tr = t.remove(3).unwrap();
        assert_eq!((tr.from, tr.to), (Connected, Unreachable));
        assert!(t.is_empty());
        t.update(link(4, "eth2", false, false));
        assert_eq!(t.remove(4), None, "a disconnected link leaves silently");
    }

    #[test]
    fn handles_are_stable_and_never_reused() {
        let mut t = table();
        t.update(link(2, "a", false, false));
        t.update(link(3, "b", false, false));
        let a = t.interfaces()[0].handle;
        t.update(link(2, "a-renamed", true, false));
        assert_eq!(t.get(a).unwrap().name, "a-renamed");
        assert_eq!(t.handle_of("a-renamed"), Some(a));
        assert_eq!(t.handle_of("a"), None, "the old name is gone");
        t.remove(2);
        t.update(link(2, "a", false, false));
        assert!(t.interfaces().iter().all(|i| i.handle != a));
    }

    #[test]
    fn excluded_links_are_not_interfaces_even_after_a_rename() {
        let mut t = table();
        assert_eq!(t.update(link(2, "skip0", true, true)), None);
        assert!(t.is_empty());
        t.update(link(3, "eth0", true, true));
        let gone = t.update(link(3, "skip1", true, true)).unwrap();
        assert_eq!(gone.to, Unreachable);
        assert!(t.is_empty());
    }

    #[test]
    fn reconcile_finds_what_an_overrun_hid() {
        let mut t = table();
        t.update(link(2, "a", true, true));
        t.update(link(3, "b", true, true));
        t.update(link(4, "c", false, false));
        // The kernel overran: a went down, b was deleted, d appeared up.
        t.begin_reconcile();
        let mut found: Vec<Transition> = [
            link(2, "a", false, false),
            link(4, "c", false, false),
            link(5, "d", true, true),
        ]
        .into_iter()
        .filter_map(|l| t.update(l))
        .collect();
        found.extend(t.end_reconcile());
        let summary: Vec<(&str, ConnectionState, ConnectionState)> = found
            .iter()
            .map(|t| (t.name.as_str(), t.from, t.to))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("a", Connected, Disconnected),
                ("d", Unreachable, Connected),
                ("b", Connected, Unreachable)
            ]
        );
        assert_eq!(t.len(), 3);
    }
}

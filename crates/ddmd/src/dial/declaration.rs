//! A demand-dial interface as the configuration file declares it
//! (`[[interface]]`), checked before the service uses it.
//!
//! Only this file's commands are ever run: no client can name one. Every
//! key but `name` and `link` has a default; the README lists them all.
//! Without `connect` the interface is watched, not dialed: an uplink the
//! system brings up, CONNECTED while its link (and its health) is up.

use super::filter::{DialFilter, Kind, Rule};
use super::hours::DialoutHours;
use super::sources::Sources;
use crate::bounds::{quoted, within};
use crate::groups::config::{GroupConfig, Prefix};
use crate::health::config::HealthTables;
use ddm_proto::model::MAX_CONNECT_TIMEOUT_SECS;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

/// How ddm knows an attempt has connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ready {
    /// The link is up and running.
    #[default]
    Link,
    /// The link is up and a handshake with its WireGuard peer happened
    /// after the attempt began.
    Wireguard,
}

/// When the interface dials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DialMode {
    /// Only when an administrator connects it.
    #[default]
    Manual,
    /// When traffic to its routes arrives.
    Demand,
    /// Always up: dialed at start and redialed when lost.
    Persistent,
}

impl DialMode {
    pub fn wire(self) -> ddm_proto::message::DialMode {
        use ddm_proto::message::DialMode as Wire;
        match self {
            DialMode::Manual => Wire::DialManual,
            DialMode::Demand => Wire::DialDemand,
            DialMode::Persistent => Wire::DialPersistent,
        }
    }
}

/// One `[[interface]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Declaration {
    /// Its name in ddm.
    pub name: String,
    /// The kernel link that exists while it is connected.
    pub link: String,
    /// argv, run without a shell.
    pub connect: Vec<String>,
    /// argv; empty: the connect process is the connection, ended with
    /// SIGTERM to hang up.
    pub disconnect: Vec<String>,
    pub ready: Ready,
    pub dial: DialMode,
    /// IPv4 and IPv6 prefixes ddm routes to the interface.
    pub routes: Vec<String>,
    /// Demand interfaces: hang up after this long without traffic; 0 never.
    pub idle_disconnect_secs: u64,
    pub connect_timeout_secs: u64,
    pub redial_attempts: u32,
    pub redial_pause_secs: u64,
    /// UNREACHABLE retries: the first after this long...
    pub unreachable_retry_secs: u64,
    /// ...each next one this much later than the one before...
    pub unreachable_retry_step_secs: u64,
    /// ...and never more than this apart.
    pub unreachable_retry_max_secs: u64,
    /// Windows of local time in which it may dial; empty: always.
    pub dialout_hours: Vec<String>,
    /// fEnabled at start.
    pub enabled: bool,
    /// Demand interfaces: the tun that holds the routes while
    /// disconnected; default `ddm-` and the start of the name.
    pub trigger_device: String,
    /// Demand interfaces: the source address of packets routed to the
    /// trigger (given to the trigger device and to the routes); `src` is
    /// another name for it. Without it, the link's address once known.
    #[serde(alias = "src")]
    pub trigger_src: Option<Ipv4Addr>,
    /// The same for IPv6 (`src6`): the source of IPv6 packets routed to
    /// the trigger. Without it, the link's global IPv6 address once known.
    #[serde(alias = "src6")]
    pub trigger_src6: Option<Ipv6Addr>,
    /// Demand interfaces: packets kept while dialing; more are dropped and
    /// counted.
    pub hold_packets: usize,
    /// Demand interfaces: the only traffic that dials (see `filter`).
    pub dial_on: Vec<String>,
    /// Demand interfaces: the traffic that does not dial; all else does.
    pub dial_except: Vec<String>,
    /// `dial_on` or `dial_except`, read, with its counts (made by
    /// [`check_all`]; shared by the supervisor that applies it and the
    /// router that shows it).
    #[serde(skip)]
    pub filter: Option<Arc<DialFilter>>,
    /// The metric of ddm's routes, so that routes a connect script adds
    /// for the same prefixes (wg-quick does) do not collide with them.
    pub route_metric: u32,
    /// The `[health.NAME]` table its path is probed and judged by: then it
    /// is CONNECTED only while its link is up and its health is up.
    pub health: Option<String>,
}

impl Default for Declaration {
    fn default() -> Self {
        Declaration {
            name: String::new(),
            link: String::new(),
            connect: Vec::new(),
            disconnect: Vec::new(),
            ready: Ready::Link,
            dial: DialMode::Manual,
            routes: Vec::new(),
            idle_disconnect_secs: 300,
            connect_timeout_secs: 30,
            redial_attempts: 3,
            redial_pause_secs: 5,
            unreachable_retry_secs: 600,
            unreachable_retry_step_secs: 600,
            unreachable_retry_max_secs: 6 * 3600,
            dialout_hours: Vec::new(),
            enabled: true,
            trigger_device: String::new(),
            trigger_src: None,
            trigger_src6: None,
            dial_on: Vec::new(),
            dial_except: Vec::new(),
            filter: None,
            hold_packets: 32,
            route_metric: DEFAULT_ROUTE_METRIC,
            health: None,
        }
    }
}

/// What the configuration declares for the router to run: its
/// interfaces, the health tables they name, and the groups of them.
#[derive(Debug, Clone, Default)]
pub struct Declared {
    pub interfaces: Vec<Declaration>,
    pub health: HealthTables,
    pub groups: Vec<GroupConfig>,
}

/// The metric of ddm's routes unless `route_metric` says otherwise.
pub const DEFAULT_ROUTE_METRIC: u32 = 100;

/// An IPv4 or IPv6 prefix, with the metric ddm's route to it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub prefix: Prefix,
    pub metric: u32,
}

impl Route {
    pub fn parse(text: &str) -> Option<Route> {
        Prefix::parse(text).map(|prefix| Route {
            prefix,
            metric: DEFAULT_ROUTE_METRIC,
        })
    }
}

/// The longest kernel link name (IFNAMSIZ - 1).
const MAX_LINK_NAME: usize = 15;
/// The longest interface name (MAX_INTERFACE_NAME_LEN).
const MAX_NAME: usize = 256;
/// `idle_disconnect_secs` at most: 30 days.
const MAX_IDLE_SECS: u64 = 30 * 86_400;
/// `redial_attempts` at most.
const MAX_REDIAL_ATTEMPTS: u32 = 1_000;
/// `redial_pause_secs` at most: a day.
const MAX_PAUSE_SECS: u64 = 86_400;
/// The UNREACHABLE retries' times at most: a week.
const MAX_RETRY_SECS: u64 = 7 * 86_400;
/// `hold_packets` at most.
const MAX_HOLD_PACKETS: usize = 4_096;
/// Rules in `dial_on` or `dial_except` at most, and the bytes of one: an
/// interface's entry, filters and counts included, fits in the smallest
/// frame (see `limits.max_frame_bytes`).
pub const MAX_FILTER_RULES: usize = 8;
pub const MAX_RULE_BYTES: usize = 80;

impl Declaration {
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }

    pub fn routes(&self) -> Vec<Route> {
        self.routes
            .iter()
            .filter_map(|r| Route::parse(r))
            .map(|r| Route {
                metric: self.route_metric,
                ..r
            })
            .collect()
    }

    /// The routes' sources it was given (`trigger_src`, `trigger_src6`).
    pub fn trigger_sources(&self) -> Sources {
        Sources {
            v4: self.trigger_src,
            v6: self.trigger_src6,
        }
    }

    /// Its filter, from `dial_on` or `dial_except` (checked already).
    fn read_filter(&self) -> Option<Arc<DialFilter>> {
        let (kind, rules) = if self.dial_except.is_empty() {
            (Kind::DialOn, &self.dial_on)
        } else {
            (Kind::DialExcept, &self.dial_except)
        };
        (!rules.is_empty())
            .then(|| DialFilter::new(kind, rules).ok().map(Arc::new))
            .flatten()
    }

    /// Whether `other` is this declaration but for its filters: a reload
    /// then only gives the supervisor the new ones (no hang-up).
    pub fn differs_only_in_filters(&self, other: &Declaration) -> bool {
        let without = |d: &Declaration| Declaration {
            dial_on: Vec::new(),
            dial_except: Vec::new(),
            filter: None,
            ..d.clone()
        };
        self != other && without(self) == without(other)
    }

    pub fn hours(&self) -> DialoutHours {
        DialoutHours::parse(&self.dialout_hours).unwrap_or_default()
    }

    /// Supervised: the connect process is the connection.
    pub fn is_supervised(&self) -> bool {
        self.disconnect.is_empty()
    }

    /// Watched, not dialed: no `connect` (an uplink the system brings up);
    /// CONNECTED while its link is up (and its health, with `health`).
    pub fn is_watched(&self) -> bool {
        self.connect.is_empty()
    }

    /// Fills the defaults that depend on other keys.
    fn complete(&mut self) {
        if self.trigger_device.is_empty() {
            self.trigger_device = format!("ddm-{}", self.name)
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                .take(MAX_LINK_NAME)
                .collect();
        }
    }

    fn check(&self) -> Result<(), String> {
        let name = &self.name;
        if name.is_empty() || name.chars().count() > MAX_NAME || name.contains(char::is_control) {
            return Err(format!(
                "interface name {} must have 1 to {MAX_NAME} characters, none of them a control character",
                quoted(name)
            ));
        }
        let fail = |what: String| Err(format!("interface {}: {what}", quoted(name)));
        for (key, link) in [
            ("link", &self.link),
            ("trigger_device", &self.trigger_device),
        ] {
            if !is_link_name(link) {
                return fail(format!(
                    "{key} {} is not a name the kernel takes for a link (1 to {MAX_LINK_NAME} bytes, not \".\" or \"..\", no '/', ':', white space or control characters)",
                    quoted(link)
                ));
            }
        }
        if self.link == self.trigger_device {
            return fail("link and trigger_device must differ".into());
        }
        if self.connect.first().is_some_and(String::is_empty) {
            return fail("connect must name a program (an argv list)".into());
        }
        if self.is_watched() {
            let dialing = [
                ("disconnect", !self.disconnect.is_empty()),
                ("dial", self.dial != DialMode::Manual),
                ("ready", self.ready != Ready::Link),
                ("routes", !self.routes.is_empty()),
                ("dialout_hours", !self.dialout_hours.is_empty()),
            ];
            if let Some((key, _)) = dialing.iter().find(|(_, set)| *set) {
                return fail(format!(
                    "{key} needs connect: an interface without connect is watched, not dialed"
                ));
            }
        }
        if !self.dial_on.is_empty() && !self.dial_except.is_empty() {
            return fail("dial_on and dial_except: give one list, not both".into());
        }
        for (key, rules) in [
            ("dial_on", &self.dial_on),
            ("dial_except", &self.dial_except),
        ] {
            if !rules.is_empty() && self.dial != DialMode::Demand {
                return fail(format!(
                    "{key} needs dial = \"demand\": filters say which traffic dials"
                ));
            }
            if rules.len() > MAX_FILTER_RULES {
                return fail(format!(
                    "{key} has {} rules, more than {MAX_FILTER_RULES} (a rule takes a list of ports)",
                    rules.len()
                ));
            }
            for (index, rule) in rules.iter().enumerate() {
                if rule.len() > MAX_RULE_BYTES {
                    return fail(format!(
                        "{key}[{index}] is longer than {MAX_RULE_BYTES} bytes"
                    ));
                }
                if let Err(e) = Rule::parse(rule) {
                    return fail(format!("{key}[{index}] = {}: {e}", quoted(rule)));
                }
            }
        }
        if self.health.as_ref().is_some_and(String::is_empty) {
            return fail("health must name a [health.NAME] table".into());
        }
        if let Some(bad) = self.routes.iter().find(|r| Route::parse(r).is_none()) {
            return fail(format!(
                "route {} is not an IPv4 or IPv6 prefix like \"192.168.20.0/24\" or \"2001:db8:20::/48\"",
                quoted(bad)
            ));
        }
        let ranges = [
            within(
                "connect_timeout_secs",
                self.connect_timeout_secs,
                1..=MAX_CONNECT_TIMEOUT_SECS,
            ),
            within(
                "idle_disconnect_secs",
                self.idle_disconnect_secs,
                0..=MAX_IDLE_SECS,
            ),
            within(
                "redial_attempts",
                self.redial_attempts,
                0..=MAX_REDIAL_ATTEMPTS,
            ),
            within(
                "redial_pause_secs",
                self.redial_pause_secs,
                1..=MAX_PAUSE_SECS,
            ),
            within(
                "unreachable_retry_secs",
                self.unreachable_retry_secs,
                1..=MAX_RETRY_SECS,
            ),
            within(
                "unreachable_retry_step_secs",
                self.unreachable_retry_step_secs,
                0..=MAX_RETRY_SECS,
            ),
            within(
                "unreachable_retry_max_secs",
                self.unreachable_retry_max_secs,
                self.unreachable_retry_secs..=MAX_RETRY_SECS,
            ),
            within("hold_packets", self.hold_packets, 1..=MAX_HOLD_PACKETS),
        ];
        if let Some(Err(range)) = ranges.into_iter().find(Result::is_err) {
            return fail(range);
        }
        DialoutHours::parse(&self.dialout_hours)
            .map_err(|e| format!("interface {}: {e}", quoted(name)))?;
        Ok(())
    }
}

/// The kernel's rules for a link name (`dev_valid_name`), and no control
/// characters: 1 to 15 bytes, not "." or "..", no '/', ':' or white space.
pub fn is_link_name(name: &str) -> bool {
    (1..=MAX_LINK_NAME).contains(&name.len())
        && name != "."
        && name != ".."
        && !name.contains(|c: char| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}

/// Completes and checks every declaration, and that names, links and
/// trigger devices are not shared; a demand interface needs routes of its
/// own unless it is a member of a group (`grouped`: their names).
pub fn check_all(declarations: &mut [Declaration], grouped: &HashSet<&str>) -> Result<(), String> {
    let mut names = HashSet::new();
    let mut links = HashSet::new();
    let mut routes: HashMap<Prefix, &str> = HashMap::new();
    for d in declarations.iter_mut() {
        d.complete();
        d.check()?;
        d.filter = d.read_filter();
        if d.dial == DialMode::Demand && d.routes.is_empty() && !grouped.contains(d.name.as_str()) {
            return Err(format!(
                "interface {}: dial = \"demand\" needs routes, or to be a member of a [[group]]",
                quoted(&d.name)
            ));
        }
    }
    for d in declarations.iter() {
        if !names.insert(d.name.clone()) {
            return Err(format!("interface {} is declared twice", quoted(&d.name)));
        }
        for link in [&d.link, &d.trigger_device] {
            if !links.insert(link.clone()) {
                return Err(format!(
                    "interface {}: link {} is used twice",
                    quoted(&d.name),
                    quoted(link)
                ));
            }
        }
        for route in d.routes() {
            if let Some(other) = routes.insert(route.prefix, &d.name) {
                return Err(format!(
                    "interfaces {} and {} both route {}: one route has one interface",
                    quoted(other),
                    quoted(&d.name),
                    route.prefix
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared(toml_text: &str) -> Result<Vec<Declaration>, String> {
        #[derive(Deserialize)]
        struct File {
            interface: Vec<Declaration>,
        }
        let mut file: File = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        check_all(&mut file.interface, &HashSet::new())?;
        Ok(file.interface)
    }

    const BRANCH: &str = r#"
        [[interface]]
        name = "branch"
        link = "wg-branch"
        connect = ["/etc/ddm/branch-up"]
        disconnect = ["ip", "link", "del", "wg-branch"]
        ready = "wireguard"
        dial = "demand"
        routes = ["192.168.20.0/24"]
        idle_disconnect_secs = 300
        connect_timeout_secs = 30
        redial_attempts = 3
        redial_pause_secs = 5
    "#;

    #[test]
    fn the_issue_example_reads_with_defaults_for_the_rest() {
        let d = &declared(BRANCH).unwrap()[0];
        assert_eq!(d.ready, Ready::Wireguard);
        assert_eq!(d.dial, DialMode::Demand);
        assert_eq!(
            d.routes(),
            vec![Route {
                prefix: Prefix::parse("192.168.20.0/24").unwrap(),
                metric: 100
            }]
        );
        assert_eq!(d.trigger_device, "ddm-branch");
        assert_eq!(d.unreachable_retry_secs, 600);
        assert!(d.enabled && !d.is_supervised());
    }

    #[test]
    fn mistakes_are_named() {
        // Each case: the keys, and a word the error must contain.
        let good = "name = \"a\"\nlink = \"l\"\nconnect = [\"x\"]\n";
        let cases = [
            ("name = \"a\"\nconnect = [\"x\"]".to_string(), "link"),
            (good.replace("\"l\"", "\"this-name-is-too-long\""), "link"),
            (good.replace("[\"x\"]", "[\"\"]"), "connect"),
            (
                good.replace("[\"x\"]", "[]") + "dial = \"demand\"",
                "needs connect",
            ),
            (
                good.replace("[\"x\"]", "[]") + "routes = [\"10.0.0.0/8\"]",
                "needs connect",
            ),
            (format!("{good}dial = \"demand\""), "routes"),
            (format!("{good}routes = [\"10.0.0.1/24\"]"), "route"),
            (format!("{good}dial = \"sometimes\""), "sometimes"),
            (format!("{good}dialout_hours = [\"soon\"]"), "dialout_hours"),
            (
                format!("{good}connect_timeout_secs = 0"),
                "connect_timeout_secs",
            ),
        ];
        assert!(declared(&format!("[[interface]]\n{good}")).is_ok());
        for (body, needle) in cases {
            let error = declared(&format!("[[interface]]\n{body}")).unwrap_err();
            assert!(error.contains(needle), "{error} should name {needle}");
        }
        let twice = format!("{BRANCH}{BRANCH}");
        assert!(declared(&twice).unwrap_err().contains("twice"));
    }

    fn good(extra: &str) -> String {
        format!("[[interface]]\nname = \"a\"\nlink = \"l\"\nconnect = [\"x\"]\n{extra}\n")
    }

    #[test]
    fn every_number_has_a_range() {
        for (key, value) in [
            ("redial_pause_secs", "9223372036854775807"),
            ("redial_pause_secs", "0"),
            ("unreachable_retry_secs", "9223372036854775807"),
            ("unreachable_retry_step_secs", "9223372036854775807"),
            ("unreachable_retry_max_secs", "9223372036854775807"),
            ("idle_disconnect_secs", "9223372036854775807"),
            ("redial_attempts", "4000000000"),
            ("hold_packets", "0"),
        ] {
            let error = declared(&good(&format!("{key} = {value}"))).unwrap_err();
            assert!(
                error.contains(key) && error.contains(" to "),
                "{key} = {value}: {error}"
            );
        }
        let longest = good(
            "redial_pause_secs = 86400\nunreachable_retry_secs = 604800\n\
             unreachable_retry_step_secs = 604800\nunreachable_retry_max_secs = 604800\n\
             redial_attempts = 1000",
        );
        assert!(declared(&longest).is_ok());
    }

    #[test]
    fn names_follow_the_kernels_rules_and_hold_no_control_characters() {
        for link in ["d:1", "..", ".", "d\\t1", "d 1", "d/1", "d\\u0001"] {
            let error = declared(&good(&format!("trigger_device = \"{link}\""))).unwrap_err();
            assert!(error.contains("trigger_device"), "{link:?}: {error}");
        }
        assert!(declared(&good("trigger_device = \"ddm.a-b_c\"")).is_ok());
        let error =
            declared("[[interface]]\nname = \"a\\nforged\"\nlink = \"l\"\nconnect = [\"x\"]\n")
                .unwrap_err();
        assert!(
            error.contains("control character") && error.contains("\\n") && !error.contains('\n'),
            "the name is quoted, its newline escaped: {error}"
        );
    }

    #[test]
    fn one_route_has_one_interface() {
        let two = "[[interface]]\nname = \"a\"\nlink = \"la\"\nconnect = [\"x\"]\nroutes = [\"10.1.0.0/16\"]\n\
                   [[interface]]\nname = \"b\"\nlink = \"lb\"\nconnect = [\"x\"]\nroutes = [\"10.1.0.0/16\"]\n";
        let error = declared(two).unwrap_err();
        assert!(
            error.contains("\"a\"") && error.contains("\"b\"") && error.contains("10.1.0.0/16"),
            "{error}"
        );
    }

    #[test]
    fn filters_are_read_checked_and_told_apart_from_the_rest() {
        let with = |keys: &str| {
            declared(&format!(
                "[[interface]]\nname = \"b\"\nlink = \"lb\"\nconnect = [\"x\"]\ndial = \"demand\"\nroutes = [\"10.1.0.0/16\", \"fd20::/64\"]\n{keys}"
            ))
        };
        let on = &with("dial_on = [\"tcp dport 22,443\", \"icmp\"]").unwrap()[0];
        assert_eq!(on.filter.as_ref().map(|f| f.key()), Some("dial_on"));
        assert_eq!(on.routes().len(), 2, "IPv4 and IPv6 routes");
        let except = &with("dial_except = [\"udp dport 123\"]").unwrap()[0];
        assert!(on.differs_only_in_filters(except));
        assert!(!on.differs_only_in_filters(on));
        let error =
            with("dial_on = [\"tcp dport 22\", \"udp dport 53 form 10.0.0.0/8\"]").unwrap_err();
        assert!(
            error.contains("dial_on[1] = \"udp dport 53 form 10.0.0.0/8\": at 14: expected from, to or the end"),
            "{error}"
        );
        let both = with("dial_on = [\"icmp\"]\ndial_except = [\"udp\"]").unwrap_err();
        assert!(both.contains("not both"), "{both}");
        let many = format!(
            "dial_on = [{}]",
            ["\"icmp\""; MAX_FILTER_RULES + 1].join(", ")
        );
        assert!(with(&many).unwrap_err().contains("more than 8"));
        let manual = declared(
            "[[interface]]\nname = \"m\"\nlink = \"lm\"\nconnect = [\"x\"]\ndial_on = [\"icmp\"]\n",
        );
        assert!(manual.unwrap_err().contains("needs dial = \"demand\""));
    }
}

//! Demand-dial filters: which traffic may start a connection (Windows'
//! demand-dial filters). `dial_on` lists the traffic that dials and
//! nothing else does; `dial_except` the traffic that does not, and
//! everything else does. They apply to what reaches the trigger, so only
//! while the interface is not connected.
//!
//! A rule is a protocol, then optional parts in this order:
//!
//! ```text
//! rule   = proto [ "dport" ports ] [ "from" prefix ] [ "to" prefix ]
//! proto  = "tcp" | "udp" | "icmp" | "icmpv6" | "any"
//! ports  = port { "," port }      port = N | N "-" M     (1 to 65535)
//! prefix = an IPv4 or IPv6 address or prefix
//! ```
//!
//! `dport` needs `tcp` or `udp`; `icmp` is IPv4's, `icmpv6` IPv6's; a
//! prefix matches only packets of its family. Examples: `"tcp dport
//! 22,443"`, `"udp dport 53 from 192.168.76.0/24"`, `"tcp dport
//! 8000-8100 to 2001:db8:20::/48"`, `"icmpv6"`, `"any from 192.168.76.50"`.

use crate::groups::config::Prefix;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// The protocols a rule names, by IP protocol number.
const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

/// One parsed rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// None: any protocol.
    protocol: Option<u8>,
    /// Destination port ranges, inclusive; empty: any port.
    ports: Vec<(u16, u16)>,
    from: Option<Prefix>,
    to: Option<Prefix>,
}

/// What a rule looks at in a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub protocol: u8,
    pub source: IpAddr,
    pub destination: IpAddr,
    /// TCP's and UDP's destination port.
    pub port: Option<u16>,
}

impl Rule {
    /// Reads `text`; the error says what was expected, and where (the
    /// 1-based column of the word).
    pub fn parse(text: &str) -> Result<Rule, String> {
        let mut words = Words::new(text);
        let (column, proto) = words
            .next()
            .ok_or("empty rule: a protocol (tcp, udp, icmp, icmpv6, any) comes first")?;
        let protocol = match proto {
            "tcp" => Some(TCP),
            "udp" => Some(UDP),
            "icmp" => Some(ICMP),
            "icmpv6" => Some(ICMPV6),
            "any" => None,
            other => {
                return Err(format!(
                    "at {column}: {other:?} is no protocol (tcp, udp, icmp, icmpv6, any)"
                ))
            }
        };
        let mut rule = Rule {
            protocol,
            ports: Vec::new(),
            from: None,
            to: None,
        };
        let mut expected: &[&str] = &["dport", "from", "to"];
        while let Some((column, word)) = words.next() {
            let Some(position) = expected.iter().position(|e| *e == word) else {
                return Err(format!(
                    "at {column}: expected {} or the end, found {word:?}",
                    expected.join(", ")
                ));
            };
            expected = &expected[position + 1..];
            let (value_column, value) = words
                .next()
                .ok_or_else(|| format!("at {column}: {word} needs a value"))?;
            match word {
                "dport" => {
                    if !matches!(rule.protocol, Some(TCP | UDP)) {
                        return Err(format!("at {column}: dport needs tcp or udp"));
                    }
                    rule.ports = ports(value).map_err(|e| format!("at {value_column}: {e}"))?;
                }
                side => {
                    let prefix = Prefix::parse(value).ok_or_else(|| {
                        format!(
                            "at {value_column}: {value:?} is not an IPv4 or IPv6 address or prefix"
                        )
                    })?;
                    let family_fits = !matches!(
                        (rule.protocol, prefix.address),
                        (Some(ICMP), IpAddr::V6(_)) | (Some(ICMPV6), IpAddr::V4(_))
                    );
                    if !family_fits {
                        return Err(format!(
                            "at {value_column}: {proto} is of the other family than {value}"
                        ));
                    }
                    if side == "from" {
                        rule.from = Some(prefix);
                    } else {
                        rule.to = Some(prefix);
                    }
                }
            }
        }
        if let (Some(from), Some(to)) = (rule.from, rule.to) {
            if from.address.is_ipv4() != to.address.is_ipv4() {
                return Err(format!(
                    "from {from} and to {to} are of two families: no packet is"
                ));
            }
        }
        Ok(rule)
    }

    /// Whether the packet is this rule's traffic.
    pub fn matches(&self, seen: &Seen) -> bool {
        let within = |prefix: &Option<Prefix>, address: IpAddr| {
            prefix.is_none_or(|p| {
                p.contains(&Prefix {
                    address,
                    length: if address.is_ipv4() { 32 } else { 128 },
                })
            })
        };
        self.protocol.is_none_or(|p| p == seen.protocol)
            && (self.ports.is_empty()
                || seen.port.is_some_and(|port| {
                    self.ports
                        .iter()
                        .any(|(lo, hi)| (*lo..=*hi).contains(&port))
                }))
            && within(&self.from, seen.source)
            && within(&self.to, seen.destination)
    }
}

/// `22,443,8000-8100`.
fn ports(text: &str) -> Result<Vec<(u16, u16)>, String> {
    text.split(',')
        .map(|part| {
            let port = |p: &str| {
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("{p:?} is not a port (1 to 65535)"))
            };
            match part.split_once('-') {
                Some((lo, hi)) => {
                    let (lo, hi) = (port(lo)?, port(hi)?);
                    if lo > hi {
                        return Err(format!("{part:?} is an empty range"));
                    }
                    Ok((lo, hi))
                }
                None => port(part).map(|p| (p, p)),
            }
        })
        .collect()
}

/// The words of a rule with their 1-based columns.
struct Words<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Words<'a> {
    fn new(text: &'a str) -> Self {
        Words { text, at: 0 }
    }

    fn next(&mut self) -> Option<(usize, &'a str)> {
        let rest = &self.text[self.at..];
        let start = self.at + (rest.len() - rest.trim_start().len());
        let rest = &self.text[start..];
        if rest.is_empty() {
            return None;
        }
        let end = start + rest.find(char::is_whitespace).unwrap_or(rest.len());
        self.at = end;
        Some((start + 1, &self.text[start..end]))
    }
}

/// Which of the two lists the rules are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only this traffic dials.
    DialOn,
    /// All traffic but this dials.
    DialExcept,
}

/// An interface's filter, with what it counted since it was made: each
/// rule's matches, and the packets refused.
#[derive(Debug)]
pub struct DialFilter {
    pub kind: Kind,
    rules: Vec<(String, Rule)>,
    matched: Vec<AtomicU64>,
    refused: AtomicU64,
}

/// Two filters are the same when they say the same (their counts aside).
impl PartialEq for DialFilter {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.texts().eq(other.texts())
    }
}

impl Eq for DialFilter {}

impl DialFilter {
    fn texts(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|(text, _)| text.as_str())
    }

    /// "dial_on" or "dial_except".
    pub fn key(&self) -> &'static str {
        match self.kind {
            Kind::DialOn => "dial_on",
            Kind::DialExcept => "dial_except",
        }
    }

    /// From a declaration's texts, already checked (see [`Rule::parse`]).
    pub fn new(kind: Kind, texts: &[String]) -> Result<DialFilter, String> {
        let rules = texts
            .iter()
            .map(|text| Rule::parse(text).map(|rule| (text.clone(), rule)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DialFilter {
            kind,
            matched: rules.iter().map(|_| AtomicU64::new(0)).collect(),
            rules,
            refused: AtomicU64::new(0),
        })
    }

    /// Whether the packet may dial; counts the rule it matched and, if
    /// not, the refusal.
    pub fn allows(&self, seen: &Seen) -> bool {
        let matched = self.rules.iter().position(|(_, rule)| rule.matches(seen));
        if let Some(index) = matched {
            self.matched[index].fetch_add(1, Ordering::Relaxed);
        }
        let allowed = match self.kind {
            Kind::DialOn => matched.is_some(),
            Kind::DialExcept => matched.is_none(),
        };
        if !allowed {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        allowed
    }

    /// Each rule's text and how many packets matched it.
    pub fn counts(&self) -> impl Iterator<Item = (&str, u64)> {
        self.rules
            .iter()
            .zip(&self.matched)
            .map(|((text, _), count)| (text.as_str(), count.load(Ordering::Relaxed)))
    }

    /// Packets refused since it was made.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(protocol: u8, source: &str, destination: &str, port: Option<u16>) -> Seen {
        Seen {
            protocol,
            source: source.parse().unwrap(),
            destination: destination.parse().unwrap(),
            port,
        }
    }

    #[test]
    fn the_issues_examples_read_and_match() {
        let ssh_https = Rule::parse("tcp dport 22,443").unwrap();
        assert!(ssh_https.matches(&seen(TCP, "192.168.76.50", "192.168.20.1", Some(443))));
        assert!(!ssh_https.matches(&seen(TCP, "192.168.76.50", "192.168.20.1", Some(80))));
        assert!(!ssh_https.matches(&seen(UDP, "192.168.76.50", "192.168.20.1", Some(443))));
        let dns = Rule::parse("udp dport 53 from 192.168.76.0/24").unwrap();
        assert!(dns.matches(&seen(UDP, "192.168.76.9", "192.168.20.1", Some(53))));
        assert!(!dns.matches(&seen(UDP, "10.0.0.9", "192.168.20.1", Some(53))));
        assert!(
            !dns.matches(&seen(UDP, "fd76::9", "fd20::1", Some(53))),
            "another family"
        );
        let range = Rule::parse("tcp dport 8000-8100 to 2001:db8:20::/48").unwrap();
        assert!(range.matches(&seen(TCP, "fd76::9", "2001:db8:20::5", Some(8100))));
        assert!(!range.matches(&seen(TCP, "fd76::9", "2001:db8:20::5", Some(8101))));
        assert!(Rule::parse("icmp")
            .unwrap()
            .matches(&seen(ICMP, "10.0.0.1", "10.0.0.2", None)));
        assert!(!Rule::parse("icmp")
            .unwrap()
            .matches(&seen(ICMPV6, "fd76::1", "fd20::1", None)));
        assert!(Rule::parse("icmpv6")
            .unwrap()
            .matches(&seen(ICMPV6, "fd76::1", "fd20::1", None)));
        assert!(Rule::parse("  any   from 192.168.76.50 ")
            .unwrap()
            .matches(&seen(47, "192.168.76.50", "1.2.3.4", None)));
    }

    #[test]
    fn a_bad_rule_says_what_and_where() {
        for (text, said) in [
            ("", "empty rule"),
            ("tpc dport 22", "at 1: \"tpc\" is no protocol"),
            (
                "udp dport 53 form 192.168.76.0/24",
                "at 14: expected from, to or the end, found \"form\"",
            ),
            (
                "tcp from 10.0.0.0/8 dport 22",
                "at 21: expected to or the end, found \"dport\"",
            ),
            ("icmp dport 7", "at 6: dport needs tcp or udp"),
            ("tcp dport", "at 5: dport needs a value"),
            ("tcp dport 0", "at 11: \"0\" is not a port"),
            ("tcp dport 70000", "at 11: \"70000\" is not a port"),
            ("tcp dport 90-80", "at 11: \"90-80\" is an empty range"),
            (
                "udp to 10.0.0.300",
                "at 8: \"10.0.0.300\" is not an IPv4 or IPv6",
            ),
            ("icmp to fd20::/64", "at 9: icmp is of the other family"),
            ("any from 10.0.0.0/8 to fd20::/64", "two families"),
        ] {
            let error = Rule::parse(text).expect_err(text);
            assert!(error.contains(said), "{text:?}: {error}");
        }
    }

    #[test]
    fn dial_on_lets_only_its_traffic_dial_and_dial_except_the_rest() {
        let texts = ["tcp dport 443".to_owned()];
        let on = DialFilter::new(Kind::DialOn, &texts).unwrap();
        let https = seen(TCP, "192.168.76.50", "192.168.20.1", Some(443));
        let ntp = seen(UDP, "192.168.76.50", "192.168.20.1", Some(123));
        assert!(on.allows(&https));
        assert!(!on.allows(&ntp));
        assert!(!on.allows(&seen(ICMP, "192.168.76.50", "192.168.20.1", None)));
        assert_eq!(on.refused(), 2);
        assert_eq!(on.counts().collect::<Vec<_>>(), vec![("tcp dport 443", 1)]);
        let except = DialFilter::new(Kind::DialExcept, &texts).unwrap();
        assert!(!except.allows(&https));
        assert!(except.allows(&ntp));
        assert_eq!(
            (except.refused(), except.counts().next().unwrap().1),
            (1, 1)
        );
    }
}

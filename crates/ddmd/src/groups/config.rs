//! A `[[group]]` table: uplinks in order of preference, and the routes
//! that go through the first of them that can carry traffic.

use crate::bounds::{quoted, within};
use serde::Deserialize;
use std::net::IpAddr;

/// One `[[group]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroupConfig {
    pub name: String,
    /// IPv4 and IPv6 prefixes ddm keeps through the carrying member.
    pub routes: Vec<String>,
    /// Declared interfaces, in order of preference.
    pub members: Vec<String>,
    /// How long a better member must be able to carry traffic before the
    /// routes move back to it.
    pub failback_secs: u64,
    /// The metric of the group's routes: below the system's own routes
    /// through its uplinks (a DHCP default route), so that they win.
    pub route_metric: u32,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            name: String::new(),
            routes: Vec::new(),
            members: Vec::new(),
            failback_secs: 30,
            route_metric: 50,
        }
    }
}

/// An IPv4 or IPv6 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    pub address: IpAddr,
    pub length: u8,
}

impl Prefix {
    pub fn parse(text: &str) -> Option<Prefix> {
        let (address, length) = match text.split_once('/') {
            Some((address, length)) => (address.parse::<IpAddr>().ok()?, length.parse().ok()?),
            None => {
                let address: IpAddr = text.parse().ok()?;
                (address, if address.is_ipv4() { 32 } else { 128 })
            }
        };
        let bits = if address.is_ipv4() { 32 } else { 128 };
        if length > bits {
            return None;
        }
        let value = match address {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        };
        let host = u128::MAX
            .checked_shr(u32::from(128 - bits + length))
            .unwrap_or(0);
        (value & host == 0).then_some(Prefix { address, length })
    }
}

impl Prefix {
    /// Whether every address of `other` is one of this prefix's.
    pub fn contains(&self, other: &Prefix) -> bool {
        let bits = |a: IpAddr| match a {
            IpAddr::V4(a) => (u128::from(u32::from(a)) << 96, true),
            IpAddr::V6(a) => (u128::from(a), false),
        };
        let ((mine, v4), (theirs, other_v4)) = (bits(self.address), bits(other.address));
        if v4 != other_v4 || other.length < self.length {
            return false;
        }
        let shift = if v4 {
            96 + u32::from(32 - self.length)
        } else {
            128 - u32::from(self.length)
        };
        let mask = u128::MAX.checked_shl(shift).unwrap_or(0);
        mine & mask == theirs & mask
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.address, self.length)
    }
}

/// `failback_secs` at most: a day.
const MAX_FAILBACK_SECS: u64 = 86_400;
/// Members of a group at most.
const MAX_MEMBERS: usize = 64;
/// Routes of a group at most.
const MAX_ROUTES: usize = 256;

impl GroupConfig {
    pub fn prefixes(&self) -> Vec<Prefix> {
        self.routes
            .iter()
            .filter_map(|r| Prefix::parse(r))
            .collect()
    }

    /// Checks the table on its own; `check_all` checks it among the others
    /// and the interfaces.
    pub fn check(&self) -> Result<(), String> {
        let name = &self.name;
        if name.is_empty() || name.chars().count() > 64 || name.contains(char::is_control) {
            return Err(format!(
                "group name {} must have 1 to 64 characters, none of them a control character",
                quoted(name)
            ));
        }
        let fail = |what: String| Err(format!("group {}: {what}", quoted(name)));
        let ranges = [
            within("the number of routes", self.routes.len(), 1..=MAX_ROUTES),
            within("the number of members", self.members.len(), 1..=MAX_MEMBERS),
            within(
                "failback_secs",
                self.failback_secs as usize,
                0..=MAX_FAILBACK_SECS as usize,
            ),
        ];
        if let Some(Err(e)) = ranges.into_iter().find(Result::is_err) {
            return fail(e);
        }
        if let Some(bad) = self.routes.iter().find(|r| Prefix::parse(r).is_none()) {
            return fail(format!(
                "route {} is not an IPv4 or IPv6 prefix like \"0.0.0.0/0\" or \"2001:db8::/32\"",
                quoted(bad)
            ));
        }
        for (n, member) in self.members.iter().enumerate() {
            if self.members[..n].contains(member) {
                return fail(format!("member {} is listed twice", quoted(member)));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_of_both_families() {
        assert_eq!(Prefix::parse("0.0.0.0/0").unwrap().to_string(), "0.0.0.0/0");
        assert_eq!(Prefix::parse("::/0").unwrap().length, 0);
        assert_eq!(Prefix::parse("2001:db8::/32").unwrap().length, 32);
        assert_eq!(Prefix::parse("192.0.2.7").unwrap().length, 32);
        assert!(Prefix::parse("10.0.0.1/8").is_none(), "host bits");
        assert!(Prefix::parse("2001:db8::1/32").is_none(), "host bits");
        assert!(Prefix::parse("10.0.0.0/33").is_none());
        assert!(Prefix::parse("internet").is_none());
        let p = |t| Prefix::parse(t).unwrap();
        assert!(p("10.0.0.0/8").contains(&p("10.20.0.0/16")));
        assert!(!p("10.20.0.0/16").contains(&p("10.0.0.0/8")));
        assert!(!p("10.0.0.0/8").contains(&p("11.0.0.0/16")));
        assert!(p("0.0.0.0/0").contains(&p("192.0.2.1")));
        assert!(!p("::/0").contains(&p("192.0.2.1")), "another family");
        assert!(p("2001:db8::/32").contains(&p("2001:db8:1::/48")));
    }

    #[test]
    fn mistakes_are_named() {
        let good = GroupConfig {
            name: "internet".into(),
            routes: vec!["0.0.0.0/0".into(), "::/0".into()],
            members: vec!["wan1".into(), "wan2".into()],
            ..GroupConfig::default()
        };
        assert_eq!(good.check(), Ok(()));
        let cases = [
            (
                GroupConfig {
                    name: String::new(),
                    ..good.clone()
                },
                "group name",
            ),
            (
                GroupConfig {
                    routes: vec![],
                    ..good.clone()
                },
                "routes",
            ),
            (
                GroupConfig {
                    routes: vec!["10.0.0.1/8".into()],
                    ..good.clone()
                },
                "10.0.0.1/8",
            ),
            (
                GroupConfig {
                    members: vec![],
                    ..good.clone()
                },
                "members",
            ),
            (
                GroupConfig {
                    members: vec!["wan1".into(), "wan1".into()],
                    ..good.clone()
                },
                "listed twice",
            ),
            (
                GroupConfig {
                    failback_secs: 1 << 40,
                    ..good.clone()
                },
                "failback_secs",
            ),
        ];
        for (group, needle) in cases {
            let error = group.check().unwrap_err();
            assert!(error.contains(needle), "{error} should name {needle}");
        }
    }
}

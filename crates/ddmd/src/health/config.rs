//! A `[health.NAME]` table: how a path is probed and judged. Interfaces
//! name one with `health = "NAME"`; every key has a default and a range,
//! checked at load and at reload.

use crate::bounds::{quoted, within};
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// How a target is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// ICMP echo (IPv4) or ICMPv6 echo.
    #[default]
    Icmp,
    /// A TCP connect to `address:port`: an accept or a refusal (the far
    /// end answered) passes.
    Tcp,
}

/// One `[health.NAME]` table, as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Addresses (icmp) or `address:port` (tcp), probed through the
    /// interface's own link.
    pub targets: Vec<String>,
    pub method: Method,
    /// A round of probes every this often.
    pub interval_ms: u64,
    /// A probe not answered within this is lost.
    pub timeout_ms: u64,
    /// Failed rounds in a row before the path is down.
    pub down_after: u32,
    /// Passing rounds in a row before a path that was down is up again.
    pub up_after: u32,
    /// Targets that must answer for a round to pass.
    pub quorum: u32,
    /// Probes lost over the last `window` rounds, in percent: above it,
    /// down.
    pub max_loss_percent: u32,
    /// A round's median RTT above it fails the round; the window's median
    /// above it is down.
    pub max_rtt_ms: u64,
    /// Rounds the loss, RTT and jitter figures are taken over.
    pub window: u32,
    /// A round in which the link received packets passes without a probe.
    pub passive: bool,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            targets: Vec::new(),
            method: Method::Icmp,
            interval_ms: 500,
            timeout_ms: 1000,
            down_after: 3,
            up_after: 5,
            quorum: 1,
            max_loss_percent: 20,
            max_rtt_ms: 500,
            window: 60,
            passive: false,
        }
    }
}

/// Probed targets at most, in one table.
const MAX_TARGETS: usize = 1024;
/// Rounds at most in the window.
const MAX_WINDOW: u32 = 1000;
/// Rounds in a row at most for `down_after` and `up_after`.
const MAX_ROUNDS: u32 = 1000;
/// The longest interval and timeout: a minute.
const MAX_MS: u64 = 60_000;
/// The shortest interval.
const MIN_INTERVAL_MS: u64 = 100;

/// A target as probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    Icmp(IpAddr),
    Tcp(SocketAddr),
}

impl Target {
    pub fn address(&self) -> IpAddr {
        match self {
            Target::Icmp(address) => *address,
            Target::Tcp(address) => address.ip(),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Icmp(address) => write!(f, "{address}"),
            Target::Tcp(address) => write!(f, "{address}"),
        }
    }
}

impl HealthConfig {
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub fn max_rtt(&self) -> Duration {
        Duration::from_millis(self.max_rtt_ms)
    }

    /// The targets, parsed (`check` has passed).
    pub fn parsed_targets(&self) -> Vec<Target> {
        self.targets
            .iter()
            .filter_map(|t| parse_target(self.method, t).ok())
            .collect()
    }

    /// Checks the table called `name`.
    pub fn check(&self, name: &str) -> Result<(), String> {
        let fail = |what: String| Err(format!("health {}: {what}", quoted(name)));
        if self.targets.is_empty() {
            return fail("targets must name at least one address".into());
        }
        if let Err(e) = within("the number of targets", self.targets.len(), 1..=MAX_TARGETS) {
            return fail(e);
        }
        for target in &self.targets {
            if let Err(e) = parse_target(self.method, target) {
                return fail(e);
            }
        }
        let ranges = [
            within("interval_ms", self.interval_ms, MIN_INTERVAL_MS..=MAX_MS),
            within("timeout_ms", self.timeout_ms, 1..=MAX_MS),
            within("down_after", self.down_after, 1..=MAX_ROUNDS),
            within("up_after", self.up_after, 1..=MAX_ROUNDS),
            within("quorum", self.quorum as usize, 1..=self.targets.len()),
            within("max_loss_percent", self.max_loss_percent, 0..=100),
            within("max_rtt_ms", self.max_rtt_ms, 1..=MAX_MS),
            within("window", self.window, 1..=MAX_WINDOW),
        ];
        if let Some(Err(e)) = ranges.into_iter().find(Result::is_err) {
            return fail(e);
        }
        let bound = self.interval_ms * u64::from(self.down_after);
        if self.timeout_ms > bound {
            return fail(format!(
                "timeout_ms ({}) must not exceed interval_ms * down_after ({bound})",
                self.timeout_ms
            ));
        }
        Ok(())
    }
}

/// The `[health.NAME]` tables, by name.
pub type HealthTables = std::collections::BTreeMap<String, HealthConfig>;

fn parse_target(method: Method, text: &str) -> Result<Target, String> {
    match method {
        Method::Icmp => text.parse().map(Target::Icmp).map_err(|_| {
            format!(
                "target {} is not an IPv4 or IPv6 address (method = \"icmp\")",
                quoted(text)
            )
        }),
        Method::Tcp => text.parse().map(Target::Tcp).map_err(|_| {
            format!(
                "target {} is not address:port, like \"192.0.2.1:443\" or \"[2001:db8::1]:443\" (method = \"tcp\")",
                quoted(text)
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Result<HealthConfig, String> {
        let config: HealthConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.check("isp")?;
        Ok(config)
    }

    #[test]
    fn the_issue_example_reads() {
        let c = table(
            r#"targets = ["192.0.2.1", "198.51.100.7", "2001:db8::53"]
               method = "icmp"
               interval_ms = 500
               timeout_ms = 1000
               down_after = 3
               up_after = 5
               quorum = 1
               max_loss_percent = 20
               max_rtt_ms = 500
               window = 20"#,
        )
        .unwrap();
        assert_eq!(
            c,
            HealthConfig {
                targets: c.targets.clone(),
                window: 20,
                ..HealthConfig::default()
            }
        );
        assert_eq!(c.parsed_targets().len(), 3);
        let tcp =
            table("targets = [\"192.0.2.1:443\", \"[2001:db8::1]:80\"]\nmethod = \"tcp\"").unwrap();
        assert_eq!(
            tcp.parsed_targets()[0],
            Target::Tcp("192.0.2.1:443".parse().unwrap())
        );
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            ("targets = []", "targets"),
            ("targets = [\"example.com\"]", "example.com"),
            (
                "targets = [\"192.0.2.1\"]\nmethod = \"tcp\"",
                "address:port",
            ),
            ("targets = [\"192.0.2.1:443\"]", "192.0.2.1:443"),
            ("targets = [\"192.0.2.1\"]\ninterval_ms = 99", "interval_ms"),
            (
                "targets = [\"192.0.2.1\"]\ntimeout_ms = 1501",
                "interval_ms * down_after",
            ),
            ("targets = [\"192.0.2.1\"]\nup_after = 0", "up_after"),
            ("targets = [\"192.0.2.1\"]\ndown_after = 0", "down_after"),
            ("targets = [\"192.0.2.1\"]\nquorum = 2", "quorum"),
            ("targets = [\"192.0.2.1\"]\nquorum = 0", "quorum"),
            (
                "targets = [\"192.0.2.1\"]\nmax_loss_percent = 101",
                "max_loss_percent",
            ),
            ("targets = [\"192.0.2.1\"]\nwindow = 0", "window"),
            ("targets = [\"192.0.2.1\"]\nmethod = \"udp\"", "udp"),
            ("targets = [\"192.0.2.1\"]\nintervals = 3", "intervals"),
            (
                "targets = [\"192.0.2.1\"]\ninterval_ms = 18446744073709551615",
                "interval_ms",
            ),
        ];
        for (text, needle) in cases {
            let error = table(text).unwrap_err();
            assert!(
                error.contains(needle),
                "{text}: {error} should name {needle}"
            );
        }
        assert!(table("targets = [\"192.0.2.1\"]\ntimeout_ms = 1500").is_ok());
    }
}

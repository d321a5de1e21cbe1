//! `ddm health [NAME] [--json]`: the path health of the probed interfaces,
//! per target; `ddm groups [--json]`: which uplink carries each group's
//! routes.

use crate::listing::milliseconds;
use mprapi::{ConnectionState, GroupInfo, InterfaceHealth, Server, WinError};
use serde_json::json;
use std::time::Duration;

fn micros(us: Option<u64>) -> Option<Duration> {
    us.map(Duration::from_micros)
}

fn ms(us: Option<u64>) -> Option<f64> {
    us.map(|us| us as f64 / 1e3)
}

/// A time on the wall clock, RFC 3339; None for 0.
fn last_pass(ns: u64) -> Option<String> {
    (ns != 0).then(|| crate::journal::time_of(ns).to_string())
}

pub fn run(server: &Server, name: Option<&str>, json: bool) -> Result<(), WinError> {
    let report = server.health(name.unwrap_or_default())?;
    if json {
        let list: Vec<_> = report.iter().map(health_json).collect();
        println!("{}", serde_json::Value::Array(list));
        return Ok(());
    }
    if report.is_empty() {
        println!("no interface has a health table");
        return Ok(());
    }
    for (n, i) in report.iter().enumerate() {
        if n > 0 {
            println!();
        }
        println!(
            "{} ({}): {}  rtt {}  jitter {}  loss {:.0}%  last passed {}",
            i.name,
            i.table,
            i.verdict,
            milliseconds(micros(i.rtt_us)),
            milliseconds(micros(i.jitter_us)),
            i.loss_percent,
            last_pass(i.last_pass_unix_ns).unwrap_or("never".into()),
        );
        println!(
            "  probes {} sent, {} lost; {} rounds",
            i.probes_sent, i.probes_lost, i.rounds
        );
        println!("  TARGET                                   ANSWERED  RTT       JITTER    LOSS");
        for t in &i.targets {
            println!(
                "  {:<40} {:<9} {:<9} {:<9} {:.0}%",
                t.target,
                if t.answered_last { "yes" } else { "no" },
                milliseconds(micros(t.rtt_us)),
                milliseconds(micros(t.jitter_us)),
                t.loss_percent
            );
        }
    }
    Ok(())
}

fn health_json(i: &InterfaceHealth) -> serde_json::Value {
    json!({
        "interface": i.name,
        "handle": i.handle,
        "table": i.table,
        "health": i.verdict,
        "rtt_ms": ms(i.rtt_us),
        "jitter_ms": ms(i.jitter_us),
        "loss_percent": i.loss_percent,
        "last_pass": last_pass(i.last_pass_unix_ns),
        "probes_sent": i.probes_sent,
        "probes_lost": i.probes_lost,
        "rounds": i.rounds,
        "targets": i.targets.iter().map(|t| json!({
            "target": t.target,
            "answered_last": t.answered_last,
            "rtt_ms": ms(t.rtt_us),
            "jitter_ms": ms(t.jitter_us),
            "loss_percent": t.loss_percent,
        })).collect::<Vec<_>>(),
    })
}

pub fn groups(server: &Server, json: bool) -> Result<(), WinError> {
    let groups = server.groups()?;
    if json {
        let list: Vec<_> = groups.iter().map(group_json).collect();
        println!("{}", serde_json::Value::Array(list));
        return Ok(());
    }
    if groups.is_empty() {
        println!("no group is declared");
        return Ok(());
    }
    for (n, g) in groups.iter().enumerate() {
        if n > 0 {
            println!();
        }
        let carrier = match (g.carrier.as_str(), g.via_trigger) {
            ("", _) => "nothing (no member can carry traffic)".to_owned(),
            (carrier, true) => format!("{carrier}'s trigger (dialed by the first packet)"),
            (carrier, false) => carrier.to_owned(),
        };
        let since = last_pass(g.since_unix_ns).map_or(String::new(), |t| format!(" since {t}"));
        println!(
            "{} ({}): through {carrier}{since}",
            g.name,
            g.routes.join(" ")
        );
        println!(
            "  {} switches; failback after {} s",
            g.switches, g.failback_secs
        );
        println!("  MEMBER           STATE         HEALTH   CARRYING");
        for m in &g.members {
            println!(
                "  {:<16} {:<13} {:<8} {}",
                m.name,
                ConnectionState::from_u32(m.state).name(),
                if m.health.is_empty() { "-" } else { &m.health },
                if m.carrying { "yes" } else { "" }
            );
        }
    }
    Ok(())
}

fn group_json(g: &GroupInfo) -> serde_json::Value {
    json!({
        "group": g.name,
        "routes": g.routes,
        "carrier": (!g.carrier.is_empty()).then_some(&g.carrier),
        "via_trigger": g.via_trigger,
        "since": last_pass(g.since_unix_ns),
        "switches": g.switches,
        "failback_secs": g.failback_secs,
        "members": g.members.iter().map(|m| json!({
            "name": m.name,
            "state": ConnectionState::from_u32(m.state).name(),
            "health": (!m.health.is_empty()).then_some(&m.health),
            "carrying": m.carrying,
        })).collect::<Vec<_>>(),
    })
}

//! The read-only subcommands: status, info, interfaces, registrations.
//! Human tables by default, JSON with `--json`.

use mprapi::{interface_type, InterfaceInfo, Server, WinError};
use serde_json::json;

/// Prints `running` or `stopped`, and says which.
pub fn status(server: &Server) -> Result<bool, WinError> {
    let running = !server.server_info()?.lan_only_mode;
    println!("{}", if running { "running" } else { "stopped" });
    Ok(running)
}

pub fn info(server: &Server, json: bool) -> Result<(), WinError> {
    let info = server.server_info()?;
    if json {
        let value = json!({
            "lan_only_mode": info.lan_only_mode,
            "up_time": info.up_time.as_secs(),
            "total_ports": info.total_ports,
            "ports_in_use": info.ports_in_use,
            "role": server.role().name(),
        });
        println!("{value}");
    } else {
        println!(
            "ddm:           {}",
            if info.lan_only_mode {
                "stopped (LAN-only mode)"
            } else {
                "running"
            }
        );
        println!("up time:       {}s", info.up_time.as_secs());
        println!(
            "ports:         {} total, {} in use",
            info.total_ports, info.ports_in_use
        );
        println!("your role:     {}", server.role().name());
    }
    Ok(())
}

/// `NAME (number)` of a Win32 error, `-` for none.
pub fn error_name(code: u32) -> String {
    match WinError(code) {
        WinError::NO_ERROR => "-".into(),
        error => format!("{} ({code})", error.name()),
    }
}

/// A Win32 error's text, as `MprAdminGetErrorString` gives it; empty for
/// none.
pub fn error_text(code: u32) -> &'static str {
    match WinError(code) {
        WinError::NO_ERROR => "",
        error => error.text().unwrap_or("Unknown error."),
    }
}

pub fn interface_json(i: &InterfaceInfo) -> serde_json::Value {
    json!({
        "name": i.name,
        "handle": i.handle,
        "type": interface_type::name(i.if_type),
        "enabled": i.enabled,
        "state": i.state.name(),
        "since": humantime::format_rfc3339_millis(i.since).to_string(),
        "unreachability_reasons": i.unreachability_reasons,
        "last_error": i.last_error,
        "last_error_name": WinError(i.last_error).name(),
        "last_error_text": error_text(i.last_error),
        "dial": i.dial.name(),
        "link": i.link,
        "health": (!i.health.is_empty()).then(|| json!({
            "verdict": i.health,
            "rtt_ms": i.health_rtt.map(|d| d.as_secs_f64() * 1e3),
            "loss_percent": i.health_loss_percent,
        })),
        "dial_filter": i.dial_filter.as_ref().map(|f| json!({
            "kind": f.kind,
            "rules": f.rules.iter().map(|(rule, matched)| json!({
                "rule": rule,
                "matched": matched,
            })).collect::<Vec<_>>(),
            "refused": f.refused,
        })),
    })
}

/// The header of the interface table.
pub const INTERFACE_HEADER: &str =
    "HANDLE  NAME             TYPE        ENABLED STATE         DIAL       LAST_ERROR                      HEALTH  RTT       LOSS";

/// One interface as a row of the table.
pub fn interface_row(i: &InterfaceInfo) -> String {
    let (health, rtt, loss) = if i.health.is_empty() {
        ("-", "-".to_owned(), "-".to_owned())
    } else {
        (
            i.health.as_str(),
            milliseconds(i.health_rtt),
            format!("{:.0}%", i.health_loss_percent),
        )
    };
    format!(
        "{:>6}  {:<16} {:<11} {:<7} {:<13} {:<10} {:<31} {:<7} {:<9} {}",
        i.handle,
        i.name,
        interface_type::name(i.if_type),
        if i.enabled { "yes" } else { "no" },
        i.state.name(),
        match i.dial.name() {
            "" => "-",
            mode => mode,
        },
        error_name(i.last_error),
        health,
        rtt,
        loss
    )
}

/// `12.3ms`, or `-` for none.
pub fn milliseconds(duration: Option<std::time::Duration>) -> String {
    duration.map_or("-".into(), |d| format!("{:.1}ms", d.as_secs_f64() * 1e3))
}

pub fn interfaces(server: &Server, json: bool) -> Result<(), WinError> {
    let interfaces = server.interfaces()?;
    if json {
        let list: Vec<_> = interfaces.iter().map(interface_json).collect();
        println!("{}", serde_json::Value::Array(list));
        return Ok(());
    }
    println!("{INTERFACE_HEADER}");
    for i in &interfaces {
        println!("{}", interface_row(i));
    }
    Ok(())
}

pub fn registrations(server: &Server, json: bool) -> Result<(), WinError> {
    let sessions = server.sessions()?;
    if json {
        let list: Vec<_> = sessions
            .iter()
            .map(|s| {
                json!({
                    "session": s.session,
                    "pid": s.pid,
                    "uid": s.uid,
                    "role": s.role.name(),
                    "registrations": s.registrations,
                    "subscribed": s.subscribed,
                    "identity": s.identity,
                    "address": s.address,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
        return Ok(());
    }
    println!(
        "{:>8}  {:>8}  {:>6}  {:<8} {:>13}  STREAM  REMOTE",
        "SESSION", "PID", "UID", "ROLE", "REGISTRATIONS"
    );
    for s in &sessions {
        let remote = match s.identity.as_str() {
            "" => "-".to_string(),
            identity => format!("{identity} ({})", s.address),
        };
        println!(
            "{:>8}  {:>8}  {:>6}  {:<8} {:>13}  {:<6}  {remote}",
            s.session,
            s.pid,
            s.uid,
            s.role.name(),
            s.registrations,
            if s.subscribed { "yes" } else { "no" }
        );
    }
    Ok(())
}

//! A connection event as `ddm watch` prints it: a line for a person, or
//! one JSON object (`--json`), for one router or several.

use mprapi::ConnectionEvent;
use serde_json::json;

/// An event as `--json` prints it; a group's switch has `group`, `from`
/// and `to` members, `via_trigger` and `reason` instead.
pub fn event_json(event: &ConnectionEvent) -> serde_json::Value {
    if let Some(switch) = &event.group_switch {
        return json!({
            "seq": event.seq,
            "group": event.interface,
            "from": switch.from,
            "to": switch.to,
            "via_trigger": switch.via_trigger,
            "reason": switch.reason,
            "time": humantime::format_rfc3339_nanos(event.time).to_string(),
        });
    }
    json!({
        "seq": event.seq,
        "interface": event.interface,
        "handle": event.handle,
        "from": event.from.name(),
        "to": event.to.name(),
        "time": humantime::format_rfc3339_nanos(event.time).to_string(),
        "last_error": event.last_error,
        "last_error_name": mprapi::WinError(event.last_error).name(),
        "last_error_text": crate::listing::error_text(event.last_error),
    })
}

/// An event as a line for a person.
pub fn event_line(event: &ConnectionEvent) -> String {
    let time = humantime::format_rfc3339_nanos(event.time);
    if let Some(switch) = &event.group_switch {
        let member = |m: &Option<String>| m.clone().unwrap_or_else(|| "none".into());
        let trigger = if switch.via_trigger {
            " (its trigger)"
        } else {
            ""
        };
        return format!(
            "{time}  #{:<5} group {:<10} {} -> {}{trigger}: {}",
            event.seq,
            event.interface,
            member(&switch.from),
            member(&switch.to),
            switch.reason
        );
    }
    let what = if event.from == mprapi::ConnectionState::Connected {
        "disconnected"
    } else {
        event.to.name()
    };
    let error = match event.last_error {
        0 => String::new(),
        code => format!("  last error {}", crate::listing::error_name(code)),
    };
    format!(
        "{time}  #{:<5} {:<16} {what} ({} -> {}){error}",
        event.seq,
        event.interface,
        event.from.name(),
        event.to.name()
    )
}

//! A connection event as `ddm watch` prints it: a line for a person, or
//! one JSON object (`--json`), for one router or several.

use mprapi::ConnectionEvent;
use serde_json::json;

/// An event as `--json` prints it.
pub fn event_json(event: &ConnectionEvent) -> serde_json::Value {
    json!({
        "seq": event.seq,
        "interface": event.interface,
        "handle": event.handle,
        "from": event.from.name(),
        "to": event.to.name(),
        "time": humantime::format_rfc3339_nanos(event.time).to_string(),
        "last_error": event.last_error,
    })
}

/// An event as a line for a person.
pub fn event_line(event: &ConnectionEvent) -> String {
    let time = humantime::format_rfc3339_nanos(event.time);
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

//! `ddm history`, `ddm uptime` and the journal lines of `ddm status`: the
//! service's journal, read through mprapi.

use crate::listing::{error_name, error_text};
use crate::when::{span, When};
use mprapi::{EntryKind, History, JournalEntry, Server, Uptime, WinError};
use serde_json::json;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Which part of the journal.
#[derive(clap::Args)]
pub struct Window {
    /// From this sequence number (history only), time (2026-11-25
    /// 08:00:00, UTC; or RFC 3339 with an offset; or @seconds) or time ago
    /// (2h, 7days).
    #[arg(long, value_name = "SEQ|TIME")]
    pub since: Option<String>,
    /// Up to this sequence number (history only), time or time ago.
    #[arg(long, value_name = "SEQ|TIME")]
    pub until: Option<String>,
    /// Only this interface (history keeps the service's own entries).
    #[arg(long, value_name = "NAME")]
    pub interface: Option<String>,
    #[arg(long)]
    pub json: bool,
}

/// Bad input: said on stderr, and the call fails with ERROR_INVALID_PARAMETER.
fn invalid(why: String) -> WinError {
    eprintln!("ddm: {why}");
    WinError::ERROR_INVALID_PARAMETER
}

pub fn history(server: &Server, window: &Window) -> Result<(), WinError> {
    let now = SystemTime::now();
    let mut query = History {
        interface: window.interface.clone().unwrap_or_default(),
        ..History::default()
    };
    if let Some(since) = &window.since {
        match When::parse(since, now).map_err(invalid)? {
            When::Seq(seq) => query.since_seq = seq,
            When::Time(t) => query.since_unix_ns = t,
        }
    }
    if let Some(until) = &window.until {
        match When::parse(until, now).map_err(invalid)? {
            When::Seq(seq) => query.until_seq = seq,
            When::Time(t) => query.until_unix_ns = t,
        }
    }
    let mut out = std::io::stdout().lock();
    for entry in server.history(query) {
        let entry = entry?;
        let written = if window.json {
            writeln!(out, "{}", entry_json(&entry))
        } else {
            writeln!(out, "{}", entry_line(&entry))
        };
        if written.is_err() {
            break;
        }
    }
    Ok(())
}

pub fn time_of(ns: u64) -> humantime::Rfc3339Timestamp {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_nanos(ns))
}

fn kind(entry: &JournalEntry) -> &'static str {
    ddmd::record::export::kind_name(entry.kind)
}

fn entry_json(entry: &JournalEntry) -> serde_json::Value {
    let mut value = ddmd::record::export::payload("", 0, entry);
    let fields = value.as_object_mut().expect("an object");
    fields.remove("router");
    fields.remove("epoch");
    fields.insert(
        "time".into(),
        time_of(entry.time_unix_ns).to_string().into(),
    );
    if let Some(code) = fields.get("last_error").and_then(|c| c.as_u64()) {
        let code = code as u32;
        fields.insert("last_error_name".into(), WinError(code).name().into());
        fields.insert("last_error_text".into(), error_text(code).into());
    }
    value
}

fn entry_line(entry: &JournalEntry) -> String {
    let time = time_of(entry.time_unix_ns);
    let what = match EntryKind::try_from(entry.kind) {
        Ok(EntryKind::EntryTransition) => {
            let e = entry.event.clone().unwrap_or_default();
            let (from, to) = (
                mprapi::ConnectionState::from_u32(e.from),
                mprapi::ConnectionState::from_u32(e.to),
            );
            let reason = match entry.reason.as_str() {
                "" => String::new(),
                r => format!("  ({r})"),
            };
            let error = match e.last_error {
                0 => String::new(),
                code => format!("  last error {}", error_name(code)),
            };
            format!(
                "#{:<6} {:<16} {} -> {}{error}{reason}",
                e.seq,
                e.name,
                from.name(),
                to.name()
            )
        }
        Ok(EntryKind::EntryAccounting) => format!(
            "        {:<16} carried {} B in, {} B out in {}",
            entry.interface,
            entry.rx_bytes,
            entry.tx_bytes,
            span(entry.connected_ns)
        ),
        Ok(EntryKind::EntryResync) => {
            format!(
                "        service resynchronised: {} changes found",
                entry.count
            )
        }
        Ok(EntryKind::EntryGap) => format!(
            "        GAP: {} entries lost ({})",
            entry.count, entry.reason
        ),
        Ok(EntryKind::EntryGroupSwitch) => {
            let event = entry.event.clone().unwrap_or_default();
            let switch = event.group_switch.unwrap_or_default();
            let member = |m: &str| {
                if m.is_empty() {
                    "none".to_owned()
                } else {
                    m.to_owned()
                }
            };
            format!(
                "#{:<6} group {:<10} {} -> {}: {}",
                event.seq,
                event.name,
                member(&switch.from),
                member(&switch.to),
                entry.reason
            )
        }
        _ => format!("        {}", kind(entry).replace('_', " ")),
    };
    format!("{time}  {what}")
}

pub fn uptime(server: &Server, window: &Window) -> Result<(), WinError> {
    let now = SystemTime::now();
    let parse = |text: &Option<String>| -> Result<u64, WinError> {
        text.as_deref()
            .map_or(Ok(0), |t| When::time(t, now).map_err(invalid))
    };
    let report = server.uptime(&Uptime {
        since_unix_ns: parse(&window.since)?,
        until_unix_ns: parse(&window.until)?,
        interface: window.interface.clone().unwrap_or_default(),
        ..Uptime::default()
    })?;
    if window.json {
        let interfaces: Vec<_> = report
            .interfaces
            .iter()
            .map(|i| {
                json!({
                    "interface": i.name,
                    "observed_secs": i.observed_ns as f64 / 1e9,
                    "connected_secs": i.connected_ns as f64 / 1e9,
                    "connected_percent": percent(i.connected_ns, i.observed_ns),
                    "disconnects": i.disconnects,
                    "longest_outage_secs": i.longest_outage_ns as f64 / 1e9,
                    "attempts": i.attempts,
                    "failures": i.failures,
                    "connections": i.connections,
                    "rx_bytes": i.rx_bytes,
                    "tx_bytes": i.tx_bytes,
                    "connected_now": i.connected_now,
                })
            })
            .collect();
        let value = json!({
            "since": time_of(report.since_unix_ns).to_string(),
            "until": time_of(report.until_unix_ns).to_string(),
            "interfaces": interfaces,
        });
        println!("{value}");
        return Ok(());
    }
    println!(
        "from {} to {} ({})",
        time_of(report.since_unix_ns),
        time_of(report.until_unix_ns),
        span(report.until_unix_ns.saturating_sub(report.since_unix_ns))
    );
    println!(
        "{:<16} {:>8} {:>10} {:>5} {:>10} {:>8} {:>6} {:>12} {:>12}",
        "INTERFACE",
        "UP",
        "CONNECTED",
        "DROPS",
        "LONGEST",
        "ATTEMPTS",
        "FAILED",
        "RX/CONN",
        "TX/CONN"
    );
    for i in &report.interfaces {
        let per = |bytes: u64| match i.connections {
            0 => "-".to_string(),
            n => (bytes / u64::from(n)).to_string(),
        };
        println!(
            "{:<16} {:>7.2}% {:>10} {:>5} {:>10} {:>8} {:>6} {:>12} {:>12}",
            i.name,
            percent(i.connected_ns, i.observed_ns),
            span(i.connected_ns),
            i.disconnects,
            span(i.longest_outage_ns),
            i.attempts,
            i.failures,
            per(i.rx_bytes),
            per(i.tx_bytes)
        );
    }
    Ok(())
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// The journal and export lines of `ddm status`, for who may read them:
/// always with `verbose`, else only when there is an export or the journal
/// lost entries (the first line stays alone for scripts).
pub fn status_lines(server: &Server, verbose: bool) {
    let Ok(journal) = server.journal_status() else {
        return;
    };
    if !verbose && journal.export.is_none() && journal.lost == 0 && journal.damaged.is_empty() {
        return;
    }
    if !journal.enabled {
        println!("journal: off");
        return;
    }
    let oldest = match journal.oldest_unix_ns {
        0 => "empty".to_string(),
        t => format!("since {}", time_of(t)),
    };
    println!(
        "journal: {} (last entry #{}, {} KiB, {oldest}, {} lost since start)",
        journal.path,
        journal.last_id,
        journal.bytes / 1024,
        journal.lost
    );
    if !journal.damaged.is_empty() {
        println!(
            "journal: found damaged at this start; moved aside to {} (a new journal began)",
            journal.damaged
        );
    }
    if let Some(export) = journal.export {
        let state = if export.connected {
            "connected".to_string()
        } else {
            format!("NOT connected: {}", export.last_error)
        };
        println!(
            "export:  {} {state}, {} entries behind (acknowledged to #{})",
            export.subject, export.behind, export.acked_id
        );
    }
}

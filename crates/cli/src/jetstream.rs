//! `ddm watch --fleet`: every router's journal entries, as they published
//! them to NATS JetStream, read through a durable consumer (`ddm_fleet`).

use crate::watch::{catch_termination, Options};
use mprapi::WinError;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Where `ddm watch --fleet` reads.
#[derive(clap::Args)]
pub struct NatsArgs {
    /// NATS server URL (repeat for several).
    #[arg(
        long = "nats",
        value_name = "URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    brokers: Vec<String>,
    /// The JetStream stream the routers publish to.
    #[arg(long, value_name = "NAME", default_value = "DDM")]
    stream: String,
    /// The durable consumer: the same name resumes where it left off.
    #[arg(long, value_name = "NAME", default_value = "ddm-watch")]
    durable: String,
    /// Only this subject (e.g. ddm.r1.events.>).
    #[arg(long, value_name = "SUBJECT")]
    subject: Option<String>,
    /// CA certificate of the broker (PEM).
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Client certificate and key (PEM).
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
}

/// `ddm watch --fleet`: every router's entries from JetStream, one line
/// each (the published JSON with --json).
pub fn watch(nats: &NatsArgs, options: &Options) -> Result<(), WinError> {
    let stop = catch_termination();
    let watch = ddm_fleet::FleetWatch {
        broker: ddmd::record::export::Broker {
            servers: nats.brokers.clone(),
            ca: nats.ca.clone(),
            certificate: nats.cert.clone(),
            key: nats.key.clone(),
        },
        stream: nats.stream.clone(),
        durable: nats.durable.clone(),
        subject: nats.subject.clone(),
        idle_timeout: options.timeout.map(Duration::from_secs_f64),
    };
    let mut seen = 0u64;
    let mut out = crate::output::stdout();
    let outcome = ddm_fleet::watch(&watch, |entry| {
        seen += 1;
        let _ = if options.json {
            writeln!(out, "{entry}")
        } else {
            writeln!(out, "{}", fleet_line(&entry))
        };
        let _ = out.flush();
        !stop.load(Ordering::Relaxed) && options.count.is_none_or(|n| seen < n)
    });
    outcome.map_err(|e| {
        eprintln!("ddm watch --fleet: {e}");
        if e.to_string().contains("timeout") {
            WinError::WAIT_TIMEOUT
        } else {
            WinError::RPC_S_SERVER_UNAVAILABLE
        }
    })
}

fn fleet_line(entry: &serde_json::Value) -> String {
    let text = |key: &str| entry[key].as_str().unwrap_or("").to_string();
    let what = match entry["kind"].as_str() {
        Some("transition") => format!(
            "#{:<6} {:<16} {} -> {}",
            entry["seq"],
            text("interface"),
            text("from"),
            text("to")
        ),
        Some("accounting") => format!(
            "        {:<16} carried {} B in, {} B out",
            text("interface"),
            entry["rx_bytes"].as_u64().unwrap_or(0),
            entry["tx_bytes"].as_u64().unwrap_or(0)
        ),
        other => format!("        {}", other.unwrap_or("?").replace('_', " ")),
    };
    let time = entry["time_unix_ns"].as_u64().unwrap_or(0);
    let time = humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_nanos(time));
    format!("{:<12} {time}  {what}", text("router"))
}

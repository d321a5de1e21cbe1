//! `ddm watch`: a registration held for the duration, and the typed stream
//! for what to print.
//!
//! The registered event is what a Windows program would wait on; the
//! stream carries the details (sequence, interface, old and new state,
//! time) that a person wants to read. SIGINT and SIGTERM end the watch
//! cleanly: the registration is deregistered before the process exits.

use crate::Endpoint;
use mprapi::{ConnectionEvent, Event, ReconnectingServer, StreamItem, WinError};
use nix::sys::signal::{SigSet, Signal};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Options {
    pub json: bool,
    pub count: Option<u64>,
    pub timeout: Option<f64>,
    /// Resume after this sequence number (`Server::subscribe_from`).
    pub since: Option<u64>,
    /// Go on across restarts of the service (`ResumingStream`).
    pub resume: bool,
}

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

/// How often the wait looks up from the stream to check for a signal.
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

pub fn run(endpoint: &Endpoint, options: Options) -> Result<(), WinError> {
    let stop = catch_termination();
    let servers = endpoint.servers();
    if servers.len() > 1 {
        return crate::fleet::watch(&servers, &options, &stop);
    }
    if options.resume {
        return resume(endpoint, &options, &stop);
    }
    let server = endpoint.connect()?;
    // Stream first: once the registration shows, every change is printed.
    let stream = match options.since {
        Some(seq) => server.subscribe_from(seq)?,
        None => server.subscribe()?,
    };
    let event = new_event()?;
    server.register_connection_notification(&event)?;
    let outcome = follow(|wait| stream.next_timeout(wait), &options, &stop);
    let deregistered = server.deregister_connection_notification(&event);
    outcome.and(deregistered)
}

fn new_event() -> Result<Event, WinError> {
    Event::auto().map_err(|_| WinError::ERROR_NOT_ENOUGH_MEMORY)
}

/// `ddm watch --resume`: the same through a handle that reconnects and a
/// stream that resumes from the journal after each restart.
fn resume(endpoint: &Endpoint, options: &Options, stop: &AtomicBool) -> Result<(), WinError> {
    let server = match endpoint.servers().first() {
        Some(name) => ReconnectingServer::connect(Some(name))?,
        None => ReconnectingServer::connect_socket(&endpoint.path())?,
    };
    let mut stream = match options.since {
        Some(seq) => server.subscribe_from(seq)?,
        None => server.subscribe()?,
    };
    let event = new_event()?;
    server.register_connection_notification(&event)?;
    let outcome = follow(|wait| stream.next_timeout(wait), options, stop);
    // The service may be away at the end: its registration went with it.
    let _ = server.deregister_connection_notification(&event);
    outcome
}

fn follow(
    mut next: impl FnMut(Duration) -> Option<StreamItem>,
    options: &Options,
    stop: &AtomicBool,
) -> Result<(), WinError> {
    let idle = options.timeout.map(Duration::from_secs_f64);
    let mut last_event = Instant::now();
    let mut seen = 0u64;
    let mut out = std::io::stdout().lock();
    while options.count.is_none_or(|n| seen < n) {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let wait = idle.map_or(SIGNAL_CHECK, |idle| {
            idle.saturating_sub(last_event.elapsed()).min(SIGNAL_CHECK)
        });
        match next(wait) {
            Some(StreamItem::Event(event)) => {
                seen += 1;
                last_event = Instant::now();
                print_event(&mut out, &event, options.json);
            }
            Some(StreamItem::Missed(count)) => {
                if options.json {
                    let _ = writeln!(out, "{}", json!({ "missed": count }));
                } else {
                    let _ = writeln!(out, "(missed {count} events: this watch read too slowly)");
                }
            }
            Some(StreamItem::End(error)) => return Err(error),
            None if idle.is_some_and(|idle| last_event.elapsed() >= idle) => {
                return Err(WinError::WAIT_TIMEOUT);
            }
            None => {}
        }
        let _ = out.flush();
    }
    Ok(())
}

fn print_event(out: &mut impl Write, event: &ConnectionEvent, as_json: bool) {
    let _ = if as_json {
        writeln!(out, "{}", event_json(event))
    } else {
        writeln!(out, "{}", event_line(event))
    };
}

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

/// `ddm watch --fleet`: every router's entries from JetStream, one line
/// each (the published JSON with --json).
pub fn fleet(nats: &NatsArgs, options: &Options) -> Result<(), WinError> {
    let stop = catch_termination();
    let watch = ddmd::record::export::fleet::FleetWatch {
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
    let mut out = std::io::stdout().lock();
    let outcome = ddmd::record::export::fleet::watch(&watch, |entry| {
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

/// Blocks SIGINT and SIGTERM in every thread and turns them into a flag,
/// read by a dedicated thread with sigwait.
fn catch_termination() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    if signals.thread_block().is_ok() {
        let flag = stop.clone();
        std::thread::spawn(move || {
            if signals.wait().is_ok() {
                flag.store(true, Ordering::Relaxed);
            }
        });
    }
    stop
}

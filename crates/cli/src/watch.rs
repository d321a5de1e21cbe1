//! `ddm watch`: a registration held for the duration, and the typed stream
//! for what to print.
//!
//! The registered event is what a Windows program would wait on; the
//! stream carries the details (sequence, interface, old and new state,
//! time) that a person wants to read. SIGINT and SIGTERM end the watch
//! cleanly: the registration is deregistered before the process exits.
//! Several routers at once are `routers`; a fleet through JetStream is
//! `jetstream`.

use crate::events::{event_json, event_line};
use crate::Endpoint;
use mprapi::{ConnectionEvent, Event, ReconnectingServer, StreamItem, WinError};
use nix::sys::signal::{SigSet, Signal};
use serde_json::json;
use std::io::Write;
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

/// How often the wait looks up from the stream to check for a signal.
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

pub fn run(endpoint: &Endpoint, options: Options) -> Result<(), WinError> {
    let stop = catch_termination();
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
    let mut out = crate::output::stdout();
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
                    let _ = writeln!(out, "(missed {count} events: this watch read too slowly, or the journal does not have them)");
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

/// Blocks SIGINT and SIGTERM in every thread and turns them into a flag,
/// read by a dedicated thread with sigwait.
pub fn catch_termination() -> Arc<AtomicBool> {
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

//! Several routers at once: `ddm watch --server r1 --server r2 ...` and
//! `ddm interfaces --server r1 --server r2 ...`.
//!
//! The watch follows each router in a thread of its own, tagging every
//! line with the router's name. A router that goes away is said to, and
//! tried again every second; when it is back its stream resumes after the
//! last event printed for it (from its journal), so nothing is missed or
//! printed twice. One router that is down never holds up the others.

use crate::events::{event_json, event_line};
use crate::listing::{interface_json, interface_row, INTERFACE_HEADER};
use crate::watch::{catch_termination, Options};
use mprapi::{Server, StreamItem, WinError};
use serde_json::json;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a router that is away is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// What a router's thread has to say.
enum Line {
    Event(String, mprapi::ConnectionEvent),
    Note(String, String),
}

pub fn watch(servers: &[String], options: &Options) -> Result<(), WinError> {
    let stop = catch_termination();
    let (lines, received) = mpsc::channel();
    let quit = Arc::new(AtomicBool::new(false));
    for name in servers {
        let (lines, name, quit) = (lines.clone(), name.clone(), quit.clone());
        std::thread::spawn(move || follow(&name, &lines, &quit));
    }
    drop(lines);
    let idle = options.timeout.map(Duration::from_secs_f64);
    let mut last_event = Instant::now();
    let mut seen = 0u64;
    let mut out = crate::output::stdout();
    let outcome = loop {
        if options.count.is_some_and(|n| seen >= n) || stop.load(Ordering::Relaxed) {
            break Ok(());
        }
        if idle.is_some_and(|idle| last_event.elapsed() >= idle) {
            break Err(WinError::WAIT_TIMEOUT);
        }
        match received.recv_timeout(Duration::from_millis(100)) {
            Ok(Line::Event(router, event)) => {
                seen += 1;
                last_event = Instant::now();
                let _ = if options.json {
                    let mut value = event_json(&event);
                    value["router"] = router.into();
                    writeln!(out, "{value}")
                } else {
                    writeln!(out, "{router:<12} {}", event_line(&event))
                };
            }
            Ok(Line::Note(router, note)) => {
                let _ = if options.json {
                    writeln!(out, "{}", json!({ "router": router, "note": note }))
                } else {
                    writeln!(out, "{router:<12} ({note})")
                };
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break Ok(()),
        }
        let _ = out.flush();
    };
    quit.store(true, Ordering::Relaxed);
    outcome
}

/// One router's thread: connect, stream, and again when it goes away.
fn follow(name: &str, lines: &mpsc::Sender<Line>, quit: &AtomicBool) {
    let say = |note: String| lines.send(Line::Note(name.to_owned(), note)).is_ok();
    let mut last_seq: Option<u64> = None;
    let mut said_down = false;
    while !quit.load(Ordering::Relaxed) {
        let stream = Server::connect(Some(name)).and_then(|server| match last_seq {
            Some(seq) => server.subscribe_from(seq),
            None => server.subscribe(),
        });
        let stream = match stream {
            Ok(stream) => stream,
            Err(error) => {
                if !said_down && !say(format!("unreachable: {error}; trying again")) {
                    return;
                }
                said_down = true;
                std::thread::sleep(RETRY);
                continue;
            }
        };
        said_down = false;
        if !say(format!("connected at sequence {}", stream.snapshot().seq)) {
            return;
        }
        last_seq.get_or_insert(stream.snapshot().seq);
        while !quit.load(Ordering::Relaxed) {
            match stream.next_timeout(Duration::from_millis(200)) {
                Some(StreamItem::Event(event)) => {
                    last_seq = Some(event.seq);
                    if lines.send(Line::Event(name.to_owned(), event)).is_err() {
                        return;
                    }
                }
                Some(StreamItem::Missed(n)) => {
                    last_seq = last_seq.map(|s| s + n);
                    if !say(format!("missed {n} events")) {
                        return;
                    }
                }
                Some(StreamItem::End(error)) => {
                    if !say(format!("lost: {error}; reconnecting")) {
                        return;
                    }
                    break;
                }
                None => {}
            }
        }
    }
}

/// Every router's interfaces, side by side (a ROUTER column first).
pub fn interfaces(servers: &[String], as_json: bool) -> Result<(), WinError> {
    let mut failed = None;
    let listed: Vec<(&String, Result<Vec<mprapi::InterfaceInfo>, WinError>)> = servers
        .iter()
        .map(|name| {
            (
                name,
                Server::connect(Some(name)).and_then(|s| s.interfaces()),
            )
        })
        .collect();
    if as_json {
        let all: Vec<_> = listed
            .iter()
            .map(|(router, listed)| match listed {
                Ok(list) => json!({
                    "router": router,
                    "interfaces": list.iter().map(interface_json).collect::<Vec<_>>(),
                }),
                Err(e) => json!({ "router": router, "error": e.0, "error_name": e.name() }),
            })
            .collect();
        println!("{}", serde_json::Value::Array(all));
    } else {
        println!("{:<12} {INTERFACE_HEADER}", "ROUTER");
        for (router, listed) in &listed {
            match listed {
                Ok(list) => {
                    for i in list {
                        println!("{router:<12} {}", interface_row(i));
                    }
                }
                Err(e) => println!("{router:<12} {e}"),
            }
        }
    }
    for (_, listed) in listed {
        if let Err(e) = listed {
            failed.get_or_insert(e);
        }
    }
    failed.map_or(Ok(()), Err)
}

//! Workload 4, memory: the service's resident memory per idle session and
//! per registration, from its RSS before and after opening N sessions and
//! registering ten events on each.

use crate::lab::{descriptor_limit, wait_for, Lab, SPARE_DESCRIPTORS};
use crate::report::Report;
use crate::stats::Summary;
use std::time::Duration;

const REGISTRATIONS_PER_SESSION: usize = 10;

fn steady_rss(lab: &Lab) -> f64 {
    std::thread::sleep(Duration::from_millis(300));
    lab.service_rss() as f64
}

pub fn run(lab: &Lab, sessions: usize, report: &mut Report) {
    let before = steady_rss(lab);
    let servers: Vec<mprapi::Server> = (0..sessions).map(|_| lab.connect()).collect();
    let idle = steady_rss(lab);
    let events: Vec<mprapi::Event> = (0..REGISTRATIONS_PER_SESSION)
        .map(|_| mprapi::Event::auto().expect("eventfd"))
        .collect();
    // Each registration is a descriptor in the service: register on as
    // many sessions as its limit allows.
    let room =
        descriptor_limit().saturating_sub(sessions + SPARE_DESCRIPTORS) / REGISTRATIONS_PER_SESSION;
    let registering = sessions.min(room);
    if registering < sessions {
        eprintln!(
            "note: registering on {registering} of {sessions} sessions: {} registrations would pass this machine's limit of {} descriptors",
            sessions * REGISTRATIONS_PER_SESSION,
            descriptor_limit()
        );
    }
    for server in &servers[..registering] {
        for event in &events {
            server
                .register_connection_notification(event)
                .expect("register");
        }
    }
    let registered = steady_rss(lab);
    eprintln!("service RSS: {before} B before, {idle} B with {sessions} idle sessions, {registered} B registered");
    let per_session = (idle - before) / sessions as f64;
    let per_registration = (registered - idle) / (registering * REGISTRATIONS_PER_SESSION) as f64;
    let workload =
        format!("memory, {sessions} sessions, {registering} x {REGISTRATIONS_PER_SESSION} reg.");
    report.add(
        &workload,
        "ddm service RSS per idle session",
        "B",
        Summary::of(&[per_session]),
    );
    report.add(
        &workload,
        "ddm service RSS per registration",
        "B",
        Summary::of(&[per_registration]),
    );
    report.target(
        "at most 16 KiB per idle session",
        format!("{:.0} B", per_session),
        per_session <= 16384.0,
    );
    report.target(
        "at most 256 bytes per registration",
        format!("{:.0} B", per_registration),
        per_registration <= 256.0,
    );
    drop(servers);
    let admin = lab.connect();
    wait_for("the sessions to close", || {
        admin.sessions().is_ok_and(|s| s.len() == 1)
    });
}

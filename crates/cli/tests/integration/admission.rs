//! One user cannot lock everyone else out: real processes as `nobody` open
//! hundreds of connections while root and administrators are served, and
//! the refusals do not flood the log.

use crate::c_abi::{compile, Build};
use crate::support::*;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Output, Stdio};

/// Debian's `daemon` and `bin` users, as two more unprivileged callers.
const DAEMON: u32 = 1;
const BIN: u32 = 2;
const TOO_BUSY: &str = "RPC_S_SERVER_TOO_BUSY (1723)";

/// `flood` running as nobody, holding its connections until dropped.
struct Flood {
    child: Child,
    /// What it printed once its connections were made.
    report: String,
}

impl Flood {
    fn start(service: &Service, count: usize, mode: &str) -> Flood {
        let program = compile("tests/c/flood.c", Build::Plain);
        let mut child = Command::new(program)
            .arg(&service.socket)
            .arg(count.to_string())
            .arg(mode)
            .uid(NOBODY)
            .gid(NOGROUP)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut report = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut report)
            .unwrap();
        Flood {
            child,
            report: report.trim().to_string(),
        }
    }

    /// W of "welcomed W of N".
    fn welcomed(&self) -> usize {
        self.report
            .strip_prefix("welcomed ")
            .and_then(|r| r.split(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("flood said {:?}", self.report))
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ddm_as(service: &Service, uid: u32, args: &[&str]) -> Output {
    service.ddm(args).uid(uid).gid(uid).output().unwrap()
}

fn assert_served(out: &Output, who: &str) {
    assert!(
        out.status.success(),
        "{who} is served: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_too_busy(out: &Output, who: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains(TOO_BUSY),
        "{who} is refused as too busy: {stderr:?}"
    );
}

#[test]
fn an_unprivileged_flood_locks_out_neither_root_nor_the_log() {
    let lab = Lab::with_config(Some("[limits]\nmax_sessions = 300\n"));
    let greeted = Flood::start(&lab.service, 400, "hello");
    assert_eq!(greeted.welcomed(), 256, "{}", greeted.report);
    let silent = Flood::start(&lab.service, 400, "silent");
    assert_eq!(silent.report, "opened 400");
    // Root administers throughout.
    assert_served(
        &lab.service.ddm(&["registrations"]).output().unwrap(),
        "root",
    );
    let status = lab.service.ddm(&["status"]).output().unwrap();
    assert_served(&status, "root");
    assert_eq!(String::from_utf8_lossy(&status.stdout).trim(), "running");
    // Hundreds of refusals, a few log lines; a later one counts the rest.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_too_busy(&ddm_as(&lab.service, NOBODY, &["status"]), "nobody");
    // The log is written by a thread of its own: the line may come later.
    let refused = |l: &&str| l.contains("refused a session");
    ddm_lab::wait_until("a refusal line that counts what was held back", || {
        lab.service
            .log()
            .lines()
            .any(|l| refused(&l) && l.contains("suppressed=") && !l.contains("suppressed=0"))
    });
    let log = lab.service.log();
    let refusals: Vec<&str> = log.lines().filter(refused).collect();
    assert!(
        (1..=5).contains(&refusals.len()),
        "{} refusal lines: {refusals:#?}",
        refusals.len()
    );
    assert!(
        refusals
            .iter()
            .any(|l| l.contains("suppressed=") && !l.contains("suppressed=0")),
        "a line counts what was held back: {refusals:#?}"
    );
}

#[test]
fn one_user_gets_at_most_its_share() {
    let lab = Lab::with_config(Some("[limits]\nmax_sessions_per_user = 20\n"));
    let flood = Flood::start(&lab.service, 30, "hello");
    assert_eq!(flood.report, "welcomed 20 of 30");
    assert_too_busy(&ddm_as(&lab.service, NOBODY, &["status"]), "nobody");
    assert_served(&ddm_as(&lab.service, DAEMON, &["status"]), "another user");
    drop(flood);
    wait_until("nobody's sessions are gone", || {
        ddm_as(&lab.service, NOBODY, &["status"]).status.success()
    });
}

#[test]
fn connections_in_the_handshake_are_limited() {
    let lab = Lab::with_config(Some(
        "[access]\nadmin_users = [\"bin\"]\n[limits]\nmax_pending_handshakes = 10\nhandshake_timeout_ms = 1000\n",
    ));
    let _flood = Flood::start(&lab.service, 10, "silent");
    assert_too_busy(&ddm_as(&lab.service, DAEMON, &["status"]), "a user");
    assert_served(&ddm_as(&lab.service, BIN, &["registrations"]), "an admin");
    assert_served(
        &lab.service.ddm(&["registrations"]).output().unwrap(),
        "root",
    );
    wait_until("the silent connections time out", || {
        ddm_as(&lab.service, DAEMON, &["status"]).status.success()
    });
}

#[test]
fn the_reserve_is_for_administrators() {
    let lab = Lab::with_config(Some(
        "[access]\nadmin_users = [\"bin\"]\n[limits]\nmax_sessions = 40\nadmin_reserved_sessions = 10\nmax_sessions_per_user = 100\n",
    ));
    let flood = Flood::start(&lab.service, 40, "hello");
    assert_eq!(flood.report, "welcomed 30 of 40");
    assert_too_busy(&ddm_as(&lab.service, DAEMON, &["status"]), "a user");
    assert_served(&ddm_as(&lab.service, BIN, &["registrations"]), "an admin");
    assert_served(
        &lab.service.ddm(&["registrations"]).output().unwrap(),
        "root",
    );
}

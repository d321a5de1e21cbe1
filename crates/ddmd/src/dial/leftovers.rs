//! What an interface's commands leave behind: the daemons they fork
//! (pppd, `openvpn --daemon`, wireguard-go, a script's `setsid ... &`),
//! which outlive the command, leave its process group and are no child of
//! the service's, so neither killing the command nor PR_SET_PDEATHSIG
//! reaches them.
//!
//! Every command ddm runs for an interface carries a mark in its
//! environment, `DDM_DIAL=<the service's socket> <interface>`, which every
//! process it starts inherits. A hang-up, an attempt's time-out, the
//! service's stop and the start-up clean-up of an interface end every
//! process that still carries the interface's mark: SIGTERM, then SIGKILL
//! after a grace. The scan of /proc runs on the blocking pool.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// The environment variable that marks an interface's processes.
pub const VARIABLE: &str = "DDM_DIAL";

/// How long the processes left get between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(2);

/// The mark of interface `interface` of the service listening on
/// `service` (two services on one machine never share one).
pub fn mark(service: &str, interface: &str) -> String {
    format!("{service} {interface}")
}

/// Ends every process marked `mark`; how many there were.
pub async fn end(mark: String, grace: Duration) -> usize {
    tokio::task::spawn_blocking(move || end_now(&mark, grace))
        .await
        .unwrap_or(0)
}

fn end_now(mark: &str, grace: Duration) -> usize {
    let left = marked(mark);
    for pid in &left {
        let _ = kill(*pid, Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    let mut alive: Vec<Pid> = left.clone();
    while !alive.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        alive.retain(|pid| still_marked(*pid, mark));
    }
    for pid in alive {
        tracing::warn!(
            pid = pid.as_raw(),
            "a process left by a dial command did not end on SIGTERM; killed"
        );
        let _ = kill(pid, Signal::SIGKILL);
    }
    if !left.is_empty() {
        tracing::info!(
            mark,
            processes = left.len(),
            "ended what the interface's commands left behind"
        );
    }
    left.len()
}

/// The interfaces of the service on `service` whose processes a run
/// before this one left (after a SIGKILL): one scan at the start, so that
/// only their supervisors look again.
pub fn left_behind(service: &str) -> HashSet<String> {
    let prefix = format!("{service} ");
    processes()
        .filter_map(|pid| marks(pid)?.strip_prefix(&prefix).map(str::to_owned))
        .collect()
}

/// The processes whose environment carries `mark`.
fn marked(mark: &str) -> Vec<Pid> {
    processes().filter(|pid| still_marked(*pid, mark)).collect()
}

fn still_marked(pid: Pid, mark: &str) -> bool {
    marks(pid).is_some_and(|m| m == mark)
}

/// Every process but this one.
fn processes() -> impl Iterator<Item = Pid> {
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(move |pid| *pid != me)
        .map(Pid::from_raw)
}

/// The mark in `pid`'s environment, if it has one.
fn marks(pid: Pid) -> Option<String> {
    let environment = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let variable = format!("{VARIABLE}=");
    environment
        .split(|b| *b == 0)
        .find_map(|entry| entry.strip_prefix(variable.as_bytes()))
        .map(|mark| String::from_utf8_lossy(mark).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marked_process_and_what_it_forked_are_ended_and_no_other() {
        let mark = mark(&format!("/tmp/test-{}", std::process::id()), "branch");
        let spawn = |mark: &str| {
            std::process::Command::new("sh")
                .args(["-c", "sleep 600 & sleep 600"])
                .env(VARIABLE, mark)
                .spawn()
                .unwrap()
        };
        let mut ours = spawn(&mark);
        let mut other = spawn(&format!("{mark}-other"));
        let deadline = Instant::now() + Duration::from_secs(5);
        while marked(&mark).len() < 3 {
            assert!(Instant::now() < deadline, "the shell and its two sleeps");
            std::thread::sleep(Duration::from_millis(10));
        }
        let service = format!("/tmp/test-{}", std::process::id());
        assert!(left_behind(&service).contains("branch"));
        assert_eq!(end_now(&mark, GRACE), 3);
        let _ = ours.wait();
        assert!(marked(&mark).is_empty());
        assert!(
            !marked(&format!("{mark}-other")).is_empty(),
            "another mark is left alone"
        );
        let _ = other.kill();
        let _ = other.wait();
        end_now(&format!("{mark}-other"), GRACE);
    }
}

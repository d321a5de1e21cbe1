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
//! after a grace.
//!
//! The scans of /proc run on a thread of their own, which takes every
//! request that waits at once and answers all of them from one scan: a
//! router stop that hangs up thousands of interfaces reads /proc a few
//! times, not once per interface.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;
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
    let (done, finished) = tokio::sync::oneshot::channel();
    if sweeper().send(Sweep { mark, grace, done }).is_err() {
        return 0;
    }
    finished.await.unwrap_or(0)
}

/// One mark to end, and who waits for the count.
struct Sweep {
    mark: String,
    grace: Duration,
    done: tokio::sync::oneshot::Sender<usize>,
}

/// The sweeping thread's queue, started on first use.
fn sweeper() -> &'static std::sync::mpsc::Sender<Sweep> {
    static SWEEPER: OnceLock<std::sync::mpsc::Sender<Sweep>> = OnceLock::new();
    SWEEPER.get_or_init(|| {
        let (sweeps, queue) = std::sync::mpsc::channel::<Sweep>();
        let _ = std::thread::Builder::new()
            .name("ddm-leftovers".into())
            .spawn(move || {
                while let Ok(first) = queue.recv() {
                    let batch: Vec<Sweep> =
                        std::iter::once(first).chain(queue.try_iter()).collect();
                    sweep(batch);
                }
            });
        sweeps
    })
}

/// Answers every sweep of `batch` from one scan of /proc. Marks with
/// processes left get their SIGTERM and grace on a thread of their own,
/// so the next batch need not wait for them.
fn sweep(batch: Vec<Sweep>) {
    let marks: HashSet<&str> = batch.iter().map(|s| s.mark.as_str()).collect();
    let mut found: HashMap<String, Vec<Pid>> = HashMap::new();
    for pid in processes() {
        if let Some(mark) = marks_of(pid).filter(|m| marks.contains(m.as_str())) {
            found.entry(mark).or_default().push(pid);
        }
    }
    for Sweep { mark, grace, done } in batch {
        match found.remove(&mark) {
            None => {
                let _ = done.send(0);
            }
            Some(left) => {
                let _ = std::thread::Builder::new()
                    .name("ddm-leftovers".into())
                    .spawn(move || {
                        let _ = done.send(end_these(&mark, left, grace));
                    });
            }
        }
    }
}

/// SIGTERM to `left`, marked `mark`, and SIGKILL to those still marked
/// after `grace`; how many there were.
fn end_these(mark: &str, left: Vec<Pid>, grace: Duration) -> usize {
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
        .filter_map(|pid| marks_of(pid)?.strip_prefix(&prefix).map(str::to_owned))
        .collect()
}

fn still_marked(pid: Pid, mark: &str) -> bool {
    marks_of(pid).is_some_and(|m| m == mark)
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
fn marks_of(pid: Pid) -> Option<String> {
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

    /// The processes whose environment carries `mark`.
    fn marked(mark: &str) -> Vec<Pid> {
        processes().filter(|pid| still_marked(*pid, mark)).collect()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_marked_process_and_what_it_forked_are_ended_and_no_other() {
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
        // Asked together with marks that have nothing left: one sweep.
        let (ended, nothing) =
            tokio::join!(end(mark.clone(), GRACE), end(format!("{mark}-none"), GRACE));
        assert_eq!((ended, nothing), (3, 0));
        let _ = ours.wait();
        assert!(marked(&mark).is_empty());
        assert!(
            !marked(&format!("{mark}-other")).is_empty(),
            "another mark is left alone"
        );
        let _ = other.kill();
        let _ = other.wait();
        end(format!("{mark}-other"), GRACE).await;
    }
}

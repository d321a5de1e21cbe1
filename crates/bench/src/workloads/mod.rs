//! The benchmark's workloads, each side by side with its anchors.

pub mod churn;
pub mod dialing;
pub mod fanout;
pub mod health;
pub mod journal;
pub mod latency;
pub mod memory;
pub mod metrics;
pub mod registration;
pub mod remote;
pub mod scale;

use std::time::Duration;

/// How long a waiter may take before it counts as never woken: the lab's
/// one patience.
pub use ddm_lab::PATIENCE;

/// Time for a flip's tail (late notifications) to pass before the next.
pub fn settle() {
    std::thread::sleep(Duration::from_millis(10));
}

/// How many waiters never woke, said loudly: a lost wake-up is a defect.
pub fn say_lost(what: &str, lost: usize) {
    if lost > 0 {
        eprintln!("!!! {what}: {lost} waiter(s) never woke within {PATIENCE:?}");
    }
}

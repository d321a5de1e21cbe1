//! Waiting for what a test expects: one patience for everything that
//! should happen, one quiet time for what should not.

use std::time::{Duration, Instant};

/// How long the lab waits for something that should happen.
pub const PATIENCE: Duration = Duration::from_secs(10);
/// How long a test waits to be sure something does not happen.
pub const QUIET: Duration = Duration::from_millis(500);

/// Polls `condition` until it holds, failing after [`PATIENCE`].
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

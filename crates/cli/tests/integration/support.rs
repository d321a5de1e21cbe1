//! What the integration tests share: the lab (`ddm_lab`: namespaces, the
//! real `ddm serve` in them, one patience), the `ddm` binary cargo built,
//! and the waits on events.

pub use ddm_lab::service::{NOBODY, NOGROUP};
pub use ddm_lab::{
    require_root, run, stdout_of, tool, wait_until, Lab, Netns, Service, PATIENCE, QUIET,
};
use mprapi::Event;

pub const DDM: &str = env!("CARGO_BIN_EXE_ddm");

/// Waits for `event`, failing the test if it is not signaled in time.
pub fn expect_signal(event: &Event, what: &str) {
    assert!(event.wait(Some(PATIENCE)), "event not signaled: {what}");
}

/// Asserts `event` stays unsignaled for [`QUIET`].
pub fn expect_silence(event: &Event, what: &str) {
    assert!(
        !event.wait(Some(QUIET)),
        "event signaled, but should not be: {what}"
    );
}

//! Operations around the service, never in the router's way: systemd's
//! notices and passed socket, the metrics endpoint, the log and its
//! rate-limited lines, memory given back after a crowd leaves.

pub mod log;
pub mod memory;
pub mod metrics;
pub mod systemd;
pub mod throttle;

//! ddm's test lab, for the integration tests and the benchmark harness
//! alike: private network namespaces (always removed), the real service
//! running in one, WireGuard pairs between two, a NATS JetStream broker,
//! Cockpit's web server with ddm's page, and the in-process service for
//! the tests that need no root.
//!
//! A tool the lab needs and the machine lacks fails at once with its
//! Debian package's name ([`tools`]); waits have one patience
//! ([`wait::PATIENCE`]).

pub mod accounts;
pub mod cockpit;
pub mod in_process;
pub mod lab;
pub mod lan;
pub mod nats;
pub mod netns;
pub mod process;
pub mod service;
pub mod slow_echo;
pub mod tools;
pub mod uplinks;
pub mod wait;
pub mod wireguard;

pub use lab::Lab;
pub use netns::Netns;
pub use process::Process;
pub use service::Service;
pub use tools::{assert_silent, output_fed, require, require_root, run, stdout_of, tool};
pub use wait::{wait_until, PATIENCE, QUIET};

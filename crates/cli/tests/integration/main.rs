//! Integration tests: the real `ddm serve` against real kernel links in
//! private network namespaces. They need root (see `support::require_root`).

mod access;
mod admission;
mod c_abi;
mod cli;
mod console;
mod dialing;
mod export;
mod faults;
mod habits;
mod health;
mod journal;
mod links;
pub mod metrics;
mod nats_lab;
mod notify;
mod protocol;
mod remote;
mod stream;
mod support;
mod system_socket;
mod systemd;
mod tls_lab;
mod wireguard_lab;

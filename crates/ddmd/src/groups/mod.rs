//! Groups of uplinks: routes kept through the first member that can carry
//! traffic, moved at once when it fails and back after a hold when a
//! better one can carry again (`choose`, pure); a demand member takes them
//! to its trigger, so that traffic dials it.

pub mod choose;
pub mod config;

//! Path health: whether traffic gets through an interface's link, not only
//! whether the link is up. Probes run beside the router (`prober`, a task
//! per probed interface, its sockets bound to the interface's link) and
//! report each round as an input; the router judges the rounds (`monitor`,
//! pure) and commits what the verdict changes: an interface with `health`
//! is CONNECTED only while its link is up and its health is up.

pub mod config;
pub mod echo;
pub mod monitor;
pub mod prober;
pub mod report;

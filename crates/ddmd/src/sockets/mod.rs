//! Socket plumbing the service's layers share: descriptors received
//! without leaking one (`scm`), and a socket registered with the runtime
//! for only the readiness it needs (`watched`).

pub mod scm;

use std::io;
use std::os::fd::AsRawFd;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Registers a socket the value owns with the runtime, for `interest`.
pub fn watched<T: AsRawFd>(socket: T, interest: Interest) -> io::Result<AsyncFd<T>> {
    // SAFETY: `socket` owns its descriptor (a std socket or an OwnedFd),
    // which stays open and the same for as long as the AsyncFd holds the
    // value.
    unsafe { AsyncFd::register_with_interest(socket, interest) }.map_err(io::Error::from)
}

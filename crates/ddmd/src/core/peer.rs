//! Who is at the other end of a session, and what it may do.
//!
//! A transport finds out who its peer is (the kernel's word for a local
//! socket; a certificate for a remote one), the access policy gives that
//! identity a role, and from then on the session and the router see only
//! this `Peer`: never a socket or a credential call.

use ddm_proto::message::Role;
use nix::sys::socket::{getsockopt, sockopt};
use std::os::fd::{AsRawFd, BorrowedFd};

/// A session's peer: its identity and the role the policy gave it.
#[derive(Debug, Clone)]
pub struct Peer {
    pub identity: Identity,
    pub role: Role,
}

/// How a peer is known.
#[derive(Debug, Clone)]
pub enum Identity {
    /// A process on this machine, as the kernel reports it.
    Local(Credentials),
    /// A client over TLS, named by its certificate (SAN URI, else CN).
    Remote {
        name: String,
        address: std::net::SocketAddr,
    },
}

impl Peer {
    /// The peer's process id, where it has one.
    pub fn pid(&self) -> Option<i32> {
        match &self.identity {
            Identity::Local(c) => Some(c.pid),
            Identity::Remote { .. } => None,
        }
    }

    /// The peer's user id, where it has one.
    pub fn uid(&self) -> Option<u32> {
        match &self.identity {
            Identity::Local(c) => Some(c.uid),
            Identity::Remote { .. } => None,
        }
    }

    /// A remote peer's certificate identity and address.
    pub fn remote(&self) -> Option<(&str, std::net::SocketAddr)> {
        match &self.identity {
            Identity::Local(_) => None,
            Identity::Remote { name, address } => Some((name, *address)),
        }
    }
}

/// A local peer with `role`, for unit tests.
#[cfg(test)]
pub(crate) fn test_peer(role: Role) -> Peer {
    Peer {
        identity: Identity::Local(Credentials {
            pid: 1,
            uid: 1000,
            gid: 1000,
            groups: vec![],
        }),
        role,
    }
}

/// What the kernel says about the process at the other end of a Unix
/// socket (SO_PEERCRED, SO_PEERGROUPS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

impl Credentials {
    /// Reads the credentials of a connected Unix socket's peer.
    pub fn of(socket: BorrowedFd<'_>) -> std::io::Result<Self> {
        let cred = getsockopt(&socket, sockopt::PeerCredentials).map_err(std::io::Error::from)?;
        Ok(Credentials {
            pid: cred.pid(),
            uid: cred.uid(),
            gid: cred.gid(),
            groups: peer_groups(socket)?,
        })
    }
}

/// SO_PEERGROUPS, which nix does not wrap.
fn peer_groups(socket: BorrowedFd<'_>) -> std::io::Result<Vec<u32>> {
    let mut groups = vec![0u32; 64];
    loop {
        let mut len = (groups.len() * 4) as libc::socklen_t;
        // SAFETY: the buffer is valid for `len` bytes and outlives the call.
        let rc = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let err = std::io::Error::last_os_error();
        if rc == 0 {
            groups.truncate(len as usize / 4);
            return Ok(groups);
        }
        if err.raw_os_error() == Some(libc::ERANGE) && (len as usize / 4) > groups.len() {
            groups.resize(len as usize / 4, 0);
            continue;
        }
        return Err(err);
    }
}

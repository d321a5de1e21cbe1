//! A link's name and flags now, asked of the kernel by ioctl
//! (SIOCGIFNAME, SIOCGIFFLAGS).
//!
//! The kernel answers these under RCU, where an rtnetlink request waits
//! for the RTNL lock behind every process changing links: a start of
//! thousands of dials spent most of the service's CPU spinning on that
//! lock, reading links whose notification had just said they were up.
//!
//! A link is named by its index first: asked about a name no link has,
//! the kernel tries to load a module of that name (`netdev-NAME`), runs
//! modprobe and waits for it.

use crate::links::{LinkState, IFF_RUNNING, IF_OPER_UP};
use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// IF_OPER_DOWN.
const IF_OPER_DOWN: u8 = 2;

/// A socket to ask on, in the service's network namespace (any socket
/// will do: the kernel answers for the namespace it was made in).
#[derive(Debug)]
pub struct LinkIoctl(OwnedFd);

impl LinkIoctl {
    pub fn open() -> io::Result<LinkIoctl> {
        let socket = socket(
            AddressFamily::Unix,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        Ok(LinkIoctl(socket))
    }

    /// Link `index`, if it exists and is named `name`: its index, name and
    /// flags (not its counters). Its operational state is told by
    /// IFF_RUNNING, which the kernel sets exactly when the link is up and
    /// its operational state is UP or UNKNOWN.
    pub fn state(&self, index: u32, name: &str) -> io::Result<Option<LinkState>> {
        if self.name_of(index)?.as_deref() != Some(name) {
            return Ok(None);
        }
        let Some(flags) = self.flags_of(name)? else {
            return Ok(None);
        };
        Ok(Some(LinkState {
            index,
            name: name.to_owned(),
            flags,
            operstate: if flags & IFF_RUNNING != 0 {
                IF_OPER_UP
            } else {
                IF_OPER_DOWN
            },
            stats: None,
        }))
    }

    /// The name of link `index`, if it exists.
    fn name_of(&self, index: u32) -> io::Result<Option<String>> {
        let mut request = empty();
        request.ifr_ifru.ifru_ifindex = index as libc::c_int;
        if !self.ask(libc::SIOCGIFNAME, &mut request)? {
            return Ok(None);
        }
        let name: Vec<u8> = request
            .ifr_name
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect();
        Ok(Some(String::from_utf8_lossy(&name).into_owned()))
    }

    /// The IFF_* flags of the link named `name` (the first 16), if it
    /// exists.
    fn flags_of(&self, name: &str) -> io::Result<Option<u32>> {
        let mut request = empty();
        let bytes = name.as_bytes();
        if bytes.len() >= request.ifr_name.len() {
            return Ok(None);
        }
        for (to, from) in request.ifr_name.iter_mut().zip(bytes) {
            *to = *from as libc::c_char;
        }
        if !self.ask(libc::SIOCGIFFLAGS, &mut request)? {
            return Ok(None);
        }
        // SAFETY: SIOCGIFFLAGS filled in the flags.
        let flags = unsafe { request.ifr_ifru.ifru_flags };
        Ok(Some(u32::from(flags as u16)))
    }

    /// Runs `request`; false when there is no such link.
    fn ask(&self, request: libc::Ioctl, ifreq: &mut libc::ifreq) -> io::Result<bool> {
        // SAFETY: `ifreq` is a whole `struct ifreq`, which both requests
        // read and write and nothing beyond.
        let done = unsafe { libc::ioctl(self.0.as_raw_fd(), request, ifreq as *mut libc::ifreq) };
        if done == 0 {
            return Ok(true);
        }
        match io::Error::last_os_error() {
            e if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
            e => Err(e),
        }
    }
}

fn empty() -> libc::ifreq {
    // SAFETY: all zeroes is a valid `struct ifreq` (an empty name, a zero
    // union).
    unsafe { std::mem::zeroed() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_loopback_and_no_link_that_does_not_exist() {
        let ioctl = LinkIoctl::open().unwrap();
        let lo = ioctl.state(1, "lo").unwrap().expect("lo is link 1");
        assert!(lo.is_loopback());
        assert_eq!(ioctl.state(1, "not-lo").unwrap(), None);
        assert_eq!(ioctl.state(u32::MAX >> 1, "lo").unwrap(), None);
    }
}

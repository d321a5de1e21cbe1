//! Receiving bytes and descriptors from a Unix socket without ever leaking
//! a descriptor.
//!
//! The control buffer has room for the most descriptors the kernel passes
//! in one message (SCM_MAX_FD), so truncation can only mean the service is
//! out of descriptors (EMFILE). Every descriptor the kernel did install is
//! taken into an `OwnedFd` at once, truncated or not, so none can stay
//! open unseen. (nix declines to read control messages from a truncated
//! message, which would leave the installed ones open.)

use std::collections::VecDeque;
use std::io;
use std::mem::size_of;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// The kernel's limit of descriptors in one SCM_RIGHTS message.
const SCM_MAX_FD: usize = 253;
/// Room for one control message of SCM_MAX_FD descriptors: its header
/// (at most 16 bytes) and the descriptors, in 8-byte words.
const CONTROL_WORDS: usize = 2 + (SCM_MAX_FD * size_of::<RawFd>()).div_ceil(8);

/// What one receive brought.
pub struct Received {
    pub bytes: usize,
    /// Some descriptors were dropped by the kernel: the service has run
    /// out of them.
    pub truncated: bool,
}

/// One non-blocking `recvmsg`: bytes into `buffer`, descriptors onto `fds`.
pub fn receive(
    socket: RawFd,
    buffer: &mut [u8],
    fds: &mut VecDeque<OwnedFd>,
) -> io::Result<Received> {
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE((SCM_MAX_FD * size_of::<RawFd>()) as u32) } as usize;
    // u64s: the control buffer must be aligned for cmsghdr. On the stack:
    // this runs for every read of every session.
    let mut control = [0u64; CONTROL_WORDS];
    let space = space.min(size_of_val(&control));
    let mut iov = libc::iovec {
        iov_base: buffer.as_mut_ptr().cast(),
        iov_len: buffer.len(),
    };
    // SAFETY: an all-zero msghdr is valid; the fields set below point to
    // live buffers of the given lengths for the duration of the call.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_iov = &mut iov;
    header.msg_iovlen = 1;
    header.msg_control = control.as_mut_ptr().cast();
    header.msg_controllen = space;
    // SAFETY: see above.
    let bytes = unsafe {
        libc::recvmsg(
            socket,
            &mut header,
            libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT,
        )
    };
    if bytes < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel filled `header` and the control buffer; the CMSG
    // macros stay within msg_controllen, and each SCM_RIGHTS payload holds
    // (cmsg_len - header) / 4 descriptors that this process now owns.
    unsafe {
        let mut message = libc::CMSG_FIRSTHDR(&header);
        while !message.is_null() {
            if (*message).cmsg_level == libc::SOL_SOCKET && (*message).cmsg_type == libc::SCM_RIGHTS
            {
                let data = libc::CMSG_DATA(message);
                let payload = (*message).cmsg_len as usize - (data as usize - message as usize);
                for i in 0..payload / size_of::<RawFd>() {
                    let fd = std::ptr::read_unaligned(data.cast::<RawFd>().add(i));
                    fds.push_back(OwnedFd::from_raw_fd(fd));
                }
            }
            message = libc::CMSG_NXTHDR(&header, message);
        }
    }
    Ok(Received {
        bytes: bytes as usize,
        truncated: header.msg_flags & libc::MSG_CTRUNC != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{
        sendmsg, socketpair, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType,
    };
    use std::io::IoSlice;
    use std::os::fd::AsRawFd;

    /// `bytes` with `fds` attached, sent over a new socket pair and
    /// received: the bytes, the descriptors and whether any was cut.
    fn sent_and_received(bytes: &[u8], fds: &[RawFd]) -> (Vec<u8>, usize, bool) {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::empty(),
        )
        .unwrap();
        sendmsg::<()>(
            a.as_raw_fd(),
            &[IoSlice::new(bytes)],
            &[ControlMessage::ScmRights(fds)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        let mut buffer = [0u8; 16];
        let mut received = VecDeque::new();
        let got = receive(b.as_raw_fd(), &mut buffer, &mut received).unwrap();
        (buffer[..got.bytes].to_vec(), received.len(), got.truncated)
    }

    #[test]
    fn bytes_and_every_descriptor_arrive() {
        let pipes: Vec<(OwnedFd, OwnedFd)> =
            (0..10).map(|_| nix::unistd::pipe().unwrap()).collect();
        let raw: Vec<RawFd> = pipes.iter().map(|(r, _)| r.as_raw_fd()).collect();
        assert_eq!(
            sent_and_received(b"hello", &raw),
            (b"hello".to_vec(), 10, false)
        );
    }

    #[test]
    fn the_most_descriptors_one_message_carries_fit() {
        let (read, _write) = nix::unistd::pipe().unwrap();
        let raw = vec![read.as_raw_fd(); SCM_MAX_FD];
        assert_eq!(
            sent_and_received(b"x", &raw),
            (b"x".to_vec(), SCM_MAX_FD, false)
        );
    }
}

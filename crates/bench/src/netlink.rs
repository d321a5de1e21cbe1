//! Raw rtnetlink, as little of it as the harness needs: flipping a link's
//! administrative state, and the kernel floor, a socket on the link
//! multicast group that reads the flags out of each RTM_NEWLINK and nothing
//! more. Written by hand on purpose: the floor must do the least work a
//! listener can do.

use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::io;

const RTNLGRP_LINK: u32 = 1;
const RTM_NEWLINK: u16 = 16;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const IFF_UP: u32 = libc::IFF_UP as u32;
const IFF_RUNNING: u32 = libc::IFF_RUNNING as u32;
const HEADER: usize = 16;

/// Sets one link up or down through rtnetlink and waits for the kernel's
/// acknowledgement.
pub struct Flipper {
    socket: Socket,
    index: u32,
    seq: u32,
}

impl Flipper {
    /// Must be created inside the link's namespace.
    pub fn new(index: u32) -> io::Result<Flipper> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        Ok(Flipper {
            socket,
            index,
            seq: 0,
        })
    }

    pub fn set_up(&mut self, up: bool) -> io::Result<()> {
        self.seq += 1;
        let mut message = Vec::with_capacity(32);
        message.extend_from_slice(&32u32.to_ne_bytes());
        message.extend_from_slice(&RTM_NEWLINK.to_ne_bytes());
        message.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        message.extend_from_slice(&self.seq.to_ne_bytes());
        message.extend_from_slice(&0u32.to_ne_bytes());
        // ifinfomsg: family, pad, type, index, flags, change mask
        message.extend_from_slice(&[0, 0, 0, 0]);
        message.extend_from_slice(&self.index.to_ne_bytes());
        message.extend_from_slice(&(if up { IFF_UP } else { 0 }).to_ne_bytes());
        message.extend_from_slice(&IFF_UP.to_ne_bytes());
        self.socket.send(&message, 0)?;
        let mut reply = vec![0u8; 4096];
        loop {
            let n = self.socket.recv(&mut &mut reply[..], 0)?;
            for (kind, body, seq) in messages(&reply[..n]) {
                if kind == NLMSG_ERROR && seq == self.seq {
                    let code = i32::from_ne_bytes(body[..4].try_into().unwrap());
                    return if code == 0 {
                        Ok(())
                    } else {
                        Err(io::Error::from_raw_os_error(-code))
                    };
                }
            }
        }
    }
}

/// A non-blocking socket on the link group: the kernel's own fan-out. Must
/// be created inside the namespace it listens to.
pub fn group_listener(receive_buffer: usize) -> io::Result<Socket> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind(&SocketAddr::new(0, 0))?;
    socket.add_membership(RTNLGRP_LINK)?;
    socket.set_rx_buf_sz(receive_buffer)?;
    socket.set_non_blocking(true)?;
    Ok(socket)
}

/// (type, body, sequence) of each netlink message in a datagram.
fn messages(datagram: &[u8]) -> impl Iterator<Item = (u16, &[u8], u32)> {
    let mut offset = 0;
    std::iter::from_fn(move || {
        let header = datagram.get(offset..offset + HEADER)?;
        let len = u32::from_ne_bytes(header[..4].try_into().unwrap()) as usize;
        let kind = u16::from_ne_bytes(header[4..6].try_into().unwrap());
        let seq = u32::from_ne_bytes(header[8..12].try_into().unwrap());
        let body = datagram.get(offset + HEADER..offset + len.max(HEADER))?;
        offset += (len + 3) & !3;
        (len >= HEADER).then_some((kind, body, seq))
    })
}

/// (link index, connected) for each RTM_NEWLINK in a datagram: connected
/// is IFF_UP and IFF_RUNNING, up with carrier.
pub fn link_reports(datagram: &[u8]) -> impl Iterator<Item = (u32, bool)> + '_ {
    messages(datagram).filter_map(|(kind, body, _)| {
        if kind != RTM_NEWLINK || body.len() < 16 {
            return None;
        }
        let link = u32::from_ne_bytes(body[4..8].try_into().unwrap());
        let flags = u32::from_ne_bytes(body[8..12].try_into().unwrap());
        Some((link, flags & (IFF_UP | IFF_RUNNING) == IFF_UP | IFF_RUNNING))
    })
}

/// Whether `datagram` reports link `index` connected or not, for each
/// RTM_NEWLINK about it.
pub fn reports_about(datagram: &[u8], index: u32) -> impl Iterator<Item = bool> + '_ {
    link_reports(datagram).filter_map(move |(link, connected)| (link == index).then_some(connected))
}

/// The relays' one job: rtnetlink in, one eventfd write (on standard
/// input) per connect or disconnect of link `index` out.
struct Relay {
    index: u32,
    connected: Option<bool>,
    event: std::io::Stdin,
}

impl Relay {
    /// Writes once to say it listens; the harness waits for it.
    fn listening(index: u32, connected: bool) -> Relay {
        let event = std::io::stdin();
        let _ = nix::unistd::write(&event, &1u64.to_ne_bytes());
        Relay {
            index,
            connected: Some(connected),
            event,
        }
    }

    fn read(&mut self, datagram: &[u8]) {
        for now in reports_about(datagram, self.index) {
            if self
                .connected
                .replace(now)
                .is_some_and(|before| before != now)
            {
                let _ = nix::unistd::write(&self.event, &1u64.to_ne_bytes());
            }
        }
    }
}

/// The bare relay process (`ddm-bench __relay INDEX up|down`, in the router
/// namespace, with an eventfd as its standard input): a blocking read of
/// the link group, then the write.
pub fn relay_main(index: u32, connected: bool) -> ! {
    let socket = group_listener(1 << 20).expect("rtnetlink");
    socket.set_non_blocking(false).expect("blocking rtnetlink");
    let mut relay = Relay::listening(index, connected);
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = socket
            .recv(&mut &mut buffer[..], 0)
            .expect("rtnetlink recv");
        relay.read(&buffer[..n]);
    }
}

/// The same relay on the service's runtime (`ddm-bench __relay-on-tokio
/// INDEX up|down`): a current-thread tokio runtime built as `ddm serve`
/// builds it, the link group read as the service reads it (a
/// `netlink_sys::TokioSocket`). What the runtime alone costs a
/// notification, with none of ddm's work.
pub fn relay_on_tokio_main(index: u32, connected: bool) -> ! {
    use netlink_sys::{AsyncSocketExt, TokioSocket};
    use std::os::fd::{FromRawFd, IntoRawFd};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let listener = group_listener(1 << 20).expect("rtnetlink");
        // SAFETY: the descriptor is the listener's, given up to the socket.
        let socket = unsafe { TokioSocket::from_raw_fd(listener.into_raw_fd()) };
        let mut relay = Relay::listening(index, connected);
        let mut buffer = Vec::with_capacity(64 * 1024);
        loop {
            buffer.clear();
            socket.recv(&mut buffer).await.expect("rtnetlink recv");
            relay.read(&buffer);
        }
    })
}

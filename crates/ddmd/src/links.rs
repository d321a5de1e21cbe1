//! Kernel links, read with rtnetlink: a dump, then the link multicast group.
//!
//! Two sockets: one joined to RTNLGRP_LINK that streams every change, and one
//! for dumps. The monitor joins the group *before* the first dump, so no
//! change can fall between the two. When the kernel drops notifications
//! because the monitor's receive buffer overran (ENOBUFS), the monitor dumps
//! again and the table reconciles against the dump: a lost message can delay
//! a transition, never hide it. The order matters: the kernel drops the
//! newest messages but reports the loss before the older ones still queued,
//! so those are applied first, then the dump; whatever arrives after it was
//! generated after the loss, and the last message about a link is always
//! the kernel's latest word on it. A dump the kernel marks as interrupted is
//! done again, so a link it skipped is never taken for deleted.

use crate::ops::metrics::Counters;
use ddm_proto::model::{unreachability, ConnectionState};
use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NlasIterator, NLA_TYPE_MASK,
    NLMSG_DONE, NLMSG_ERROR, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_route::link::{LinkHeader, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket};
use serde::Deserialize;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;

pub(crate) const IFF_UP: u32 = libc::IFF_UP as u32;
pub(crate) const IFF_RUNNING: u32 = libc::IFF_RUNNING as u32;
pub(crate) const IFF_LOOPBACK: u32 = libc::IFF_LOOPBACK as u32;

/// What the kernel reports of one link (RTM_NEWLINK).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    pub index: u32,
    pub name: String,
    /// IFF_* flags.
    pub flags: u32,
    /// IF_OPER_* (RFC 2863) operational state.
    pub operstate: u8,
    /// Its counters when the message was made, if it carried them.
    pub stats: Option<LinkStats>,
}

/// What a link has received and sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

pub(crate) const IF_OPER_UNKNOWN: u8 = 0;
pub(crate) const IF_OPER_UP: u8 = 6;

impl LinkState {
    /// Set up by its administrator (IFF_UP).
    pub fn is_up(&self) -> bool {
        self.flags & IFF_UP != 0
    }

    pub fn is_loopback(&self) -> bool {
        self.flags & IFF_LOOPBACK != 0
    }

    /// Up with carrier: IFF_UP and IFF_RUNNING, with operstate UP, or
    /// UNKNOWN as loopback and tun report.
    pub fn is_connected(&self) -> bool {
        self.is_up()
            && self.flags & IFF_RUNNING != 0
            && matches!(self.operstate, IF_OPER_UP | IF_OPER_UNKNOWN)
    }

    /// The same, without its counters: what compares equal while only
    /// the traffic changed.
    pub fn without_stats(self) -> LinkState {
        LinkState {
            stats: None,
            ..self
        }
    }

    /// CONNECTED or DISCONNECTED, as an interface.
    pub fn state(&self) -> ConnectionState {
        if self.is_connected() {
            ConnectionState::Connected
        } else {
            ConnectionState::Disconnected
        }
    }

    /// MPR_INTERFACE_0's unreachability reasons.
    pub fn unreachability_reasons(&self) -> u32 {
        if !self.is_up() {
            unreachability::ADMIN_DISABLED
        } else if !self.is_connected() {
            unreachability::NO_MEDIA_SENSE
        } else {
            0
        }
    }
}

/// Which kernel links become router interfaces.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinksConfig {
    /// Name globs a link must match (any of them).
    pub include: Vec<String>,
    /// Name globs that exclude a link, even if included.
    pub exclude: Vec<String>,
    /// Receive buffer of the link-monitor socket, in bytes. When the kernel
    /// overruns it the service dumps the links again and reconciles.
    pub receive_buffer_bytes: usize,
}

impl Default for LinksConfig {
    fn default() -> Self {
        LinksConfig {
            include: vec!["*".into()],
            exclude: Vec::new(),
            receive_buffer_bytes: 4 << 20,
        }
    }
}

impl LinksConfig {
    /// Every glob parses; the buffer is in its range.
    pub fn check(&self) -> Result<(), String> {
        for pattern in self.include.iter().chain(&self.exclude) {
            glob::Pattern::new(pattern)
                .map_err(|e| format!("link glob {}: {e}", crate::bounds::quoted(pattern)))?;
        }
        crate::bounds::within(
            "links.receive_buffer_bytes",
            self.receive_buffer_bytes,
            1..=1 << 30,
        )
    }
}

const RTNLGRP_LINK: u32 = 1;
const RECEIVE_CHUNK: usize = 64 * 1024;

/// What the monitor tells the router.
#[derive(Debug)]
pub enum LinkEvent {
    /// A full dump begins; the links it reports follow as `Changed`.
    DumpBegin,
    /// The dump is complete: links it did not report are gone.
    DumpEnd,
    Changed(LinkState),
    Deleted(u32),
}

/// Streams link events to `events` until the router goes away or the
/// kernel socket fails.
/// Each overrun (notifications the kernel dropped) is counted in
/// `counters`.
pub async fn monitor(
    config: &LinksConfig,
    events: UnboundedSender<LinkEvent>,
    counters: Arc<Counters>,
) -> io::Result<()> {
    let mut changes = TokioSocket::new(NETLINK_ROUTE)?;
    changes.socket_mut().bind(&SocketAddr::new(0, 0))?;
    changes
        .socket_ref()
        .set_rx_buf_sz(config.receive_buffer_bytes)?;
    changes.socket_ref().add_membership(RTNLGRP_LINK)?;

    let mut dumps = TokioSocket::new(NETLINK_ROUTE)?;
    dumps.socket_mut().bind_auto()?;
    let mut dump_seq = 0;

    let mut buffer = Vec::with_capacity(RECEIVE_CHUNK);
    let mut send = |event| {
        events
            .send(event)
            .map_err(|_| io::Error::other("router has stopped"))
    };
    dump(&mut dumps, &mut dump_seq, &mut buffer, &mut send).await?;
    loop {
        buffer.clear();
        match changes.recv(&mut buffer).await {
            Ok(()) => forward(&buffer, &mut send)?,
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                counters.netlink_overruns.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "kernel link notifications overran; dumping links again to reconcile"
                );
                // The kernel dropped the newest messages but reports the
                // loss before the older ones still queued: take those
                // first, so nothing older than the dump comes after it.
                drain(&changes, &mut buffer, &mut send)?;
                dump(&mut dumps, &mut dump_seq, &mut buffer, &mut send).await?;
            }
            Err(e) => return Err(e),
        }
    }
}

fn forward(datagram: &[u8], send: &mut impl FnMut(LinkEvent) -> io::Result<()>) -> io::Result<()> {
    messages(datagram)
        .filter_map(|(_, _, reading)| match reading {
            Reading::Link(event) => Some(event),
            _ => None,
        })
        .try_for_each(send)
}

/// Forwards every message already queued on the monitor socket.
fn drain(
    socket: &TokioSocket,
    buffer: &mut Vec<u8>,
    send: &mut impl FnMut(LinkEvent) -> io::Result<()>,
) -> io::Result<()> {
    loop {
        buffer.clear();
        match socket.socket_ref().recv(buffer, libc::MSG_DONTWAIT) {
            Ok(_) => forward(buffer, send)?,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Requests every link and reports them between `DumpBegin` and `DumpEnd`.
/// A dump the kernel flags as interrupted (links changed while it ran, so
/// it may have skipped one) is started over and never ends a
/// reconciliation: a link it skipped must not count as deleted.
async fn dump(
    socket: &mut TokioSocket,
    seq: &mut u32,
    buffer: &mut Vec<u8>,
    send: &mut impl FnMut(LinkEvent) -> io::Result<()>,
) -> io::Result<()> {
    loop {
        *seq = seq.wrapping_add(1);
        if dump_once(socket, *seq, buffer, send).await? {
            return send(LinkEvent::DumpEnd);
        }
        tracing::debug!("link dump was interrupted by changes; dumping again");
    }
}

/// One dump; true when it completed consistently.
async fn dump_once(
    socket: &mut TokioSocket,
    seq: u32,
    buffer: &mut Vec<u8>,
    send: &mut impl FnMut(LinkEvent) -> io::Result<()>,
) -> io::Result<bool> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = seq;
    let mut request = NetlinkMessage::new(
        header,
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::GetLink(LinkMessage::default())),
    );
    request.finalize();
    let mut bytes = vec![0; request.buffer_len()];
    request.serialize(&mut bytes);
    socket.send(&bytes).await?;

    send(LinkEvent::DumpBegin)?;
    let mut consistent = true;
    loop {
        buffer.clear();
        socket.recv(buffer).await?;
        for (_, flags, reading) in messages(buffer).filter(|(s, _, _)| *s == seq) {
            consistent &= flags & NLM_F_DUMP_INTR == 0;
            match reading {
                Reading::Done => return Ok(consistent),
                Reading::Failed(e) => return Err(e),
                Reading::Link(event) => send(event)?,
                Reading::Other => {}
            }
        }
    }
}

/// What ddm reads of one netlink message.
enum Reading {
    Link(LinkEvent),
    Done,
    Failed(io::Error),
    Other,
}

/// `struct ifinfomsg`, before a link message's attributes.
const LINK_HEADER: usize = 16;

/// The messages of a datagram as (sequence, flags, reading), through the
/// crates' buffer views: a link's header, name, operational state and
/// first four counters, and nothing else. Decoding every nested attribute of an RTM_NEWLINK (stats,
/// inet6 configuration...) costs tens of microseconds a message, most of
/// the latency ddm may add.
fn messages(datagram: &[u8]) -> impl Iterator<Item = (u32, u16, Reading)> + '_ {
    let mut offset = 0;
    std::iter::from_fn(move || {
        let rest = datagram.get(offset..).filter(|r| !r.is_empty())?;
        let message = NetlinkBuffer::new_checked(rest).ok()?;
        offset += (message.length() as usize + 3) & !3;
        let payload = message.payload();
        let reading = match message.message_type() {
            libc::RTM_NEWLINK => {
                link_state(payload).map_or(Reading::Other, |l| Reading::Link(LinkEvent::Changed(l)))
            }
            libc::RTM_DELLINK => LinkHeader::parse(payload).map_or(Reading::Other, |h| {
                Reading::Link(LinkEvent::Deleted(h.index))
            }),
            NLMSG_DONE => Reading::Done,
            NLMSG_ERROR => {
                let code = payload
                    .first_chunk::<4>()
                    .map_or(0, |c| i32::from_ne_bytes(*c));
                Reading::Failed(io::Error::from_raw_os_error(code.abs()))
            }
            _ => Reading::Other,
        };
        Some((message.sequence_number(), message.flags(), reading))
    })
}

fn link_state(payload: &[u8]) -> Option<LinkState> {
    let header = LinkHeader::parse(payload).ok()?;
    let mut name = None;
    let mut operstate = 0;
    let mut stats = None;
    for attribute in NlasIterator::new(payload.get(LINK_HEADER..)?) {
        let attribute = attribute.ok()?;
        match attribute.kind() & NLA_TYPE_MASK {
            libc::IFLA_IFNAME => {
                let bytes = attribute.value().split(|b| *b == 0).next()?;
                name = Some(String::from_utf8_lossy(bytes).into_owned());
            }
            libc::IFLA_OPERSTATE => operstate = *attribute.value().first()?,
            libc::IFLA_STATS64 => stats = stats64(attribute.value()),
            _ => {}
        }
    }
    Some(LinkState {
        index: header.index,
        name: name?,
        flags: header.flags.bits(),
        operstate,
        stats,
    })
}

/// The first four counters of a `struct rtnl_link_stats64`.
fn stats64(value: &[u8]) -> Option<LinkStats> {
    let counter = |i: usize| {
        value
            .get(i * 8..i * 8 + 8)
            .and_then(|c| c.try_into().ok())
            .map(u64::from_ne_bytes)
    };
    Some(LinkStats {
        rx_packets: counter(0)?,
        tx_packets: counter(1)?,
        rx_bytes: counter(2)?,
        tx_bytes: counter(3)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::link::{LinkAttribute, LinkFlags, State};

    fn emit(message_type: RouteNetlinkMessage) -> Vec<u8> {
        let mut message = NetlinkMessage::new(
            NetlinkHeader::default(),
            NetlinkPayload::InnerMessage(message_type),
        );
        message.finalize();
        let mut bytes = vec![0; message.buffer_len()];
        message.serialize(&mut bytes);
        bytes
    }

    #[test]
    fn reads_what_netlink_packet_route_writes() {
        let mut link = LinkMessage::default();
        link.header.index = 7;
        link.header.flags = LinkFlags::Up | LinkFlags::Running;
        link.attributes = vec![
            LinkAttribute::Mtu(1500),
            LinkAttribute::IfName("uplink0".into()),
            LinkAttribute::OperState(State::Up),
            LinkAttribute::Stats64({
                let mut stats = netlink_packet_route::link::Stats64::default();
                (stats.rx_packets, stats.tx_packets) = (1, 2);
                (stats.rx_bytes, stats.tx_bytes) = (3, 4);
                stats
            }),
        ];
        let mut datagram = emit(RouteNetlinkMessage::NewLink(link.clone()));
        datagram.extend(emit(RouteNetlinkMessage::DelLink(link)));
        let readings: Vec<Reading> = messages(&datagram).map(|(_, _, r)| r).collect();
        match &readings[..] {
            [Reading::Link(LinkEvent::Changed(state)), Reading::Link(LinkEvent::Deleted(7))] => {
                assert_eq!(state.index, 7);
                assert_eq!(state.name, "uplink0");
                assert_eq!(state.operstate, u8::from(State::Up));
                assert!(state.is_connected());
                assert_eq!(
                    state.stats,
                    Some(LinkStats {
                        rx_packets: 1,
                        tx_packets: 2,
                        rx_bytes: 3,
                        tx_bytes: 4,
                    })
                );
            }
            other => panic!("read {} messages wrongly", other.len()),
        }
    }

    #[test]
    fn a_link_message_without_a_name_is_skipped() {
        let link = LinkMessage::default();
        let datagram = emit(RouteNetlinkMessage::NewLink(link));
        assert!(matches!(
            messages(&datagram).next(),
            Some((_, _, Reading::Other))
        ));
    }
}

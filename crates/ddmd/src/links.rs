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

use crate::config::LinksConfig;
use crate::table::LinkState;
use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_DUMP_INTR,
    NLM_F_REQUEST,
};
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket};
use std::io;
use tokio::sync::mpsc::UnboundedSender;

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
pub async fn monitor(config: &LinksConfig, events: UnboundedSender<LinkEvent>) -> io::Result<()> {
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
    parse(datagram)
        .filter_map(|m| link_event(m.payload))
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
        for message in parse(buffer).filter(|m| m.header.sequence_number == seq) {
            consistent &= message.header.flags & NLM_F_DUMP_INTR == 0;
            match message.payload {
                NetlinkPayload::Done(_) => return Ok(consistent),
                NetlinkPayload::Error(e) => return Err(e.to_io()),
                payload => {
                    if let Some(event) = link_event(payload) {
                        send(event)?;
                    }
                }
            }
        }
    }
}

/// Splits a datagram into netlink messages, skipping any it cannot parse.
fn parse(datagram: &[u8]) -> impl Iterator<Item = NetlinkMessage<RouteNetlinkMessage>> + '_ {
    let mut offset = 0;
    std::iter::from_fn(move || loop {
        let rest = datagram.get(offset..).filter(|r| !r.is_empty())?;
        let length = NetlinkBuffer::new_checked(rest).ok()?.length() as usize;
        offset += (length + 3) & !3;
        match NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rest[..length]) {
            Ok(message) => return Some(message),
            Err(e) => tracing::warn!("skipping an rtnetlink message that does not parse: {e}"),
        }
    })
}

fn link_event(payload: NetlinkPayload<RouteNetlinkMessage>) -> Option<LinkEvent> {
    match payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
            Some(LinkEvent::Changed(link_state(&link)?))
        }
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) => {
            Some(LinkEvent::Deleted(link.header.index))
        }
        _ => None,
    }
}

fn link_state(link: &LinkMessage) -> Option<LinkState> {
    let mut name = None;
    let mut operstate = 0;
    for attribute in &link.attributes {
        match attribute {
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            LinkAttribute::OperState(s) => operstate = u8::from(*s),
            _ => {}
        }
    }
    Some(LinkState {
        index: link.header.index,
        name: name?,
        flags: link.header.flags.bits(),
        operstate,
    })
}

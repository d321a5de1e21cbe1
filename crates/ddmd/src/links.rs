//! Kernel links, read with rtnetlink: a dump, then the link multicast group.
//!
//! Two sockets: one joined to RTNLGRP_LINK that streams every change, and one
//! for dumps. The monitor joins the group *before* the first dump, so no
//! change can fall between the two. When the kernel drops notifications
//! because the monitor's receive buffer overran (ENOBUFS), the monitor dumps
//! again and the table reconciles against the dump: a lost message can delay
//! a transition, never hide it. Messages queued behind the dump are applied
//! after it, in the kernel's order, so the last word on a link is always the
//! kernel's latest.

use crate::config::LinksConfig;
use crate::table::LinkState;
use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
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
    dump_seq += 1;
    dump(&mut dumps, dump_seq, &mut buffer, &mut send).await?;
    loop {
        buffer.clear();
        match changes.recv(&mut buffer).await {
            Ok(()) => {
                for event in parse(&buffer).filter_map(|m| link_event(m.payload)) {
                    send(event)?;
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                tracing::warn!(
                    "kernel link notifications overran; dumping links again to reconcile"
                );
                dump_seq += 1;
                dump(&mut dumps, dump_seq, &mut buffer, &mut send).await?;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Requests every link and reports them between `DumpBegin` and `DumpEnd`.
async fn dump(
    socket: &mut TokioSocket,
    seq: u32,
    buffer: &mut Vec<u8>,
    send: &mut impl FnMut(LinkEvent) -> io::Result<()>,
) -> io::Result<()> {
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
    loop {
        buffer.clear();
        socket.recv(buffer).await?;
        for message in parse(buffer).filter(|m| m.header.sequence_number == seq) {
            match message.payload {
                NetlinkPayload::Done(_) => return send(LinkEvent::DumpEnd),
                NetlinkPayload::Error(e) => {
                    return Err(e.to_io());
                }
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

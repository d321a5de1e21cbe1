//! What dialing changes in the kernel, through rtnetlink: routes moved
//! between the trigger device and the link, the trigger brought up with
//! its source address, and a link's packet counters for idle time; and a
//! link's state now, by ioctl (see `link_ioctl`).
//!
//! One thread for the service's rtnetlink connections, and a cloneable
//! handle (`Net`) in every supervisor; the router never waits on any of it.

use super::declaration::Route;
use super::link_ioctl::LinkIoctl;
use super::sources::Sources;
use crate::groups::config::Prefix;
use crate::links::{LinkState, LinkStats};
use futures_util::TryStreamExt;
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

#[derive(Clone)]
pub struct Net {
    handle: Handle,
    /// Strict checking on (see `connect`): for address dumps.
    addresses: Handle,
    /// For a link's state without the RTNL lock.
    ioctl: Arc<LinkIoctl>,
}

fn to_io(e: rtnetlink::Error) -> io::Error {
    match e {
        rtnetlink::Error::NetlinkError(message) => match message.code {
            Some(code) => io::Error::from_raw_os_error(-code.get()),
            None => io::Error::other("netlink error without a code"),
        },
        other => io::Error::other(other.to_string()),
    }
}

/// A route message rtnetlink's builder refuses to make.
fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn is_errno(e: &io::Error, errno: i32) -> bool {
    e.raw_os_error() == Some(errno)
}

/// The two connections and their handles, made on the current runtime;
/// the future runs both connections.
fn open() -> io::Result<(Net, impl std::future::Future<Output = ()>)> {
    use netlink_sys::AsyncSocket;
    let (connection, handle, _) = rtnetlink::new_connection()?;
    // A second socket, with strict checking: the kernel then honours an
    // address dump's filters (one link, IPv4). Without it each such dump
    // carries every address of every link, and a router of thousands of
    // interfaces spends its time reading them. (Strict checking would also
    // make route dumps filter on fields that `gateway_through` leaves at
    // their defaults: not on that socket.)
    let (mut strict, addresses, _) = rtnetlink::new_connection()?;
    strict
        .socket_mut()
        .socket_mut()
        .set_netlink_get_strict_chk(true)?;
    let connections = async move {
        tokio::join!(connection, strict);
    };
    let ioctl = Arc::new(LinkIoctl::open()?);
    Ok((
        Net {
            handle,
            addresses,
            ioctl,
        },
        connections,
    ))
}

impl Net {
    /// Opens the connections, on their own thread: the kernel runs a
    /// request under its RTNL lock inside the `sendmsg` that carries it,
    /// so a request sent from the service's thread would hold that thread
    /// (and the router with it) behind every process changing links, for
    /// milliseconds each while thousands of dial commands run.
    pub async fn connect() -> io::Result<Net> {
        let (opened, net) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("ddm-net".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = opened.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match open() {
                        Ok((net, connections)) => {
                            let _ = opened.send(Ok(net));
                            // They end when every handle is gone.
                            connections.await;
                        }
                        Err(e) => {
                            let _ = opened.send(Err(e));
                        }
                    }
                });
            })?;
        net.await
            .map_err(|_| io::Error::other("the rtnetlink thread ended"))?
    }

    async fn link(&self, name: &str) -> io::Result<Option<LinkMessage>> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_owned())
            .execute();
        match links.try_next().await {
            Ok(link) => Ok(link),
            Err(e) => {
                let e = to_io(e);
                if is_errno(&e, libc::ENODEV) {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Link `index` now, if it still exists and is named `name` (see
    /// `link_ioctl`: without its counters, and at once).
    pub fn link_at(&self, index: u32, name: &str) -> io::Result<Option<LinkState>> {
        self.ioctl.state(index, name)
    }

    /// The link's first IPv4 address, and its first global IPv6 address
    /// (not link-local): what its packets leave from.
    pub async fn addresses(&self, index: u32) -> io::Result<Sources> {
        use netlink_packet_route::address::{AddressAttribute, AddressScope};
        let mut found = Sources::default();
        for family in [
            netlink_packet_route::AddressFamily::Inet,
            netlink_packet_route::AddressFamily::Inet6,
        ] {
            let mut request = self.addresses.address().get().set_link_index_filter(index);
            // Filters the kernel applies (strict checking, see `connect`).
            request.message_mut().header.index = index;
            request.message_mut().header.family = family;
            let mut addresses = request.execute();
            while let Some(message) = addresses.try_next().await.map_err(to_io)? {
                if message.header.scope != AddressScope::Universe {
                    continue;
                }
                let address = message.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Local(address) | AddressAttribute::Address(address) => {
                        Some(*address)
                    }
                    _ => None,
                });
                if let Some(address) = address.filter(|a| found.of_family(*a).is_none()) {
                    found.set(address);
                }
            }
        }
        Ok(found)
    }

    /// The index of the link named `name`, if it exists.
    pub async fn index_of(&self, name: &str) -> io::Result<Option<u32>> {
        Ok(self.link(name).await?.map(|l| l.header.index))
    }

    /// The link's packet and byte counters, if it exists.
    pub async fn stats(&self, name: &str) -> io::Result<Option<LinkStats>> {
        Ok(self.link(name).await?.and_then(|link| stats_of(&link)))
    }

    pub async fn set_up(&self, index: u32) -> io::Result<()> {
        let message = LinkUnspec::new_with_index(index).up().build();
        self.handle
            .link()
            .set(message)
            .execute()
            .await
            .map_err(to_io)
    }

    /// Gives the link `address` (/32, /128: with no duplicate address
    /// detection, usable at once); having it already is fine.
    pub async fn add_address(&self, index: u32, address: IpAddr) -> io::Result<()> {
        use netlink_packet_route::address::{AddressAttribute, AddressFlags};
        let length = if address.is_ipv4() { 32 } else { 128 };
        let mut request = self.handle.address().add(index, address, length);
        if address.is_ipv6() {
            request
                .message_mut()
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        match request.execute().await.map_err(to_io) {
            Err(e) if is_errno(&e, libc::EEXIST) => Ok(()),
            other => other,
        }
    }

    /// ddm's route to `route` through link `index`, from the source of its
    /// family in `sources`, if there is one.
    fn route(
        route: &Route,
        index: u32,
        sources: Sources,
    ) -> io::Result<netlink_packet_route::route::RouteMessage> {
        let mut builder = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(route.prefix.address, route.prefix.length)
            .map_err(invalid)?
            .output_interface(index)
            .priority(route.metric);
        if let Some(src) = sources.of_family(route.prefix.address) {
            builder = builder.pref_source(src).map_err(invalid)?;
        }
        Ok(builder.build())
    }

    /// Routes every prefix through the link `index` (replacing the routes
    /// ddm had through another device).
    pub async fn route_via(
        &self,
        routes: &[Route],
        index: u32,
        sources: Sources,
    ) -> io::Result<()> {
        for route in routes {
            self.handle
                .route()
                .add(Self::route(route, index, sources)?)
                .replace()
                .execute()
                .await
                .map_err(to_io)?;
        }
        Ok(())
    }

    /// Removes the routes through link `index`; routes already gone (with
    /// their link) are fine.
    pub async fn delete_routes(&self, routes: &[Route], index: u32) -> io::Result<()> {
        for route in routes {
            match self
                .handle
                .route()
                .del(Self::route(route, index, Sources::default())?)
                .execute()
                .await
                .map_err(to_io)
            {
                Err(e) if is_errno(&e, libc::ESRCH) || is_errno(&e, libc::ENODEV) => {}
                other => other?,
            }
        }
        Ok(())
    }

    /// The gateway of the system's own route to `prefix` through link
    /// `index` (an uplink's DHCP default route), or else of any default
    /// route through it: where a route through that link must go. None: no
    /// such route (a point-to-point link needs no gateway).
    pub async fn gateway_through(&self, index: u32, prefix: &Prefix) -> io::Result<Option<IpAddr>> {
        use netlink_packet_route::route::{RouteAddress, RouteAttribute};
        let template = match prefix.address {
            IpAddr::V4(_) => RouteMessageBuilder::<Ipv4Addr>::new().build(),
            IpAddr::V6(_) => RouteMessageBuilder::<Ipv6Addr>::new().build(),
        };
        let mut routes = self.handle.route().get(template).execute();
        let (mut exact, mut default) = (None, None);
        while let Some(route) = routes.try_next().await.map_err(to_io)? {
            let mut oif = None;
            let mut gateway = None;
            let mut destination = None;
            for attribute in &route.attributes {
                match attribute {
                    RouteAttribute::Oif(i) => oif = Some(*i),
                    RouteAttribute::Gateway(RouteAddress::Inet(a)) => {
                        gateway = Some(IpAddr::V4(*a))
                    }
                    RouteAttribute::Gateway(RouteAddress::Inet6(a)) => {
                        gateway = Some(IpAddr::V6(*a))
                    }
                    RouteAttribute::Destination(RouteAddress::Inet(a)) => {
                        destination = Some(IpAddr::V4(*a))
                    }
                    RouteAttribute::Destination(RouteAddress::Inet6(a)) => {
                        destination = Some(IpAddr::V6(*a))
                    }
                    _ => {}
                }
            }
            let (Some(gateway), Some(true)) = (gateway, oif.map(|o| o == index)) else {
                continue;
            };
            let length = route.header.destination_prefix_length;
            if length == prefix.length && destination.is_none_or(|d| d == prefix.address) {
                exact = Some(gateway);
            } else if length == 0 {
                default = Some(gateway);
            }
        }
        Ok(exact.or(default))
    }

    /// Routes `prefix` through link `index` (and `gateway`), with `metric`,
    /// replacing the route of that prefix and metric wherever it went: one
    /// route at every moment.
    pub async fn replace_route(
        &self,
        prefix: &Prefix,
        metric: u32,
        index: u32,
        gateway: Option<IpAddr>,
    ) -> io::Result<()> {
        let mut builder = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(prefix.address, prefix.length)
            .map_err(invalid)?
            .output_interface(index)
            .priority(metric);
        if let Some(gateway) = gateway {
            builder = builder.gateway(gateway).map_err(invalid)?;
        }
        self.handle
            .route()
            .add(builder.build())
            .replace()
            .execute()
            .await
            .map_err(to_io)
    }

    /// Removes the route of `prefix` with `metric`; one already gone is
    /// fine.
    pub async fn delete_route(&self, prefix: &Prefix, metric: u32) -> io::Result<()> {
        let route = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(prefix.address, prefix.length)
            .map_err(invalid)?
            .priority(metric)
            .build();
        match self
            .handle
            .route()
            .del(route)
            .execute()
            .await
            .map_err(to_io)
        {
            Err(e) if is_errno(&e, libc::ESRCH) => Ok(()),
            other => other,
        }
    }
}

fn stats_of(link: &LinkMessage) -> Option<LinkStats> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Stats64(s) => Some(LinkStats {
            rx_packets: s.rx_packets,
            tx_packets: s.tx_packets,
            rx_bytes: s.rx_bytes,
            tx_bytes: s.tx_bytes,
        }),
        _ => None,
    })
}

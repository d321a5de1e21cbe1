//! Uplinks from the router to the far end, as a router with several
//! providers has them: uplink n is veth `wan{n}` on the router (10.77.n.1/24,
//! fd77:n::1/64) and `wan{n}p` at the far end (10.77.n.2, fd77:n::2), and,
//! as a DHCP client keeps one per uplink, a default route through each at
//! its own metric.

use crate::netns::Netns;

/// Adds uplink `n`, up at both ends.
pub fn add(router: &Netns, far: &Netns, n: u8) {
    let (link, peer) = (format!("wan{n}"), format!("wan{n}p"));
    router.veth_to(&link, &peer, far);
    for (netns, device, host) in [(router, &link, 1), (far, &peer, 2)] {
        netns.ip(&[
            "addr",
            "add",
            &format!("10.77.{n}.{host}/24"),
            "dev",
            device,
        ]);
        netns.ip(&[
            "addr",
            "add",
            &format!("fd77:{n}::{host}/64"),
            "dev",
            device,
            "nodad",
        ]);
        netns.ip(&["link", "set", device, "up"]);
    }
}

/// The router's default route through uplink `n` (metric 200 + n), as
/// its DHCP client would keep it.
pub fn default_route(router: &Netns, n: u8) {
    router.ip(&[
        "route",
        "add",
        "default",
        "via",
        &format!("10.77.{n}.2"),
        "dev",
        &format!("wan{n}"),
        "metric",
        &(200 + u32::from(n)).to_string(),
    ]);
}

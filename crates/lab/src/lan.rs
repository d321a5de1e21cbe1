//! A LAN behind the router: a namespace of its own (10.99.0.2, its default
//! route the router's 10.99.0.1 on veth `lan0`), the router forwarding and
//! masquerading what leaves through its uplinks, so that the far end's
//! answers come back through the uplink a packet left by.

use crate::netns::Netns;

/// The LAN namespace behind `router`, whose uplinks are `uplinks`.
pub fn behind(router: &Netns, uplinks: &[&str]) -> Netns {
    let lan = Netns::new("l");
    router.veth_to("lan0", "lan0p", &lan);
    router.ip(&["addr", "add", "10.99.0.1/24", "dev", "lan0"]);
    router.ip(&["link", "set", "lan0", "up"]);
    lan.ip(&["addr", "add", "10.99.0.2/24", "dev", "lan0p"]);
    lan.ip(&["link", "set", "lan0p", "up"]);
    lan.ip(&["route", "add", "default", "via", "10.99.0.1"]);
    router.sysctl("net.ipv4.ip_forward", "1");
    let names: Vec<String> = uplinks.iter().map(|u| format!("\"{u}\"")).collect();
    router.nft(&format!(
        "table ip nat {{\n chain post {{\n  type nat hook postrouting priority 100;\n  oifname {{ {} }} masquerade\n }}\n}}\n",
        names.join(", ")
    ));
    lan
}

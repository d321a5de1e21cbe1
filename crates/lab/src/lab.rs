//! The usual lab: a router namespace where the service runs and sees its
//! links, and a far end that holds each veth's peer (as if the cable went
//! to another host), so flipping a router-side link changes exactly one
//! interface.

use crate::netns::Netns;
use crate::service::Service;
use crate::tools::require_root;
use crate::wait::wait_until;
use mprapi::ConnectionState;

pub struct Lab {
    pub service: Service,
    pub router: Netns,
    pub far: Netns,
}

/// The router's and the far end's namespaces, before any service.
pub fn namespaces() -> (Netns, Netns) {
    require_root();
    let router = Netns::new("r");
    let far = Netns::new("f");
    // Peers whose index differs from their router side make carrier
    // changes urgent linkwatch events; with equal indexes the kernel may
    // hold carrier news back for up to a second.
    far.ip(&[
        "link", "add", "spacer0", "type", "veth", "peer", "name", "spacer1",
    ]);
    (router, far)
}

impl Lab {
    pub fn new() -> Lab {
        Self::with_config(None)
    }

    pub fn with_config(config: Option<&str>) -> Lab {
        Self::build(config, None)
    }

    /// A lab whose service may open at most `descriptors` files.
    pub fn with_descriptor_limit(descriptors: u32) -> Lab {
        Self::build(None, Some(descriptors))
    }

    fn build(config: Option<&str>, descriptors: Option<u32>) -> Lab {
        let (router, far) = namespaces();
        let service = Service::start(&router, config, descriptors);
        Lab {
            service,
            router,
            far,
        }
    }

    /// Adds veth `name` (router side, down) whose peer is up at the far end.
    pub fn add_link(&self, name: &str) {
        let peer = format!("{name}p");
        self.router.veth_to(name, &peer, &self.far);
        self.far.ip(&["link", "set", &peer, "up"]);
    }

    /// Adds veth `name`, brings it up and waits until it is connected.
    pub fn add_connected_link(&self, name: &str) {
        self.add_link(name);
        self.set_up(name, true);
        self.wait_for_state(name, ConnectionState::Connected);
    }

    /// What the service reports of interface `name`, if it has one.
    pub fn interface(&self, name: &str) -> Option<mprapi::InterfaceInfo> {
        let interfaces = self.service.connect().interfaces().unwrap();
        interfaces.into_iter().find(|i| i.name == name)
    }

    /// The state the service reports for `name`, None if it has no such
    /// interface.
    pub fn state_of(&self, name: &str) -> Option<ConnectionState> {
        self.interface(name).map(|i| i.state)
    }

    /// Waits until the service reports `name` in `state`.
    pub fn wait_for_state(&self, name: &str, state: ConnectionState) {
        wait_until(&format!("{name} is {}", state.name()), || {
            self.state_of(name) == Some(state)
        });
    }

    /// Waits until the service lists `name`, in whatever state.
    pub fn wait_listed(&self, name: &str) {
        wait_until(&format!("{name} is listed"), || {
            self.state_of(name).is_some()
        });
    }

    pub fn set_up(&self, name: &str, up: bool) {
        self.router
            .ip(&["link", "set", name, if up { "up" } else { "down" }]);
    }

    /// `count` state flips of `name`, alternately up and down, in one burst.
    pub fn flap(&self, name: &str, count: usize) {
        let lines: String = (0..count)
            .map(|i| {
                format!(
                    "link set {name} {}\n",
                    if i % 2 == 0 { "up" } else { "down" }
                )
            })
            .collect();
        self.router.ip_batch(&lines);
    }
}

impl Default for Lab {
    fn default() -> Self {
        Self::new()
    }
}

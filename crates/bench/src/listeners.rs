//! N listeners of each kind, set up alike, so every mechanism is measured
//! through the same wake-up path (see `wake`).

use crate::dbus_anchor;
use crate::lab::{spawn_self, spawn_self_with_stdin, wait_for, Lab, Process};
use crate::wake::{Kind, Waiter};
use std::any::Any;
use std::os::fd::{AsFd, AsRawFd};
use std::process::Stdio;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// Raw rtnetlink sockets on the link group: the floor.
    Kernel,
    /// A publisher turning rtnetlink into D-Bus signals, and subscribers.
    DBus,
    /// ddm sessions, each with one registered event.
    DdmEvent,
    /// The design's bare prototype: a process that reads rtnetlink and
    /// writes one eventfd. What ddm would cost with no layers at all.
    Relay,
    /// The same relay on the service's runtime (tokio, one thread): what
    /// the runtime alone adds to the bare relay.
    RelayOnTokio,
}

impl Mechanism {
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Kernel => "kernel floor (rtnetlink)",
            Mechanism::DBus => "D-Bus (dbus-daemon)",
            Mechanism::DdmEvent => "ddm (mprapi::Event)",
            Mechanism::Relay => "bare relay (rtnetlink->eventfd)",
            Mechanism::RelayOnTokio => "bare relay on tokio (current thread)",
        }
    }
}

/// Listeners and whatever must stay alive for them.
pub struct Listeners {
    pub waiters: Vec<Waiter>,
    _resources: Vec<Box<dyn Any>>,
}

impl Listeners {
    pub fn drain(&self) {
        self.waiters.iter().for_each(Waiter::drain);
    }
}

/// Sets up `n` listeners; the link is now `connected` or not.
pub fn set_up(lab: &Lab, mechanism: Mechanism, n: usize, connected: bool) -> Listeners {
    let mut resources: Vec<Box<dyn Any>> = Vec::new();
    let waiters = match mechanism {
        Mechanism::Kernel => (0..n)
            .map(|_| {
                let socket = lab
                    .router
                    .enter(|| crate::netlink::group_listener(1 << 20))
                    .expect("rtnetlink");
                let waiter = Waiter {
                    fd: socket.as_raw_fd(),
                    kind: Kind::Netlink { index: lab.index },
                };
                resources.push(Box::new(socket));
                waiter
            })
            .collect(),
        Mechanism::DBus => {
            let publisher: Process = spawn_self(
                Some(&lab.router),
                &["__dbus-publisher", &lab.bus_address],
                Stdio::inherit(),
            );
            wait_for("the D-Bus publisher", || {
                dbus_anchor::publisher_ready(&lab.bus_address)
            });
            resources.push(Box::new(publisher));
            (0..n)
                .map(|_| {
                    let (connection, fd) = dbus_anchor::subscriber(&lab.bus_address);
                    resources.push(Box::new(connection));
                    Waiter {
                        fd,
                        kind: Kind::Bytes,
                    }
                })
                .collect()
        }
        Mechanism::Relay | Mechanism::RelayOnTokio => (0..n)
            .map(|_| {
                let event = mprapi::Event::auto().expect("eventfd");
                let target = Stdio::from(event.as_fd().try_clone_to_owned().expect("dup"));
                let state = if connected { "up" } else { "down" };
                let command = if mechanism == Mechanism::Relay {
                    "__relay"
                } else {
                    "__relay-on-tokio"
                };
                let relay = spawn_self_with_stdin(
                    &lab.router,
                    &[command, &lab.index.to_string(), state],
                    target,
                );
                assert!(
                    event.wait(Some(ddm_lab::PATIENCE)),
                    "the relay did not start"
                );
                let waiter = Waiter {
                    fd: event.as_raw_fd(),
                    kind: Kind::EventFd,
                };
                resources.push(Box::new((relay, event)));
                waiter
            })
            .collect(),
        Mechanism::DdmEvent => (0..n)
            .map(|_| {
                let (server, event) = lab.registered_session();
                let waiter = Waiter {
                    fd: event.as_raw_fd(),
                    kind: Kind::EventFd,
                };
                resources.push(Box::new((server, event)));
                waiter
            })
            .collect(),
    };
    let listeners = Listeners {
        waiters,
        _resources: resources,
    };
    listeners.drain();
    listeners
}

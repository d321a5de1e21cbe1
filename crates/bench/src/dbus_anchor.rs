//! The D-Bus anchor: what Linux users use today for this job. A publisher
//! process listens to rtnetlink and, like NetworkManager, emits one D-Bus
//! signal per connect or disconnect through a real dbus-daemon; subscribers
//! hold a match rule for it.

use dbus::blocking::Connection;
use dbus::channel::Channel;
use dbus::Message;
use std::collections::HashMap;
use std::os::fd::RawFd;
use std::time::Duration;

pub const INTERFACE: &str = "org.ddm.Bench";
pub const MATCH_RULE: &str = "type='signal',interface='org.ddm.Bench'";
const PUBLISHER_NAME: &str = "org.ddm.BenchPublisher";
const TIMEOUT: Duration = Duration::from_secs(10);
/// The most subscribers one harness process holds. The vendored libdbus
/// is built without `HAVE_POLL` and waits with `select()`, which cannot
/// watch a descriptor past 1023: with 10,000 subscribers the harness spun
/// in libdbus and dbus-daemon dropped connections that never
/// authenticated.
pub const MOST_SUBSCRIBERS: usize = 1000;

fn connect(address: &str) -> Connection {
    let mut channel = Channel::open_private(address).expect("connect to the bus");
    channel.register().expect("D-Bus Hello");
    channel.set_watch_enabled(true);
    Connection::from(channel)
}

/// A subscriber with the match rule in place, and its socket made
/// non-blocking so the harness can read it raw.
pub fn subscriber(address: &str) -> (Connection, RawFd) {
    let connection = connect(address);
    connection.add_match_no_cb(MATCH_RULE).expect("AddMatch");
    let fd = connection.channel().watch().fd;
    set_nonblocking(fd);
    (connection, fd)
}

/// A plain connection, for AddMatch and RemoveMatch round trips.
pub fn client(address: &str) -> Connection {
    connect(address)
}

fn set_nonblocking(fd: RawFd) {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    // SAFETY: the connection owns the descriptor and outlives this call.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL).expect("F_GETFL"));
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).expect("F_SETFL");
}

/// True once a publisher has taken its name on the bus.
pub fn publisher_ready(address: &str) -> bool {
    let probe = connect(address);
    let proxy = probe.with_proxy("org.freedesktop.DBus", "/org/freedesktop/DBus", TIMEOUT);
    let (owned,): (bool,) = proxy
        .method_call("org.freedesktop.DBus", "NameHasOwner", (PUBLISHER_NAME,))
        .unwrap_or((false,));
    owned
}

/// The publisher process (`ddm-bench __dbus-publisher ADDRESS`, started
/// inside the router namespace): rtnetlink in, one signal per change out.
pub fn publisher_main(address: &str) -> ! {
    let connection = connect(address);
    let socket = crate::netlink::group_listener(4 << 20).expect("rtnetlink");
    socket.set_non_blocking(false).expect("blocking rtnetlink");
    connection
        .request_name(PUBLISHER_NAME, false, true, false)
        .expect("RequestName");
    let mut connected: HashMap<u32, bool> = HashMap::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = socket
            .recv(&mut &mut buffer[..], 0)
            .expect("rtnetlink recv");
        for (index, now) in crate::netlink::link_reports(&buffer[..n]) {
            if connected.insert(index, now) != Some(now) {
                let signal = Message::new_signal("/org/ddm/Bench", INTERFACE, "LinkChanged")
                    .expect("signal")
                    .append2(index, now);
                let _ = connection.channel().send(signal);
            }
        }
        connection.channel().flush();
    }
}

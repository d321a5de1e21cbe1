//! The notification loop, as a Windows program writes it: connect, register
//! an auto-reset event, wait, re-enumerate on every signal, deregister.
//!
//! Run it beside a service: `cargo run -p mprapi --example notify_loop`.
use mprapi::{Event, Server, WinError};
use std::time::Duration;

fn main() -> Result<(), WinError> {
    let server = Server::connect(None)?;
    let event = Event::auto().expect("cannot create an eventfd");
    server.register_connection_notification(&event)?;
    println!("registered; waiting for interfaces to connect or disconnect");
    for _ in 0..3 {
        if !event.wait(Some(Duration::from_secs(60))) {
            println!("nothing for a minute");
            continue;
        }
        // Something connected or disconnected: look again.
        for interface in server.interfaces()? {
            println!("{:<16} {}", interface.name, interface.state.name());
        }
    }
    server.deregister_connection_notification(&event)?;
    Ok(())
}

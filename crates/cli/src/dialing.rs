//! The subcommands that act on declared interfaces (admin): connect,
//! disconnect, enable, disable; and reload, which reads the service's
//! configuration file again.

use mprapi::{Connect, Server, WinError};

/// `ddm connect NAME [--wait]`.
pub fn connect(server: &Server, name: &str, wait: bool) -> Result<(), WinError> {
    let handle = server.interface_handle(name)?;
    if wait {
        server.interface_connect_wait(handle)?;
        println!("{name}: connected");
        return Ok(());
    }
    match server.interface_connect(handle)? {
        Connect::Connected => println!("{name}: connected"),
        Connect::Pending => println!("{name}: connecting"),
    }
    Ok(())
}

/// `ddm disconnect NAME`.
pub fn disconnect(server: &Server, name: &str) -> Result<(), WinError> {
    server.interface_disconnect(server.interface_handle(name)?)
}

/// `ddm enable NAME` and `ddm disable NAME`.
pub fn set_enabled(server: &Server, name: &str, enabled: bool) -> Result<(), WinError> {
    server.interface_set_enabled(server.interface_handle(name)?, enabled)
}

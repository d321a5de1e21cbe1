//! Routers reached over TLS: certificates from `ddm_test_ca` and a client
//! namespace joined to each router's namespace by a veth pair, so that
//! "remote" is another namespace with its own ddm, never an outside
//! address.

use crate::support::*;
pub use ddm_test_ca::{Ca, Flaw};

/// The `[access]` and `[remote]` tables of a router whose certificate is
/// `server` (issued by `ca`), trusting clients of `ca`, with `extra` lines
/// in `[remote]`. It listens where it does by default: every address, IPv4
/// through the IPv6 socket, port 4850.
pub fn remote_config(ca: &Ca, server: &str, extra: &str) -> String {
    format!(
        "[access]\nadmin_identities = [\"spiffe://example.org/ops/*\"]\n\
         monitor_identities = [\"monitor\"]\nstatus_identities = [\"viewer\"]\n\
         [remote]\ncertificate = \"{dir}/{server}.pem\"\n\
         key = \"{dir}/{server}.key\"\nclient_ca = \"{ca}\"\n{extra}",
        dir = ca.dir.display(),
        ca = ca.ca_file().display(),
    )
}

/// A client namespace with a veth pair to each router it is joined to.
pub struct Clients {
    pub netns: Netns,
    joined: u32,
}

impl Clients {
    pub fn new() -> Clients {
        let netns = Netns::new("c");
        netns.ip(&["link", "set", "lo", "up"]);
        Clients { netns, joined: 0 }
    }

    /// Joins `router`'s namespace: returns the router's address.
    pub fn join(&mut self, router: &Netns) -> String {
        self.joined += 1;
        let n = self.joined;
        let (near, far) = (format!("tr{n}"), format!("tc{n}"));
        self.netns.veth_to(&near, &far, router);
        self.netns
            .ip(&["addr", "add", &format!("10.89.{n}.2/24"), "dev", &near]);
        self.netns.ip(&["link", "set", &near, "up"]);
        router.ip(&["addr", "add", &format!("10.89.{n}.1/24"), "dev", &far]);
        router.ip(&["link", "set", &far, "up"]);
        router.ip(&["link", "set", "lo", "up"]);
        format!("10.89.{n}.1")
    }

    /// `ddm ARGS` in the client namespace with certificate `file`.
    pub fn ddm(&self, ca: &Ca, file: &str, args: &[&str]) -> std::process::Command {
        let config = ca.client_config(file);
        let mut command = self.netns.command(DDM);
        command
            .args(args)
            .env("DDM_CLIENT_CONFIG", "/nonexistent")
            .env("DDM_CA", config.ca.unwrap())
            .env("DDM_CLIENT_CERT", config.certificate.unwrap())
            .env("DDM_CLIENT_KEY", config.key.unwrap());
        command
    }

    /// Connects from the client namespace (the connection stays in it).
    pub fn connect(&self, ca: &Ca, file: &str, address: &str) -> mprapi::Result<mprapi::Server> {
        self.netns
            .enter(|| mprapi::Server::connect_remote(address, &ca.client_config(file)))
    }
}

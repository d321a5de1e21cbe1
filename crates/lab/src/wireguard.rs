//! WireGuard pairs between a router namespace and a far one, over an
//! underlay veth (10.1.0.1 near, 10.1.0.2 far), with wireguard-go on both
//! sides. Pair `n` has near address 10.9.n.1 and far 10.9.n.2, and the far
//! end listens on port 51820 + n, up from its creation. The near end is
//! the dial's business: the shell lines that make it come from here
//! ([`Pair::bring_up`]), for the scripts a test or a benchmark writes.
//! Link names carry a tag of the caller's: wireguard-go's API sockets
//! (/var/run/wireguard) are shared by every namespace.

use crate::netns::Netns;
use crate::tools::{require, stdout_of};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// wireguard-go refuses to start without this when the kernel has its own
/// WireGuard.
pub const USERSPACE: (&str, &str) = ("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD", "1");

/// The underlay's far address, the tunnels' endpoint.
pub const UNDERLAY_FAR: &str = "10.1.0.2";

/// The veth every pair of two namespaces runs over.
pub fn underlay(router: &Netns, far: &Netns) {
    for tool in ["wireguard-go", "wg"] {
        require(tool);
    }
    router.veth_to("wgu", "wgup", far);
    router.ip(&["addr", "add", "10.1.0.1/24", "dev", "wgu"]);
    router.ip(&["link", "set", "wgu", "up"]);
    router.ip(&["link", "set", "lo", "up"]);
    far.ip(&["addr", "add", &format!("{UNDERLAY_FAR}/24"), "dev", "wgup"]);
    far.ip(&["link", "set", "wgup", "up"]);
    far.ip(&["link", "set", "lo", "up"]);
}

/// Runs `argv` in `netns` with wireguard-go's environment; its output.
fn in_netns(netns: &Netns, argv: &[&str]) -> String {
    let mut command = netns.command(argv[0]);
    command
        .args(&argv[1..])
        .env(USERSPACE.0, USERSPACE.1)
        .stderr(std::process::Stdio::null());
    stdout_of(&mut command).trim().to_owned()
}

/// A private key in `dir` (mode 0600) and its public key.
fn keys(netns: &Netns, dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(format!("{name}.key"));
    let private = in_netns(netns, &["wg", "genkey"]);
    std::fs::write(&path, &private).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let public = in_netns(
        netns,
        &["sh", "-c", &format!("wg pubkey < {}", path.display())],
    );
    (path, public)
}

pub struct Pair {
    /// The near tunnel, made by the dial.
    pub link: String,
    pub far_link: String,
    router: String,
    far: String,
    pub near_key: PathBuf,
    near_public: String,
    pub far_public: String,
    pub port: u16,
    pub near: Ipv4Addr,
    pub far_address: Ipv4Addr,
    /// The tunnel's IPv6 addresses: fd09:n::1 near, fd09:n::2 far.
    pub near6: Ipv6Addr,
    pub far6: Ipv6Addr,
    /// What the near end routes into the tunnel, comma-separated.
    pub allowed: String,
}

impl Pair {
    /// Pair `n` over the underlay: keys in `dir`, the far end up and
    /// listening, reaching the far addresses `far_routes` (prefixes) too.
    pub fn new(
        router: &Netns,
        far: &Netns,
        dir: &Path,
        n: u8,
        (link, far_link): (&str, &str),
        far_routes: &[&str],
    ) -> Pair {
        let near = Ipv4Addr::new(10, 9, n, 1);
        let far_address = Ipv4Addr::new(10, 9, n, 2);
        let near6 = Ipv6Addr::new(0xfd09, u16::from(n), 0, 0, 0, 0, 0, 1);
        let far6 = Ipv6Addr::new(0xfd09, u16::from(n), 0, 0, 0, 0, 0, 2);
        let port = 51820 + u16::from(n);
        let (near_key, near_public) = keys(router, dir, &format!("{link}-near"));
        let (far_key, far_public) = keys(far, dir, &format!("{link}-far"));
        in_netns(far, &["wireguard-go", far_link]);
        in_netns(
            far,
            &[
                "wg",
                "set",
                far_link,
                "private-key",
                &far_key.display().to_string(),
                "listen-port",
                &port.to_string(),
                "peer",
                &near_public,
                "allowed-ips",
                &format!("{near}/32,{near6}/128"),
            ],
        );
        far.ip(&["addr", "add", &format!("{far_address}/24"), "dev", far_link]);
        far.ip(&[
            "-6",
            "addr",
            "add",
            &format!("{far6}/64"),
            "dev",
            far_link,
            "nodad",
        ]);
        far.ip(&["link", "set", far_link, "up"]);
        let allowed = [format!("{far_address}/32"), format!("{far6}/128")]
            .into_iter()
            .chain(far_routes.iter().map(|r| r.to_string()))
            .collect::<Vec<_>>()
            .join(",");
        Pair {
            link: link.to_owned(),
            far_link: far_link.to_owned(),
            router: router.name.clone(),
            far: far.name.clone(),
            near_key,
            near_public,
            far_public,
            port,
            near,
            far_address,
            near6,
            far6,
            allowed,
        }
    }

    /// A shell line that waits (2 s at most) for the wireguard-go of a
    /// near tunnel just deleted to go and free its API socket.
    pub fn wait_for_old(&self) -> String {
        format!(
            "for i in $(seq 100); do [ -S /var/run/wireguard/{}.sock ] || break; sleep 0.02; done\n",
            self.link
        )
    }

    /// Shell lines that configure the near tunnel once its wireguard-go
    /// runs: key, peer, address, up.
    pub fn configure(&self) -> String {
        format!(
            "wg set {link} private-key {key} peer {far_public} endpoint {UNDERLAY_FAR}:{port} allowed-ips {allowed}\n\
             ip addr add {near}/24 dev {link}\n\
             ip -6 addr add {near6}/64 dev {link} nodad\n\
             ip link set {link} up\n",
            link = self.link,
            key = self.near_key.display(),
            far_public = self.far_public,
            port = self.port,
            allowed = self.allowed,
            near = self.near,
            near6 = self.near6,
        )
    }

    /// Shell lines that make the near tunnel (wireguard-go daemonizes).
    pub fn bring_up(&self) -> String {
        format!(
            "export {}={}\nwireguard-go {} 2>/dev/null\n{}",
            USERSPACE.0,
            USERSPACE.1,
            self.link,
            self.configure()
        )
    }

    /// The near tunnel as a wg-quick configuration file.
    pub fn quick_config(&self) -> String {
        let private = std::fs::read_to_string(&self.near_key).unwrap();
        format!(
            "[Interface]\nPrivateKey = {}\nAddress = {}/24, {}/64\n\n\
             [Peer]\nPublicKey = {}\nEndpoint = {UNDERLAY_FAR}:{}\nAllowedIPs = {}\n",
            private.trim(),
            self.near,
            self.near6,
            self.far_public,
            self.port,
            self.allowed.replace(',', ", "),
        )
    }

    /// The far end takes `prefixes` (a LAN behind the router) from the
    /// near end too, and routes them back through the tunnel.
    pub fn far_routes_back(&self, far: &Netns, prefixes: &[&str]) {
        in_netns(
            far,
            &[
                "wg",
                "set",
                &self.far_link,
                "peer",
                &self.near_public,
                "allowed-ips",
                &format!("{}/32,{}/128,{}", self.near, self.near6, prefixes.join(",")),
            ],
        );
        for prefix in prefixes {
            far.ip(&["route", "add", prefix, "dev", &self.far_link]);
        }
    }

    /// The far end listens on its port, or stops answering (it moves to
    /// another); the router's links do not change.
    pub fn far_answers(&self, far: &Netns, answers: bool) {
        let port = if answers { self.port } else { self.port + 1000 };
        in_netns(
            far,
            &[
                "wg",
                "set",
                &self.far_link,
                "listen-port",
                &port.to_string(),
            ],
        );
    }
}

/// A wireguard-go keeps its namespace alive, and itself with it, until its
/// tunnel is deleted: both ends go before the namespaces do.
impl Drop for Pair {
    fn drop(&mut self) {
        for (netns, link) in [(&self.router, &self.link), (&self.far, &self.far_link)] {
            let _ = std::process::Command::new("ip")
                .args(["-n", netns, "link", "del", link])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

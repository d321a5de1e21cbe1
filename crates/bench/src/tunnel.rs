//! WireGuard tunnels for the dialing benchmarks: wireguard-go on both
//! sides of a veth pair (`vt`, 10.1.0.1 - 10.1.0.2). Tunnel n has near
//! address 10.9.n.1 and far 10.9.n.2 and reaches the far "LAN" addresses
//! 192.168.(20+n).1, and, for the bare dial, 192.168.(30+n).1. The far end
//! listens on port 51820+n; the near end is made by `up-N.sh`, which the
//! service runs to dial and the benchmark runs by hand for the bare dial.

use crate::lab::Netns;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct Tunnel {
    pub link: String,
    far_link: String,
    /// The namespaces, by name, for the clean-up.
    router: String,
    far: String,
    pub script: PathBuf,
    /// Routed by ddm.
    pub lan: Ipv4Addr,
    /// Routed by hand, for the bare dial.
    pub bare_lan: Ipv4Addr,
    pub near: Ipv4Addr,
}

/// Runs `argv` in `netns` (wireguard-go needs its environment flag).
fn ns_run(netns: &Netns, argv: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", &netns.name])
        .args(argv)
        .env("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD", "1")
        .stderr(Stdio::null())
        .output()
        .expect("ip netns exec");
    assert!(out.status.success(), "{argv:?} failed in {}", netns.name);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A private key in `dir` and its public key.
fn keys(netns: &Netns, dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(format!("{name}.key"));
    let private = ns_run(netns, &["wg", "genkey"]);
    std::fs::write(&path, &private).expect("key");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("key mode");
    let public = ns_run(
        netns,
        &["sh", "-c", &format!("wg pubkey < {}", path.display())],
    );
    (path, public)
}

/// The veth both tunnels run over.
pub fn underlay(router: &Netns, far: &Netns) {
    router.ip(&[
        "link", "add", "vt", "type", "veth", "peer", "name", "vtp", "netns", &far.name,
    ]);
    router.ip(&["addr", "add", "10.1.0.1/24", "dev", "vt"]);
    router.ip(&["link", "set", "vt", "up"]);
    far.ip(&["addr", "add", "10.1.0.2/24", "dev", "vtp"]);
    far.ip(&["link", "set", "vtp", "up"]);
    far.ip(&["link", "set", "lo", "up"]);
}

impl Tunnel {
    /// Tunnel `n`: its far end up and listening, its near script written.
    pub fn new(router: &Netns, far: &Netns, dir: &Path, n: u8) -> Tunnel {
        let (lan, bare_lan) = (
            Ipv4Addr::new(192, 168, 20 + n, 1),
            Ipv4Addr::new(192, 168, 30 + n, 1),
        );
        let near = Ipv4Addr::new(10, 9, n, 1);
        let (link, far_link) = (format!("wgb{n}"), format!("wgbf{n}"));
        let port = 51820 + u16::from(n);
        for address in [lan, bare_lan] {
            far.ip(&["addr", "add", &format!("{address}/32"), "dev", "lo"]);
        }
        let (near_key, near_pub) = keys(router, dir, &format!("near{n}"));
        let (far_key, far_pub) = keys(far, dir, &format!("far{n}"));
        ns_run(far, &["wireguard-go", &far_link]);
        ns_run(
            far,
            &[
                "wg",
                "set",
                &far_link,
                "private-key",
                &far_key.display().to_string(),
                "listen-port",
                &port.to_string(),
                "peer",
                &near_pub,
                "allowed-ips",
                &format!("{near}/32"),
            ],
        );
        far.ip(&["addr", "add", &format!("10.9.{n}.2/24"), "dev", &far_link]);
        far.ip(&["link", "set", &far_link, "up"]);
        // The script waits for a wireguard-go that is still going away.
        let script = dir.join(format!("up-{n}.sh"));
        let text = [
            "#!/bin/sh".to_string(),
            "set -e".into(),
            "export WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1".into(),
            format!("for i in $(seq 100); do [ -S /var/run/wireguard/{link}.sock ] || break; sleep 0.01; done"),
            format!("wireguard-go {link} 2>/dev/null"),
            format!(
                "wg set {link} private-key {} peer {far_pub} endpoint 10.1.0.2:{port} allowed-ips 10.9.{n}.2/32,{lan}/32,{bare_lan}/32",
                near_key.display()
            ),
            format!("ip addr add {near}/24 dev {link}"),
            format!("ip link set {link} up"),
        ]
        .join("\n");
        std::fs::write(&script, text + "\n").expect("script");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("mode");
        Tunnel {
            link,
            far_link,
            router: router.name.clone(),
            far: far.name.clone(),
            script,
            lan,
            bare_lan,
            near,
        }
    }

    /// Its `[[interface]]` table.
    pub fn declaration(&self, name: &str, extra: &str) -> String {
        format!(
            "[[interface]]\nname = \"{name}\"\nlink = \"{}\"\nconnect = [\"{}\"]\n\
             disconnect = [\"ip\", \"link\", \"del\", \"{}\"]\nready = \"wireguard\"\n\
             routes = [\"{}/32\"]\ntrigger_src = \"{}\"\nredial_pause_secs = 0\n{extra}\n",
            self.link,
            self.script.display(),
            self.link,
            self.lan,
            self.near,
        )
    }

    /// Whether its near link exists.
    pub fn exists(&self, router: &Netns) -> bool {
        Command::new("ip")
            .args(["-n", &router.name, "link", "show", &self.link])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Deletes the near link (the connection is lost).
    pub fn tear_down_link_only(&self, router: &Netns) {
        let _ = Command::new("ip")
            .args(["-n", &router.name, "link", "del", &self.link])
            .stderr(Stdio::null())
            .status();
    }

    /// Deletes the near link, then waits for its wireguard-go to go.
    pub fn tear_down(&self, router: &Netns) {
        self.tear_down_link_only(router);
        let socket = format!("/var/run/wireguard/{}.sock", self.link);
        crate::lab::wait_for("the old wireguard-go", || !Path::new(&socket).exists());
    }

    /// The bare dial: the script, then the route, by hand.
    pub fn dial_by_hand(&self, router: &Netns) {
        ns_run(router, &[self.script.to_str().expect("UTF-8 path")]);
        router.ip(&[
            "route",
            "replace",
            &format!("{}/32", self.bare_lan),
            "dev",
            &self.link,
            "src",
            &self.near.to_string(),
        ]);
    }
}

/// A wireguard-go keeps its namespace alive, and itself with it, until its
/// tunnel is deleted: delete both ends before the namespaces go.
impl Drop for Tunnel {
    fn drop(&mut self) {
        for (netns, link) in [(&self.router, &self.link), (&self.far, &self.far_link)] {
            let _ = Command::new("ip")
                .args(["-n", netns, "link", "del", link])
                .stderr(Stdio::null())
                .status();
        }
    }
}

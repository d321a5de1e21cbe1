//! WireGuard tunnels for the dialing benchmarks, on `ddm_lab`'s pairs.
//! Tunnel n reaches the far "LAN" address 192.168.(20+n).1 and fd20:n::1
//! through ddm, and, for the bare dial, 192.168.(30+n).1 and fd30:n::1;
//! the near end is made by `up-N.sh`, which the service runs to dial and
//! the benchmark runs by hand for the bare dial.

use crate::lab::Netns;
use ddm_lab::wireguard::Pair;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub use ddm_lab::wireguard::underlay;

/// The tunnels' redial pause: a connection that lasted at least this long
/// is redialed at once when lost (a shorter one after the pause).
pub const REDIAL_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

pub struct Tunnel {
    pair: Pair,
    pub script: PathBuf,
    /// Routed by ddm.
    pub lan: Ipv4Addr,
    /// Routed by hand, for the bare dial.
    pub bare_lan: Ipv4Addr,
    /// The same over IPv6.
    pub lan6: Ipv6Addr,
    pub bare_lan6: Ipv6Addr,
}

impl Tunnel {
    /// Tunnel `n`: its far end up and listening, its near script written.
    pub fn new(router: &Netns, far: &Netns, dir: &Path, n: u8) -> Tunnel {
        let (lan, bare_lan) = (
            Ipv4Addr::new(192, 168, 20 + n, 1),
            Ipv4Addr::new(192, 168, 30 + n, 1),
        );
        let (lan6, bare_lan6) = (
            Ipv6Addr::new(0xfd20, u16::from(n), 0, 0, 0, 0, 0, 1),
            Ipv6Addr::new(0xfd30, u16::from(n), 0, 0, 0, 0, 0, 1),
        );
        for address in [lan, bare_lan] {
            far.ip(&["addr", "add", &format!("{address}/32"), "dev", "lo"]);
        }
        for address in [lan6, bare_lan6] {
            far.ip(&[
                "-6",
                "addr",
                "add",
                &format!("{address}/128"),
                "dev",
                "lo",
                "nodad",
            ]);
        }
        let (link, far_link) = (format!("wgb{n}"), format!("wgbf{n}"));
        let pair = Pair::new(
            router,
            far,
            dir,
            n,
            (&link, &far_link),
            &[
                &format!("{lan}/32"),
                &format!("{bare_lan}/32"),
                &format!("{lan6}/128"),
                &format!("{bare_lan6}/128"),
            ],
        );
        let script = dir.join(format!("up-{n}.sh"));
        let text = format!(
            "#!/bin/sh\nset -e\n{}{}",
            pair.wait_for_old(),
            pair.bring_up()
        );
        std::fs::write(&script, text).expect("script");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("mode");
        Tunnel {
            pair,
            script,
            lan,
            bare_lan,
            lan6,
            bare_lan6,
        }
    }

    /// Its `[[interface]]` table, routing its far LAN addresses.
    pub fn declaration(&self, name: &str, extra: &str) -> String {
        self.member_declaration(
            name,
            &format!(
                "routes = [\"{}/32\", \"{}/128\"]\n{extra}",
                self.lan, self.lan6
            ),
        )
    }

    /// Its `[[interface]]` table without routes of its own: a group's
    /// member.
    pub fn member_declaration(&self, name: &str, extra: &str) -> String {
        format!(
            "[[interface]]\nname = \"{name}\"\nlink = \"{link}\"\nconnect = [\"{}\"]\n\
             disconnect = [\"ip\", \"link\", \"del\", \"{link}\"]\nready = \"wireguard\"\n\
             trigger_src = \"{}\"\ntrigger_src6 = \"{}\"\nredial_pause_secs = {}\n{extra}\n",
            self.script.display(),
            self.pair.near,
            self.pair.near6,
            REDIAL_PAUSE.as_secs(),
            link = self.pair.link,
        )
    }

    /// Whether its near link exists.
    pub fn exists(&self, router: &Netns) -> bool {
        router.has_link(&self.pair.link)
    }

    /// Deletes the near link (the connection is lost).
    pub fn tear_down_link_only(&self, router: &Netns) {
        router.delete_link(&self.pair.link);
    }

    /// Deletes the near link, then waits for its wireguard-go to go.
    pub fn tear_down(&self, router: &Netns) {
        self.tear_down_link_only(router);
        let socket = format!("/var/run/wireguard/{}.sock", self.pair.link);
        crate::lab::wait_for("the old wireguard-go", || !Path::new(&socket).exists());
    }

    /// The bare dial: the script, then the routes of both families, by
    /// hand.
    pub fn dial_by_hand(&self, router: &Netns) {
        ddm_lab::stdout_of(&mut router.command(&self.script));
        for (to, length, src) in [
            (IpAddr::V4(self.bare_lan), 32, IpAddr::V4(self.pair.near)),
            (IpAddr::V6(self.bare_lan6), 128, IpAddr::V6(self.pair.near6)),
        ] {
            router.ip(&[
                "route",
                "replace",
                &format!("{to}/{length}"),
                "dev",
                &self.pair.link,
                "src",
                &src.to_string(),
            ]);
        }
    }
}

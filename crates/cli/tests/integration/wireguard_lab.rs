//! The demand-dial lab: a router namespace (the service, dialing) and a
//! far namespace joined by the lab's WireGuard underlay, with a
//! `ddm_lab::wireguard::Pair` over it. The far end listens with 10.9.0.2
//! on its tunnel and 192.168.20.1 behind it; the near end's tunnel is made
//! by the connect script the service runs (`up.sh`, 10.9.0.1) and deleted
//! by its disconnect command. Both ends have IPv6 too: fd09::1 and fd09::2
//! on the tunnel, fd20::1 behind the far end. A LAN behind the router
//! (`add_lan`): a host namespace at 192.168.76.50 and fd76::50 whose way
//! out is the router, 192.168.76.1 and fd76::1.

use crate::support::{require_root, stdout_of, tool, wait_until, Netns, Service};
use ddm_lab::wireguard::{self, Pair};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

pub const FAR_LAN: &str = "192.168.20.1";
/// The far LAN's IPv6 address (fd20::/64 is routed to the far end).
pub const FAR_LAN6: &str = "fd20::1";
/// The router's addresses on the LAN behind it, and a host there.
pub const ROUTER_LAN: &str = "192.168.76.1";
pub const ROUTER_LAN6: &str = "fd76::1";
pub const LAN_HOST: &str = "192.168.76.50";
pub const LAN_HOST6: &str = "fd76::50";

pub struct WgLab {
    pub service: Option<Service>,
    /// The tunnel pair: dropped before the namespaces.
    pair: Pair,
    pub router: Netns,
    pub far: Netns,
    pub dir: tempfile::TempDir,
    /// The near tunnel, made by up.sh.
    pub link: String,
    /// The host behind the router, once `add_lan` made it.
    pub lan: Option<Netns>,
}

impl WgLab {
    /// The lab, without the service yet.
    pub fn new() -> WgLab {
        require_root();
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let tag = format!(
            "{}{}",
            std::process::id() % 10_000,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let (link, far_link) = (format!("wgn{tag}"), format!("wgf{tag}"));
        let router = Netns::new("wr");
        let far = Netns::new("wf");
        wireguard::underlay(&router, &far);
        far.ip(&["addr", "add", &format!("{FAR_LAN}/32"), "dev", "lo"]);
        far.ip(&[
            "-6",
            "addr",
            "add",
            &format!("{FAR_LAN6}/128"),
            "dev",
            "lo",
            "nodad",
        ]);
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let pair = Pair::new(
            &router,
            &far,
            dir.path(),
            0,
            (&link, &far_link),
            &["192.168.20.0/24", "fd20::/64"],
        );
        let d = dir.path().display();
        let counted = format!(
            "#!/bin/sh\nset -e\n\
             if [ -f {d}/delay ]; then sleep $(cat {d}/delay); fi\n\
             echo dial >> {d}/dials\n"
        );
        let up = format!("{counted}{}{}", pair.wait_for_old(), pair.bring_up());
        // up-now.sh: the same without waiting for an old wireguard-go, as a
        // user's script may well be; ddm's hang-up waits instead.
        let up_now = format!("{counted}{}", pair.bring_up());
        // Supervised: the script is the connection, with wireguard-go in
        // the foreground under it; SIGTERM ends both.
        let supervised = format!(
            "#!/bin/sh\n\
             export {}={}\n\
             echo dial >> {d}/dials\n\
             {}\
             wireguard-go -f {link} >/dev/null 2>&1 &\n\
             pid=$!\n\
             trap 'kill $pid; wait $pid; exit 0' TERM\n\
             while [ ! -S /var/run/wireguard/{link}.sock ]; do sleep 0.01; done\n\
             {}\
             wait $pid\n",
            wireguard::USERSPACE.0,
            wireguard::USERSPACE.1,
            pair.wait_for_old(),
            pair.configure(),
        );
        // For wg-quick: the same tunnel as a configuration file named after
        // the link.
        let quick_path = dir.path().join(format!("{link}.conf"));
        std::fs::write(&quick_path, pair.quick_config()).unwrap();
        std::fs::set_permissions(&quick_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        for (name, text) in [
            ("up.sh", up),
            ("up-now.sh", up_now),
            ("supervised.sh", supervised),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        WgLab {
            service: None,
            pair,
            router,
            far,
            dir,
            link,
            lan: None,
        }
    }

    /// A LAN behind the router: a host namespace (LAN_HOST/24 and
    /// LAN_HOST6/64, its default routes the router), the router at
    /// ROUTER_LAN and ROUTER_LAN6 forwarding both families, and the far end
    /// routing the LAN back through the tunnel.
    pub fn add_lan(&mut self) {
        let host = Netns::new("wl");
        self.router.ip(&[
            "link", "add", "lan0", "type", "veth", "peer", "name", "eth0", "netns", &host.name,
        ]);
        self.router
            .ip(&["addr", "add", &format!("{ROUTER_LAN}/24"), "dev", "lan0"]);
        self.router.ip(&[
            "-6",
            "addr",
            "add",
            &format!("{ROUTER_LAN6}/64"),
            "dev",
            "lan0",
            "nodad",
        ]);
        self.router.ip(&["link", "set", "lan0", "up"]);
        self.router.sysctl("net.ipv4.ip_forward", "1");
        self.router.sysctl("net.ipv6.conf.all.forwarding", "1");
        host.ip(&["addr", "add", &format!("{LAN_HOST}/24"), "dev", "eth0"]);
        host.ip(&[
            "-6",
            "addr",
            "add",
            &format!("{LAN_HOST6}/64"),
            "dev",
            "eth0",
            "nodad",
        ]);
        host.ip(&["link", "set", "eth0", "up"]);
        host.ip(&["link", "set", "lo", "up"]);
        host.ip(&["route", "add", "default", "via", ROUTER_LAN]);
        host.ip(&["-6", "route", "add", "default", "via", ROUTER_LAN6]);
        self.pair
            .far_routes_back(&self.far, &["192.168.76.0/24", "fd76::/64"]);
        self.lan = Some(host);
    }

    /// One ping to the far LAN from `netns` with `args` (`-I ADDRESS`);
    /// true if it was answered within `wait_secs`.
    pub fn ping_from(&self, netns: &Netns, args: &[&str], wait_secs: u32) -> bool {
        self.ping_to(FAR_LAN, netns, args, wait_secs)
    }

    /// One ping to `to` (either family) from `netns` with `args`; true if
    /// it was answered within `wait_secs`.
    pub fn ping_to(&self, to: &str, netns: &Netns, args: &[&str], wait_secs: u32) -> bool {
        netns
            .command("ping")
            .args(["-c1", "-W", &wait_secs.to_string()])
            .args(args)
            .arg(to)
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    pub fn up_script(&self) -> PathBuf {
        self.dir.path().join("up.sh")
    }

    /// One `[[interface]]` for the near tunnel, with `extra` keys.
    pub fn interface(&self, name: &str, extra: &str) -> String {
        self.interface_with(&self.up_script(), name, extra)
    }

    /// As `interface`, dialed by up-now.sh, which does not wait for the
    /// wireguard-go of a tunnel just deleted.
    pub fn impatient_interface(&self, name: &str, extra: &str) -> String {
        self.interface_with(&self.dir.path().join("up-now.sh"), name, extra)
    }

    fn interface_with(&self, script: &Path, name: &str, extra: &str) -> String {
        format!(
            "[[interface]]\nname = \"{name}\"\nlink = \"{link}\"\nconnect = [\"{up}\"]\n\
             disconnect = [\"ip\", \"link\", \"del\", \"{link}\"]\nready = \"wireguard\"\n{extra}\n",
            link = self.link,
            up = script.display(),
        )
    }

    /// One `[[interface]]` dialed with `wg-quick up` (wireguard-go
    /// underneath) and hung up with `wg-quick down`; wg-quick adds its own
    /// routes for the peer's allowed IPs.
    pub fn wg_quick_interface(&self, name: &str, extra: &str) -> String {
        let conf = self.dir.path().join(format!("{}.conf", self.link));
        let env = "\"env\", \"WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go\", \
                   \"WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1\"";
        format!(
            "[[interface]]\nname = \"{name}\"\nlink = \"{link}\"\n\
             connect = [{env}, \"wg-quick\", \"up\", \"{conf}\"]\n\
             disconnect = [\"wg-quick\", \"down\", \"{conf}\"]\nready = \"wireguard\"\n{extra}\n",
            link = self.link,
            conf = conf.display(),
        )
    }

    /// One `[[interface]]` whose connect process is the connection (no
    /// disconnect command), with `extra` keys.
    pub fn supervised_interface(&self, name: &str, extra: &str) -> String {
        format!(
            "[[interface]]\nname = \"{name}\"\nlink = \"{link}\"\nconnect = [\"{up}\"]\nready = \"wireguard\"\n{extra}\n",
            link = self.link,
            up = self.dir.path().join("supervised.sh").display(),
        )
    }

    /// Starts the service with this configuration.
    pub fn start(&mut self, config: &str) {
        self.service = Some(Service::start(&self.router, Some(config), None));
    }

    pub fn service(&self) -> &Service {
        self.service.as_ref().expect("the service was started")
    }

    /// How many times up.sh has run.
    pub fn dials(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("dials")).map_or(0, |s| s.lines().count())
    }

    /// Makes up.sh wait `seconds` before it dials.
    pub fn slow_dials(&self, seconds: f32) {
        std::fs::write(self.dir.path().join("delay"), seconds.to_string()).unwrap();
    }

    /// The far end stops answering (it moves to another port), or answers
    /// again. The router's own links do not change.
    pub fn far_answers(&self, answers: bool) {
        self.pair.far_answers(&self.far, answers);
    }

    /// `ip -n ROUTER ARGS` output.
    pub fn router_ip(&self, args: &[&str]) -> String {
        self.router.ip_output(args).trim().to_owned()
    }

    /// Whether the near tunnel exists.
    pub fn link_exists(&self) -> bool {
        self.router.has_link(&self.link)
    }

    /// The router's route to the far LAN: its device, if there is one.
    pub fn route_device(&self) -> Option<String> {
        let routes = self.router_ip(&["route", "show", "192.168.20.0/24"]);
        let mut words = routes.split_whitespace();
        words.find(|w| *w == "dev")?;
        words.next().map(str::to_owned)
    }

    /// One ping from the router to the far LAN; true if it was answered.
    pub fn ping(&self, wait_secs: u32) -> bool {
        self.ping_from(&self.router, &[], wait_secs)
    }

    /// Processes whose command line names the near tunnel.
    pub fn tunnel_processes(&self) -> usize {
        stdout_of(tool("ps").args(["-eo", "args"]))
            .lines()
            .filter(|l| l.contains(&self.link) && !l.contains("ps -eo"))
            .count()
    }

    /// Waits until the near tunnel is gone.
    pub fn wait_link_gone(&self) {
        wait_until("the tunnel is gone", || !self.link_exists());
    }
}

impl Drop for WgLab {
    /// The service goes first: it may hold the tunnel up.
    fn drop(&mut self) {
        drop(self.service.take());
    }
}

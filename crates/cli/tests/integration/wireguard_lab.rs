//! The demand-dial lab: a router namespace (the service, dialing) and a
//! far namespace joined by a veth pair (10.1.0.1 - 10.1.0.2), with
//! wireguard-go on both sides. The far end listens with 10.9.0.2 on its
//! tunnel and 192.168.20.1 behind it; the near end's tunnel is made by the
//! connect script the service runs (`up.sh`, 10.9.0.1) and deleted by its
//! disconnect command. Link names carry a per-lab tag: wireguard-go's
//! API sockets (/var/run/wireguard) are shared by every namespace.

use crate::support::{wait_until, Netns, Service};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub const FAR_LAN: &str = "192.168.20.1";
const PORT: &str = "51820";

pub struct WgLab {
    pub service: Option<Service>,
    pub router: Netns,
    pub far: Netns,
    pub dir: tempfile::TempDir,
    /// The near tunnel, made by up.sh.
    pub link: String,
    far_link: String,
}

fn output(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(out.status.success(), "{program} {args:?} failed");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

impl WgLab {
    /// The lab, without the service yet.
    pub fn new() -> WgLab {
        crate::support::require_root();
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let tag = format!(
            "{}{}",
            std::process::id() % 10_000,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let (link, far_link) = (format!("wgn{tag}"), format!("wgf{tag}"));
        let router = Netns::new("wr");
        let far = Netns::new("wf");
        router.ip(&[
            "link", "add", "vnear", "type", "veth", "peer", "name", "vfar", "netns", &far.name,
        ]);
        router.ip(&["addr", "add", "10.1.0.1/24", "dev", "vnear"]);
        router.ip(&["link", "set", "vnear", "up"]);
        router.ip(&["link", "set", "lo", "up"]);
        far.ip(&["addr", "add", "10.1.0.2/24", "dev", "vfar"]);
        far.ip(&["link", "set", "vfar", "up"]);
        far.ip(&["link", "set", "lo", "up"]);
        far.ip(&["addr", "add", &format!("{FAR_LAN}/32"), "dev", "lo"]);

        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let key = |name: &str| {
            let private = output("wg", &["genkey"]);
            let path = dir.path().join(format!("{name}.key"));
            std::fs::write(&path, &private).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            let mut pubkey = Command::new("wg")
                .arg("pubkey")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            pubkey
                .stdin
                .take()
                .unwrap()
                .write_all(private.as_bytes())
                .unwrap();
            let public = String::from_utf8(pubkey.wait_with_output().unwrap().stdout).unwrap();
            (path, public.trim().to_owned())
        };
        let (near_key, near_pub) = key("near");
        let (far_key, far_pub) = key("far");

        let ns = |netns: &Netns, args: &[&str]| {
            let mut all = vec!["netns", "exec", netns.name.as_str()];
            all.extend_from_slice(args);
            let status = Command::new("ip")
                .args(&all)
                .env("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD", "1")
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "{args:?} in {}", netns.name);
        };
        ns(&far, &["wireguard-go", &far_link]);
        ns(
            &far,
            &[
                "wg",
                "set",
                &far_link,
                "private-key",
                far_key.to_str().unwrap(),
                "listen-port",
                PORT,
                "peer",
                &near_pub,
                "allowed-ips",
                "10.9.0.1/32",
            ],
        );
        far.ip(&["addr", "add", "10.9.0.2/24", "dev", &far_link]);
        far.ip(&["link", "set", &far_link, "up"]);

        let d = dir.path().display();
        // A wireguard-go whose tunnel was just deleted takes a moment to
        // exit and free its API socket; a new one must wait for that.
        let wait_for_old = format!(
            "for i in $(seq 100); do [ -S /var/run/wireguard/{link}.sock ] || break; sleep 0.02; done\n"
        );
        let up = format!(
            "#!/bin/sh\nset -e\n\
             export WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1\n\
             if [ -f {d}/delay ]; then sleep $(cat {d}/delay); fi\n\
             echo dial >> {d}/dials\n\
             {wait_for_old}\
             wireguard-go {link} 2>/dev/null\n\
             wg set {link} private-key {key} peer {far_pub} endpoint 10.1.0.2:{PORT} allowed-ips 10.9.0.2/32,192.168.20.0/24\n\
             ip addr add 10.9.0.1/24 dev {link}\n\
             ip link set {link} up\n",
            key = near_key.display(),
        );
        // Supervised: the script is the connection, with wireguard-go in
        // the foreground under it; SIGTERM ends both.
        let supervised = format!(
            "#!/bin/sh\n\
             export WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1\n\
             echo dial >> {d}/dials\n\
             {wait_for_old}\
             wireguard-go -f {link} >/dev/null 2>&1 &\n\
             pid=$!\n\
             trap 'kill $pid; wait $pid; exit 0' TERM\n\
             while [ ! -S /var/run/wireguard/{link}.sock ]; do sleep 0.01; done\n\
             wg set {link} private-key {key} peer {far_pub} endpoint 10.1.0.2:{PORT} allowed-ips 10.9.0.2/32,192.168.20.0/24\n\
             ip addr add 10.9.0.1/24 dev {link}\n\
             ip link set {link} up\n\
             wait $pid\n",
            key = near_key.display(),
        );
        // For wg-quick: the same tunnel as a configuration file named after
        // the link.
        let private = std::fs::read_to_string(&near_key).unwrap();
        let quick = format!(
            "[Interface]\nPrivateKey = {}\nAddress = 10.9.0.1/24\n\n\
             [Peer]\nPublicKey = {far_pub}\nEndpoint = 10.1.0.2:{PORT}\n\
             AllowedIPs = 10.9.0.2/32, 192.168.20.0/24\n",
            private.trim()
        );
        let quick_path = dir.path().join(format!("{link}.conf"));
        std::fs::write(&quick_path, quick).unwrap();
        std::fs::set_permissions(&quick_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        // up-now.sh: the same without waiting for an old wireguard-go, as a
        // user's script may well be; ddm's hang-up waits instead.
        let up_now = up.replace(&wait_for_old, "");
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
            router,
            far,
            dir,
            link,
            far_link,
        }
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
        let port = if answers { PORT } else { "51821" };
        let status = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.far.name,
                "wg",
                "set",
                &self.far_link,
                "listen-port",
                port,
            ])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// `ip -n ROUTER ARGS` output.
    pub fn router_ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.router.name.as_str()];
        all.extend_from_slice(args);
        output("ip", &all)
    }

    /// Whether the near tunnel exists.
    pub fn link_exists(&self) -> bool {
        Command::new("ip")
            .args(["-n", &self.router.name, "link", "show", &self.link])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success()
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
        self.router
            .command("ping")
            .args(["-c", "1", "-W"])
            .arg(wait_secs.to_string())
            .arg(FAR_LAN)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap()
            .success()
    }

    /// Processes whose command line names the near tunnel.
    pub fn tunnel_processes(&self) -> usize {
        output("ps", &["-eo", "args"])
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
    fn drop(&mut self) {
        drop(self.service.take());
        let _ = Command::new("ip")
            .args(["-n", &self.router.name, "link", "del", &self.link])
            .status();
        let _ = Command::new("ip")
            .args(["-n", &self.far.name, "link", "del", &self.far_link])
            .status();
    }
}

//! A real NATS JetStream broker (`ddm_lab::nats`) for the export tests:
//! in a namespace of its own, with TLS and certificates from
//! `ddm_test_ca`: the broker's, one client certificate per router (r1, r2,
//! r3) and one for the fleet watcher, each mapped to a user by its subject
//! (`verify_and_map`) and allowed to publish only under its own subject.

use crate::support::*;
use ddm_lab::nats::{NatsServer, Tls};
use std::path::PathBuf;

/// The routers the broker knows.
pub const ROUTERS: [&str; 3] = ["r1", "r2", "r3"];

pub struct Broker {
    server: NatsServer,
    tls: Tls,
    pub netns: Netns,
}

impl Broker {
    /// Issues the certificates and starts the broker.
    pub fn start() -> Broker {
        require_root();
        let netns = Netns::new("b");
        let addresses: Vec<String> = (1..=ROUTERS.len())
            .map(|n| format!("10.77.{n}.1"))
            .collect();
        let addresses: Vec<&str> = addresses.iter().map(String::as_str).collect();
        let clients: Vec<&str> = ROUTERS.iter().copied().chain(["watcher"]).collect();
        let tls = Tls::new(&addresses, &clients);
        let users: String = ROUTERS
            .iter()
            .map(|r| {
                format!(
                    "    {{ user: \"CN={r}\", permissions: {{ publish: [\"ddm.{r}.events.>\", \"$JS.API.STREAM.INFO.DDM\", \"$JS.API.STREAM.CREATE.DDM\", \"$JS.API.STREAM.MSG.GET.DDM\"], subscribe: [\"_INBOX.>\"] }} }}\n"
                )
            })
            .collect();
        let config = format!(
            "host: 0.0.0.0\n{}\
             authorization {{ users = [\n{users}    {{ user: \"CN=watcher\", permissions: {{ publish: [\"$JS.API.>\", \"$JS.ACK.>\"], subscribe: [\"_INBOX.>\"] }} }}\n] }}\n",
            tls.block(),
        );
        let server = NatsServer::start(&netns, &config);
        Broker { server, tls, netns }
    }

    /// SIGKILL: no goodbye to anyone.
    pub fn kill(&mut self) {
        self.server.kill();
    }

    /// Starts again, on the same port and store.
    pub fn restart(&mut self) {
        self.server.restart();
    }

    /// `name`.pem or `name`.key.
    pub fn file(&self, name: &str) -> PathBuf {
        self.tls.file(name)
    }

    /// The CA that signed the broker's and the clients' certificates.
    pub fn ca_file(&self) -> PathBuf {
        self.tls.ca_file()
    }

    /// Joins router namespace `router` (the `n`th, from 1) to the broker
    /// with a veth pair (`nats0` on its side, left out of its interfaces
    /// by the configuration this returns), and returns the `[export]`
    /// table that publishes as `router_id` with `cert`'s certificate.
    pub fn join(&self, router: &Netns, n: usize, router_id: &str, cert: &str) -> String {
        let peer = format!("to{n}");
        router.veth_to("nats0", &peer, &self.netns);
        router.ip(&["addr", "add", &format!("10.77.{n}.2/24"), "dev", "nats0"]);
        router.ip(&["link", "set", "nats0", "up"]);
        self.netns
            .ip(&["addr", "add", &format!("10.77.{n}.1/24"), "dev", &peer]);
        self.netns.ip(&["link", "set", &peer, "up"]);
        format!(
            "[links]\nexclude = [\"nats0\"]\n[export]\nservers = [\"tls://10.77.{n}.1:{port}\"]\n\
             router_id = \"{router_id}\"\nca = \"{ca}\"\ncertificate = \"{cert_file}\"\nkey = \"{key}\"\n\
             ack_timeout_ms = 1000\n",
            port = self.server.port,
            ca = self.ca_file().display(),
            cert_file = self.file(&format!("{cert}.pem")).display(),
            key = self.file(&format!("{cert}.key")).display(),
        )
    }

    /// How many messages the stream holds, asked from the broker's
    /// namespace with the watcher's certificate.
    pub fn stored(&self) -> u64 {
        let broker = ddmd::record::export::Broker {
            servers: vec![format!("tls://10.77.1.1:{}", self.server.port)],
            ca: Some(self.ca_file()),
            certificate: Some(self.file("watcher.pem")),
            key: Some(self.file("watcher.key")),
        };
        self.netns
            .enter(|| ddm_fleet::stored(&broker, "DDM"))
            .expect("the stream's state")
    }

    /// Every entry in the stream, read by `ddm watch --fleet` from the
    /// broker's namespace with the watcher's certificate.
    pub fn fleet(&self, durable: &str) -> Vec<serde_json::Value> {
        let out = self
            .netns
            .command(DDM)
            .args(["watch", "--fleet", "--json"])
            .args(["--nats", &format!("tls://10.77.1.1:{}", self.server.port)])
            .args(["--durable", durable, "--timeout", "2"])
            .arg("--ca")
            .arg(self.ca_file())
            .arg("--cert")
            .arg(self.file("watcher.pem"))
            .arg("--key")
            .arg(self.file("watcher.key"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("no event within the timeout"),
            "the watch ends by its timeout: {stderr}"
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

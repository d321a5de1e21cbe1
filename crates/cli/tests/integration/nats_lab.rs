//! A real NATS JetStream broker (Debian's nats-server) for the export
//! tests: in a namespace of its own, on a free port (`port: -1`, read from
//! its log), with TLS and certificates generated here (openssl): one CA,
//! the broker's, one client certificate per router (r1, r2, r3) and one
//! for the fleet watcher, each mapped to a user by its subject
//! (`verify_and_map`) and allowed to publish only under its own subject.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The routers the broker knows.
pub const ROUTERS: [&str; 3] = ["r1", "r2", "r3"];

pub struct Broker {
    pub netns: Netns,
    dir: tempfile::TempDir,
    child: Option<Child>,
    pub port: u16,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `openssl req` making a new EC key `key` and `out` (a request, or with
/// `-x509` among `extra` a self-signed certificate) for `subject`.
fn new_key(dir: &Path, extra: &[&str], key: &str, out: &str, subject: &str) {
    let mut args = vec!["req"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        key,
        "-out",
        out,
        "-subj",
        subject,
    ]);
    openssl(dir, &args);
}

/// A key and a certificate signed by the CA in `dir`.
fn issue(dir: &Path, name: &str, subject: &str, extensions: &str) {
    std::fs::write(dir.join(format!("{name}.ext")), extensions).unwrap();
    let (key, csr, pem, ext) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.ext"),
    );
    new_key(dir, &[], &key, &csr, subject);
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &pem,
            "-extfile",
            &ext,
        ],
    );
}

impl Broker {
    /// Generates the certificates and starts the broker.
    pub fn start() -> Broker {
        require_root();
        let netns = Netns::new("b");
        netns.ip(&["link", "set", "lo", "up"]);
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        new_key(
            d,
            &["-x509", "-days", "2"],
            "ca.key",
            "ca.pem",
            "/CN=ddm test CA",
        );
        let addresses: Vec<String> = (1..=ROUTERS.len())
            .map(|n| format!("IP:10.77.{n}.1"))
            .collect();
        issue(
            d,
            "broker",
            "/CN=broker",
            &format!(
                "subjectAltName={}\nextendedKeyUsage=serverAuth\n",
                addresses.join(",")
            ),
        );
        for client in ROUTERS.iter().chain(&["watcher"]) {
            issue(
                d,
                client,
                &format!("/CN={client}"),
                "extendedKeyUsage=clientAuth\n",
            );
        }
        let users: String = ROUTERS
            .iter()
            .map(|r| {
                format!(
                    "    {{ user: \"CN={r}\", permissions: {{ publish: [\"ddm.{r}.events.>\", \"$JS.API.STREAM.INFO.DDM\", \"$JS.API.STREAM.CREATE.DDM\"], subscribe: [\"_INBOX.>\"] }} }}\n"
                )
            })
            .collect();
        let config = format!(
            "host: 0.0.0.0\nport: -1\njetstream {{ store_dir: \"{js}\" }}\n\
             tls {{ cert_file: \"{d}/broker.pem\", key_file: \"{d}/broker.key\", ca_file: \"{d}/ca.pem\", verify_and_map: true }}\n\
             authorization {{ users = [\n{users}    {{ user: \"CN=watcher\", permissions: {{ publish: [\"$JS.API.>\", \"$JS.ACK.>\"], subscribe: [\"_INBOX.>\"] }} }}\n] }}\n",
            js = d.join("js").display(),
            d = d.display(),
        );
        std::fs::write(d.join("nats.conf"), config).unwrap();
        let mut broker = Broker {
            netns,
            dir,
            child: None,
            port: 0,
        };
        broker.run();
        broker
    }

    fn run(&mut self) {
        let log = self.dir.path().join("nats.log");
        let _ = std::fs::remove_file(&log);
        let mut command = self.netns.command("nats-server");
        command.arg("-c");
        command.arg(self.dir.path().join("nats.conf"));
        if self.port != 0 {
            command.args(["-p", &self.port.to_string()]);
        }
        command
            .arg("-l")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.child = Some(command.spawn().unwrap());
        let mut port = None;
        wait_until("the broker listens", || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            port = text
                .lines()
                .find(|l| l.contains("Listening for client connections on"))
                .and_then(|l| l.rsplit(':').next()?.trim().parse().ok());
            port.is_some() && text.contains("Server is ready")
        });
        self.port = port.unwrap();
    }

    /// SIGKILL: no goodbye to anyone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again, on the same port and store.
    pub fn restart(&mut self) {
        self.kill();
        self.run();
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
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
            port = self.port,
            ca = self.file("ca.pem").display(),
            cert_file = self.file(&format!("{cert}.pem")).display(),
            key = self.file(&format!("{cert}.key")).display(),
        )
    }

    /// Every entry in the stream, read by `ddm watch --fleet` from the
    /// broker's namespace with the watcher's certificate.
    pub fn fleet(&self, durable: &str) -> Vec<serde_json::Value> {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.netns.name,
                DDM,
                "watch",
                "--fleet",
                "--json",
            ])
            .args(["--nats", &format!("tls://10.77.1.1:{}", self.port)])
            .args(["--durable", durable, "--timeout", "2"])
            .arg("--ca")
            .arg(self.file("ca.pem"))
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

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

//! A real NATS JetStream broker (Debian's nats-server) in a namespace, on
//! a port of its choosing (`port: -1`, read from its log), with its store
//! and log in a directory of its own. What it serves (TLS, users) is the
//! caller's configuration; [`Tls`] issues certificates for it from
//! `ddm_test_ca`.

use crate::netns::Netns;
use crate::process::Process;
use crate::tools::require;
use crate::wait::wait_until;
use ddm_test_ca::{Ca, Flaw};
use std::path::{Path, PathBuf};
use std::process::Stdio;

pub struct NatsServer {
    dir: tempfile::TempDir,
    netns_name: String,
    process: Option<Process>,
    pub port: u16,
}

impl NatsServer {
    /// Starts a broker in `netns` with JetStream and `config` (the
    /// configuration file's text, without `port` and `jetstream`, which
    /// come from here), and waits until it serves.
    pub fn start(netns: &Netns, config: &str) -> NatsServer {
        require("nats-server");
        netns.ip(&["link", "set", "lo", "up"]);
        let dir = tempfile::Builder::new()
            .prefix("ddm-nats-")
            .tempdir()
            .unwrap();
        let text = format!(
            "port: -1\njetstream {{ store_dir: \"{}\" }}\n{config}",
            dir.path().join("js").display()
        );
        std::fs::write(dir.path().join("nats.conf"), text).unwrap();
        let mut server = NatsServer {
            dir,
            netns_name: netns.name.clone(),
            process: None,
            port: 0,
        };
        server.run();
        server
    }

    pub fn directory(&self) -> &Path {
        self.dir.path()
    }

    fn run(&mut self) {
        let log = self.dir.path().join("nats.log");
        let _ = std::fs::remove_file(&log);
        let mut command = std::process::Command::new("ip");
        command
            .args(["netns", "exec", &self.netns_name, "nats-server", "-c"])
            .arg(self.dir.path().join("nats.conf"));
        if self.port != 0 {
            command.args(["-p", &self.port.to_string()]);
        }
        command
            .arg("-l")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = Process(command.spawn().unwrap());
        let mut port = None;
        wait_until("the broker listens", || {
            if let Ok(Some(status)) = child.0.try_wait() {
                panic!(
                    "nats-server exited ({status}):\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            port = text
                .lines()
                .find(|l| l.contains("Listening for client connections on"))
                .and_then(|l| l.rsplit(':').next()?.trim().parse().ok());
            port.is_some() && text.contains("Server is ready")
        });
        self.process = Some(child);
        self.port = port.unwrap();
    }

    /// SIGKILL: no goodbye to anyone.
    pub fn kill(&mut self) {
        self.process = None;
    }

    /// Starts again, on the same port and store.
    pub fn restart(&mut self) {
        self.kill();
        self.run();
    }
}

/// Certificates for a broker with TLS: its own for `addresses`, and one
/// client certificate per name, each with its name as the subject's CN
/// (what `verify_and_map` maps to a user), in one directory.
pub struct Tls {
    ca: Ca,
    _dir: tempfile::TempDir,
}

impl Tls {
    pub fn new(addresses: &[&str], clients: &[&str]) -> Tls {
        let dir = tempfile::Builder::new()
            .prefix("ddm-nats-tls-")
            .tempdir()
            .unwrap();
        let ca = Ca::new(dir.path(), "nats");
        ca.server("broker", addresses);
        for client in clients {
            ca.client(client, client, None, Flaw::None);
        }
        Tls { ca, _dir: dir }
    }

    pub fn ca_file(&self) -> PathBuf {
        self.ca.ca_file()
    }

    /// `name`.pem or `name`.key.
    pub fn file(&self, name: &str) -> PathBuf {
        self.ca.dir.join(name)
    }

    /// The broker's `tls` block, requiring client certificates.
    pub fn block(&self) -> String {
        format!(
            "tls {{ cert_file: \"{}\", key_file: \"{}\", ca_file: \"{}\", verify_and_map: true }}\n",
            self.file("broker.pem").display(),
            self.file("broker.key").display(),
            self.ca_file().display(),
        )
    }
}

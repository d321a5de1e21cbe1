//! The test lab: private network namespaces, veth pairs, and the real
//! `ddm serve` binary running inside.
//!
//! Each lab has two namespaces: the router's, where the service runs and
//! sees its links, and the far end's, which holds each veth's peer (as if
//! the cable went to another host). Flipping a router-side link therefore
//! changes exactly one interface. Everything is removed on drop, also when
//! a test fails.

use mprapi::{ConnectionState, Event, Server};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a test waits for something that should happen.
pub const PATIENCE: Duration = Duration::from_secs(10);
/// How long a test waits to be sure something does not happen.
pub const QUIET: Duration = Duration::from_millis(500);

pub const DDM: &str = env!("CARGO_BIN_EXE_ddm");
/// The unprivileged user and group the access tests run clients as.
pub const NOBODY: u32 = 65534;
pub const NOGROUP: u32 = 65534;

/// Fails the test, loudly, when not root: these tests need namespaces.
pub fn require_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "the integration tests create network namespaces and must run as root (sudo cargo test)"
    );
    ddmd::raise_descriptor_limit();
}

/// What `command` prints, failing the test (with its stderr) if it fails.
pub fn stdout_of(command: &mut Command) -> String {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command, failing the test if it fails.
pub fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(role: &str) -> Netns {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "ddmt-{}-{}-{role}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run("ip", &["netns", "add", &name]);
        Netns { name }
    }

    /// `ip -n NS ARGS...`
    /// `program`, to be run inside this namespace (`ip netns exec`).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        run("ip", &all);
    }

    /// Runs `f` with this thread in the namespace (sockets it opens stay
    /// in it), then back.
    pub fn enter<T>(&self, f: impl FnOnce() -> T) -> T {
        use nix::sched::{setns, CloneFlags};
        let home = std::fs::File::open("/proc/thread-self/ns/net").unwrap();
        let target = std::fs::File::open(format!("/run/netns/{}", self.name)).unwrap();
        setns(&target, CloneFlags::CLONE_NEWNET).unwrap();
        let result = f();
        setns(&home, CloneFlags::CLONE_NEWNET).unwrap();
        result
    }

    /// A veth pair: `name` here, `peer` in `other`.
    pub fn veth_to(&self, name: &str, peer: &str, other: &Netns) {
        self.ip(&[
            "link",
            "add",
            name,
            "type",
            "veth",
            "peer",
            "name",
            peer,
            "netns",
            &other.name,
        ]);
    }

    /// Many `ip` commands in one process (`ip -batch`), for bursts.
    pub fn ip_batch(&self, lines: &str) {
        use std::io::Write;
        let mut child = Command::new("ip")
            .args(["-n", &self.name, "-batch", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(lines.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "ip -batch failed");
    }
}

impl Drop for Netns {
    /// Kills what still runs in the namespace (a wireguard-go keeps it,
    /// and itself, alive), then deletes it.
    fn drop(&mut self) {
        let script = format!(
            "ip netns pids {0} | xargs -r kill -9; ip netns del {0}",
            self.name
        );
        let _ = Command::new("sh").args(["-c", &script]).status();
    }
}

/// The service, running in its namespace, with its own socket and log.
pub struct Service {
    child: Option<Child>,
    /// How it was started, to start it again on the same socket.
    command: Command,
    dir: tempfile::TempDir,
    pub socket: PathBuf,
}

impl Service {
    /// Starts `ddm serve` in `netns` with an optional TOML config, and
    /// waits until it answers.
    /// Starts the service with at most `descriptors` open files, if given.
    pub fn start(netns: &Netns, config: Option<&str>, descriptors: Option<u32>) -> Service {
        let dir = tempfile::tempdir().unwrap();
        // Readable by the unprivileged clients of the access tests.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let socket = dir.path().join("ddm.sock");
        let mut command = Command::new("prlimit");
        if let Some(limit) = descriptors {
            command.arg(format!("--nofile={limit}:{limit}"));
        }
        command
            .args([
                "--",
                "ip",
                "netns",
                "exec",
                &netns.name,
                DDM,
                "serve",
                "--socket",
            ])
            .arg(&socket);
        // Each service keeps its journal in its own directory.
        command.env("STATE_DIRECTORY", dir.path().join("state"));
        if let Some(config) = config {
            let path = dir.path().join("ddm.toml");
            std::fs::write(&path, config).unwrap();
            command.arg("--config").arg(path);
        }
        let log = std::fs::File::create(dir.path().join("ddm.log")).unwrap();
        command.stdout(Stdio::null()).stderr(log);
        let mut service = Service {
            child: None,
            command,
            dir,
            socket,
        };
        service.restart();
        service
    }

    /// Stops the service if it runs (SIGKILL) and starts it again, on the
    /// same socket, with the same configuration.
    pub fn restart(&mut self) {
        self.kill();
        self.child = Some(self.command.spawn().unwrap());
        wait_until("the service answers", || {
            Server::connect_socket(&self.socket).is_ok()
        });
    }

    /// Starts it again, reading the configuration file at `config_path`
    /// from now on (written after the start, when it names things the lab
    /// made).
    pub fn restart_with_config(&mut self) {
        let config = self.config_path();
        self.command.arg("--config").arg(config);
        self.restart();
    }

    pub fn connect(&self) -> Server {
        Server::connect_socket(&self.socket).expect("connect to the service")
    }

    /// The service's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap()
    }

    /// How many descriptors the service has open.
    pub fn open_descriptors(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// The configuration file it was started with (`ddm reload` reads it
    /// again).
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("ddm.toml")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ddm.log")).unwrap_or_default()
    }

    /// Kills the service with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends a signal and waits for the service to exit.
    pub fn stop_with(&mut self, signal: nix::sys::signal::Signal) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
        child.wait().unwrap()
    }

    /// Waits until the client process `pid` has a session with at least
    /// one registration.
    pub fn wait_for_registration(&self, pid: u32) {
        let admin = self.connect();
        wait_until(&format!("process {pid} has registered"), || {
            admin
                .sessions()
                .unwrap()
                .iter()
                .any(|s| s.pid == pid as i32 && s.registrations > 0)
        });
    }

    /// A `ddm` client command run as nobody:nogroup, and what it did.
    pub fn ddm_as_nobody(&self, args: &[&str]) -> std::process::Output {
        use std::os::unix::process::CommandExt;
        self.ddm(args).uid(NOBODY).gid(NOGROUP).output().unwrap()
    }

    /// A `ddm` client command against this service.
    pub fn ddm(&self, args: &[&str]) -> Command {
        let mut command = Command::new(DDM);
        command.args(args).arg("--socket").arg(&self.socket);
        command
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A router namespace with the service, and a far end for veth peers.
pub struct Lab {
    pub service: Service,
    pub router: Netns,
    pub far: Netns,
}

impl Lab {
    pub fn new() -> Lab {
        Self::with_config(None)
    }

    pub fn with_config(config: Option<&str>) -> Lab {
        Self::build(config, None)
    }

    /// A lab whose service may open at most `descriptors` files.
    pub fn with_descriptor_limit(descriptors: u32) -> Lab {
        Self::build(None, Some(descriptors))
    }

    fn build(config: Option<&str>, descriptors: Option<u32>) -> Lab {
        require_root();
        let router = Netns::new("r");
        let far = Netns::new("f");
        // Peers whose index differs from their router side make carrier
        // changes urgent linkwatch events; with equal indexes the kernel
        // may hold carrier news back for up to a second.
        far.ip(&[
            "link", "add", "spacer0", "type", "veth", "peer", "name", "spacer1",
        ]);
        let service = Service::start(&router, config, descriptors);
        Lab {
            service,
            router,
            far,
        }
    }

    /// Adds veth `name` (router side, down) whose peer is up at the far end.
    pub fn add_link(&self, name: &str) {
        let peer = format!("{name}p");
        self.router.veth_to(name, &peer, &self.far);
        self.far.ip(&["link", "set", &peer, "up"]);
    }

    /// Adds veth `name`, brings it up and waits until it is connected.
    pub fn add_connected_link(&self, name: &str) {
        self.add_link(name);
        self.set_up(name, true);
        self.wait_for_state(name, ConnectionState::Connected);
    }

    /// What the service reports of interface `name`, if it has one.
    pub fn interface(&self, name: &str) -> Option<mprapi::InterfaceInfo> {
        let interfaces = self.service.connect().interfaces().unwrap();
        interfaces.into_iter().find(|i| i.name == name)
    }

    /// The state the service reports for `name`, None if it has no such
    /// interface.
    pub fn state_of(&self, name: &str) -> Option<ConnectionState> {
        self.interface(name).map(|i| i.state)
    }

    /// Waits until the service reports `name` in `state`.
    pub fn wait_for_state(&self, name: &str, state: ConnectionState) {
        wait_until(&format!("{name} is {}", state.name()), || {
            self.state_of(name) == Some(state)
        });
    }

    /// Waits until the service lists `name`, in whatever state.
    pub fn wait_listed(&self, name: &str) {
        wait_until(&format!("{name} is listed"), || {
            self.state_of(name).is_some()
        });
    }

    pub fn set_up(&self, name: &str, up: bool) {
        self.router
            .ip(&["link", "set", name, if up { "up" } else { "down" }]);
    }

    /// `count` state flips of `name`, alternately up and down, in one burst.
    pub fn flap(&self, name: &str, count: usize) {
        let lines: String = (0..count)
            .map(|i| {
                format!(
                    "link set {name} {}\n",
                    if i % 2 == 0 { "up" } else { "down" }
                )
            })
            .collect();
        self.router.ip_batch(&lines);
    }
}

/// Polls `condition` until it holds, failing the test after [`PATIENCE`].
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for `event`, failing the test if it is not signaled in time.
pub fn expect_signal(event: &Event, what: &str) {
    assert!(event.wait(Some(PATIENCE)), "event not signaled: {what}");
}

/// Asserts `event` stays unsignaled for [`QUIET`].
pub fn expect_silence(event: &Event, what: &str) {
    assert!(
        !event.wait(Some(QUIET)),
        "event signaled, but should not be: {what}"
    );
}

//! The service, running in a namespace with its own socket, journal and
//! log, as `ddm serve` runs it.
//!
//! The integration tests start the `ddm` binary cargo built beside them;
//! the benchmark harness, which has the service built in, starts itself
//! ([`set_program`]). `DDM_LAB_KEEP=1` keeps each service's directory (its
//! log, its journal) for reading after a run.

use crate::netns::Netns;
use crate::tools::tool;
use crate::wait::wait_until;
use mprapi::Server;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

/// The unprivileged user and group clients run as in the access tests.
pub const NOBODY: u32 = 65534;
pub const NOGROUP: u32 = 65534;

/// How the lab starts the service: `path`, then `leading` arguments, then
/// `--socket PATH [--config FILE]`, as `ddm serve` takes them.
#[derive(Debug, Clone)]
pub struct Program {
    pub path: PathBuf,
    pub leading: Vec<String>,
}

static PROGRAM: OnceLock<Program> = OnceLock::new();

/// Starts the service with `program` from now on (once, before any lab).
pub fn set_program(program: Program) {
    let _ = PROGRAM.set(program);
}

/// The `ddm` binary: `$DDM_BIN`, else the one cargo built beside the
/// running test (`target/<profile>/ddm`, the test being in `deps/`).
pub fn ddm_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("DDM_BIN") {
        return PathBuf::from(path);
    }
    let me = std::env::current_exe().expect("own path");
    let profile = me
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    let ddm = profile.join("ddm");
    assert!(
        ddm.exists(),
        "{} is not built: cargo test builds it with the integration tests",
        ddm.display()
    );
    ddm
}

fn program() -> &'static Program {
    PROGRAM.get_or_init(|| Program {
        path: ddm_binary(),
        leading: vec!["serve".into()],
    })
}

pub struct Service {
    child: Option<Child>,
    /// How it was started, to start it again on the same socket.
    command: Command,
    dir: Option<tempfile::TempDir>,
    pub socket: PathBuf,
    /// The read end of the log's pipe, kept open and never read (see
    /// [`Service::restart_with_unread_log`]).
    _unread_log: Option<std::io::PipeReader>,
}

impl Service {
    /// Starts the service in `netns` with an optional TOML configuration,
    /// at most `descriptors` open files if given, and waits until it
    /// answers.
    pub fn start(netns: &Netns, config: Option<&str>, descriptors: Option<u32>) -> Service {
        let dir = tempfile::Builder::new()
            .prefix("ddm-lab-")
            .tempdir()
            .unwrap();
        // Readable by the unprivileged clients of the access tests.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let socket = dir.path().join("ddm.sock");
        let program = program();
        let mut command = tool("prlimit");
        if let Some(limit) = descriptors {
            command.arg(format!("--nofile={limit}:{limit}"));
        }
        command
            .args(["--", "ip", "netns", "exec", &netns.name])
            .arg(&program.path)
            .args(&program.leading)
            .arg("--socket")
            .arg(&socket);
        // Each service keeps its journal in its own directory.
        command.env("STATE_DIRECTORY", dir.path().join("state"));
        if let Some(config) = config {
            let path = dir.path().join("ddm.toml");
            std::fs::write(&path, config).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            command.arg("--config").arg(path);
        }
        let log = std::fs::File::create(dir.path().join("ddm.log")).unwrap();
        command.stdout(Stdio::null()).stderr(log);
        let mut service = Service {
            child: None,
            command,
            dir: Some(dir),
            socket,
            _unread_log: None,
        };
        service.restart();
        service
    }

    fn dir(&self) -> &Path {
        self.dir.as_ref().expect("the directory").path()
    }

    /// Stops the service if it runs (SIGKILL) and starts it again, on the
    /// same socket, with the same configuration.
    pub fn restart(&mut self) {
        self.kill();
        self.child = Some(self.command.spawn().unwrap());
        let socket = self.socket.clone();
        wait_until("the service answers", || {
            self.exited_early();
            Server::connect_socket(&socket).is_ok()
        });
    }

    /// Fails the test with the service's log if it exited while starting.
    fn exited_early(&mut self) {
        if let Some(status) = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            panic!(
                "the service exited ({status}) while starting:\n{}",
                self.log()
            );
        }
    }

    /// Starts it again, reading the configuration file at `config_path`
    /// from now on (written after the start, when it names things the lab
    /// made).
    pub fn restart_with_config(&mut self) {
        let config = self.config_path();
        self.command.arg("--config").arg(config);
        self.restart();
    }

    /// Starts it again with its log going into a pipe that nobody reads:
    /// once the pipe is full, a write to it waits for ever.
    pub fn restart_with_unread_log(&mut self) {
        let (read, write) = std::io::pipe().unwrap();
        self.command.stderr(write);
        self._unread_log = Some(read);
        self.restart();
    }

    pub fn connect(&self) -> Server {
        Server::connect_socket(&self.socket).expect("connect to the service")
    }

    /// A session with one auto-reset event registered on it.
    pub fn registered_session(&self) -> (Server, mprapi::Event) {
        let server = self.connect();
        let event = mprapi::Event::auto().expect("eventfd");
        server
            .register_connection_notification(&event)
            .expect("register");
        (server, event)
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("the service runs").id() as i32
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

    /// CPU time the service has used (user and system).
    pub fn cpu(&self) -> std::time::Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .unwrap_or(100) as u64;
        std::time::Duration::from_micros(ticks * 1_000_000 / hz)
    }

    /// How many descriptors the service has open.
    pub fn open_descriptors(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    /// Where it keeps its journal (`STATE_DIRECTORY`).
    pub fn state_directory(&self) -> PathBuf {
        self.dir().join("state")
    }

    /// The configuration file it was started with (`ddm reload` reads it
    /// again).
    pub fn config_path(&self) -> PathBuf {
        self.dir().join("ddm.toml")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("ddm.log")).unwrap_or_default()
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
        let mut child = self.child.take().expect("the service runs");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
        child.wait().unwrap()
    }

    /// Stops the service as systemd does (its default
    /// `KillMode=control-group`): SIGTERM to the service and to every
    /// process under it at once (its launcher, the commands running), then
    /// waits for the service.
    pub fn stop_as_systemd_does(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("the service runs");
        let table: Vec<(i32, i32)> =
            crate::tools::stdout_of(tool("ps").args(["-e", "-o", "pid=,ppid="]))
                .lines()
                .filter_map(|line| {
                    let mut numbers = line.split_whitespace().map(str::parse::<i32>);
                    Some((numbers.next()?.ok()?, numbers.next()?.ok()?))
                })
                .collect();
        let mut unit = vec![child.id() as i32];
        let mut found = 0;
        while found < unit.len() {
            let parent = unit[found];
            unit.extend(
                table
                    .iter()
                    .filter(|(_, ppid)| *ppid == parent)
                    .map(|(pid, _)| *pid),
            );
            found += 1;
        }
        for pid in unit {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
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

    /// A `ddm` client command against this service.
    pub fn ddm(&self, args: &[&str]) -> Command {
        let mut command = Command::new(ddm_binary());
        command.args(args).arg("--socket").arg(&self.socket);
        command
    }

    /// A `ddm` client command run as nobody:nogroup, and what it did.
    pub fn ddm_as_nobody(&self, args: &[&str]) -> Output {
        use std::os::unix::process::CommandExt;
        self.ddm(args).uid(NOBODY).gid(NOGROUP).output().unwrap()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
        if std::env::var_os("DDM_LAB_KEEP").is_some() {
            if let Some(dir) = self.dir.take() {
                eprintln!("kept {}", dir.keep().display());
            }
        }
    }
}

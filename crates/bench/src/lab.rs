//! The bench's own test hosts: a router namespace with one veth whose peer
//! is up in a far namespace, the real service running in the router
//! namespace, and a private dbus-daemon. Everything it starts is stopped
//! and removed when the lab is dropped.

use crate::netlink::Flipper;
use nix::sched::{setns, CloneFlags};
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const LINK: &str = "va";

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().expect(program);
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
    fn new(role: &str) -> Netns {
        let name = format!("ddmb-{}-{role}", std::process::id());
        run("ip", &["netns", "add", &name]);
        Netns { name }
    }

    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        run("ip", &all);
    }

    /// Runs `f` with this thread inside the namespace: sockets it creates
    /// stay in it.
    pub fn enter<T>(&self, f: impl FnOnce() -> T) -> T {
        let home = File::open("/proc/thread-self/ns/net").expect("own namespace");
        let target = File::open(format!("/run/netns/{}", self.name)).expect("namespace");
        setns(&target, CloneFlags::CLONE_NEWNET).expect("setns into the lab");
        let result = f();
        setns(&home, CloneFlags::CLONE_NEWNET).expect("setns back");
        result
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

/// A child process, killed and reaped on drop.
pub struct Process(pub Child);

impl Process {
    pub fn pid(&self) -> i32 {
        self.0.id() as i32
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts this same executable with a hidden role (see main.rs).
/// Its stderr goes to `log`.
pub fn spawn_self(netns: Option<&Netns>, args: &[&str], log: Stdio) -> Process {
    spawn(netns, args, Stdio::null(), log, None)
}

/// Starts this executable in `netns` with `stdin` as its standard input.
pub fn spawn_self_with_stdin(netns: &Netns, args: &[&str], stdin: Stdio) -> Process {
    spawn(Some(netns), args, stdin, Stdio::inherit(), None)
}

/// Starts this executable; `state`, if given, is its STATE_DIRECTORY (the
/// service's journal goes there).
fn spawn(
    netns: Option<&Netns>,
    args: &[&str],
    stdin: Stdio,
    log: Stdio,
    state: Option<&std::path::Path>,
) -> Process {
    let me = std::env::current_exe().expect("own path");
    let mut command = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &ns.name]).arg(me);
            c
        }
        None => Command::new(me),
    };
    if let Some(state) = state {
        command.env("STATE_DIRECTORY", state);
    }
    command
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::null())
        .stderr(log);
    Process(command.spawn().expect("cannot start a helper process"))
}

/// Makes SIGINT and SIGTERM clean up: the lab's namespaces and directory
/// are removed and everything the harness started (its process group) is
/// killed, as when it finishes. Call before starting anything.
pub fn clean_up_on_interrupt() {
    use nix::sys::signal::{SigSet, Signal};
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    if signals.thread_block().is_err() {
        return;
    }
    std::thread::spawn(move || {
        if signals.wait().is_err() {
            return;
        }
        let pid = std::process::id();
        for role in ["r", "f"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &format!("ddmb-{pid}-{role}")])
                .status();
        }
        let _ = std::fs::remove_dir_all(format!("/tmp/ddm-bench-{pid}"));
        // The dialing workload's wireguard-go daemons left their group.
        let _ = Command::new("pkill")
            .args(["-f", "^wireguard-go wgb"])
            .status();
        eprintln!("ddm-bench: interrupted; the lab is removed");
        let _ = nix::sys::signal::killpg(nix::unistd::getpgrp(), Signal::SIGKILL);
    });
}

pub fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Descriptors this process (and the service, which inherits the limit)
/// may hold: each ddm client costs one on each side, each registration one
/// in the service.
pub fn descriptor_limit() -> usize {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft as usize)
}

/// Descriptors kept aside for everything else a process holds.
pub const SPARE_DESCRIPTORS: usize = 256;

pub struct Lab {
    pub router: Netns,
    pub far: Netns,
    /// The service's configuration file, if it has one.
    config: Option<PathBuf>,
    pub dir: PathBuf,
    pub index: u32,
    pub service: Process,
    pub socket: PathBuf,
    _bus: Process,
    pub bus_address: String,
}

impl Lab {
    pub fn new() -> Lab {
        Self::with_config(|_, _, _| None)
    }

    /// A lab whose service reads the configuration `config` returns, given
    /// the namespaces (to make the links it declares) and the lab's
    /// directory (for its scripts).
    pub fn with_config(
        config: impl FnOnce(&Netns, &Netns, &std::path::Path) -> Option<String>,
    ) -> Lab {
        let router = Netns::new("r");
        let far = Netns::new("f");
        // A veth whose peer has its own index is an urgent linkwatch event;
        // with equal indexes the kernel delays carrier news up to a second.
        far.ip(&[
            "link", "add", "spacer0", "type", "veth", "peer", "name", "spacer1",
        ]);
        router.ip(&[
            "link", "add", LINK, "type", "veth", "peer", "name", "vap", "netns", &far.name,
        ]);
        far.ip(&["link", "set", "vap", "up"]);
        let index = router.enter(|| nix::net::if_::if_nametoindex(LINK).expect("link index"));
        let dir = PathBuf::from(format!("/tmp/ddm-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();

        let socket = dir.join("ddm.sock");
        let config = config(&router, &far, &dir).map(|text| {
            let path = dir.join("ddm.toml");
            std::fs::write(&path, text).expect("configuration");
            path
        });
        let service = start_service(&router, &dir, &socket, config.as_deref());

        let bus_path = dir.join("bus");
        let bus_address = format!("unix:path={}", bus_path.display());
        let bus = Process(
            Command::new("dbus-daemon")
                .args([
                    "--session",
                    "--nofork",
                    "--nopidfile",
                    &format!("--address={bus_address}"),
                ])
                .stdout(Stdio::null())
                .spawn()
                .expect("dbus-daemon is needed (Debian package dbus-daemon)"),
        );
        wait_for("dbus-daemon", || {
            dbus::channel::Channel::open_private(&bus_address).is_ok()
        });
        Lab {
            router,
            far,
            config,
            dir,
            index,
            service,
            socket,
            _bus: bus,
            bus_address,
        }
    }

    /// Kills the service (SIGKILL) and starts a new one on the same socket.
    pub fn restart_service(&mut self) {
        let _ = self.service.0.kill();
        let _ = self.service.0.wait();
        self.service = start_service(
            &self.router,
            &self.dir,
            &self.socket,
            self.config.as_deref(),
        );
    }

    /// Stops the service cleanly and starts it again with configuration
    /// `text` (None: the built-in defaults).
    pub fn reconfigure(&mut self, text: Option<&str>) {
        self.stop_service();
        self.config = text.map(|text| {
            let path = self.dir.join("ddm.toml");
            std::fs::write(&path, text).expect("configuration");
            path
        });
        self.service = start_service(
            &self.router,
            &self.dir,
            &self.socket,
            self.config.as_deref(),
        );
    }

    /// Stops the service with SIGTERM, as a clean stop, and returns its
    /// log.
    pub fn stop_service(&mut self) -> String {
        let pid = nix::unistd::Pid::from_raw(self.service.pid());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.service.0.wait();
        std::fs::read_to_string(self.dir.join("ddm.log")).unwrap_or_default()
    }

    pub fn flipper(&self) -> Flipper {
        self.router
            .enter(|| Flipper::new(self.index))
            .expect("rtnetlink socket")
    }

    pub fn connect(&self) -> mprapi::Server {
        mprapi::Server::connect_socket(&self.socket).expect("connect to the service")
    }

    /// A session with one auto-reset event registered on it.
    pub fn registered_session(&self) -> (mprapi::Server, mprapi::Event) {
        let server = self.connect();
        let event = mprapi::Event::auto().expect("eventfd");
        server
            .register_connection_notification(&event)
            .expect("register");
        (server, event)
    }

    /// Resident memory of the service, in bytes.
    pub fn service_rss(&self) -> u64 {
        proc_status_kib(self.service.pid(), "VmRSS:") * 1024
    }

    /// CPU time the service has used (user + system).
    pub fn service_cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.service.pid())).unwrap();
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
        Duration::from_micros(ticks * 1_000_000 / hz)
    }
}

/// The service, as `ddm serve` runs it, logging into `dir`.
fn start_service(
    router: &Netns,
    dir: &std::path::Path,
    socket: &std::path::Path,
    config: Option<&std::path::Path>,
) -> Process {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("ddm.log"))
        .expect("service log");
    let mut args = vec!["__serve", socket.to_str().unwrap()];
    args.extend(config.and_then(|c| c.to_str()));
    let service = spawn(
        Some(router),
        &args,
        Stdio::null(),
        Stdio::from(log),
        Some(&dir.join("state")),
    );
    wait_for("the service", || {
        mprapi::Server::connect_socket(socket).is_ok()
    });
    service
}

fn proc_status_kib(pid: i32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

impl Drop for Lab {
    /// Removes the lab's directory, unless DDM_BENCH_KEEP is set (to read
    /// the service's log after a run).
    fn drop(&mut self) {
        if std::env::var_os("DDM_BENCH_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The lab's link, flipped up and down through rtnetlink.
pub struct Link {
    flipper: Flipper,
    pub connected: bool,
}

impl Link {
    /// Starts down, settled.
    pub fn new(lab: &Lab) -> Link {
        let mut flipper = lab.flipper();
        flipper.set_up(false).expect("link down");
        std::thread::sleep(Duration::from_millis(50));
        Link {
            flipper,
            connected: false,
        }
    }

    /// Flips the link; returns the moment the flip began.
    pub fn flip(&mut self) -> Instant {
        self.connected = !self.connected;
        let start = Instant::now();
        self.flipper.set_up(self.connected).expect("flip the link");
        start
    }
}

/// Runs `f` with every thread of this process, and of every process it
/// started, on CPU 0 (what they start meanwhile inherits it), and puts them
/// all back on every CPU after. On a virtual machine a wake-up that crosses
/// CPUs can cost tens of microseconds, and comes and goes from run to run;
/// on one CPU what is measured is the work each mechanism does.
pub fn on_one_cpu<T>(f: impl FnOnce() -> T) -> T {
    use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
    use nix::unistd::Pid;
    let all = sched_getaffinity(Pid::from_raw(0)).expect("affinity");
    let mut one = CpuSet::new();
    one.set(0).expect("CPU 0");
    let set = |cpus: &CpuSet| {
        for task in lab_threads() {
            let _ = sched_setaffinity(Pid::from_raw(task), cpus);
        }
    };
    set(&one);
    let outcome = f();
    set(&all);
    outcome
}

/// The threads of this process and of its children.
fn lab_threads() -> Vec<i32> {
    let me = std::process::id() as i32;
    let children = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| parent_of(*pid) == Some(me));
    std::iter::once(me)
        .chain(children)
        .flat_map(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/task"))
                .into_iter()
                .flatten()
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        })
        .collect()
}

/// The parent process id in /proc/PID/stat (after the command's closing
/// parenthesis: state, then ppid).
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

//! The bench's lab, on `ddm_lab`'s: a router namespace with one veth
//! (`va`) whose peer is up in the far namespace, the real service (this
//! executable, `__serve`) in the router namespace, and a private
//! dbus-daemon for the D-Bus anchor; helper roles of this executable;
//! placing every process on one CPU.

use crate::netlink::Flipper;
pub use ddm_lab::{wait_until as wait_for, Netns, Process, Service};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const LINK: &str = "va";

/// The service is this executable in its `__serve` role, which takes what
/// `ddm serve` takes.
pub fn serve_as_self() {
    ddm_lab::service::set_program(ddm_lab::service::Program {
        path: std::env::current_exe().expect("own path"),
        leading: vec!["__serve".into()],
    });
}

/// Starts this same executable with a hidden role (see main.rs).
/// Its stderr goes to `log`.
pub fn spawn_self(netns: Option<&Netns>, args: &[&str], log: Stdio) -> Process {
    spawn(netns, args, Stdio::null(), log)
}

/// Starts this executable in `netns` with `stdin` as its standard input.
pub fn spawn_self_with_stdin(netns: &Netns, args: &[&str], stdin: Stdio) -> Process {
    spawn(Some(netns), args, stdin, Stdio::inherit())
}

/// Starts this executable.
fn spawn(netns: Option<&Netns>, args: &[&str], stdin: Stdio, log: Stdio) -> Process {
    let me = std::env::current_exe().expect("own path");
    let mut command = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &ns.name]).arg(me);
            c
        }
        None => Command::new(me),
    };
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
        ddm_lab::netns::remove_all();
        // The dialing workload's wireguard-go daemons left their group.
        let _ = Command::new("pkill")
            .args(["-f", "^wireguard-go wgb"])
            .status();
        eprintln!("ddm-bench: interrupted; the lab is removed");
        let _ = nix::sys::signal::killpg(nix::unistd::getpgrp(), Signal::SIGKILL);
    });
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
    /// For the workloads' scripts and files.
    scratch: Option<tempfile::TempDir>,
    pub dir: PathBuf,
    pub index: u32,
    pub service: Service,
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
        let (router, far) = ddm_lab::lab::namespaces();
        router.veth_to(LINK, "vap", &far);
        far.ip(&["link", "set", "vap", "up"]);
        let index = router.enter(|| nix::net::if_::if_nametoindex(LINK).expect("link index"));
        let scratch = tempfile::Builder::new()
            .prefix("ddm-bench-")
            .tempdir()
            .expect("a directory");
        let dir = scratch.path().to_owned();
        let config = config(&router, &far, &dir);
        let service = Service::start(&router, config.as_deref(), None);

        let bus_path = dir.join("bus");
        let bus_address = format!("unix:path={}", bus_path.display());
        let bus = Process(
            ddm_lab::tool("dbus-daemon")
                .args([
                    "--session",
                    "--nofork",
                    "--nopidfile",
                    &format!("--address={bus_address}"),
                ])
                .stdout(Stdio::null())
                .spawn()
                .expect("dbus-daemon"),
        );
        wait_for("dbus-daemon", || {
            dbus::channel::Channel::open_private(&bus_address).is_ok()
        });
        Lab {
            router,
            far,
            scratch: Some(scratch),
            dir,
            index,
            service,
            _bus: bus,
            bus_address,
        }
    }

    /// Kills the service (SIGKILL) and starts a new one on the same socket.
    pub fn restart_service(&mut self) {
        self.service.restart();
    }

    /// Stops the service cleanly and starts a new one with configuration
    /// `text` (None: the built-in defaults); the old one's log.
    pub fn reconfigure(&mut self, text: Option<&str>) -> String {
        let log = self.stop_service();
        self.service = Service::start(&self.router, text, None);
        log
    }

    /// Stops the service with SIGTERM, as a clean stop, and returns its
    /// log.
    pub fn stop_service(&mut self) -> String {
        self.service.stop_with(nix::sys::signal::Signal::SIGTERM);
        self.service.log()
    }

    pub fn flipper(&self) -> Flipper {
        self.router
            .enter(|| Flipper::new(self.index))
            .expect("rtnetlink socket")
    }

    pub fn connect(&self) -> mprapi::Server {
        self.service.connect()
    }

    /// A session with one auto-reset event registered on it.
    pub fn registered_session(&self) -> (mprapi::Server, mprapi::Event) {
        self.service.registered_session()
    }

    /// Resident memory of the service, in bytes.
    pub fn service_rss(&self) -> u64 {
        self.service.rss_kib() * 1024
    }

    /// CPU time the service has used (user + system).
    pub fn service_cpu(&self) -> Duration {
        self.service.cpu()
    }
}

impl Drop for Lab {
    /// `DDM_LAB_KEEP` keeps the scratch directory too.
    fn drop(&mut self) {
        if let Some(scratch) = self
            .scratch
            .take()
            .filter(|_| std::env::var_os("DDM_LAB_KEEP").is_some())
        {
            eprintln!("kept {}", scratch.keep().display());
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

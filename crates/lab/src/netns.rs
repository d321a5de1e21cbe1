//! A private network namespace (`ip netns`), removed when dropped, also
//! when a test fails: what still runs in it is killed first (a
//! wireguard-go keeps a namespace, and itself, alive).

use crate::tools::{fed, run, stdout_of, tool};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

pub struct Netns {
    pub name: String,
}

/// The names of this process's namespaces begin with this.
fn prefix() -> String {
    format!("ddml-{}-", std::process::id())
}

impl Netns {
    /// A new namespace; `role` ends its name, for whoever reads `ip netns`.
    pub fn new(role: &str) -> Netns {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{}{}-{role}",
            prefix(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run("ip", &["netns", "add", &name]);
        Netns { name }
    }

    /// `program`, to be run inside this namespace (`ip netns exec`); a
    /// program named without a path must be installed.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        if let Some(name) = program.as_ref().to_str().filter(|p| !p.contains('/')) {
            crate::tools::require(name);
        }
        let mut command = tool("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// `ip -n NS ARGS...`, failing the test if it fails.
    pub fn ip(&self, args: &[&str]) {
        self.ip_output(args);
    }

    /// What `ip -n NS ARGS...` prints.
    pub fn ip_output(&self, args: &[&str]) -> String {
        stdout_of(tool("ip").arg("-n").arg(&self.name).args(args))
    }

    /// Many `ip` commands in one process (`ip -batch`), for bursts.
    pub fn ip_batch(&self, lines: &str) {
        fed(tool("ip").args(["-n", &self.name, "-batch", "-"]), lines);
    }

    /// Sets a sysctl here (`sysctl -w key=value`).
    pub fn sysctl(&self, key: &str, value: &str) {
        stdout_of(
            self.command("sysctl")
                .args(["-qw", &format!("{key}={value}")]),
        );
    }

    /// An nftables script run here (`nft -f -`): these kernels have no
    /// netem, so tests drop or thin out packets with nftables rules.
    pub fn nft(&self, script: &str) {
        fed(self.command("nft").args(["-f", "-"]), script);
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

    /// Whether link `name` exists here.
    pub fn has_link(&self, name: &str) -> bool {
        tool("ip")
            .args(["-n", &self.name, "link", "show", name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Whether link `name` is here and up (false while it is gone: a
    /// test reading it while commands delete and make it must not fail).
    pub fn link_is_up(&self, name: &str) -> bool {
        tool("ip")
            .args(["-n", &self.name, "-o", "link", "show", name])
            .stderr(Stdio::null())
            .output()
            .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(",UP"))
    }

    /// Deletes link `name` if it is there.
    pub fn delete_link(&self, name: &str) {
        let _ = tool("ip")
            .args(["-n", &self.name, "link", "del", name])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        remove(&self.name);
    }
}

fn remove(name: &str) {
    let script = format!("ip netns pids {name} | xargs -r kill -9; ip netns del {name}");
    let _ = Command::new("sh").args(["-c", &script]).status();
}

/// Removes every namespace this process made: for a harness interrupted
/// before its drops run.
pub fn remove_all() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    let prefix = prefix();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(name) = line
            .split_whitespace()
            .next()
            .filter(|n| n.starts_with(&prefix))
        {
            remove(name);
        }
    }
}

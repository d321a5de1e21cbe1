//! Every client finds the machine's service by itself: root's service on
//! `/run/ddm/ddm.sock`, and programs of other users, with no environment at
//! all, through the C library and the CLI, each with its role's rights.
//!
//! The service runs in a mount namespace of its own with a fresh tmpfs on
//! /run/ddm, and the clients enter it: the machine's real /run/ddm is never
//! touched, and tests may run side by side.

use crate::c_abi::{compile, Build};
use crate::support::*;
use std::path::Path;
use std::process::{Child, Output, Stdio};

/// Root's service on the system socket, with its defaults.
struct SystemService {
    child: Child,
    _router: Netns,
    /// /run/ddm, when this test had to create it as a mount point.
    created: bool,
    log: tempfile::NamedTempFile,
}

impl SystemService {
    fn start() -> SystemService {
        require_root();
        let router = Netns::new("sys");
        let created = !Path::new("/run/ddm").exists();
        if created {
            std::fs::create_dir_all("/run/ddm").unwrap();
        }
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = tool("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg("mount -t tmpfs -o mode=0755 ddm-test /run/ddm && exec \"$@\"")
            .args(["sh", "ip", "netns", "exec", &router.name, DDM, "serve"])
            .env_remove("DDM_SOCKET")
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap();
        let service = SystemService {
            child,
            _router: router,
            created,
            log,
        };
        wait_until("root's service answers on /run/ddm/ddm.sock", || {
            service
                .run_as(0, 0, None, Path::new(DDM), &["status"])
                .status
                .success()
        });
        service
    }

    /// Runs `program ARGS` in the service's mount namespace as `uid`:`gid`
    /// with supplementary `group` only, and an empty environment.
    fn run_as(
        &self,
        uid: u32,
        gid: u32,
        group: Option<u32>,
        program: &Path,
        args: &[&str],
    ) -> Output {
        let groups = match group {
            Some(g) => format!("--groups={g}"),
            None => "--clear-groups".into(),
        };
        tool("nsenter")
            .arg(format!("--mount=/proc/{}/ns/mnt", self.child.id()))
            .args(["--", "setpriv"])
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .arg(groups)
            .args(["--", "env", "-i"])
            .arg(program)
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for SystemService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.created {
            let _ = std::fs::remove_dir("/run/ddm");
        }
        if std::thread::panicking() {
            eprintln!(
                "service log:\n{}",
                std::fs::read_to_string(self.log.path()).unwrap_or_default()
            );
        }
    }
}

/// The `ddm` group of the default policy (monitor); made for the test if
/// the machine has none, and removed after.
struct DdmGroup {
    gid: u32,
    created: bool,
}

impl DdmGroup {
    fn ensure() -> DdmGroup {
        let lookup = || {
            nix::unistd::Group::from_name("ddm")
                .unwrap()
                .map(|g| g.gid.as_raw())
        };
        if let Some(gid) = lookup() {
            return DdmGroup {
                gid,
                created: false,
            };
        }
        run("groupadd", &["ddm"]);
        DdmGroup {
            gid: lookup().expect("the ddm group exists now"),
            created: true,
        }
    }
}

impl Drop for DdmGroup {
    fn drop(&mut self) {
        if self.created {
            let _ = tool("groupdel").arg("ddm").status();
        }
    }
}

fn succeeded(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn denied(out: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("ERROR_ACCESS_DENIED (5)"),
        "{what} should be denied: {stderr:?}"
    );
}

#[test]
fn other_users_reach_root_s_service_with_no_setting_and_get_their_role() {
    let group = DdmGroup::ensure();
    let service = SystemService::start();
    let ddm = Path::new(DDM);
    let c_client = compile("tests/c/system_service.c", Build::Plain);

    // nobody: the status role.
    let nobody =
        |program: &Path, args: &[&str]| service.run_as(NOBODY, NOGROUP, None, program, args);
    let out = succeeded(&nobody(&c_client, &["status"]), "C client as nobody");
    assert!(out.contains(" passed, 0 failed"), "{out}");
    assert_eq!(
        succeeded(&nobody(ddm, &["status"]), "ddm status as nobody").trim(),
        "running"
    );
    succeeded(&nobody(ddm, &["info"]), "ddm info as nobody");
    denied(&nobody(ddm, &["interfaces"]), "ddm interfaces as nobody");
    denied(
        &nobody(ddm, &["watch", "--timeout", "1"]),
        "ddm watch as nobody",
    );

    // A member of the ddm group: the monitor role.
    let member = |program: &Path, args: &[&str]| {
        service.run_as(NOBODY, NOGROUP, Some(group.gid), program, args)
    };
    let out = succeeded(&member(&c_client, &["monitor"]), "C client in group ddm");
    assert!(out.contains(" passed, 0 failed"), "{out}");
    succeeded(&member(ddm, &["interfaces"]), "ddm interfaces in group ddm");
    denied(
        &member(ddm, &["router", "stop"]),
        "ddm router stop in group ddm",
    );
    denied(
        &member(ddm, &["registrations"]),
        "ddm registrations in group ddm",
    );
}

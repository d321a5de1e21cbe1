//! Roles from peer credentials: real processes running as `nobody`.

use crate::support::*;
use std::os::unix::process::CommandExt;
use std::process::Output;

const NOBODY: u32 = 65534;
const NOGROUP: u32 = 65534;

/// Runs `ddm ARGS` as nobody:nogroup, with no supplementary groups.
fn as_nobody(service: &Service, args: &[&str]) -> Output {
    service.ddm(args).uid(NOBODY).gid(NOGROUP).output().unwrap()
}

fn assert_denied(out: &Output, what: &str) {
    assert!(!out.status.success(), "{what} should be refused");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ERROR_ACCESS_DENIED (5): Access is denied."),
        "{what}: unexpected stderr {stderr:?}"
    );
}

fn assert_allowed(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn by_default_others_get_the_status_role_only() {
    let lab = Lab::new();
    let out = as_nobody(&lab.service, &["status"]);
    assert_allowed(&out, "status");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "running");
    assert_allowed(&as_nobody(&lab.service, &["info"]), "info");
    assert_denied(&as_nobody(&lab.service, &["interfaces"]), "interfaces");
    assert_denied(
        &as_nobody(&lab.service, &["watch", "--timeout", "1"]),
        "register (watch)",
    );
    assert_denied(&as_nobody(&lab.service, &["router", "stop"]), "router stop");
    assert_denied(
        &as_nobody(&lab.service, &["registrations"]),
        "registrations",
    );
    // The refusals changed nothing.
    assert!(lab.service.connect().is_service_running());
}

#[test]
fn a_monitor_user_may_read_and_register_but_not_administer() {
    let lab = Lab::with_config(Some("[access]\nmonitor_users = [\"nobody\"]\n"));
    lab.add_link("va");
    assert_allowed(&as_nobody(&lab.service, &["interfaces"]), "interfaces");
    let watch = lab
        .service
        .ddm(&["watch", "--count", "1", "--timeout", "10"])
        .uid(NOBODY)
        .gid(NOGROUP)
        .spawn();
    let mut watch = watch.unwrap();
    lab.service.wait_for_registration(watch.id());
    lab.set_up("va", true);
    assert!(
        watch.wait().unwrap().success(),
        "a monitor's watch sees the event"
    );
    assert_denied(&as_nobody(&lab.service, &["router", "stop"]), "router stop");
    assert_denied(
        &as_nobody(&lab.service, &["registrations"]),
        "registrations",
    );
}

#[test]
fn groups_grant_roles() {
    let lab = Lab::with_config(Some("[access]\nadmin_groups = [\"nogroup\"]\n"));
    assert_allowed(
        &as_nobody(&lab.service, &["registrations"]),
        "registrations as an admin group member",
    );
    assert_allowed(
        &as_nobody(&lab.service, &["router", "stop"]),
        "router stop as an admin group member",
    );
    assert!(!lab.service.connect().is_service_running());
}

#[test]
fn a_closed_policy_refuses_strangers_at_connect() {
    let lab = Lab::with_config(Some("[access]\ndefault_role = \"none\"\n"));
    assert_denied(&as_nobody(&lab.service, &["status"]), "status with no role");
    assert_allowed(
        &lab.service.ddm(&["status"]).output().unwrap(),
        "root is always admin",
    );
}

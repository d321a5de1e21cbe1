//! Roles from peer credentials: real processes running as `nobody`.

use crate::support::*;
use ddm_lab::accounts::Accounts;
use std::os::unix::process::CommandExt;
use std::process::Output;

/// Runs `ddm ARGS` as nobody:nogroup, with no supplementary groups.
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
    let out = lab.service.ddm_as_nobody(&["status"]);
    assert_allowed(&out, "status");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "running");
    assert_allowed(&lab.service.ddm_as_nobody(&["info"]), "info");
    assert_denied(&lab.service.ddm_as_nobody(&["interfaces"]), "interfaces");
    assert_denied(
        &lab.service.ddm_as_nobody(&["watch", "--timeout", "1"]),
        "register (watch)",
    );
    assert_denied(
        &lab.service.ddm_as_nobody(&["router", "stop"]),
        "router stop",
    );
    assert_denied(
        &lab.service.ddm_as_nobody(&["registrations"]),
        "registrations",
    );
    // The refusals changed nothing.
    assert!(lab.service.connect().is_service_running());
}

#[test]
fn a_monitor_user_may_read_and_register_but_not_administer() {
    let lab = Lab::with_config(Some("[access]\nmonitor_users = [\"nobody\"]\n"));
    lab.add_link("va");
    assert_allowed(&lab.service.ddm_as_nobody(&["interfaces"]), "interfaces");
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
    assert_denied(
        &lab.service.ddm_as_nobody(&["router", "stop"]),
        "router stop",
    );
    assert_denied(
        &lab.service.ddm_as_nobody(&["registrations"]),
        "registrations",
    );
}

#[test]
fn groups_grant_roles() {
    let lab = Lab::with_config(Some("[access]\nadmin_groups = [\"nogroup\"]\n"));
    assert_allowed(
        &lab.service.ddm_as_nobody(&["registrations"]),
        "registrations as an admin group member",
    );
    assert_allowed(
        &lab.service.ddm_as_nobody(&["router", "stop"]),
        "router stop as an admin group member",
    );
    assert!(!lab.service.connect().is_service_running());
}

#[test]
fn a_closed_policy_refuses_strangers_at_connect() {
    let lab = Lab::with_config(Some("[access]\ndefault_role = \"none\"\n"));
    assert_denied(
        &lab.service.ddm_as_nobody(&["status"]),
        "status with no role",
    );
    assert_allowed(
        &lab.service.ddm(&["status"]).output().unwrap(),
        "root is always admin",
    );
}

/// Runs `ddm ARGS` as `user`, with its groups (runuser calls initgroups).
fn as_user(service: &Service, user: &str, args: &[&str]) -> Output {
    let mut command = tool("runuser");
    command
        .args(["-u", user, "--", DDM])
        .args(args)
        .arg("--socket")
        .arg(&service.socket);
    command.output().unwrap()
}

#[test]
fn real_users_and_groups_get_the_roles_the_policy_gives() {
    require_root();
    let tag = std::process::id() % 100_000;
    let (admins, monitors) = (format!("ddmt{tag}adm"), format!("ddmt{tag}mon"));
    let users: Vec<String> = (1..=4).map(|n| format!("ddmt{tag}u{n}")).collect();
    let mut accounts = Accounts::new();
    accounts.group(&admins);
    accounts.group(&monitors);
    accounts.user(&users[0], &[&admins]);
    accounts.user(&users[1], &[&monitors]);
    accounts.user(&users[2], &[]);
    accounts.user(&users[3], &[]);
    let config = format!(
        "[access]\nadmin_groups = [\"{admins}\"]\nmonitor_groups = [\"{monitors}\"]\nmonitor_users = [\"{}\"]\n",
        users[2]
    );
    let lab = Lab::with_config(Some(&config));
    let service = &lab.service;

    // An admin group member administers.
    assert_allowed(
        &as_user(service, &users[0], &["router", "stop"]),
        "router stop by an admin",
    );
    assert_eq!(
        String::from_utf8_lossy(&as_user(service, &users[0], &["status"]).stdout)
            .lines()
            .next(),
        Some("stopped"),
        "the first line; the journal's follow"
    );
    assert_allowed(
        &as_user(service, &users[0], &["router", "start"]),
        "router start by an admin",
    );
    assert_allowed(
        &as_user(service, &users[0], &["registrations"]),
        "registrations by an admin",
    );
    // A monitor group member reads, but does not administer.
    assert_allowed(
        &as_user(service, &users[1], &["interfaces"]),
        "interfaces by a monitor",
    );
    assert_denied(
        &as_user(service, &users[1], &["router", "stop"]),
        "router stop by a monitor",
    );
    // A monitor by user name likewise.
    assert_allowed(
        &as_user(service, &users[2], &["interfaces"]),
        "interfaces by a named monitor",
    );
    assert_denied(
        &as_user(service, &users[2], &["registrations"]),
        "registrations by a named monitor",
    );
    // Anyone else: status only.
    assert_allowed(
        &as_user(service, &users[3], &["status"]),
        "status by anyone",
    );
    assert_denied(
        &as_user(service, &users[3], &["interfaces"]),
        "interfaces by anyone",
    );
    assert!(service.connect().is_service_running(), "the DDM runs again");
}

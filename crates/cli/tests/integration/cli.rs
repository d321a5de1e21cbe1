//! The `ddm` command as a person uses it.

use crate::support::*;
use nix::sys::signal::Signal;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::process::{Command, Stdio};

#[test]
fn watch_json_prints_one_event_a_line_and_exits_after_count() {
    let lab = Lab::new();
    lab.add_link("va");
    let watch = lab
        .service
        .ddm(&["watch", "--json", "--count", "2", "--timeout", "10"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    lab.service.wait_for_registration(watch.id());
    lab.set_up("va", true);
    lab.set_up("va", false);
    let out = watch.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        (
            lines[0]["interface"].as_str(),
            lines[0]["from"].as_str(),
            lines[0]["to"].as_str()
        ),
        (Some("va"), Some("disconnected"), Some("connected"))
    );
    assert_eq!(
        (lines[1]["from"].as_str(), lines[1]["to"].as_str()),
        (Some("connected"), Some("disconnected"))
    );
    assert_eq!(
        lines[1]["seq"].as_u64().unwrap(),
        lines[0]["seq"].as_u64().unwrap() + 1
    );
    assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        (
            lines[1]["last_error_name"].as_str(),
            lines[1]["last_error_text"].as_str()
        ),
        (Some("NO_ERROR"), Some(""))
    );
}

#[test]
fn watch_times_out_without_events_and_stops_cleanly_on_sigint() {
    let lab = Lab::new();
    let out = lab
        .service
        .ddm(&["watch", "--timeout", "0.3"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("WAIT_TIMEOUT (258)"));

    let watch = lab
        .service
        .ddm(&["watch"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    lab.service.wait_for_registration(watch.id());
    let pid = nix::unistd::Pid::from_raw(watch.id() as i32);
    nix::sys::signal::kill(pid, Signal::SIGINT).unwrap();
    let out = watch.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "SIGINT ends watch after a clean deregister: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn status_info_and_interfaces_report_the_table() {
    let lab = Lab::new();
    lab.add_link("va");
    lab.set_up("va", true);
    assert_eq!(
        stdout_of(&mut lab.service.ddm(&["status"])).trim(),
        "running"
    );
    let info: serde_json::Value =
        serde_json::from_str(&stdout_of(&mut lab.service.ddm(&["info", "--json"]))).unwrap();
    assert_eq!(info["lan_only_mode"], false);
    wait_until("va is connected", || {
        let list: serde_json::Value =
            serde_json::from_str(&stdout_of(&mut lab.service.ddm(&["interfaces", "--json"])))
                .unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == "va" && i["state"] == "connected")
    });
    let list: serde_json::Value =
        serde_json::from_str(&stdout_of(&mut lab.service.ddm(&["interfaces", "--json"]))).unwrap();
    let va = list
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "va")
        .unwrap();
    for field in [
        "name",
        "handle",
        "type",
        "enabled",
        "state",
        "since",
        "last_error",
        "last_error_name",
        "last_error_text",
    ] {
        assert!(va.get(field).is_some(), "interfaces --json lacks {field}");
    }
    // When it connected, to the millisecond, in UTC.
    let since = va["since"].as_str().unwrap();
    assert!(
        since.ends_with('Z') && since.len() == "2026-01-01T00:00:00.000Z".len(),
        "{since}"
    );
    let table = stdout_of(&mut lab.service.ddm(&["interfaces"]));
    assert!(
        table
            .lines()
            .any(|l| l.contains("va") && l.contains("connected")),
        "{table}"
    );
    let sessions: serde_json::Value = serde_json::from_str(&stdout_of(
        &mut lab.service.ddm(&["registrations", "--json"]),
    ))
    .unwrap();
    assert_eq!(sessions.as_array().unwrap()[0]["role"], "admin");
}

#[test]
fn errors_print_name_number_and_text() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(DDM)
        .args(["status", "--socket"])
        .arg(dir.path().join("none.sock"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "RPC_S_UNKNOWN_IF (1717): The interface is unknown."
    );
}

#[test]
fn the_socket_is_world_writable_unique_and_removed_on_sigterm() {
    let mut lab = Lab::new();
    let socket = lab.service.socket.clone();
    let meta = std::fs::metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o666);

    let second = Command::new(DDM)
        .args(["serve", "--socket"])
        .arg(&socket)
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr)
        .contains("another ddm service is already listening"));
    assert!(
        lab.service.connect().is_service_running(),
        "the live service kept its socket"
    );

    let status = lab.service.stop_with(Signal::SIGTERM);
    assert!(status.success());
    assert!(!socket.exists(), "the socket is removed on SIGTERM");
}

#[test]
fn a_stale_socket_from_a_crashed_service_is_replaced() {
    let mut lab = Lab::new();
    lab.service.kill();
    assert!(
        lab.service.socket.exists(),
        "SIGKILL leaves the socket behind"
    );
    let mut again = lab
        .router
        .command(DDM)
        .args(["serve", "--socket"])
        .arg(&lab.service.socket)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the new service answers on the stale path", || {
        mprapi::Server::connect_socket(&lab.service.socket).is_ok()
    });
    again.kill().unwrap();
    again.wait().unwrap();
}

#[test]
fn a_bad_configuration_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ddm.toml");
    std::fs::write(&path, "[limits]\nmax_sesions = 3\n").unwrap();
    let out = Command::new(DDM)
        .args(["serve", "--socket"])
        .arg(dir.path().join("s"))
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("max_sesions"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_socket_directory_owned_by_another_user_is_refused() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    nix::unistd::chown(&foreign, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    let out = Command::new(DDM)
        .args(["serve", "--socket"])
        .arg(foreign.join("ddm.sock"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("belongs to another user"));
}

#[test]
fn sigterm_ends_streams_wakes_waiters_and_exits_cleanly() {
    let mut lab = Lab::new();
    let server = lab.service.connect();
    let stream = server.subscribe().unwrap();
    let event = mprapi::Event::manual().unwrap();
    server.register_connection_notification(&event).unwrap();
    let socket = lab.service.socket.clone();
    let status = lab.service.stop_with(Signal::SIGTERM);
    assert!(status.success(), "exit status {status}");
    assert_eq!(
        stream.next_timeout(PATIENCE),
        Some(mprapi::StreamItem::End(
            mprapi::WinError::ERROR_DDM_NOT_RUNNING
        ))
    );
    expect_signal(&event, "the shutdown wakes registered waiters");
    assert!(!socket.exists());
    assert_eq!(
        server.interfaces().err(),
        Some(mprapi::WinError::ERROR_DDM_NOT_RUNNING)
    );
    let log = lab.service.log();
    assert!(
        log.contains("shutting down") && log.contains("stopped"),
        "{log}"
    );
}

/// `ddm interfaces | head -1`, and the like: a command whose reader has
/// gone ends quietly (status 141, as a shell reports SIGPIPE), never with
/// a panic.
#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    let lab = Lab::new();
    for n in 0..20 {
        lab.add_link(&format!("pipe{n}"));
    }
    lab.wait_listed("pipe19");
    for args in [
        &["interfaces"][..],
        &["interfaces", "--json"],
        &["info"],
        &["history"],
        &["uptime"],
    ] {
        let mut child = lab
            .service
            .ddm(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes before the command writes a byte.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.is_empty(), "ddm {args:?} said: {stderr}");
        assert!(
            out.status.success() || out.status.code() == Some(141),
            "ddm {args:?}: {:?}",
            out.status
        );
    }
    // `ddm watch | head -1`: the watch ends at its first line to print.
    let mut watch = lab
        .service
        .ddm(&["watch"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(watch.stdout.take());
    lab.service.wait_for_registration(watch.id());
    lab.set_up("pipe0", true);
    wait_until("the watch ends", || watch.try_wait().unwrap().is_some());
    let out = watch.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(141), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
}

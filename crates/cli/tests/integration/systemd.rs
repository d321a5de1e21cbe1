//! The service under systemd's protocols, without systemd as PID 1:
//! socket activation by `systemd-socket-activate` (and by this test holding
//! the socket across a restart, as systemd does), the notify socket
//! (READY, STATUS, RELOADING, WATCHDOG, STOPPING) read by a listener here,
//! the runtime directory, and log lines for the journal.

use crate::support::*;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// What the service sends to `NOTIFY_SOCKET`, as systemd would receive it.
struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
}

impl NotifySocket {
    fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        NotifySocket { socket, path }
    }

    /// The next datagram's lines, or `None` if none comes within `wait`.
    fn next(&self, wait: Duration) -> Option<Vec<String>> {
        self.socket.set_read_timeout(Some(wait)).unwrap();
        let mut buffer = [0u8; 4096];
        let n = self.socket.recv(&mut buffer).ok()?;
        let text = String::from_utf8_lossy(&buffer[..n]);
        Some(text.lines().map(str::to_owned).collect())
    }

    /// Reads datagrams until one has a line starting with `prefix`; returns
    /// that datagram and every line seen before it.
    fn expect(&self, prefix: &str) -> (Vec<String>, Vec<String>) {
        let deadline = Instant::now() + PATIENCE;
        let mut before = Vec::new();
        while let Some(wait) = deadline.checked_duration_since(Instant::now()) {
            let Some(lines) = self.next(wait) else { break };
            if lines.iter().any(|l| l.starts_with(prefix)) {
                return (lines, before);
            }
            before.extend(lines);
        }
        panic!("no {prefix} from the service; it sent {before:?}");
    }
}

fn config(dir: &Path) -> PathBuf {
    let path = dir.join("ddm.toml");
    std::fs::write(&path, "# nothing: the defaults\n").unwrap();
    path
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the service did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn terminate(child: &Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
}

#[test]
fn socket_activation_readiness_status_reload_watchdog_and_stopping() {
    require_root();
    let router = Netns::new("sd");
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ddm.sock");
    let notify = NotifySocket::bind(dir.path());
    let config = config(dir.path());
    let mut activator = router
        .command("systemd-socket-activate")
        .arg("-l")
        .arg(&socket)
        .arg(format!("--setenv=NOTIFY_SOCKET={}", notify.path.display()))
        .arg("--setenv=WATCHDOG_USEC=300000")
        .arg(format!(
            "--setenv=STATE_DIRECTORY={}",
            dir.path().join("state").display()
        ))
        .args([DDM, "serve", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("ddm.log")).unwrap())
        .spawn()
        .unwrap();
    wait_until("systemd-socket-activate listens", || socket.exists());
    // Nothing runs yet: systemd-socket-activate starts the service at the
    // first connection, and nothing has told systemd anything.
    assert_eq!(notify.next(QUIET), None, "a notice before any client came");

    // This client connects before the service runs; it is answered.
    let client = mprapi::Server::connect_socket(&socket).expect("a client before the service");
    assert!(client.interfaces().unwrap().iter().any(|i| i.name == "lo"));

    let (ready, before) = notify.expect("READY=1");
    let status = before
        .iter()
        .chain(&ready)
        .find(|l| l.starts_with("STATUS="))
        .unwrap_or_else(|| panic!("no STATUS before READY: {before:?} {ready:?}"));
    assert!(
        status.starts_with("STATUS=DDM running: ") && status.contains(" interfaces, "),
        "{status}"
    );

    // The watchdog is fed from the router every half period (150 ms).
    let started = Instant::now();
    for _ in 0..3 {
        notify.expect("WATCHDOG=1");
    }
    assert!(started.elapsed() < Duration::from_secs(3));

    // The status line follows what happens.
    client.set_router_running(false).unwrap();
    let (stopped, _) = notify.expect("STATUS=DDM stopped");
    assert!(stopped
        .iter()
        .any(|l| l.starts_with("STATUS=DDM stopped: ")));
    client.set_router_running(true).unwrap();
    notify.expect("STATUS=DDM running");

    // A reload: RELOADING=1 with the monotonic time, then READY=1.
    client.reload().unwrap();
    let (reloading, _) = notify.expect("RELOADING=1");
    assert!(
        reloading.iter().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{reloading:?}"
    );
    notify.expect("READY=1");

    drop(client);
    terminate(&activator);
    notify.expect("STOPPING=1");
    assert!(wait_exit(&mut activator).success());
    // The socket is systemd's (here, the activator's): the service leaves it.
    assert!(socket.exists(), "the service removed the passed socket");
}

#[test]
fn connections_made_while_the_service_restarts_wait_in_the_passed_socket() {
    require_root();
    let router = Netns::new("sdr");
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ddm.sock");
    // This test holds the listening socket, as systemd does for ddm.socket.
    let listener = UnixListener::bind(&socket).unwrap();
    let state = dir.path().join("state");
    let start = || {
        let fd = listener.as_raw_fd();
        let mut command = router.command("sh");
        command
            .arg("-c")
            .arg("LISTEN_PID=$$ LISTEN_FDS=1 exec \"$@\"")
            .args(["sh", DDM, "serve"])
            .env("STATE_DIRECTORY", &state)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: dup2 and fcntl are async-signal-safe. The listening
        // socket goes to descriptor 3, where LISTEN_FDS says it is, without
        // close-on-exec (dup2 clears it on the copy; a socket that already
        // is descriptor 3 has it cleared by hand).
        unsafe {
            command.pre_exec(move || {
                let done = if fd == 3 {
                    libc::fcntl(3, libc::F_SETFD, 0)
                } else {
                    libc::dup2(fd, 3)
                };
                if done < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        command.spawn().unwrap()
    };

    let mut first = start();
    let server = mprapi::Server::connect_socket(&socket).expect("the first service answers");
    server.interfaces().unwrap();
    drop(server);
    terminate(&first);
    assert!(wait_exit(&mut first).success());
    assert!(socket.exists(), "the service removed the passed socket");

    // Nothing serves the socket now; a client connects all the same, and
    // is answered once the service is back.
    let waiting = std::thread::spawn({
        let socket = socket.clone();
        move || {
            let server = mprapi::Server::connect_socket(&socket)?;
            server.interfaces()
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(!waiting.is_finished(), "answered with no service running");
    let mut second = start();
    let interfaces = waiting
        .join()
        .unwrap()
        .expect("answered by the restarted service");
    assert!(interfaces.iter().any(|i| i.name == "lo"));
    terminate(&second);
    assert!(wait_exit(&mut second).success());
}

#[test]
fn without_a_socket_the_service_listens_in_its_runtime_directory() {
    require_root();
    let router = Netns::new("sdd");
    let dir = tempfile::tempdir().unwrap();
    let runtime = dir.path().join("run");
    std::fs::create_dir(&runtime).unwrap();
    let mut service = router
        .command(DDM)
        .arg("serve")
        .env("RUNTIME_DIRECTORY", &runtime)
        .env("STATE_DIRECTORY", dir.path().join("state"))
        .env_remove("DDM_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let socket = runtime.join("ddm.sock");
    wait_until("the service answers in $RUNTIME_DIRECTORY", || {
        mprapi::Server::connect_socket(&socket).is_ok()
    });
    terminate(&service);
    assert!(wait_exit(&mut service).success());
    assert!(!socket.exists(), "its own socket is removed at the stop");
}

#[test]
fn log_lines_for_the_journal_carry_priorities_and_no_timestamps() {
    require_root();
    let router = Netns::new("sdj");
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("ddm.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let meta = log.metadata().unwrap();
    let socket = dir.path().join("ddm.sock");
    // A configuration that names an unknown group: a warning at start.
    let config = dir.path().join("ddm.toml");
    std::fs::write(
        &config,
        "[access]\nadmin_groups = [\"no-such-group-ddm\"]\n",
    )
    .unwrap();
    let mut service = router
        .command(DDM)
        .args(["serve", "--socket"])
        .arg(&socket)
        .arg("--config")
        .arg(&config)
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .env("STATE_DIRECTORY", dir.path().join("state"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_until("the service answers", || {
        mprapi::Server::connect_socket(&socket).is_ok()
    });
    terminate(&service);
    assert!(wait_exit(&mut service).success());
    let mut text = String::new();
    std::fs::File::open(&log_path)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("<6>") && l.contains("ddm serving")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("<4>") && l.contains("no-such-group-ddm")),
        "{text}"
    );
    for line in text.lines() {
        let priority = line.get(..3).unwrap_or_default();
        assert!(
            ["<3>", "<4>", "<6>", "<7>"].contains(&priority),
            "a line without its priority: {line}"
        );
        assert!(
            !line[3..].starts_with("20"),
            "a line with a timestamp: {line}"
        );
    }
}

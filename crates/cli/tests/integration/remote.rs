//! Remote administration over TLS 1.3: roles by certificate, refused
//! certificates, remote registrations with G1, G2 and G3, a remote Connect
//! with an event, a fleet watch, revocation by reload, and bad input on
//! the TLS port. Each router is a namespace with its own ddm; the clients
//! are in another namespace.

use crate::support::*;
use crate::tls_lab::{remote_config, Ca, Clients, Flaw};
use mprapi::{ConnectionState, Event, WinError};
use nix::sys::signal::Signal;
use std::io::{Read, Write};
use std::process::Output;
use std::time::{Duration, Instant};

/// A router with a remote listener, a client namespace joined to it, and
/// the certificates: admin (a SAN URI under the admin prefix), monitor,
/// viewer (status), stranger (no role), expired, server-only, and one from
/// another CA.
struct Remote {
    _dir: tempfile::TempDir,
    ca: Ca,
    other: Ca,
    lab: Lab,
    clients: Clients,
    address: String,
    admin_serial: u64,
}

impl Remote {
    fn new(extra: &str) -> Remote {
        require_root();
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new(dir.path(), "ops");
        let other = Ca::new(dir.path(), "other");
        ca.server("router", &["10.89.1.1"]);
        let admin_serial = ca.client(
            "admin",
            "alice",
            Some("spiffe://example.org/ops/alice"),
            Flaw::None,
        );
        ca.client("monitor", "monitor", None, Flaw::None);
        ca.client("viewer", "viewer", None, Flaw::None);
        ca.client("stranger", "stranger", None, Flaw::None);
        ca.client("expired", "monitor", None, Flaw::Expired);
        ca.client("server-only", "monitor", None, Flaw::ServerOnly);
        other.client("foreign", "monitor", None, Flaw::None);
        let mut lab = Lab::with_config(None);
        std::fs::write(
            lab.service.config_path(),
            remote_config(&ca, "router", extra),
        )
        .unwrap();
        lab.service.restart_with_config();
        let mut clients = Clients::new();
        let address = clients.join(&lab.router);
        Remote {
            _dir: dir,
            ca,
            other,
            lab,
            clients,
            address,
            admin_serial,
        }
    }

    fn ddm(&self, certificate: &str, args: &[&str]) -> Output {
        let ca = if certificate == "foreign" {
            &self.other
        } else {
            &self.ca
        };
        let mut all = args.to_vec();
        all.extend(["--server", &self.address]);
        let mut command = self.clients.ddm(ca, certificate, &all);
        if certificate == "foreign" {
            // Its own CA key pair, trusting the right CA for the server.
            command.env("DDM_CA", self.ca.ca_file());
        }
        command.output().unwrap()
    }

    fn connect(&self, certificate: &str) -> mprapi::Result<mprapi::Server> {
        self.clients.connect(&self.ca, certificate, &self.address)
    }
}

fn allowed(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn denied(out: &Output, what: &str) {
    assert!(!out.status.success(), "{what} should be refused");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ERROR_ACCESS_DENIED (5)"),
        "{what}: {stderr}"
    );
}

#[test]
fn each_role_by_certificate_and_every_bad_certificate_refused() {
    let r = Remote::new("");
    allowed(&r.ddm("admin", &["router", "stop"]), "admin stops the DDM");
    allowed(&r.ddm("admin", &["router", "start"]), "admin starts it");
    allowed(&r.ddm("monitor", &["interfaces"]), "monitor lists");
    denied(&r.ddm("monitor", &["router", "stop"]), "monitor stops");
    allowed(&r.ddm("viewer", &["status"]), "viewer asks for status");
    denied(&r.ddm("viewer", &["interfaces"]), "viewer lists");
    denied(
        &r.ddm("stranger", &["status"]),
        "a certificate with no role",
    );
    denied(&r.ddm("expired", &["status"]), "an expired certificate");
    denied(
        &r.ddm("server-only", &["status"]),
        "a certificate not for clients",
    );
    denied(
        &r.ddm("foreign", &["status"]),
        "a certificate of another CA",
    );
    let log = r.lab.service.log();
    assert!(
        log.contains("refused a remote client"),
        "refusals are logged"
    );

    // No certificate at all: the handshake fails at the service. (Refusal
    // lines are rate-limited to one a second: let the window pass.)
    std::thread::sleep(Duration::from_millis(1100));
    let refusals = || {
        r.lab
            .service
            .log()
            .matches("refused a remote client")
            .count()
    };
    let before = refusals();
    let out = r
        .clients
        .netns
        .command("openssl")
        .arg("s_client")
        .args([
            "-connect",
            &format!("{}:4850", r.address),
            "-tls1_3",
            "-CAfile",
        ])
        .arg(r.ca.ca_file())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    // (In TLS 1.3 the client may finish before the refusal reaches it.)
    let _ = out;
    wait_until("the service refused a client without a certificate", || {
        refusals() > before
    });

    let registrations = r.ddm("admin", &["registrations"]);
    allowed(&registrations, "registrations");
    let listing = String::from_utf8_lossy(&registrations.stdout);
    assert!(
        listing.contains("spiffe://example.org/ops/alice (10.89.1.2:"),
        "a remote session shows its identity and address: {listing}"
    );

    // Nothing listening; nothing answering.
    let refused = r
        .clients
        .ddm(
            &r.ca,
            "admin",
            &["status", "--server", &format!("{}:4851", r.address)],
        )
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&refused.stderr).contains("RPC_S_UNKNOWN_IF (1717)"));
    let started = Instant::now();
    let unreachable = r
        .clients
        .ddm(&r.ca, "admin", &["status", "--server", "10.89.1.77"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&unreachable.stderr).contains("RPC_S_SERVER_UNAVAILABLE (1722)"),
        "{unreachable:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(8), "never a hang");
}

/// `openssl s_client` from the clients' namespace with the monitor's
/// certificate, offering `alpn` (None: no ALPN); its output.
fn handshake(r: &Remote, alpn: Option<&str>) -> Output {
    let dir = r.ca.dir.display().to_string();
    let mut command = r.clients.netns.command("openssl");
    command.args([
        "s_client",
        "-tls1_3",
        "-connect",
        &format!("{}:4850", r.address),
    ]);
    command.args([
        "-cert",
        &format!("{dir}/monitor.pem"),
        "-key",
        &format!("{dir}/monitor.key"),
    ]);
    command.arg("-CAfile").arg(r.ca.ca_file());
    if let Some(alpn) = alpn {
        command.args(["-alpn", alpn]);
    }
    command.stdin(std::process::Stdio::null()).output().unwrap()
}

#[test]
fn a_tls_client_that_does_not_offer_alpn_ddm_1_is_refused_in_the_handshake() {
    require_root();
    let r = Remote::new("[metrics]\nlisten = \"127.0.0.1:9731\"\n");
    r.lab.set_up("lo", true);
    let out = handshake(&r, Some("ddm/1"));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("ALPN protocol: ddm/1"), "{said}");
    for alpn in [None, Some("h2,http/1.1"), Some("ddm/2")] {
        let out = handshake(&r, alpn);
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{alpn:?}: {said}");
        assert!(
            said.contains("alert") && !said.contains("ALPN protocol: "),
            "{alpn:?}: refused in the handshake, with an alert: {said}"
        );
    }
    // The service's own clients offer it.
    allowed(&r.ddm("monitor", &["interfaces"]), "interfaces");
    // Counted by reason; a client with no certificate is another reason.
    let refused = |reason: &str| {
        let samples = crate::metrics::scrape(&r.lab);
        crate::metrics::value(
            &samples,
            &format!("ddm_tls_handshakes_refused_total{{reason=\"{reason}\"}}"),
        )
    };
    wait_until("three refusals for ALPN", || refused("alpn") == 3.0);
    assert_eq!(refused("certificate"), 0.0);
    let _ = r
        .clients
        .netns
        .command("openssl")
        .args([
            "s_client",
            "-tls1_3",
            "-alpn",
            "ddm/1",
            "-connect",
            &format!("{}:4850", r.address),
        ])
        .arg("-CAfile")
        .arg(r.ca.ca_file())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    wait_until("a refusal for the certificate", || {
        refused("certificate") == 1.0
    });
    assert_eq!(refused("alpn"), 3.0);
}

#[test]
fn remote_registrations_keep_g1_g2_and_g3() {
    let r = Remote::new("keepalive_secs = 1\n");
    r.lab.add_connected_link("va");
    let server = r.connect("monitor").unwrap();
    let event = Event::auto().unwrap();
    server.register_connection_notification(&event).unwrap();
    for up in [false, true] {
        r.lab.set_up("va", up);
        expect_signal(&event, "a remote registration is signaled (G1)");
    }
    server.deregister_connection_notification(&event).unwrap();
    r.lab.set_up("va", false);
    expect_silence(&event, "never after Deregister returned (G2)");
    assert_eq!(
        server.deregister_connection_notification(&event),
        Err(WinError::ERROR_INVALID_PARAMETER)
    );

    // A client killed: its registrations go with its TLS session (G3).
    let mut watch = r
        .clients
        .ddm(&r.ca, "monitor", &["watch", "--server", &r.address])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let admin = r.lab.service.connect();
    let remote_registrations = || {
        admin
            .sessions()
            .unwrap()
            .iter()
            .filter(|s| !s.identity.is_empty())
            .map(|s| s.registrations)
            .sum::<u32>()
    };
    wait_until("the remote watch registered", || {
        remote_registrations() == 1
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(watch.id() as i32),
        Signal::SIGKILL,
    )
    .unwrap();
    let _ = watch.wait();
    wait_until("its registration is gone", || remote_registrations() == 0);

    // The link between the namespaces cut: keepalive ends the session.
    let cut = r.connect("monitor").unwrap();
    let cut_event = Event::auto().unwrap();
    cut.register_connection_notification(&cut_event).unwrap();
    wait_until("registered", || remote_registrations() == 1);
    // Cut beyond the router's link: its packets leave, and nothing comes
    // back (the client's address is gone; its host drops them).
    r.clients.netns.ip(&["addr", "flush", "dev", "tr1"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while remote_registrations() != 0 {
        assert!(Instant::now() < deadline, "a cut link's session ends");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        cut.interfaces().unwrap_err(),
        WinError::ERROR_DDM_NOT_RUNNING,
        "the client learns it from its next call"
    );
}

#[test]
fn a_remote_connect_signals_the_local_event_when_the_attempt_completes() {
    let extra = "";
    let mut r = Remote::new(extra);
    r.lab.add_link("vx");
    let declared = "\n[[interface]]\nname = \"branch\"\nlink = \"vx\"\nready = \"link\"\n\
                    dial = \"manual\"\nconnect = [\"ip\", \"link\", \"set\", \"vx\", \"up\"]\n\
                    disconnect = [\"ip\", \"link\", \"set\", \"vx\", \"down\"]\n";
    let config = remote_config(&r.ca, "router", extra) + declared;
    std::fs::write(r.lab.service.config_path(), config).unwrap();
    r.lab.service.kill();
    r.lab.service.restart();
    let server = r.connect("admin").unwrap();
    let branch = server.interface_handle("branch").unwrap();
    let done = Event::manual().unwrap();
    assert_eq!(
        server.interface_connect_signaling(branch, &done),
        Ok(mprapi::Connect::Pending)
    );
    expect_signal(&done, "the remote attempt completed");
    assert_eq!(
        server.interface(branch).unwrap().state,
        ConnectionState::Connected
    );
    assert_eq!(server.interface_disconnect(branch), Ok(()));
}

#[test]
fn a_reload_with_a_revocation_list_closes_that_session_and_no_other() {
    let r = Remote::new("");
    let admin = r.connect("admin").unwrap();
    let monitor = r.connect("monitor").unwrap();
    let crl = r.ca.crl("revoked.crl", &[r.admin_serial]);
    let config = remote_config(&r.ca, "router", &format!("crl = [\"{}\"]\n", crl.display()));
    std::fs::write(r.lab.service.config_path(), config).unwrap();
    allowed(&r.lab.service.ddm(&["reload"]).output().unwrap(), "reload");
    wait_until("the revoked session is closed", || {
        admin.interfaces().is_err()
    });
    assert_eq!(
        admin.interfaces().unwrap_err(),
        WinError::ERROR_ACCESS_DENIED,
        "the session is told why it ends"
    );
    assert!(monitor.interfaces().is_ok(), "the others go on");
    denied(&r.ddm("admin", &["status"]), "a revoked certificate");
}

#[test]
fn garbage_stalled_handshakes_and_idle_connections_do_not_stop_the_service() {
    let r = Remote::new("[limits]\nhandshake_timeout_ms = 1000\n");
    r.lab.add_connected_link("va");
    let server = r.connect("monitor").unwrap();
    let event = Event::auto().unwrap();
    server.register_connection_notification(&event).unwrap();
    let target = format!("{}:4850", r.address);
    let tcp = || {
        r.clients
            .netns
            .enter(|| std::net::TcpStream::connect(&target).unwrap())
    };
    // Garbage where a TLS handshake should be: the service closes.
    let mut junk = tcp();
    junk.write_all(&[0x47; 4096]).unwrap();
    junk.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut rest = Vec::new();
    let _ = junk.read_to_end(&mut rest);
    // A thousand connections that never say anything.
    let idle: Vec<std::net::TcpStream> = (0..1000).map(|_| tcp()).collect();
    for up in [false, true] {
        r.lab.set_up("va", up);
        expect_signal(&event, "the served client is still served");
    }
    assert_eq!(server.interfaces().map(|l| !l.is_empty()), Ok(true));
    // Stalled handshakes are closed at the handshake time limit.
    let mut stalled = idle.into_iter().next().unwrap();
    stalled.set_read_timeout(Some(PATIENCE)).unwrap();
    assert_eq!(
        stalled.read(&mut [0; 16]).ok(),
        Some(0),
        "closed by the service"
    );
    // Garbage after the handshake: a protocol error, and the session ends.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "head -c 5000 /dev/urandom | ip netns exec {} openssl s_client -quiet -alpn ddm/1 -connect {target} -cert {dir}/monitor.pem -key {dir}/monitor.key -CAfile {ca}",
            r.clients.netns.name,
            dir = r.ca.dir.display(),
            ca = r.ca.ca_file().display()
        ))
        .output()
        .unwrap();
    assert!(!out.status.success() || out.stdout.len() < 5000, "{out:?}");
    wait_until("a fresh client connects", || r.connect("viewer").is_ok());
    let log = r.lab.service.log();
    assert!(
        log.contains("refused a remote client: TLS"),
        "the garbage handshake"
    );
    assert!(log.contains("not finished in time"), "the stalled ones");
    assert!(
        log.contains("closing session:"),
        "the garbage frames: {log}"
    );
}

#[test]
fn a_fleet_watch_follows_three_routers_and_one_that_restarts() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ops");
    ca.client(
        "admin",
        "alice",
        Some("spiffe://example.org/ops/alice"),
        Flaw::None,
    );
    let mut clients = Clients::new();
    let mut routers = Vec::new();
    for n in 1..=3 {
        let server = format!("router{n}");
        ca.server(&server, &[&format!("10.89.{n}.1")]);
        let mut lab = Lab::with_config(None);
        std::fs::write(lab.service.config_path(), remote_config(&ca, &server, "")).unwrap();
        lab.service.restart_with_config();
        let address = clients.join(&lab.router);
        lab.add_connected_link("va");
        routers.push((lab, address));
    }
    // The fleet from a file, one router a line.
    let fleet = dir.path().join("routers");
    let names: Vec<&str> = routers.iter().map(|(_, a)| a.as_str()).collect();
    std::fs::write(&fleet, format!("# the lab\n{}\n", names.join("\n"))).unwrap();
    let from_file = format!("@{}", fleet.display());
    let args = [
        "watch",
        "--json",
        "--timeout",
        "6",
        "--server",
        from_file.as_str(),
    ];
    let watch = clients
        .ddm(&ca, "admin", &args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    for (lab, _) in &routers {
        lab.flap("va", 5); // (up), down, up, down, up: 4 changes
    }
    std::thread::sleep(Duration::from_millis(300));
    routers[1].0.service.kill();
    routers[1].0.service.restart();
    for (lab, _) in &routers {
        lab.flap("va", 5);
    }
    let out = watch.wait_with_output().unwrap();
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (n, (_, address)) in routers.iter().enumerate() {
        let seen: Vec<Seen> = lines
            .iter()
            .filter(|l| l["router"] == address.as_str())
            .filter_map(|l| match (l.get("seq"), l["note"].as_str()) {
                (Some(_), _) => Some(Seen::Event(l["seq"].as_u64().unwrap())),
                (None, Some(note)) => note
                    .strip_prefix("missed ")
                    .and_then(|n| n.strip_suffix(" events"))
                    .map(|n| Seen::Missed(n.parse().unwrap())),
                _ => None,
            })
            .collect();
        let Some(Seen::Event(first)) = seen.first() else {
            panic!("{address}: {seen:?}");
        };
        // None twice; none missing but what the killed router may have
        // given before its kill, said as missed.
        let (seqs, missed) = resumed(*first, &seen);
        assert!(seqs.len() >= 8, "{address}: every change: {seen:?}");
        assert_eq!(missed.len(), usize::from(n == 1), "{address}: {seen:?}");
    }
    assert!(
        lines.iter().any(|l| l["router"] == routers[1].1.as_str()
            && l["note"].as_str().is_some_and(|n| n.starts_with("lost"))),
        "the restart is said"
    );
}

#[test]
fn the_c_library_reaches_a_remote_router_by_name_with_each_role() {
    use crate::c_abi::{compile, Build};
    let r = Remote::new("");
    r.lab.add_link("va");
    r.lab.wait_listed("va");
    let api = compile("tests/c/api.c", Build::Plain);
    let run = |certificate: &str, mode: &str| {
        let config = r.ca.client_config(certificate);
        let out = r
            .clients
            .netns
            .command(&api)
            .arg(mode)
            .env("DDM_TEST_SERVER", &r.address)
            .env("DDM_SOCKET", &r.lab.service.socket)
            .env("DDM_TEST_NETNS", &r.lab.router.name)
            .env("DDM_CLIENT_CONFIG", "/nonexistent")
            .env("DDM_CA", config.ca.unwrap())
            .env("DDM_CLIENT_CERT", config.certificate.unwrap())
            .env("DDM_CLIENT_KEY", config.key.unwrap())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains(" passed, 0 failed"),
            "{certificate} {mode}:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run("admin", "all");
    run("viewer", "status");
    run("stranger", "denied");
}

#[test]
fn a_remote_watch_resumes_across_a_restart_of_the_router() {
    let mut r = Remote::new("");
    r.lab.add_connected_link("va");
    let since = r.lab.service.connect().subscribe().unwrap().snapshot().seq;
    let watch = r
        .clients
        .ddm(
            &r.ca,
            "monitor",
            &[
                "watch",
                "--resume",
                "--json",
                "--count",
                "8",
                "--timeout",
                "20",
                "--server",
                &r.address,
            ],
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let admin = r.lab.service.connect();
    wait_until("the remote watch is subscribed", || {
        admin
            .sessions()
            .unwrap()
            .iter()
            .any(|s| !s.identity.is_empty() && s.subscribed)
    });
    r.lab.flap("va", 5); // (up), down, up, down, up: 4 changes
    std::thread::sleep(Duration::from_millis(300));
    r.lab.service.kill();
    r.lab.service.restart();
    r.lab.flap("va", 5); // 4 more, after the restart
    let out = watch.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let seen: Vec<Seen> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| Seen::of_json(&serde_json::from_str(l).unwrap()))
        .collect();
    // Killed: the numbers it may have given are said as missed.
    let (seqs, missed) = resumed(since + 1, &seen);
    assert_eq!((seqs.len(), missed.len()), (8, 1), "{seen:?}");
}

/// While a handle's calls are under way they read its socket, Signal
/// frames included, and the I/O thread leaves it to them; between calls the
/// I/O thread reads. Every flip signals the registration, with calls
/// pouring in on the same handle and after they stop.
#[test]
fn a_remote_registration_is_signaled_while_calls_pour_in_on_its_handle() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
    let r = Remote::new("");
    r.lab.add_connected_link("va");
    let server = r.connect("monitor").unwrap();
    let event = Event::auto().unwrap();
    server.register_connection_notification(&event).unwrap();
    let (stop, calls) = (AtomicBool::new(false), AtomicUsize::new(0));
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Relaxed) {
                server.interfaces().expect("a call while signals arrive");
                calls.fetch_add(1, Relaxed);
            }
        });
        wait_until("calls under way", || calls.load(Relaxed) > 10);
        for up in [false, true, false, true] {
            r.lab.set_up("va", up);
            expect_signal(&event, "signaled while calls pour in");
        }
        stop.store(true, Relaxed);
    });
    let during = calls.load(Relaxed);
    r.lab.set_up("va", false);
    expect_signal(&event, "signaled once the calls stopped");
    assert!(during > 10, "the calls went on: {during}");
}

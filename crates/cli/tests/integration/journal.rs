//! The journal: a real SQLite file under the service, filled by real link
//! changes; read back through `ddm history`, `ddm uptime` and resumed
//! streams; kept across clean stops, SIGKILLs and restarts; and a full
//! disk, which costs entries (counted in a gap) but never a signal.

use crate::support::*;
use mprapi::{
    ConnectionState, EntryKind, Event, History, JournalEntry, ReconnectingServer, Server,
    StreamItem,
};
use nix::sys::signal::Signal;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

/// Every transition the journal holds from `since_seq` on.
fn transitions(server: &Server, since_seq: u64) -> Vec<(u64, String, u32, u32)> {
    server
        .history(History {
            since_seq,
            transitions_only: true,
            ..History::default()
        })
        .map(|e| {
            let event = e.unwrap().event.unwrap();
            (event.seq, event.name, event.from, event.to)
        })
        .collect()
}

fn entries(server: &Server) -> Vec<JournalEntry> {
    server
        .history(History::default())
        .map(Result::unwrap)
        .collect()
}

fn kinds(entries: &[JournalEntry]) -> Vec<EntryKind> {
    entries
        .iter()
        .map(|e| EntryKind::try_from(e.kind).unwrap())
        .collect()
}

/// The sequence numbers `ddm watch --json` printed.
fn printed_seqs(stdout: &[u8]) -> Vec<u64> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

/// The stream's events until it has been quiet for QUIET.
fn drain(stream: &mprapi::EventStream) -> Vec<(u64, String, u32, u32)> {
    std::iter::from_fn(|| match stream.next_timeout(QUIET) {
        Some(StreamItem::Event(e)) => Some((e.seq, e.interface, e.from as u32, e.to as u32)),
        None => None,
        other => panic!("a clean stream: {other:?}"),
    })
    .collect()
}

#[test]
fn the_journal_holds_every_committed_change_in_order() {
    let lab = Lab::new();
    lab.add_connected_link("va");
    lab.add_connected_link("vb");
    let server = lab.service.connect();
    let stream = server.subscribe().unwrap();
    let first = stream.snapshot().seq + 1;
    for _ in 0..5 {
        lab.flap("va", 41);
        lab.flap("vb", 41);
    }
    let streamed = drain(&stream);
    assert!(streamed.len() >= 10, "churn happened: {}", streamed.len());
    assert_eq!(transitions(&server, first), streamed);
}

#[test]
fn numbering_goes_on_across_a_restart_and_changes_made_while_down_are_found() {
    let mut lab = Lab::new();
    lab.add_connected_link("va");
    let last = lab.service.connect().subscribe().unwrap().snapshot().seq;
    assert!(lab.service.stop_with(Signal::SIGTERM).success());
    lab.set_up("va", false);
    lab.service.restart();
    lab.wait_for_state("va", ConnectionState::Disconnected);
    let server = lab.service.connect();
    assert_eq!(
        transitions(&server, last + 1),
        vec![(
            last + 1,
            "va".to_string(),
            ConnectionState::Connected as u32,
            ConnectionState::Disconnected as u32
        )],
        "the drop while down is in the history, numbered after the last"
    );
    let all = entries(&server);
    let tail = &all[all.len() - 4..];
    assert_eq!(
        kinds(tail),
        vec![
            EntryKind::EntryServiceStop,
            EntryKind::EntryServiceStart,
            EntryKind::EntryResync,
            EntryKind::EntryTransition
        ]
    );
    assert_eq!(tail[2].count, 1, "one change found");
    assert_eq!(tail[3].reason, "resync");
}

#[test]
fn a_sigkill_loses_no_change_committed_before_it_and_a_clean_stop_none_at_all() {
    let mut lab = Lab::new();
    lab.add_connected_link("va");
    let server = lab.service.connect();
    let stream = server.subscribe().unwrap();
    lab.flap("va", 30);
    let committed = drain(&stream);
    std::thread::sleep(Duration::from_millis(100));
    drop((stream, server));
    lab.service.kill();
    lab.service.restart();
    let server = lab.service.connect();
    let kept = transitions(&server, committed[0].0);
    assert_eq!(&kept[..committed.len()], &committed[..]);

    // A clean stop right after a burst: whatever was committed is kept.
    let stream = server.subscribe().unwrap();
    lab.flap("va", 31);
    assert!(lab.service.stop_with(Signal::SIGTERM).success());
    let committed: Vec<_> = std::iter::from_fn(|| match stream.next_timeout(PATIENCE) {
        Some(StreamItem::Event(e)) => Some((e.seq, e.interface, e.from as u32, e.to as u32)),
        Some(StreamItem::End(_)) | None => None,
        Some(StreamItem::Missed(n)) => panic!("missed {n}"),
    })
    .collect();
    drop((stream, server));
    lab.service.restart();
    let server = lab.service.connect();
    if let Some(first) = committed.first() {
        let kept = transitions(&server, first.0);
        assert_eq!(&kept[..committed.len()], &committed[..]);
    }
}

/// A small tmpfs, unmounted when dropped.
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    fn new(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                dir.path().to_str().unwrap(),
            ],
        );
        SmallDisk(dir)
    }

    fn path(&self) -> &std::path::Path {
        self.0.path()
    }

    /// Fills what is left with a file.
    fn fill(&self) {
        let _ = Command::new("dd")
            .args(["if=/dev/zero", "bs=4096"])
            .arg(format!("of={}", self.0.path().join("filler").display()))
            .output();
    }

    fn free(&self) {
        std::fs::remove_file(self.0.path().join("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = tool("umount").arg(self.0.path()).status();
    }
}

#[test]
fn a_full_disk_costs_entries_in_a_gap_but_never_a_signal() {
    require_root();
    let disk = SmallDisk::new("4m");
    let config = format!(
        "[journal]\ndirectory = \"{}\"\n[metrics]\nlisten = \"127.0.0.1:9731\"\n",
        disk.path().display()
    );
    let lab = Lab::with_config(Some(&config));
    lab.set_up("lo", true);
    lab.add_connected_link("va");
    let journal_figures = || {
        let samples = crate::metrics::scrape(&lab);
        let value = |name: &str| crate::metrics::value(&samples, name);
        (
            value("ddm_journal_entries_lost_total"),
            value("ddm_journal_write_errors_total"),
            value("ddm_journal_size_bytes"),
        )
    };
    let (lost, errors, size) = journal_figures();
    assert_eq!((lost, errors), (0.0, 0.0));
    assert!(size > 0.0, "{size}");
    let server = lab.service.connect();
    let event = Event::auto().unwrap();
    server.register_connection_notification(&event).unwrap();
    disk.fill();
    for up in [false, true, false, true] {
        lab.set_up("va", up);
        expect_signal(&event, "a change while the disk is full");
    }
    wait_until("the service says it lost entries", || {
        lab.service.log().contains("journal write failed")
    });
    // `ddm status` says so, during the outage and after it.
    let lost_line = || {
        let out = stdout_of(&mut lab.service.ddm(&["status"]));
        let verbose = stdout_of(&mut lab.service.ddm(&["status", "--verbose"]));
        let lost = out
            .lines()
            .find_map(|l| {
                l.split(", ")
                    .find_map(|p| p.strip_suffix(" lost since start)"))
            })
            .and_then(|n| n.parse::<u64>().ok());
        assert!(verbose.contains("lost since start"), "{verbose}");
        lost
    };
    wait_until("ddm status counts the entries lost", || {
        lost_line().is_some_and(|n| n >= 1)
    });
    let (lost, errors, _) = journal_figures();
    assert!(
        lost >= 1.0 && errors >= 1.0,
        "the metrics: {lost} lost, {errors} errors"
    );
    disk.free();
    lab.set_up("va", false);
    expect_signal(&event, "a change once there is room again");
    wait_until("the gap is in the journal", || {
        entries(&server)
            .iter()
            .any(|e| e.kind == EntryKind::EntryGap as i32 && e.count >= 1)
    });
    let gap = entries(&server)
        .into_iter()
        .find(|e| e.kind == EntryKind::EntryGap as i32)
        .unwrap();
    assert_eq!(gap.reason, "write failed");
    let after = transitions(&server, gap.last_seq + 1);
    assert_eq!(
        after.last().map(|t| (t.1.as_str(), t.3)),
        Some(("va", ConnectionState::Disconnected as u32)),
        "the journal goes on after the gap"
    );
    let status = server.journal_status().unwrap();
    assert!(status.enabled && status.last_id > 0);
    assert_eq!(status.lost, gap.count, "every entry lost is counted");
    assert_eq!(
        lost_line(),
        Some(gap.count),
        "and still said after the outage"
    );
}

#[test]
fn history_and_uptime_tell_a_scripted_night() {
    let lab = Lab::new();
    lab.add_connected_link("va");
    let since = lab.service.connect().subscribe().unwrap().snapshot().seq + 1;
    // Two drops: 300 ms, then 600 ms.
    for (up, hold) in [(false, 300), (true, 200), (false, 600), (true, 100)] {
        lab.set_up("va", up);
        std::thread::sleep(Duration::from_millis(hold));
    }
    lab.wait_for_state("va", ConnectionState::Connected);
    let history = lab
        .service
        .ddm(&[
            "history",
            "--interface",
            "va",
            "--json",
            "--since",
            &since.to_string(),
        ])
        .output()
        .unwrap();
    assert!(history.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(history.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["kind"] == "transition")
        .collect();
    let moves: Vec<(&str, &str)> = lines
        .iter()
        .map(|v| (v["from"].as_str().unwrap(), v["to"].as_str().unwrap()))
        .collect();
    assert_eq!(
        moves,
        vec![
            ("connected", "disconnected"),
            ("disconnected", "connected"),
            ("connected", "disconnected"),
            ("disconnected", "connected")
        ]
    );
    let uptime = lab
        .service
        .ddm(&["uptime", "--interface", "va", "--json", "--since", "1h"])
        .output()
        .unwrap();
    assert!(uptime.status.success(), "{uptime:?}");
    let report: serde_json::Value = serde_json::from_slice(&uptime.stdout).unwrap();
    let va = &report["interfaces"][0];
    assert_eq!(va["interface"], "va");
    assert_eq!(va["disconnects"], 2);
    assert_eq!(va["connected_now"], true);
    let longest = va["longest_outage_secs"].as_f64().unwrap();
    let observed = va["observed_secs"].as_f64().unwrap();
    let connected = va["connected_secs"].as_f64().unwrap();
    assert!(longest >= 0.6 && longest < observed, "{va}");
    assert!(observed - connected >= 0.9, "down at least 0.9 s: {va}");
    let table = lab.service.ddm(&["uptime"]).output().unwrap();
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("va ") && l.contains('%')),
        "{table}"
    );
    let bad = lab
        .service
        .ddm(&["history", "--since", "last tuesday"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("neither a sequence number"));
}

#[test]
fn only_monitors_and_admins_read_the_journal() {
    let lab = Lab::new();
    for command in [&["history"][..], &["uptime"]] {
        let out = lab
            .service
            .ddm(command)
            .uid(NOBODY)
            .gid(NOGROUP)
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("ERROR_ACCESS_DENIED (5)"),
            "{command:?}: {out:?}"
        );
    }
    let status = lab.service.ddm_as_nobody(&["status"]);
    assert_eq!(String::from_utf8_lossy(&status.stdout), "running\n");
    let status = lab.service.ddm(&["status"]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&status.stdout),
        "running\n",
        "with nothing to report, the one line scripts read"
    );
    let status = lab.service.ddm(&["status", "--verbose"]).output().unwrap();
    assert!(String::from_utf8_lossy(&status.stdout).contains("journal: "));
}

#[test]
fn watch_since_replays_the_journal_then_follows() {
    let lab = Lab::new();
    lab.add_connected_link("va");
    let since = lab.service.connect().subscribe().unwrap().snapshot().seq;
    lab.flap("va", 7); // (up), down, up, ...: 6 changes before the watch
    wait_until("the changes are in", || {
        transitions(&lab.service.connect(), since + 1).len() == 6
    });
    let watch = lab
        .service
        .ddm(&[
            "watch",
            "--json",
            "--count",
            "8",
            "--since",
            &since.to_string(),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    lab.flap("va", 3); // (up), down, up: two live ones
    let out = watch.wait_with_output().unwrap();
    assert!(out.status.success());
    let seqs = printed_seqs(&out.stdout);
    assert_eq!(seqs, (since + 1..=since + 8).collect::<Vec<_>>());
}

/// Across a clean stop a resumed stream goes on with the next number;
/// across a SIGKILL the changes the writer had not yet written may have
/// been seen and are not journaled, so the next run numbers on after the
/// numbers reserved on disk, and the stream says what it may have missed
/// with one marker: no number ever means two changes.
#[test]
fn a_resuming_stream_misses_nothing_and_repeats_nothing_across_restarts() {
    let mut lab = Lab::new();
    lab.add_connected_link("va");
    let server = ReconnectingServer::connect_socket(&lab.service.socket).unwrap();
    let mut stream = server.subscribe().unwrap();
    let first = stream.snapshot().seq + 1;
    lab.flap("va", 10);
    assert!(lab.service.stop_with(Signal::SIGTERM).success());
    lab.flap("va", 3); // while down: found by the resync
    lab.service.restart();
    lab.flap("va", 11);
    // The stream back and the changes written before the kill.
    std::thread::sleep(Duration::from_millis(300));
    lab.service.kill();
    lab.service.restart();
    lab.flap("va", 4);
    let mut seen = Vec::new();
    while let Some(item) = stream.next_timeout(Duration::from_secs(3)) {
        seen.push(match item {
            StreamItem::Event(e) => Seen::Event(e.seq),
            StreamItem::Missed(n) => Seen::Missed(n),
            other => panic!("events and the kill's marker: {other:?}"),
        });
    }
    let journal = entries(&lab.service.connect());
    let said = || {
        format!(
            "{seen:?}
log: {}",
            lab.service.log()
        )
    };
    let (seqs, missed) = resumed(first, &seen);
    assert!(seqs.len() >= 20, "changes from every run: {}", said());
    assert_eq!(missed.len(), 1, "one marker, at the kill: {}", said());
    let unclean = journal
        .iter()
        .find(|e| e.kind == EntryKind::EntryGap as i32 && e.reason.starts_with("unclean stop"))
        .unwrap_or_else(|| panic!("the journal says so: {journal:?}"));
    assert!(
        seqs.contains(&(unclean.last_seq + 1)),
        "numbering goes on after the reserved numbers: {}",
        said()
    );
}

/// `ddm watch --resume` across a SIGKILL: each number once, and the
/// numbers the killed run may have given said as missed.
#[test]
fn watch_resume_goes_on_across_a_sigkill_of_the_service() {
    let mut lab = Lab::new();
    lab.add_connected_link("va");
    let since = lab.service.connect().subscribe().unwrap().snapshot().seq;
    let watch = lab
        .service
        .ddm(&[
            "watch",
            "--resume",
            "--json",
            "--count",
            "12",
            "--timeout",
            "20",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    lab.service.wait_for_registration(watch.id());
    lab.flap("va", 7); // (up), down, up, ...: 6 changes
    wait_until("the changes are journaled", || {
        transitions(&lab.service.connect(), since + 1).len() == 6
    });
    lab.service.kill();
    lab.service.restart();
    lab.flap("va", 7); // 6 more, after the restart
    let out = watch.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let seen: Vec<Seen> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| Seen::of_json(&serde_json::from_str(l).unwrap()))
        .collect();
    let (seqs, missed) = resumed(since + 1, &seen);
    assert_eq!(seqs.len(), 12, "{seen:?}");
    assert_eq!(missed.len(), 1, "{seen:?}");
}

#[test]
fn only_the_service_can_read_its_journal_file() {
    use std::os::unix::fs::PermissionsExt;
    let lab = Lab::new();
    let status = lab.service.connect().journal_status().unwrap();
    let file = std::path::Path::new(&status.path);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(file), 0o600);
    assert_eq!(mode(file.parent().unwrap()), 0o700);
}

/// A journal damaged while the service was down: the service starts all
/// the same (a router keeps routing with a broken disk), moves the file
/// aside with a log line, begins a new journal with a gap entry, and
/// `ddm status` says so.
#[test]
fn a_damaged_journal_does_not_stop_the_service_and_status_says_so() {
    let mut lab = Lab::new();
    lab.add_connected_link("va");
    lab.service.kill();
    let file = lab.service.state_directory().join("journal.sqlite");
    std::fs::write(&file, vec![0x5a; 64 * 1024]).unwrap();
    let _ = std::fs::remove_file(file.with_extension("sqlite-wal"));
    lab.service.restart();
    let status = stdout_of(&mut lab.service.ddm(&["status"]));
    assert!(
        status.starts_with("running\n") && status.contains("found damaged at this start"),
        "{status}"
    );
    assert!(lab.service.log().contains("the journal is damaged"));
    let server = lab.service.connect();
    let first = entries(&server).into_iter().next().unwrap();
    assert_eq!(first.kind, EntryKind::EntryGap as i32);
    assert!(first.reason.contains("moved aside"), "{}", first.reason);
    lab.set_up("va", false);
    wait_until("changes are journaled again", || {
        entries(&server)
            .iter()
            .any(|e| e.event.as_ref().is_some_and(|t| t.name == "va"))
    });
}

/// The journal and the stream are the sequence of states the table went
/// through, under churn, reloads and a SIGKILL in the middle of churn: a
/// `ddm watch --json --resume` that runs throughout prints every journaled
/// transition, as journaled, and beyond them only changes numbered in the
/// range the journal's unclean-stop gap names (signaled before the kill,
/// not yet written), where it says it may have missed some; no number
/// twice; each interface's transitions chain (one's `to` is the next
/// one's `from`) but across that marker; a reload of a connected interface whose
/// declaration changed hangs it up and dials it again, never adopting the
/// link its own hang-up is deleting (no fake CONNECTED, no 629); an
/// interface a reload adds appears from UNREACHABLE, also after it was
/// removed, also disabled; a kernel link a reload declares leaves the
/// kernel interfaces; a connection adopted after a SIGKILL costs no fake
/// disconnect and reconnect; and the journal's last states are the
/// service's.
#[test]
fn the_journal_and_the_stream_are_the_states_the_table_went_through() {
    let declared = |name: &str, link: &str, extra: &str| {
        format!(
            "[[interface]]\nname = \"{name}\"\nlink = \"{link}\"\n\
             connect = [\"ip\", \"link\", \"set\", \"{link}\", \"up\"]\n\
             disconnect = [\"ip\", \"link\", \"set\", \"{link}\", \"down\"]\n\
             dial = \"persistent\"\nredial_pause_secs = 1\n{extra}\n"
        )
    };
    let mut lab = Lab::new();
    for link in ["k0", "k1", "d0", "d1"] {
        lab.add_link(link);
    }
    lab.set_up("k1", true);
    lab.wait_for_state("k1", ConnectionState::Connected);
    let config = lab.service.config_path();
    let reload = |lab: &Lab, text: String| {
        std::fs::write(lab.service.config_path(), text).unwrap();
        stdout_of(&mut lab.service.ddm(&["reload"]));
    };
    std::fs::write(&config, declared("dial0", "d0", "")).unwrap();
    lab.service.restart_with_config();
    lab.wait_for_state("dial0", ConnectionState::Connected);
    lab.wait_for_state("k1", ConnectionState::Connected);
    let out = std::fs::File::create(lab.service.state_directory().join("watch.json")).unwrap();
    // Killed and reaped when the test ends, however it ends.
    let watch = ddm_lab::Process(
        lab.service
            .ddm(&["watch", "--json", "--resume", "--since", "0"])
            .stdout(out)
            .spawn()
            .unwrap(),
    );

    lab.flap("k0", 10);
    // d0 changed while connected: hung up and dialed again.
    reload(&lab, declared("dial0", "d0", "connect_timeout_secs = 20"));
    lab.wait_for_state("dial0", ConnectionState::Connected);
    // Added disabled, removed, added back; a kernel link declared.
    reload(
        &lab,
        declared("dial0", "d0", "connect_timeout_secs = 20")
            + &declared("dial1", "d1", "enabled = false"),
    );
    lab.wait_listed("dial1");
    reload(&lab, declared("dial0", "d0", "connect_timeout_secs = 20"));
    reload(
        &lab,
        declared("dial0", "d0", "connect_timeout_secs = 20")
            + &declared("dial1", "d1", "")
            + &declared("kd", "k1", ""),
    );
    lab.wait_for_state("dial1", ConnectionState::Connected);
    lab.wait_for_state("kd", ConnectionState::Connected);
    let names: Vec<String> = lab
        .service
        .connect()
        .interfaces()
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert!(
        !names.contains(&"k1".to_owned()),
        "k1 is kd's link now: {names:?}"
    );
    lab.flap("k0", 6);
    // A SIGKILL in the middle of churn, while dial0, dial1 and kd are
    // connected (adopted at the start): what the journal writer's queue
    // held is lost to the journal, and the stream may have shown it.
    let churn = ddm_lab::Process(
        lab.router
            .command("sh")
            .args([
                "-c",
                "for i in $(seq 200); do ip link set k0 up; ip link set k0 down; done",
            ])
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(40));
    lab.service.kill();
    drop(churn);
    lab.service.restart();
    lab.wait_for_state("dial0", ConnectionState::Connected);
    lab.flap("k0", 4);
    lab.set_up("k0", true);
    lab.wait_for_state("k0", ConnectionState::Connected);

    let server = lab.service.connect();
    let printed = || {
        std::fs::read_to_string(lab.service.state_directory().join("watch.json"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .collect::<Vec<_>>()
    };
    // Quiet now: the journal's last transition is the watch's last line.
    let deadline = std::time::Instant::now() + PATIENCE;
    let journal = loop {
        let journal = transitions(&server, 0);
        let last_seq = journal.last().unwrap().0;
        if printed().iter().rev().find_map(|e| e["seq"].as_u64()) == Some(last_seq) {
            break journal;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the watch printed up to {:?}, the journal to {last_seq}",
            printed().last()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(watch);
    let state = |name: &str| {
        (0..4)
            .find(|n| ConnectionState::from_u32(*n).name() == name)
            .unwrap()
    };
    // Events, and what the resumed watch says it missed.
    let event = |e: &serde_json::Value| {
        (
            e["seq"].as_u64().unwrap(),
            e["interface"].as_str().unwrap().to_owned(),
            state(e["from"].as_str().unwrap()),
            state(e["to"].as_str().unwrap()),
        )
    };
    let printed = printed();
    // The lab's own restart before the watch began was a kill too: its
    // marker comes first, after the first run's change if the journal had
    // it written before the kill (seq 1), and the watch starts after it.
    let all: Vec<Seen> = printed.iter().map(Seen::of_json).collect();
    let restart = all
        .iter()
        .position(|s| matches!(s, Seen::Missed(_)))
        .expect("the marker of the lab's restart");
    assert!(
        restart <= 1,
        "at most the first run's change before it: {all:?}"
    );
    let seen: Vec<Seen> = all.into_iter().skip(restart + 1).collect();
    let Some(Seen::Event(first)) = seen.first() else {
        panic!("{seen:?}");
    };
    let (_, missed) = resumed(*first, &seen);
    assert_eq!(missed.len(), 1, "one marker, at the kill: {seen:?}");
    let streamed: Vec<(u64, String, u32, u32)> = printed
        .iter()
        .filter(|e| e.get("seq").is_some())
        .map(event)
        .collect();
    let entries = entries(&server);
    let unclean = entries
        .iter()
        .rfind(|e| e.kind == EntryKind::EntryGap as i32 && e.reason.starts_with("unclean stop"))
        .expect("the journal says the kill may have lost changes");
    let may_be_lost = unclean.last_seq - unclean.count + 1..=unclean.last_seq;
    // The stream holds every journaled change as it is journaled, and
    // beyond them only the changes of the killed run's last moments.
    let mut journaled = journal.iter().peekable();
    for change in &streamed {
        if journaled.peek() == Some(&change) {
            journaled.next();
        } else {
            assert!(
                may_be_lost.contains(&change.0),
                "#{}: streamed, not journaled, outside {may_be_lost:?}: {streamed:?}\n{journal:?}",
                change.0
            );
        }
    }
    assert_eq!(
        journaled.next(),
        None,
        "every journaled change was streamed"
    );

    // Each interface's transitions chain, in the stream, but where the
    // stream says it may have missed some. A kernel link's are into and
    // out of CONNECTED: down is as not there (README, Choices).
    let declared_names = ["dial0", "dial1", "kd"];
    let seen_as = |name: &str, state: u32| {
        if declared_names.contains(&name) || state == ConnectionState::Connected as u32 {
            state
        } else {
            ConnectionState::Unreachable as u32
        }
    };
    let mut last: std::collections::HashMap<String, u32> = Default::default();
    for line in &printed {
        if line.get("seq").is_none() {
            last.clear();
            continue;
        }
        let (seq, name, from, to) = event(line);
        if let Some(before) = last.get(&name) {
            assert_eq!(
                seen_as(&name, from),
                seen_as(&name, *before),
                "#{seq} {name}: from where it was, in {streamed:?}"
            );
        }
        last.insert(name, to);
    }
    let mut last: std::collections::HashMap<&str, u32> = Default::default();
    for (_, name, _, to) in &journal {
        last.insert(name, *to);
    }
    for interface in server.interfaces().unwrap() {
        match last.get(interface.name.as_str()) {
            Some(then) => assert_eq!(
                seen_as(&interface.name, *then),
                seen_as(&interface.name, interface.state as u32),
                "{}: the journal's last state is the service's",
                interface.name
            ),
            // A kernel link that never connected has no transition.
            None => assert_ne!(
                interface.state,
                ConnectionState::Connected,
                "{}",
                interface.name
            ),
        }
    }
    let of = |name: &'static str| {
        entries
            .iter()
            .filter(move |e| e.event.as_ref().is_some_and(|t| t.name == name))
    };
    assert!(
        of("dial0").all(|e| e.event.as_ref().unwrap().last_error != 629),
        "no fake loss of dial0"
    );
    let last_start = entries
        .iter()
        .rposition(|e| e.kind == EntryKind::EntryServiceStart as i32)
        .unwrap();
    let adopted = entries[last_start..]
        .iter()
        .filter(|e| e.event.as_ref().is_some_and(|t| t.name == "dial0"))
        .count();
    assert_eq!(
        adopted, 0,
        "an adopted connection changes nothing at the start"
    );
}

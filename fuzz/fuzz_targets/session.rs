//! Arbitrary bytes from a client into the real service, built as
//! `ddm serve` builds it but in this process (links from a channel instead
//! of the kernel): whatever arrives, the session answers or closes, and the
//! service never panics or hangs. A panic in any of its tasks aborts the
//! process, which libFuzzer reports.
#![no_main]

use ddmd::config::{Config, JournalSetting, Limits};
use ddmd::in_process::InProcess;
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::runtime::Runtime;

struct Harness {
    runtime: Runtime,
    socket: PathBuf,
    _service: InProcess,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ddm-fuzz-{}", std::process::id()));
        let socket = dir.join("ddm.sock");
        let config = Config {
            limits: Limits {
                handshake_timeout_ms: 50,
                ..Limits::default()
            },
            // The journal's disk writes are not what is fuzzed here.
            journal: JournalSetting::On(false),
            ..Config::default()
        };
        let service = InProcess::start(config, &socket).expect("start the service");
        service.set_link(2, "fuzz0", true);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Harness {
            runtime,
            socket,
            _service: service,
        }
    })
}

fuzz_target!(|bytes: &[u8]| {
    let harness = harness();
    harness.runtime.block_on(async {
        let mut client = UnixStream::connect(&harness.socket).await.unwrap();
        let _ = client.write_all(bytes).await;
        let _ = client.shutdown().await;
        let mut replies = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut replies)).await;
        assert!(read.is_ok(), "the session neither answered nor closed");
    });
});

//! Arbitrary bytes from a client into the real session code and the real
//! router, over an in-process socket pair: whatever arrives, the session
//! answers or closes, and never panics or hangs.
#![no_main]

use ddmd::access::Policy;
use ddmd::config::{AccessConfig, Limits};
use ddmd::router::Router;
use ddmd::session::{self, SessionContext};
use ddmd::table::{InterfaceTable, LinkFilter};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};

struct Service {
    runtime: Runtime,
    context: Arc<SessionContext>,
}

fn service() -> &'static Service {
    static SERVICE: OnceLock<Service> = OnceLock::new();
    SERVICE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let limits = Limits {
            handshake_timeout_ms: 50,
            ..Limits::default()
        };
        let (commands, command_receiver) = mpsc::unbounded_channel();
        let (_links, link_receiver) = mpsc::unbounded_channel();
        let (ready, _) = oneshot::channel();
        let table = InterfaceTable::new(LinkFilter::new(&["*".into()], &[]));
        let router = Router::new(table, limits.clone(), ready);
        runtime.spawn(router.run(command_receiver, link_receiver));
        std::mem::forget(_links);
        let context = Arc::new(SessionContext {
            policy: Policy::resolve(&AccessConfig::default()),
            limits,
            router: commands,
        });
        Service { runtime, context }
    })
}

fuzz_target!(|bytes: &[u8]| {
    let service = service();
    service.runtime.block_on(async {
        let (mut client, server) = tokio::net::UnixStream::pair().unwrap();
        let session = tokio::spawn(session::run(server, 1, service.context.clone()));
        let _ = client.write_all(bytes).await;
        let _ = client.shutdown().await;
        let mut replies = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut replies)).await;
        assert!(read.is_ok(), "the session neither answered nor closed");
        session.await.expect("the session task panicked");
    });
});

//! Arbitrary bytes from a client into the real service over TLS 1.3: the
//! remote listener of the in-process service, a client certificate of the
//! CA it trusts, and whatever the fuzzer writes as the session's frames.
//! The session answers or closes, and the service never panics or hangs.
#![no_main]

use ddm_test_ca::{Ca, Flaw};
use ddmd::config::{Config, JournalSetting, Limits};
use ddmd::in_process::InProcess;
use ddmd::clients::remote::RemoteConfig;
use libfuzzer_sys::fuzz_target;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;
use tokio_rustls::TlsConnector;

/// The listener's address, fixed for the fuzzer.
const ADDRESS: &str = "127.0.0.1:48501";

struct Harness {
    runtime: Runtime,
    connector: TlsConnector,
    _service: InProcess,
}

/// A CA, the service's certificate and a client's, in `dir`.
fn certificates(dir: &Path) -> Ca {
    let ca = Ca::new(dir, "fuzz");
    ca.server("server", &["127.0.0.1"]);
    ca.client("client", "client", None, Flaw::None);
    ca
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ddm-fuzz-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = certificates(&dir);
        let mut config = Config {
            limits: Limits {
                handshake_timeout_ms: 200,
                ..Limits::default()
            },
            journal: JournalSetting::On(false),
            remote: Some(RemoteConfig {
                listen: ADDRESS.parse::<SocketAddr>().unwrap(),
                certificate: dir.join("server.pem"),
                key: dir.join("server.key"),
                client_ca: ca.ca_file(),
                crl: Vec::new(),
                max_pending_handshakes: 64,
                write_timeout_ms: 1000,
                keepalive_secs: 30,
            }),
            ..Config::default()
        };
        config.access.admin_identities = vec!["client".into()];
        let service = InProcess::start(config, &dir.join("ddm.sock")).expect("start the service");
        service.set_link(2, "fuzz0", true);
        // The TLS listener binds as the service starts serving.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(ADDRESS).is_err() {
            assert!(std::time::Instant::now() < deadline, "the TLS listener");
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca.ca_file()).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let chain = CertificateDer::pem_file_iter(dir.join("client.pem"))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(dir.join("client.key")).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Harness {
            runtime,
            connector: TlsConnector::from(Arc::new(client)),
            _service: service,
        }
    })
}

fuzz_target!(|bytes: &[u8]| {
    let harness = harness();
    harness.runtime.block_on(async {
        let tcp = tokio::net::TcpStream::connect(ADDRESS).await.unwrap();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let Ok(mut client) = harness.connector.connect(name, tcp).await else {
            panic!("the TLS handshake failed");
        };
        let _ = client.write_all(bytes).await;
        let _ = client.shutdown().await;
        let mut replies = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut replies)).await;
        assert!(read.is_ok(), "the session neither answered nor closed");
    });
});

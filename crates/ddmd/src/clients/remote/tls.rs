//! The server's TLS 1.3 settings, from files, with the one crypto provider
//! of the build (ring). A client must offer the protocol's ALPN id
//! ([`ALPN`]): one that offers others gets rustls' `no_application_protocol`
//! alert, one that offers none gets no certificate and an `access_denied`
//! alert, so neither gets past the handshake.

use super::RemoteConfig;
use crate::ops::metrics::TlsRefusal;
use ddm_proto::frame::ALPN;
use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use std::path::Path;
use std::sync::Arc;

/// The server's settings and the verifier of client certificates in them.
#[derive(Debug, Clone)]
pub struct Tls {
    pub config: Arc<ServerConfig>,
    pub verifier: Arc<dyn ClientCertVerifier>,
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|all| all.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(certificates)
}

/// Builds the settings from `config`'s files; a clear error when one is
/// missing or wrong.
pub fn server_config(config: &RemoteConfig) -> Result<Tls, String> {
    let provider = Arc::new(ring::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in read_certificates(&config.client_ca)? {
        roots
            .add(ca)
            .map_err(|e| format!("{}: {e}", config.client_ca.display()))?;
    }
    let crls = config
        .crl
        .iter()
        .map(|path| {
            CertificateRevocationListDer::from_pem_file(path)
                .map_err(|e| format!("{}: {e}", path.display()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .with_crls(crls)
        .build()
        .map_err(|e| format!("client CA: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(&config.key)
        .map_err(|e| format!("{}: {e}", config.key.display()))?;
    let certified = CertifiedKey::from_der(read_certificates(&config.certificate)?, key, &provider)
        .map_err(|e| format!("{}: {e}", config.certificate.display()))?;
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier.clone())
        .with_cert_resolver(Arc::new(ForDdmClients(Arc::new(certified))));
    server.alpn_protocols = vec![ALPN.to_vec()];
    Ok(Tls {
        config: Arc::new(server),
        verifier,
    })
}

/// The service's certificate, for a client hello that offers [`ALPN`];
/// none for any other, which ends that handshake.
#[derive(Debug)]
struct ForDdmClients(Arc<CertifiedKey>);

impl ResolvesServerCert for ForDdmClients {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        offers_ddm(hello.alpn()).then(|| self.0.clone())
    }
}

/// Whether a client hello's ALPN list (None: it sent none) has [`ALPN`].
fn offers_ddm<'a>(offered: Option<impl Iterator<Item = &'a [u8]>>) -> bool {
    offered.is_some_and(|mut ids| ids.any(|id| id == ALPN))
}

/// What rustls says when [`ForDdmClients`] gives no certificate.
const NO_CERTIFICATE_FOR_HELLO: &str = "no server certificate chain resolved";

/// Why a handshake failed, for the metrics.
pub fn refusal(error: &std::io::Error) -> TlsRefusal {
    let tls = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented) => {
            TlsRefusal::Certificate
        }
        Some(rustls::Error::NoApplicationProtocol) => TlsRefusal::Alpn,
        Some(rustls::Error::General(said)) if said == NO_CERTIFICATE_FOR_HELLO => TlsRefusal::Alpn,
        _ => TlsRefusal::Handshake,
    }
}

impl Tls {
    /// Whether a session's client certificate is still good under these
    /// settings (its CA, the revocation lists, its dates).
    pub fn still_accepts(&self, chain: &[CertificateDer<'static>]) -> bool {
        let Some((end_entity, intermediates)) = chain.split_first() else {
            return false;
        };
        self.verifier
            .verify_client_cert(end_entity, intermediates, UnixTime::now())
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_hello_offering_ddm_1_gets_the_certificate() {
        let some = |ids: &'static [&'static [u8]]| Some(ids.iter().copied());
        assert!(offers_ddm(some(&[b"ddm/1"])));
        assert!(offers_ddm(some(&[b"h2", b"ddm/1"])));
        assert!(!offers_ddm(some(&[b"h2", b"http/1.1"])));
        assert!(!offers_ddm(some(&[b"ddm/2"])));
        assert!(!offers_ddm(some(&[])));
        assert!(!offers_ddm(None::<std::iter::Empty<&[u8]>>));
    }

    #[test]
    fn handshake_failures_are_told_apart_for_the_metrics() {
        let io = |e: rustls::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let general = |s: &str| io(rustls::Error::General(s.into()));
        assert_eq!(
            refusal(&io(rustls::Error::NoCertificatesPresented)),
            TlsRefusal::Certificate
        );
        assert_eq!(
            refusal(&io(rustls::Error::NoApplicationProtocol)),
            TlsRefusal::Alpn
        );
        assert_eq!(
            refusal(&general(NO_CERTIFICATE_FOR_HELLO)),
            TlsRefusal::Alpn
        );
        assert_eq!(refusal(&general("other")), TlsRefusal::Handshake);
        assert_eq!(
            refusal(&std::io::Error::other("reset")),
            TlsRefusal::Handshake
        );
    }
}

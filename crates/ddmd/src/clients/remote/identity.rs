//! Who a client certificate names: its first SAN URI (for example
//! `spiffe://example.org/ops/alice`), else its subject's common name.

use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// The identity in `certificate` (DER), if it names one.
pub fn of_certificate(certificate: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(certificate).ok()?;
    if let Ok(Some(names)) = cert.subject_alternative_name() {
        for name in &names.value.general_names {
            if let GeneralName::URI(uri) = name {
                return Some((*uri).to_owned());
            }
        }
    }
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};

    fn certificate(cn: &str, uri: Option<&str>) -> Vec<u8> {
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, cn);
        params.distinguished_name = name;
        if let Some(uri) = uri {
            params.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
        }
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn a_san_uri_comes_first_then_the_common_name() {
        let both = certificate("alice", Some("spiffe://example.org/ops/alice"));
        assert_eq!(
            of_certificate(&both).as_deref(),
            Some("spiffe://example.org/ops/alice")
        );
        assert_eq!(
            of_certificate(&certificate("bob", None)).as_deref(),
            Some("bob")
        );
        assert_eq!(of_certificate(b"not a certificate"), None);
    }
}

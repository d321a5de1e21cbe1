//! A certificate authority for ddm's tests, benchmarks and fuzzing
//! (rcgen): a CA whose certificate, and what it issues (router and client
//! certificates with their keys, revocation lists), are PEM files in a
//! directory, as a router's configuration and a client's name them.
//! Everything panics on failure: it serves tests.

use mprapi::client_config::ClientConfig;
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertificateRevocationListParams,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair,
    RevokedCertParams, SanType, SerialNumber,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A certificate authority that writes what it issues into a directory.
pub struct Ca {
    pub dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    name: String,
}

/// How a client certificate differs from a good one.
#[derive(Clone, Copy, PartialEq)]
pub enum Flaw {
    None,
    Expired,
    ServerOnly,
}

impl Ca {
    pub fn new(dir: &Path, name: &str) -> Ca {
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name = names(&format!("{name} CA"));
        let key = KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        std::fs::write(dir.join(format!("{name}-ca.pem")), certificate.pem()).unwrap();
        Ca {
            dir: dir.to_owned(),
            issuer: Issuer::new(params, key),
            name: name.to_owned(),
        }
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.join(format!("{}-ca.pem", self.name))
    }

    /// Issues `file`.pem and `file`.key; returns the serial number.
    fn issue(&self, file: &str, mut params: CertificateParams) -> u64 {
        static SERIAL: AtomicU32 = AtomicU32::new(1);
        let serial = u64::from(SERIAL.fetch_add(1, Ordering::Relaxed));
        params.serial_number = Some(SerialNumber::from(serial));
        let key = KeyPair::generate().unwrap();
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        std::fs::write(self.dir.join(format!("{file}.pem")), certificate.pem()).unwrap();
        std::fs::write(self.dir.join(format!("{file}.key")), key.serialize_pem()).unwrap();
        serial
    }

    /// A router's certificate for the addresses clients use.
    pub fn server(&self, file: &str, addresses: &[&str]) {
        let mut params = CertificateParams::default();
        params.distinguished_name = names(file);
        params.subject_alt_names = addresses
            .iter()
            .map(|a| SanType::IpAddress(a.parse().unwrap()))
            .collect();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(file, params);
    }

    /// A client certificate named `cn`, with `uri` as its SAN if given.
    pub fn client(&self, file: &str, cn: &str, uri: Option<&str>, flaw: Flaw) -> u64 {
        let mut params = CertificateParams::default();
        params.distinguished_name = names(cn);
        if let Some(uri) = uri {
            params.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
        }
        params.extended_key_usages = vec![match flaw {
            Flaw::ServerOnly => ExtendedKeyUsagePurpose::ServerAuth,
            _ => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        if flaw == Flaw::Expired {
            params.not_before = date_time_ymd(2020, 1, 1);
            params.not_after = date_time_ymd(2021, 1, 1);
        }
        self.issue(file, params)
    }

    /// A revocation list of `serials`, as `file`.
    pub fn crl(&self, file: &str, serials: &[u64]) -> PathBuf {
        let params = CertificateRevocationListParams {
            this_update: date_time_ymd(2024, 1, 1),
            next_update: date_time_ymd(2100, 1, 1),
            crl_number: SerialNumber::from(serials.len() as u64 + 1),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(*s),
                    revocation_time: date_time_ymd(2024, 1, 1),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer).unwrap();
        let path = self.dir.join(file);
        std::fs::write(&path, crl.pem().unwrap()).unwrap();
        path
    }

    /// The client settings for certificate `file`.
    pub fn client_config(&self, file: &str) -> ClientConfig {
        ClientConfig {
            certificate: Some(self.dir.join(format!("{file}.pem"))),
            key: Some(self.dir.join(format!("{file}.key"))),
            ca: Some(self.ca_file()),
            port: None,
        }
    }
}

fn names(cn: &str) -> DistinguishedName {
    let mut names = DistinguishedName::new();
    names.push(DnType::CommonName, cn);
    names
}

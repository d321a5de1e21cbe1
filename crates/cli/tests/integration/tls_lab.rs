//! Routers reached over TLS: certificates made here (rcgen) and a client
//! namespace joined to each router's namespace by a veth pair, so that
//! "remote" is another namespace with its own ddm, never an outside
//! address.

use crate::support::*;
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

/// The `[access]` and `[remote]` tables of a router whose certificate is
/// `server` (issued by `ca`), trusting clients of `ca`, with `extra` lines
/// in `[remote]`. It listens where it does by default: every address, IPv4
/// through the IPv6 socket, port 4850.
pub fn remote_config(ca: &Ca, server: &str, extra: &str) -> String {
    format!(
        "[access]\nadmin_identities = [\"spiffe://example.org/ops/*\"]\n\
         monitor_identities = [\"monitor\"]\nstatus_identities = [\"viewer\"]\n\
         [remote]\ncertificate = \"{dir}/{server}.pem\"\n\
         key = \"{dir}/{server}.key\"\nclient_ca = \"{ca}\"\n{extra}",
        dir = ca.dir.display(),
        ca = ca.ca_file().display(),
    )
}

/// A client namespace with a veth pair to each router it is joined to.
pub struct Clients {
    pub netns: Netns,
    joined: u32,
}

impl Clients {
    pub fn new() -> Clients {
        let netns = Netns::new("c");
        netns.ip(&["link", "set", "lo", "up"]);
        Clients { netns, joined: 0 }
    }

    /// Joins `router`'s namespace: returns the router's address.
    pub fn join(&mut self, router: &Netns) -> String {
        self.joined += 1;
        let n = self.joined;
        let (near, far) = (format!("tr{n}"), format!("tc{n}"));
        self.netns.veth_to(&near, &far, router);
        self.netns
            .ip(&["addr", "add", &format!("10.89.{n}.2/24"), "dev", &near]);
        self.netns.ip(&["link", "set", &near, "up"]);
        router.ip(&["addr", "add", &format!("10.89.{n}.1/24"), "dev", &far]);
        router.ip(&["link", "set", &far, "up"]);
        router.ip(&["link", "set", "lo", "up"]);
        format!("10.89.{n}.1")
    }

    /// `ddm ARGS` in the client namespace with certificate `file`.
    pub fn ddm(&self, ca: &Ca, file: &str, args: &[&str]) -> std::process::Command {
        let config = ca.client_config(file);
        let mut command = std::process::Command::new("ip");
        command
            .args(["netns", "exec", &self.netns.name, DDM])
            .args(args)
            .env("DDM_CLIENT_CONFIG", "/nonexistent")
            .env("DDM_CA", config.ca.unwrap())
            .env("DDM_CLIENT_CERT", config.certificate.unwrap())
            .env("DDM_CLIENT_KEY", config.key.unwrap());
        command
    }

    /// Connects from the client namespace (the connection stays in it).
    pub fn connect(&self, ca: &Ca, file: &str, address: &str) -> mprapi::Result<mprapi::Server> {
        self.netns
            .enter(|| mprapi::Server::connect_remote(address, &ca.client_config(file)))
    }
}

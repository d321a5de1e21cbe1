//! What a client needs to reach a remote service: its certificate and key,
//! and the CA that signed the service's certificate.
//!
//! Read from the first file that exists of `$DDM_CLIENT_CONFIG`,
//! `$XDG_CONFIG_HOME/ddm/client.toml` (`~/.config/ddm/client.toml`) and
//! `/etc/ddm/client.toml`; then `DDM_CLIENT_CERT`, `DDM_CLIENT_KEY`,
//! `DDM_CA` and `DDM_PORT` override what it says.
//!
//! ```toml
//! certificate = "/home/alice/.config/ddm/alice.pem"
//! key = "/home/alice/.config/ddm/alice.key"
//! ca = "/etc/ddm/routers-ca.pem"
//! port = 4850
//! ```

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The service's default TLS port.
pub const DEFAULT_PORT: u16 = 4850;

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub certificate: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub ca: Option<PathBuf>,
    /// The port when a server name gives none.
    pub port: Option<u16>,
}

impl ClientConfig {
    /// The configuration as the module docs say; a file that cannot be
    /// parsed is an error (its path and why).
    pub fn load() -> Result<ClientConfig, String> {
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        let home_config = var("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".config")))
            .map(|d| d.join("ddm/client.toml"));
        let candidates = [
            var("DDM_CLIENT_CONFIG").map(PathBuf::from),
            home_config,
            Some(PathBuf::from("/etc/ddm/client.toml")),
        ];
        let mut config = match candidates.into_iter().flatten().find(|p| p.exists()) {
            Some(path) => Self::read(&path)?,
            None => ClientConfig::default(),
        };
        if let Some(v) = var("DDM_CLIENT_CERT") {
            config.certificate = Some(v.into());
        }
        if let Some(v) = var("DDM_CLIENT_KEY") {
            config.key = Some(v.into());
        }
        if let Some(v) = var("DDM_CA") {
            config.ca = Some(v.into());
        }
        if let Some(v) = var("DDM_PORT") {
            let port = v
                .to_string_lossy()
                .parse()
                .map_err(|_| "DDM_PORT is not a port")?;
            config.port = Some(port);
        }
        Ok(config)
    }

    fn read(path: &Path) -> Result<ClientConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn port(&self) -> u16 {
        self.port.unwrap_or(DEFAULT_PORT)
    }
}

/// A server name as a caller writes it: `host`, `host:port`, an IPv4 or
/// IPv6 address, or `[v6]:port`. Returns the host (for the certificate)
/// and the port.
pub fn split_server_name(name: &str, default_port: u16) -> Option<(String, u16)> {
    let name = name.trim();
    if let Some(rest) = name.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(port) => port.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some((host.to_owned(), port));
    }
    match name.matches(':').count() {
        0 => Some((name.to_owned(), default_port)),
        1 => {
            let (host, port) = name.split_once(':')?;
            Some((host.to_owned(), port.parse().ok()?))
        }
        // A bare IPv6 address.
        _ => Some((name.to_owned(), default_port)),
    }
    .filter(|(host, _)| !host.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_with_and_without_ports() {
        let split = |n| split_server_name(n, 4850);
        assert_eq!(split("router2"), Some(("router2".into(), 4850)));
        assert_eq!(split("router2:9000"), Some(("router2".into(), 9000)));
        assert_eq!(split("10.0.0.1"), Some(("10.0.0.1".into(), 4850)));
        assert_eq!(split("fd00::1"), Some(("fd00::1".into(), 4850)));
        assert_eq!(split("[fd00::1]:9000"), Some(("fd00::1".into(), 9000)));
        assert_eq!(split("[fd00::1]"), Some(("fd00::1".into(), 4850)));
        assert_eq!(split("router2:port"), None);
        assert_eq!(split(""), None);
        assert_eq!(split(":9000"), None);
    }

    #[test]
    fn a_file_names_only_what_it_changes() {
        let config: ClientConfig = toml::from_str("ca = \"/etc/ca.pem\"\nport = 9000").unwrap();
        assert_eq!(config.port(), 9000);
        assert_eq!(config.ca.as_deref(), Some(Path::new("/etc/ca.pem")));
        assert!(toml::from_str::<ClientConfig>("cert = \"x\"").is_err());
    }
}

//! The service's configuration: built-in defaults, optionally overridden by
//! a TOML file (`ddm serve --config FILE`).
//!
//! Every field has a default, so `ddm serve` runs with no file at all, and a
//! file needs to name only what it changes. Unknown keys are an error: a
//! misspelt limit must not be silently ignored.

pub use crate::clients::access::AccessConfig;
pub use crate::core::limits::{Limits, MIN_FRAME_BYTES};
use crate::dial::declaration::{self, Declaration, Declared};
pub use crate::groups::config::GroupConfig;
use crate::groups::config::Prefix;
pub use crate::health::config::{HealthConfig, HealthTables};
pub use crate::links::LinksConfig;
pub use crate::record::journal::config::{JournalConfig, JournalSetting};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Socket path; `None` means the default (see `ddm_proto::endpoint`).
    pub socket: Option<PathBuf>,
    pub access: AccessConfig,
    pub limits: Limits,
    pub links: LinksConfig,
    /// The connection journal (`journal = false` turns it off).
    pub journal: JournalSetting,
    /// Export of the journal to NATS JetStream (off unless configured).
    pub export: Option<crate::record::export::ExportConfig>,
    /// Remote administration over TLS (off unless configured).
    pub remote: Option<crate::clients::remote::RemoteConfig>,
    /// The Prometheus endpoint (off unless configured).
    pub metrics: Option<crate::ops::metrics::MetricsConfig>,
    /// Demand-dial interfaces (`[[interface]]` tables).
    #[serde(rename = "interface")]
    pub interfaces: Vec<Declaration>,
    /// How paths are probed and judged (`[health.NAME]` tables).
    pub health: HealthTables,
    /// Groups of uplinks (`[[group]]` tables).
    #[serde(rename = "group")]
    pub groups: Vec<GroupConfig>,
    /// The file it was read from, read again by `ddm reload` and SIGHUP.
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path} declares dial commands, so it must be owned by root or by the service's user and not writable by others")]
    Unsafe { path: PathBuf },
}

impl Config {
    /// Reads a TOML file; fields it does not name keep their defaults.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = read_bounded(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message: crate::bounds::cut(&message, MAX_MESSAGE_BYTES),
        })?;
        config.path = Some(path.to_owned());
        if !config.interfaces.is_empty() && !is_trusted(path) {
            return Err(ConfigError::Unsafe {
                path: path.to_owned(),
            });
        }
        Ok(config)
    }

    fn parse(text: &str) -> Result<Config, String> {
        let mut config: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        crate::bounds::within(
            "the number of [[interface]] tables",
            config.interfaces.len(),
            0..=config.limits.max_interfaces,
        )
        .map_err(|e| format!("{e} (limits.max_interfaces)"))?;
        let grouped: HashSet<&str> = config
            .groups
            .iter()
            .flat_map(|g| g.members.iter().map(String::as_str))
            .collect();
        declaration::check_all(&mut config.interfaces, &grouped)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        self.check_health()?;
        self.check_groups()?;
        self.access.check()?;
        self.links.check()?;
        self.limits.check()?;
        if let Some(journal) = self.journal.config() {
            journal.check()?;
        }
        if let Some(remote) = &self.remote {
            remote.check()?;
        }
        if let Some(metrics) = &self.metrics {
            metrics.check()?;
        }
        if let Some(export) = &self.export {
            if self.journal.config().is_none() {
                return Err("export: the journal is its outbox; it cannot be off".into());
            }
            export.check()?;
        }
        Ok(())
    }

    /// What the router runs: the interfaces, their health tables and
    /// groups, moved out (not copied: a router of thousands of interfaces
    /// would keep them twice).
    pub fn take_declared(&mut self) -> Declared {
        Declared {
            interfaces: std::mem::take(&mut self.interfaces),
            health: std::mem::take(&mut self.health),
            groups: std::mem::take(&mut self.groups),
        }
    }

    /// Every `[health.NAME]` table, and that each interface's `health`
    /// names one.
    fn check_health(&self) -> Result<(), String> {
        for (name, table) in &self.health {
            table.check(name)?;
        }
        for interface in &self.interfaces {
            if let Some(health) = &interface.health {
                if !self.health.contains_key(health) {
                    return Err(format!(
                        "interface {}: health {} names no [health.NAME] table",
                        crate::bounds::quoted(&interface.name),
                        crate::bounds::quoted(health),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Every `[[group]]`: on its own, names and prefixes not shared, its
    /// members declared, its prefixes overlapping no interface's own route
    /// (but a default route, which a narrower route overrides).
    fn check_groups(&self) -> Result<(), String> {
        let mut names = HashSet::new();
        let mut prefixes: HashMap<Prefix, &str> = HashMap::new();
        for group in &self.groups {
            group.check()?;
            let quoted = crate::bounds::quoted(&group.name);
            if !names.insert(group.name.as_str()) {
                return Err(format!("group {quoted} is declared twice"));
            }
            for member in &group.members {
                if !self.interfaces.iter().any(|i| &i.name == member) {
                    return Err(format!(
                        "group {quoted}: member {} is no declared [[interface]]",
                        crate::bounds::quoted(member)
                    ));
                }
            }
            for prefix in group.prefixes() {
                if let Some(other) = prefixes.insert(prefix, &group.name) {
                    return Err(format!(
                        "groups {} and {quoted} both route {prefix}",
                        crate::bounds::quoted(other)
                    ));
                }
                // A default route never competes with a narrower one (the
                // longest prefix wins); any other overlap would.
                let overlapping = self.interfaces.iter().find_map(|i| {
                    let route = i.routes().into_iter().find_map(|r| {
                        let r = r.prefix;
                        (prefix.length > 0 && (prefix.contains(&r) || r.contains(&prefix)))
                            .then_some(r)
                    })?;
                    Some((i, route))
                });
                if let Some((interface, route)) = overlapping {
                    return Err(format!(
                        "group {quoted} routes {prefix}, which overlaps interface {}'s route {route}",
                        crate::bounds::quoted(&interface.name)
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The largest configuration file read: 8 MiB.
pub const MAX_FILE_BYTES: u64 = 8 << 20;
/// The most of an error message about a file that is told.
const MAX_MESSAGE_BYTES: usize = 1024;

/// The file's text, refused when it is larger than [`MAX_FILE_BYTES`].
fn read_bounded(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_FILE_BYTES} bytes; a configuration file is not that big"
        )));
    }
    Ok(text)
}

/// A file whose commands the service may run: owned by root or by the
/// service's user, and not writable by others.
fn is_trusted(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| {
        (m.uid() == 0 || m.uid() == nix::unistd::geteuid().as_raw()) && m.mode() & 0o002 == 0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The package's commented /etc/ddm/ddm.toml: as shipped it is the
    /// default, and every key it shows, uncommented, is one the service
    /// knows, with a value of the right type.
    #[test]
    fn the_packaged_configuration_file_names_only_real_keys() {
        let shipped = include_str!("../../../packaging/ddm.toml");
        let as_shipped = Config::parse(shipped).unwrap();
        assert!(as_shipped.interfaces.is_empty() && as_shipped.metrics.is_none());
        let uncommented: String = shipped
            .lines()
            .map(|line| match line.strip_prefix('#') {
                Some(rest) if rest.starts_with(|c: char| c.is_ascii_lowercase() || c == '[') => {
                    rest
                }
                _ => line,
            })
            .map(|line| format!("{line}\n"))
            .collect();
        // Not `parse`: the certificates it names are not here.
        let mut every: Config = toml::from_str(&uncommented).unwrap();
        declaration::check_all(&mut every.interfaces, &HashSet::from(["wan1", "branch"])).unwrap();
        every.check_health().unwrap();
        every.check_groups().unwrap();
        assert_eq!((every.interfaces.len(), every.health.len()), (2, 1));
        assert_eq!(every.groups[0].members, ["wan1", "branch"]);
        assert!(every.metrics.is_some() && every.remote.is_some() && every.export.is_some());
    }

    #[test]
    fn empty_file_is_the_default() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.limits.max_registrations_per_session, 256);
        assert_eq!(c.links.include, vec!["*"]);
        assert_eq!(c.access.monitor_groups, vec!["ddm"]);
    }

    #[test]
    fn a_file_overrides_only_what_it_names() {
        let c = Config::parse("[limits]\nmax_sessions = 300\n[links]\nexclude = [\"lo\"]").unwrap();
        assert_eq!(c.limits.max_sessions, 300);
        assert_eq!(c.limits.max_frame_bytes, 65536);
        assert_eq!(c.links.exclude, vec!["lo"]);
    }

    #[test]
    fn misspelt_keys_and_bad_values_are_errors() {
        assert!(Config::parse("[limits]\nmax_session = 3").is_err());
        assert!(Config::parse("[access]\ndefault_role = \"admin\"").is_err());
        assert!(Config::parse("[links]\ninclude = [\"[\"]").is_err());
        assert!(Config::parse("[limits]\nmax_frame_bytes = 10").is_err());
        assert!(Config::parse("[limits]\nmax_frame_bytes = 2047").is_err());
        assert!(Config::parse("[limits]\nmax_frame_bytes = 2048").is_ok());
        assert!(Config::parse("[limits]\nmax_sessions = 4\nadmin_reserved_sessions = 4").is_err());
        assert!(Config::parse("[limits]\nmax_sessions_per_user = 0").is_err());
    }

    #[test]
    fn the_journal_is_on_by_default_and_turns_off_either_way() {
        let journal = Config::parse("").unwrap().journal.config().unwrap();
        assert_eq!((journal.max_age_days, journal.max_bytes), (90, 256 << 20));
        assert!(Config::parse("journal = false")
            .unwrap()
            .journal
            .config()
            .is_none());
        let table = Config::parse("[journal]\nenabled = false").unwrap();
        assert!(table.journal.config().is_none());
        let moved = Config::parse("[journal]\ndirectory = \"/tmp/j\"\nmax_age_days = 7").unwrap();
        let moved = moved.journal.config().unwrap();
        assert_eq!(moved.file(), PathBuf::from("/tmp/j/journal.sqlite"));
        assert_eq!(moved.max_age_days, 7);
        let error = Config::parse("[journal]\nmax_age = 7").unwrap_err();
        assert!(error.contains("max_age_days"), "{error}");
        assert!(Config::parse("[journal]\nqueue = 0").is_err());
        let export = "[export]\nservers = [\"nats://127.0.0.1:4222\"]\n";
        assert!(Config::parse(export).is_ok());
        let error = Config::parse(&format!("journal = false\n{export}")).unwrap_err();
        assert!(error.contains("outbox"), "{error}");
        let missing = format!("{export}ca = \"/nonexistent/ca.pem\"\n");
        let error = Config::parse(&missing).unwrap_err();
        assert!(error.contains("/nonexistent/ca.pem"), "{error}");
    }

    #[test]
    fn dial_commands_come_only_from_a_file_others_cannot_write() {
        use std::os::unix::fs::PermissionsExt;
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(
            &mut file,
            b"[[interface]]\nname = \"a\"\nlink = \"l\"\nconnect = [\"true\"]\n",
        )
        .unwrap();
        assert_eq!(Config::load(file.path()).unwrap().interfaces.len(), 1);
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(matches!(
            Config::load(file.path()),
            Err(ConfigError::Unsafe { .. })
        ));
    }

    #[test]
    fn the_journal_queue_and_every_limit_have_a_range() {
        for text in [
            "[journal]\nqueue = 100000000",
            "[journal]\nqueue = 9223372036854775807",
            "[journal]\nmax_age_days = 9223372036854775807",
            "[limits]\nstream_backlog = 9223372036854775807",
            "[limits]\nhandshake_timeout_ms = 9223372036854775807",
            "[limits]\nmax_frame_bytes = 9223372036854775807",
            "[links]\nreceive_buffer_bytes = 2000000000",
            "[metrics]\nmax_connections = 0",
            "[limits]\nsession_spin_us = 1001",
            "[limits]\nmax_dials_at_once = 0",
            "[limits]\nhang_up_timeout_ms = 600001",
        ] {
            let error = Config::parse(text).unwrap_err();
            assert!(error.contains(" to "), "{text}: {error}");
        }
        assert!(Config::parse("[journal]\nqueue = 262144").is_ok());
        assert!(Config::parse("[limits]\nsession_spin_us = 0\nmax_dials_at_once = 1").is_ok());
    }

    #[test]
    fn the_number_of_interfaces_and_the_size_of_the_file_are_bounded() {
        let interface = |n: usize| {
            format!("[[interface]]\nname = \"i{n}\"\nlink = \"l{n}\"\nconnect = [\"x\"]\n")
        };
        let three: String = (0..3).map(interface).collect();
        let error = Config::parse(&format!("[limits]\nmax_interfaces = 2\n{three}")).unwrap_err();
        assert!(error.contains("max_interfaces"), "{error}");
        assert!(Config::parse(&format!("[limits]\nmax_interfaces = 3\n{three}")).is_ok());

        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.toml");
        std::fs::write(&big, "#".repeat(MAX_FILE_BYTES as usize + 1)).unwrap();
        let error = Config::load(&big).unwrap_err().to_string();
        assert!(error.contains("larger than"), "{error}");
        // A refused file with a 1 MB name says so in a short message.
        let long = dir.path().join("long.toml");
        std::fs::write(
            &long,
            format!("[[interface]]\nname = \"{}\"\n", "n".repeat(1 << 20)),
        )
        .unwrap();
        let error = Config::load(&long).unwrap_err().to_string();
        assert!(error.len() < 2048, "{} bytes", error.len());
    }
}

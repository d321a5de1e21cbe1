//! The service's configuration: built-in defaults, optionally overridden by
//! a TOML file (`ddm serve --config FILE`).
//!
//! Every field has a default, so `ddm serve` runs with no file at all, and a
//! file needs to name only what it changes. Unknown keys are an error: a
//! misspelt limit must not be silently ignored.

use crate::dial::declaration::{self, Declaration};
use serde::Deserialize;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// The file it was read from, read again by `ddm reload` and SIGHUP.
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

/// Who gets which role. Users and groups are names or numeric ids. Root and
/// the user the service runs as are always admin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    pub admin_users: Vec<String>,
    pub admin_groups: Vec<String>,
    pub monitor_users: Vec<String>,
    pub monitor_groups: Vec<String>,
    /// The role of everyone else: "status" or "none".
    pub default_role: String,
    /// Remote clients, by their certificate's identity (SAN URI, else
    /// subject CN); an entry ending in `*` is a prefix. Others get none.
    pub admin_identities: Vec<String>,
    pub monitor_identities: Vec<String>,
    pub status_identities: Vec<String>,
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            admin_users: Vec::new(),
            admin_groups: vec!["ddm-admin".into()],
            monitor_users: Vec::new(),
            monitor_groups: vec!["ddm".into()],
            default_role: "status".into(),
            admin_identities: Vec::new(),
            monitor_identities: Vec::new(),
            status_identities: Vec::new(),
        }
    }
}

/// The limits that bound the service's memory. Each refusal is a clear error.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest frame body accepted or sent, in bytes.
    pub max_frame_bytes: usize,
    /// Sessions open at once; the next is refused with RPC_S_SERVER_TOO_BUSY.
    pub max_sessions: usize,
    /// Of those, how many only admin callers may use.
    pub admin_reserved_sessions: usize,
    /// Sessions one user (other than an admin) may have open at once.
    pub max_sessions_per_user: usize,
    /// Sessions one remote identity (other than an admin) may have open.
    pub max_sessions_per_identity: usize,
    /// Connections (other than an admin's) that may be in their handshake
    /// at once.
    pub max_pending_handshakes: usize,
    /// Registrations per session; the next gets ERROR_NOT_ENOUGH_QUOTA.
    pub max_registrations_per_session: usize,
    /// Typed streams per session; the next gets ERROR_NOT_ENOUGH_QUOTA.
    pub max_streams_per_session: usize,
    /// Time a new connection has to send its Hello.
    pub handshake_timeout_ms: u64,
    /// Typed events queued per subscribed session before they are counted
    /// as missed.
    pub stream_backlog: usize,
    /// How long a shutdown waits for sessions to write what they hold.
    pub shutdown_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: ddm_proto::frame::DEFAULT_MAX_FRAME,
            max_sessions: 16_384,
            admin_reserved_sessions: 16,
            max_sessions_per_user: 256,
            max_sessions_per_identity: 64,
            max_pending_handshakes: 64,
            max_registrations_per_session: 256,
            max_streams_per_session: 64,
            handshake_timeout_ms: 5_000,
            stream_backlog: 1_024,
            shutdown_timeout_ms: 2_000,
        }
    }
}

impl Limits {
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms)
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout_ms)
    }
}

/// Which kernel links become router interfaces.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinksConfig {
    /// Name globs a link must match (any of them).
    pub include: Vec<String>,
    /// Name globs that exclude a link, even if included.
    pub exclude: Vec<String>,
    /// Receive buffer of the link-monitor socket, in bytes. When the kernel
    /// overruns it the service dumps the links again and reconciles.
    pub receive_buffer_bytes: usize,
}

impl Default for LinksConfig {
    fn default() -> Self {
        LinksConfig {
            include: vec!["*".into()],
            exclude: Vec::new(),
            receive_buffer_bytes: 4 << 20,
        }
    }
}

/// `journal = true | false`, or a `[journal]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "journal = true, journal = false, or a [journal] table with only enabled, directory, max_age_days, max_bytes and queue"
)]
pub enum JournalSetting {
    On(bool),
    Table(JournalConfig),
}

impl Default for JournalSetting {
    fn default() -> Self {
        JournalSetting::Table(JournalConfig::default())
    }
}

impl JournalSetting {
    /// The journal's settings, or None when it is off.
    pub fn config(&self) -> Option<JournalConfig> {
        match self {
            JournalSetting::On(false) => None,
            JournalSetting::On(true) => Some(JournalConfig::default()),
            JournalSetting::Table(table) => table.enabled.then(|| table.clone()),
        }
    }
}

/// Where the journal is kept and how much of it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournalConfig {
    pub enabled: bool,
    /// The state directory; `journal.sqlite` is made in it. Default:
    /// $STATE_DIRECTORY (systemd's StateDirectory=), else /var/lib/ddm for
    /// root, else $XDG_STATE_HOME/ddm (~/.local/state/ddm).
    pub directory: Option<PathBuf>,
    /// Entries older than this go.
    pub max_age_days: u64,
    /// The oldest entries go while the journal holds more than this.
    pub max_bytes: u64,
    /// Entries queued to the writer; beyond, they are counted in a gap.
    pub queue: usize,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            enabled: true,
            directory: None,
            max_age_days: 90,
            max_bytes: 256 << 20,
            queue: 65_536,
        }
    }
}

impl JournalConfig {
    /// The journal's file.
    pub fn file(&self) -> PathBuf {
        let directory = self
            .directory
            .clone()
            .unwrap_or_else(default_state_directory);
        directory.join("journal.sqlite")
    }
}

/// $STATE_DIRECTORY, else /var/lib/ddm for root, else $XDG_STATE_HOME/ddm
/// or ~/.local/state/ddm.
pub fn default_state_directory() -> PathBuf {
    if let Some(directory) = std::env::var_os("STATE_DIRECTORY") {
        // systemd may give several, separated by colons: the first is ours.
        let first = directory
            .to_string_lossy()
            .split(':')
            .next()
            .map(PathBuf::from);
        if let Some(first) = first.filter(|d| !d.as_os_str().is_empty()) {
            return first;
        }
    }
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/ddm");
    }
    let home = || std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state"));
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(home)
        .unwrap_or_else(std::env::temp_dir)
        .join("ddm")
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
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
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
        declaration::check_all(&mut config.interfaces)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if !matches!(self.access.default_role.as_str(), "status" | "none") {
            return Err(format!(
                "access.default_role must be \"status\" or \"none\", not {:?}",
                self.access.default_role
            ));
        }
        for pattern in self.links.include.iter().chain(&self.links.exclude) {
            glob::Pattern::new(pattern).map_err(|e| format!("link glob {pattern:?}: {e}"))?;
        }
        let l = &self.limits;
        if l.max_frame_bytes < 1024 || l.max_sessions == 0 || l.stream_backlog == 0 {
            return Err(
                "limits: max_frame_bytes must be at least 1024, max_sessions and stream_backlog at least 1"
                    .into(),
            );
        }
        if l.admin_reserved_sessions >= l.max_sessions {
            return Err(format!(
                "limits: admin_reserved_sessions ({}) must be less than max_sessions ({})",
                l.admin_reserved_sessions, l.max_sessions
            ));
        }
        if let Some(journal) = self.journal.config() {
            if journal.queue == 0 || journal.max_age_days == 0 || journal.max_bytes < 1 << 20 {
                return Err(
                    "journal: queue and max_age_days must be at least 1, max_bytes at least 1048576"
                        .into(),
                );
            }
        }
        if let Some(remote) = &self.remote {
            remote.check()?;
        }
        if let Some(export) = &self.export {
            if self.journal.config().is_none() {
                return Err("export: the journal is its outbox; it cannot be off".into());
            }
            export.check()?;
        }
        if l.max_sessions_per_user == 0
            || l.max_pending_handshakes == 0
            || l.max_sessions_per_identity == 0
        {
            return Err(
                "limits: max_sessions_per_user, max_sessions_per_identity and max_pending_handshakes must be at least 1"
                    .into(),
            );
        }
        Ok(())
    }
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
        let mut every: Config = toml::from_str(&uncommented).unwrap();
        declaration::check_all(&mut every.interfaces).unwrap();
        assert_eq!(every.interfaces.len(), 1);
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
}

//! `journal = true | false`, or `[journal]`: where the journal is kept and
//! how much of it.

use crate::bounds::within;
use serde::Deserialize;
use std::path::PathBuf;

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

    /// Every figure in its range.
    pub fn check(&self) -> Result<(), String> {
        // The writer's queue is allocated whole at start.
        within("journal.queue", self.queue, 1..=262_144)?;
        within("journal.max_age_days", self.max_age_days, 1..=36_500)?;
        within("journal.max_bytes", self.max_bytes, 1 << 20..=1 << 40)
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

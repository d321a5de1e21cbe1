//! The service in the test's own process (`ddmd::in_process`), its
//! socket and journal in a directory: no root, no namespace.

use ddmd::config::{Config, JournalConfig, JournalSetting};
use ddmd::in_process::InProcess;
use mprapi::Server;
use std::path::Path;

/// Starts the service with `config` on `dir`: its socket and its journal
/// there, so a service started again on the same `dir` goes on from it.
pub fn start(mut config: Config, dir: &Path) -> InProcess {
    config.journal = JournalSetting::Table(JournalConfig {
        directory: Some(dir.join("state")),
        ..JournalConfig::default()
    });
    InProcess::start(config, &dir.join("ddm.sock")).unwrap()
}

/// The service on a directory of its own, removed with it.
pub struct Fixture {
    pub service: InProcess,
    _dir: tempfile::TempDir,
}

impl Fixture {
    pub fn start(config: Config) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        Fixture {
            service: start(config, dir.path()),
            _dir: dir,
        }
    }

    pub fn connect(&self) -> Server {
        Server::connect_socket(self.service.socket()).unwrap()
    }
}

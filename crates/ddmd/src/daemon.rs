//! What `ddm serve` does, from the command line's arguments to the exit
//! status: logging set up, configuration read, the service run. The `ddm`
//! binary and the benchmark harness both start the service through here.

use crate::config::Config;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

pub fn main(config_path: Option<PathBuf>, socket: Option<PathBuf>) -> ExitCode {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|spec| Targets::from_str(&spec).ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .with(filter)
        .init();

    let config = match config_path.as_deref().map(Config::load).transpose() {
        Ok(config) => config.unwrap_or_default(),
        Err(e) => {
            eprintln!("ddm serve: {e}");
            return ExitCode::from(2);
        }
    };
    let socket = ddm_proto::endpoint::service_socket_path(socket.or_else(|| config.socket.clone()));
    match crate::run(config, socket) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ddm serve: {e}");
            ExitCode::FAILURE
        }
    }
}

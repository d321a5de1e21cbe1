//! What `ddm serve` does, from the command line's arguments to the exit
//! status: logging set up, configuration read, the service run. The `ddm`
//! binary and the benchmark harness both start the service through here.
//!
//! Logs go to stderr, written by a thread of their own (`ops::log`).

use crate::clients::listen::LocalEndpoint;
use crate::config::Config;
use crate::dial::launcher::Forked;
use crate::ops::systemd;
use crate::service::{LinkSource, ServeError};
use std::path::PathBuf;
use std::process::ExitCode;
use tokio::signal::unix::{signal, SignalKind};

pub fn main(config_path: Option<PathBuf>, socket: Option<PathBuf>) -> ExitCode {
    // Kept to the end: dropping it writes out the lines still queued.
    let _log = crate::ops::log::init();

    let config = match config_path.as_deref().map(Config::load).transpose() {
        Ok(config) => config.unwrap_or_default(),
        Err(e) => {
            eprintln!("ddm serve: {e}");
            return ExitCode::from(2);
        }
    };
    let socket = ddm_proto::endpoint::service_socket_path(socket.or_else(|| config.socket.clone()));
    match run(config, socket) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ddm serve: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the service on the calling thread until SIGINT or SIGTERM, then
/// shuts it down cleanly.
fn run(config: Config, socket: PathBuf) -> Result<(), ServeError> {
    raise_descriptor_limit();
    unblock_stop_signals();
    // Before the runtime makes threads, while the service is small.
    let launcher = Forked::fork()?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let mut sigterm = signal(SignalKind::terminate())?;
            let mut sigint = signal(SignalKind::interrupt())?;
            let termination = async move {
                tokio::select! {
                    _ = sigterm.recv() => tracing::info!("SIGTERM"),
                    _ = sigint.recv() => tracing::info!("SIGINT"),
                }
            };
            let endpoint = match systemd::passed_listener()? {
                Some(passed) => LocalEndpoint::adopt(passed)?,
                None => LocalEndpoint::bind(&socket)?,
            };
            let notifier = systemd::Notifier::from_environment()?;
            crate::service::serve(
                config,
                launcher,
                endpoint,
                LinkSource::Kernel,
                notifier,
                termination,
            )
            .await
        })
}

/// A parent may start the service with signals blocked (the mask is
/// inherited): SIGTERM, SIGINT and SIGHUP must reach it.
fn unblock_stop_signals() {
    use nix::sys::signal::{SigSet, Signal};
    let mut signals = SigSet::empty();
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        signals.add(signal);
    }
    let _ = signals.thread_unblock();
}

/// Each session and registration holds a descriptor: use all we may. A
/// privileged process raises the hard limit to the kernel's ceiling
/// (`fs.nr_open`); any other takes its hard limit.
pub fn raise_descriptor_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(hard);
    let wanted = ceiling.max(hard);
    if setrlimit(Resource::RLIMIT_NOFILE, wanted, wanted).is_err() {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

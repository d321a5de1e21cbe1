//! What `ddm serve` does, from the command line's arguments to the exit
//! status: logging set up, configuration read, the service run. The `ddm`
//! binary and the benchmark harness both start the service through here.
//!
//! Logs go to stderr. When stderr is systemd's journal (`JOURNAL_STREAM`
//! names it), each line starts with its syslog priority (`<3>` error, `<4>`
//! warning, `<6>` info, `<7>` debug), which journald keeps as the entry's
//! PRIORITY, and carries no timestamp: the journal has its own.

use crate::clients::listen::LocalEndpoint;
use crate::config::Config;
use crate::dial::launcher::Forked;
use crate::ops::systemd;
use crate::service::{LinkSource, ServeError};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

pub fn main(config_path: Option<PathBuf>, socket: Option<PathBuf>) -> ExitCode {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|spec| Targets::from_str(&spec).ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let layer = if stderr_is_the_journal() {
        layer
            .with_ansi(false)
            .event_format(SyslogPriority(
                tracing_subscriber::fmt::format()
                    .without_time()
                    .with_level(false),
            ))
            .boxed()
    } else {
        layer.with_ansi(std::io::stderr().is_terminal()).boxed()
    };
    tracing_subscriber::registry()
        .with(layer)
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

/// Whether stderr is the stream `JOURNAL_STREAM` (`device:inode`) names,
/// as systemd.exec(5) says to check.
fn stderr_is_the_journal() -> bool {
    let Some(named) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stderr) = nix::sys::stat::fstat(std::io::stderr()) else {
        return false;
    };
    named.to_str() == Some(&format!("{}:{}", stderr.st_dev, stderr.st_ino))
}

/// Lines prefixed with their syslog priority (sd-daemon(3)).
struct SyslogPriority<F>(F);

impl<S, N, F> FormatEvent<S, N> for SyslogPriority<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let priority = match *event.metadata().level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            Level::DEBUG | Level::TRACE => 7,
        };
        write!(writer, "<{priority}>")?;
        self.0.format_event(context, writer, event)
    }
}

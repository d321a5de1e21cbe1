//! What `ddm serve` does, from the command line's arguments to the exit
//! status: logging set up, configuration read, the service run. The `ddm`
//! binary and the benchmark harness both start the service through here.
//!
//! Logs go to stderr. When stderr is systemd's journal (`JOURNAL_STREAM`
//! names it), each line starts with its syslog priority (`<3>` error, `<4>`
//! warning, `<6>` info, `<7>` debug), which journald keeps as the entry's
//! PRIORITY, and carries no timestamp: the journal has its own.

use crate::config::Config;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
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
    match crate::run(config, socket) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ddm serve: {e}");
            ExitCode::FAILURE
        }
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

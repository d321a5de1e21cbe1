//! The service's log: lines formatted where they are logged and written
//! to stderr by a thread of their own, so that a slow journald or a slow
//! disk never holds the router's thread (a start of thousands of
//! interfaces logs tens of thousands of lines). The queue between them
//! holds [`QUEUED_LINES`]; lines that find it full are dropped and counted
//! ([`dropped`], `ddm_log_lines_dropped_total`).
//!
//! When stderr is systemd's journal (`JOURNAL_STREAM` names it), each line
//! starts with its syslog priority (`<3>` error, `<4>` warning, `<6>`
//! info, `<7>` debug), which journald keeps as the entry's PRIORITY, and
//! carries no timestamp: the journal has its own.

use std::io::IsTerminal;
use std::str::FromStr;
use std::sync::OnceLock;
use tracing::{Event, Level, Subscriber};
use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// Lines waiting for the writer at most (about 150 bytes each).
pub const QUEUED_LINES: usize = 16_384;

static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Sets the process's logging up (`RUST_LOG`, info by default); the lines
/// still queued are written out when the guard is dropped.
pub fn init() -> WorkerGuard {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|spec| Targets::from_str(&spec).ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    let (writer, guard) = NonBlockingBuilder::default()
        .buffered_lines_limit(QUEUED_LINES)
        .lossy(true)
        .thread_name("ddm-log")
        .finish(std::io::stderr());
    let _ = DROPPED.set(writer.error_counter());
    let layer = tracing_subscriber::fmt::layer().with_writer(writer);
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
    guard
}

/// Lines dropped because the queue was full (0 before [`init`]).
pub fn dropped() -> u64 {
    DROPPED.get().map_or(0, |c| c.dropped_lines() as u64)
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

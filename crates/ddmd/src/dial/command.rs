//! Dial commands: run without a shell, as the service's user, their output
//! in the service's log tagged with the interface, and their end read as a
//! Win32 error.
//!
//! The [`launcher`](super::launcher) starts them, so starting one costs
//! the same whatever the service's size; if the service dies, even by
//! SIGKILL, the launcher and the processes it started end with it.
//!
//! A command's output is read as bytes to its end, whatever it writes, so
//! the command never meets a closed pipe: lines are logged lossily (bytes
//! that are not UTF-8 become U+FFFD), each cut after [`MAX_LINE_BYTES`]
//! (the rest counted, never kept), and at most [`LINE_BURST`] lines at once
//! then [`LINES_PER_SECOND`] a second per stream; the lines held back are
//! counted, and the next line logged says how many.
//!
//! How a command's end reads (`dwLastError`): exit status 0 is NO_ERROR; a
//! program that cannot be started ERROR_FILE_NOT_FOUND 2 or
//! ERROR_ACCESS_DENIED 5; any other exit status ERROR_FROM_DEVICE 651;
//! killed by a signal ERROR_PROCESS_ABORTED 1067. A connect that is not
//! ready in `connect_timeout_secs` is ERROR_NO_ANSWER 678 (see the
//! supervisor), a connection lost ERROR_REMOTE_DISCONNECTION 629.

use super::launcher::{Launched, Launcher};
use ddm_proto::WinError;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;
use std::time::Instant;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::net::unix::pipe;

/// Starts `argv` for interface `interface`, its processes marked `mark`
/// (see `leftovers`).
pub async fn start(
    launcher: &Launcher,
    interface: &str,
    mark: &str,
    what: &'static str,
    argv: &[String],
) -> Result<Launched, WinError> {
    let program = argv.first().ok_or(WinError::ERROR_FILE_NOT_FOUND)?;
    let mut child = launcher
        .start(argv, &[(super::leftovers::VARIABLE, mark)])
        .await
        .map_err(|e| {
            tracing::warn!(interface, command = what, program = %program, "cannot start: {e}");
            match e.kind() {
                io::ErrorKind::NotFound => WinError::ERROR_FILE_NOT_FOUND,
                io::ErrorKind::PermissionDenied => WinError::ERROR_ACCESS_DENIED,
                _ => WinError::ERROR_FROM_DEVICE,
            }
        })?;
    tracing::info!(
        interface,
        command = what,
        pid = child.id(),
        "started {program}"
    );
    for (stream, pipe) in [
        ("stdout", child.stdout.take()),
        ("stderr", child.stderr.take()),
    ] {
        if let Some(read) = pipe.and_then(|fd| pipe::Receiver::from_owned_fd(fd).ok()) {
            tokio::spawn(log_lines(interface.to_owned(), what, stream, read));
        }
    }
    Ok(child)
}

/// The most of one output line that is logged.
pub const MAX_LINE_BYTES: usize = 1024;
/// Output lines logged at once before the rate applies.
pub const LINE_BURST: u32 = 100;
/// Output lines logged a second, per stream, after the burst.
pub const LINES_PER_SECOND: u32 = 20;

async fn log_lines(
    interface: String,
    command: &'static str,
    stream: &'static str,
    from: impl AsyncRead + Unpin,
) {
    let mut reader = BufReader::new(from);
    let mut lines = Lines::default();
    let mut budget = Budget::new(Instant::now());
    loop {
        let chunk = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(chunk) => chunk,
        };
        let read = chunk.len();
        for line in lines.feed(chunk) {
            log_line(&interface, command, stream, &mut budget, line);
        }
        reader.consume(read);
    }
    if let Some(line) = lines.finish() {
        log_line(&interface, command, stream, &mut budget, line);
    }
    if budget.dropped > 0 {
        tracing::info!(interface = ?interface, command, stream, dropped = budget.dropped, "output lines dropped (rate limit)");
    }
}

fn log_line(interface: &str, command: &str, stream: &str, budget: &mut Budget, line: Line) {
    let Some(dropped) = budget.take(Instant::now()) else {
        return;
    };
    let text = String::from_utf8_lossy(&line.bytes);
    let cut = match line.cut {
        0 => String::new(),
        n => format!(" ... ({n} more bytes)"),
    };
    if dropped > 0 {
        tracing::info!(interface = ?interface, command, stream, dropped, "{text}{cut}");
    } else {
        tracing::info!(interface = ?interface, command, stream, "{text}{cut}");
    }
}

/// One line of output: its first [`MAX_LINE_BYTES`], and how many more
/// there were.
#[derive(Debug, Default, PartialEq)]
struct Line {
    bytes: Vec<u8>,
    cut: u64,
}

/// Splits output into lines, keeping at most [`MAX_LINE_BYTES`] of any.
#[derive(Default)]
struct Lines {
    current: Line,
    /// Whether anything of the current line came.
    started: bool,
}

impl Lines {
    fn feed(&mut self, mut chunk: &[u8]) -> Vec<Line> {
        let mut done = Vec::new();
        while !chunk.is_empty() {
            let end = chunk.iter().position(|b| *b == b'\n');
            let part = &chunk[..end.unwrap_or(chunk.len())];
            let room = MAX_LINE_BYTES - self.current.bytes.len();
            let kept = part.len().min(room);
            self.current.bytes.extend_from_slice(&part[..kept]);
            self.current.cut += (part.len() - kept) as u64;
            self.started = true;
            match end {
                Some(end) => {
                    done.push(std::mem::take(&mut self.current));
                    self.started = false;
                    chunk = &chunk[end + 1..];
                }
                None => chunk = &[],
            }
        }
        done
    }

    /// The last line, if it had no newline.
    fn finish(&mut self) -> Option<Line> {
        std::mem::take(&mut self.started).then(|| std::mem::take(&mut self.current))
    }
}

/// Lines that may be logged: [`LINE_BURST`] at once, refilled at
/// [`LINES_PER_SECOND`]; what it refuses is counted.
struct Budget {
    tokens: f64,
    at: Instant,
    dropped: u64,
}

impl Budget {
    fn new(now: Instant) -> Self {
        Budget {
            tokens: f64::from(LINE_BURST),
            at: now,
            dropped: 0,
        }
    }

    /// `Some(n)` when a line may be logged now, `n` being how many were
    /// dropped before it; `None` when this one is dropped.
    fn take(&mut self, now: Instant) -> Option<u64> {
        let refill =
            now.saturating_duration_since(self.at).as_secs_f64() * f64::from(LINES_PER_SECOND);
        self.tokens = (self.tokens + refill).min(f64::from(LINE_BURST));
        self.at = now;
        if self.tokens < 1.0 {
            self.dropped += 1;
            return None;
        }
        self.tokens -= 1.0;
        Some(std::mem::take(&mut self.dropped))
    }
}

/// How an ended command reads as a Win32 error.
pub fn error_of(status: ExitStatus) -> WinError {
    match (status.code(), status.signal()) {
        (Some(0), _) => WinError::NO_ERROR,
        (Some(_), _) => WinError::ERROR_FROM_DEVICE,
        (None, _) => WinError::ERROR_PROCESS_ABORTED,
    }
}

/// Runs `argv` to its end, at most `limit`; its error.
pub async fn run(
    launcher: &Launcher,
    interface: &str,
    mark: &str,
    what: &'static str,
    argv: &[String],
    limit: Duration,
) -> WinError {
    let mut child = match start(launcher, interface, mark, what, argv).await {
        Ok(child) => child,
        Err(e) => return e,
    };
    match tokio::time::timeout(limit, child.wait()).await {
        Ok(Ok(status)) => {
            let error = error_of(status);
            if !error.is_ok() {
                tracing::warn!(interface, command = what, %status, "failed");
            }
            error
        }
        Ok(Err(_)) => WinError::ERROR_FROM_DEVICE,
        Err(_) => {
            tracing::warn!(interface, command = what, "did not end in time; killed");
            let _ = child.kill().await;
            WinError::ERROR_NO_ANSWER
        }
    }
}

/// Ends a supervised connection: SIGTERM, then SIGKILL after `grace`.
pub async fn terminate(interface: &str, child: &mut Launched, grace: Duration) {
    if let Some(pid) = child.id() {
        child.signal(nix::sys::signal::Signal::SIGTERM);
        if tokio::time::timeout(grace, child.wait()).await.is_ok() {
            return;
        }
        tracing::warn!(interface, pid, "did not end on SIGTERM; killed");
    }
    let _ = child.kill().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_read_as_documented() {
        assert_eq!(error_of(ExitStatus::from_raw(0)), WinError::NO_ERROR);
        assert_eq!(
            error_of(ExitStatus::from_raw(3 << 8)),
            WinError::ERROR_FROM_DEVICE
        );
        assert_eq!(
            error_of(ExitStatus::from_raw(libc::SIGKILL)),
            WinError::ERROR_PROCESS_ABORTED
        );
    }

    #[test]
    fn output_is_cut_into_bounded_lines_whatever_its_bytes() {
        let mut lines = Lines::default();
        let mut out = lines.feed(b"caf\xe9\nsec");
        out.extend(lines.feed(b"ond\n"));
        let long = vec![b'a'; 3 * MAX_LINE_BYTES];
        out.extend(lines.feed(&long));
        out.extend(lines.feed(&long));
        assert_eq!(out.len(), 2);
        assert_eq!(String::from_utf8_lossy(&out[0].bytes), "caf\u{FFFD}");
        assert_eq!(out[1].bytes, b"second");
        let last = lines.finish().unwrap();
        assert_eq!(last.bytes.len(), MAX_LINE_BYTES);
        assert_eq!(last.cut, (6 * MAX_LINE_BYTES - MAX_LINE_BYTES) as u64);
        assert!(lines.finish().is_none());
    }

    #[test]
    fn a_flood_of_lines_is_held_to_the_rate_and_counted() {
        let start = Instant::now();
        let mut budget = Budget::new(start);
        let logged = (0..1000).filter(|_| budget.take(start).is_some()).count();
        assert_eq!(logged, LINE_BURST as usize);
        assert_eq!(budget.dropped, 1000 - u64::from(LINE_BURST));
        let later = start + Duration::from_secs(1);
        assert_eq!(budget.take(later), Some(1000 - u64::from(LINE_BURST)));
        let logged = (0..100).filter(|_| budget.take(later).is_some()).count();
        assert_eq!(logged, LINES_PER_SECOND as usize - 1);
    }
}

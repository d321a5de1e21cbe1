//! Dial commands: run without a shell, as the service's user, their output
//! in the service's log tagged with the interface, and their end read as a
//! Win32 error.
//!
//! Every child gets PR_SET_PDEATHSIG(SIGTERM): if the service dies, even by
//! SIGKILL, the processes it started end with it.
//!
//! How a command's end reads (`dwLastError`): exit status 0 is NO_ERROR; a
//! program that cannot be started ERROR_FILE_NOT_FOUND 2 or
//! ERROR_ACCESS_DENIED 5; any other exit status ERROR_FROM_DEVICE 651;
//! killed by a signal ERROR_PROCESS_ABORTED 1067. A connect that is not
//! ready in `connect_timeout_secs` is ERROR_NO_ANSWER 678 (see the
//! supervisor), a connection lost ERROR_REMOTE_DISCONNECTION 629.

use ddm_proto::WinError;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

/// Starts `argv` for interface `interface`.
pub fn start(interface: &str, what: &'static str, argv: &[String]) -> Result<Child, WinError> {
    let (program, args) = argv.split_first().ok_or(WinError::ERROR_FILE_NOT_FOUND)?;
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // SAFETY: prctl is async-signal-safe, as pre_exec requires.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(|e| {
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
    if let Some(out) = child.stdout.take() {
        tokio::spawn(log_lines(interface.to_owned(), what, "stdout", out));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(log_lines(interface.to_owned(), what, "stderr", err));
    }
    Ok(child)
}

async fn log_lines(
    interface: String,
    command: &'static str,
    stream: &'static str,
    from: impl AsyncRead + Unpin,
) {
    let mut lines = BufReader::new(from).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(interface = ?interface, command, stream, "{line}");
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
    interface: &str,
    what: &'static str,
    argv: &[String],
    limit: Duration,
) -> WinError {
    let mut child = match start(interface, what, argv) {
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
pub async fn terminate(interface: &str, child: &mut Child, grace: Duration) {
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
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
}

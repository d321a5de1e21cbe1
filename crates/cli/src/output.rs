//! Where the commands print. A reader that went (`ddm interfaces | head
//! -1`, `ddm watch | head`) ends the command quietly, with the status a
//! shell gives a command SIGPIPE ended.

use std::io::Write;

/// The exit status when the reader has gone: 128 + SIGPIPE.
const READER_GONE: i32 = 128 + nix::sys::signal::Signal::SIGPIPE as i32;

/// A client command whose reader has gone (`ddm interfaces | head -1`)
/// ends quietly, with the status a shell gives a command SIGPIPE ended
/// (141), where a print to the closed pipe would panic. SIGPIPE itself
/// stays ignored, as Rust sets it: a write to a socket whose far end went
/// (a service, a broker) is an error the command reports.
pub fn end_quietly_on_a_closed_pipe() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(READER_GONE);
        }
        report(info);
    }));
}

/// Standard output for the commands that print as things happen: its
/// reader gone, the command ends there, where it would otherwise print
/// into nothing for ever.
pub struct Stdout(std::io::StdoutLock<'static>);

pub fn stdout() -> Stdout {
    Stdout(std::io::stdout().lock())
}

/// Ends the command when `result` says its reader has gone.
fn or_end<T>(result: std::io::Result<T>) -> std::io::Result<T> {
    if let Err(e) = &result {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(READER_GONE);
        }
    }
    result
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        or_end(self.0.write(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        or_end(self.0.flush())
    }
}

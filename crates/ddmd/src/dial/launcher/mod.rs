//! The launcher: a small process forked from the service as it starts,
//! which starts the interfaces' commands for it (see `process`). Forking
//! the service itself would copy its page tables and descriptor table,
//! which grow with the interfaces it declares: with thousands of them, each
//! dial cost milliseconds of the service's only thread.
//!
//! [`Forked`] is the launcher just made, before the service's runtime
//! exists; [`Forked::attach`] gives the cloneable [`Launcher`] handle, whose
//! task reads what the launcher tells. [`Launcher::start`] asks for a
//! command and gives a [`Launched`] process: its pid, its output pipes, and
//! its end, which the launcher reports (it is the process's parent).
//! Requests are queued to a writer task, so a request never waits inside
//! its caller; the queue holds at most what the supervisors ask at once
//! (one start or signal each, bounded by the interfaces).

mod process;
mod wire;

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::{mpsc, oneshot};
use wire::{Ask, Tell, MAX_MESSAGE};

/// The launcher, forked; not yet attached to a runtime.
pub struct Forked {
    socket: OwnedFd,
}

impl Forked {
    /// Forks the launcher. Call while the process has one thread (before
    /// the runtime is built): the child runs Rust code, not only exec.
    pub fn fork() -> io::Result<Forked> {
        use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(io::Error::from)?;
        // SAFETY: getpid has no preconditions.
        let service = unsafe { libc::getpid() };
        // SAFETY: the caller forks with one thread; the child runs the
        // launcher and never returns.
        match unsafe { libc::fork() } {
            -1 => Err(io::Error::last_os_error()),
            0 => {
                drop(ours);
                process::serve(theirs, service)
            }
            _ => Ok(Forked { socket: ours }),
        }
    }

    /// The handle, and the tasks that talk to the launcher. Call within
    /// the runtime.
    pub fn attach(self) -> io::Result<Launcher> {
        nix::fcntl::fcntl(
            &self.socket,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .map_err(io::Error::from)?;
        let socket = Arc::new(crate::sockets::watched(
            self.socket,
            Interest::READABLE | Interest::WRITABLE,
        )?);
        let (asks, queue) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            asks,
            next_id: AtomicU64::new(1),
            waiting: Mutex::default(),
        });
        tokio::spawn(write_asks(socket.clone(), queue));
        tokio::spawn(read_tells(socket, shared.clone()));
        Ok(Launcher(shared))
    }
}

/// The service's handle on its launcher.
#[derive(Clone)]
pub struct Launcher(Arc<Shared>);

struct Shared {
    asks: mpsc::UnboundedSender<Vec<u8>>,
    next_id: AtomicU64,
    waiting: Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    /// The launcher has gone: nothing more starts.
    gone: bool,
    starts: HashMap<u64, oneshot::Sender<io::Result<Launched>>>,
    ends: HashMap<i32, oneshot::Sender<ExitStatus>>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Launcher {
    /// Starts `argv` with `env` added to the environment.
    pub async fn start(&self, argv: &[String], env: &[(&str, &str)]) -> io::Result<Launched> {
        let id = self.0.next_id.fetch_add(1, Ordering::Relaxed);
        let ask = Ask::Start {
            id,
            argv: argv.iter().map(|a| a.as_bytes().to_vec()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect(),
        }
        .encode();
        if ask.len() > MAX_MESSAGE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "command line too long",
            ));
        }
        let (answer, answered) = oneshot::channel();
        {
            let mut waiting = self.0.lock();
            if waiting.gone {
                return Err(gone());
            }
            waiting.starts.insert(id, answer);
        }
        if self.0.asks.send(ask).is_err() {
            self.0.lock().starts.remove(&id);
            return Err(gone());
        }
        answered.await.map_err(|_| gone())?
    }

    fn signal(&self, pid: i32, signal: i32) {
        let _ = self.0.asks.send(Ask::Signal { pid, signal }.encode());
    }
}

fn gone() -> io::Error {
    io::Error::other("the launcher has gone")
}

/// Writes the queued requests to the launcher, each whole.
async fn write_asks(socket: Arc<AsyncFd<OwnedFd>>, mut queue: mpsc::UnboundedReceiver<Vec<u8>>) {
    while let Some(ask) = queue.recv().await {
        loop {
            let Ok(mut ready) = socket.writable().await else {
                return;
            };
            match ready.try_io(|s| {
                nix::sys::socket::send(
                    s.get_ref().as_raw_fd(),
                    &ask,
                    nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
                )
                .map_err(io::Error::from)
            }) {
                Ok(Ok(_)) => break,
                Ok(Err(e)) => {
                    tracing::error!("cannot write to the launcher: {e}");
                    return;
                }
                Err(_would_block) => continue,
            }
        }
    }
}

/// Reads what the launcher tells and hands it to whoever waits for it.
async fn read_tells(socket: Arc<AsyncFd<OwnedFd>>, shared: Arc<Shared>) {
    loop {
        let Ok(mut ready) = socket.readable().await else {
            break;
        };
        let received = ready.try_io(|s| receive(s.get_ref().as_raw_fd()));
        match received {
            Err(_would_block) => continue,
            Ok(Err(e)) => {
                tracing::error!("cannot read from the launcher: {e}");
                break;
            }
            Ok(Ok(None)) => break,
            Ok(Ok(Some((tell, fds)))) => deliver(&shared, tell, fds),
        }
    }
    tracing::error!("the launcher has gone: no command can start any more");
    let mut waiting = shared.lock();
    waiting.gone = true;
    waiting.starts.clear();
    // Whatever still ran ended with the launcher (its death signal).
    for (_, end) in waiting.ends.drain() {
        let _ = end.send(ExitStatus::from_raw(libc::SIGKILL));
    }
}

/// One message and the descriptors that came with it; None at the end.
fn receive(socket: i32) -> io::Result<Option<(Tell, Vec<OwnedFd>)>> {
    let mut bytes = [0u8; 64];
    let mut fds = std::collections::VecDeque::new();
    let got = crate::sockets::scm::receive(socket, &mut bytes, &mut fds)?;
    if got.bytes == 0 {
        return Ok(None);
    }
    let tell = Tell::decode(&bytes[..got.bytes])
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(Some((tell, fds.into())))
}

fn deliver(shared: &Arc<Shared>, tell: Tell, fds: Vec<OwnedFd>) {
    let mut waiting = shared.lock();
    match tell {
        Tell::Started { id, pid } => {
            let (end, ended) = oneshot::channel();
            let mut pipes = fds.into_iter();
            let launched = Launched {
                pid: pid as u32,
                stdout: pipes.next(),
                stderr: pipes.next(),
                ended,
                status: None,
                launcher: Launcher(shared.clone()),
            };
            waiting.ends.insert(pid, end);
            if let Some(answer) = waiting.starts.remove(&id) {
                // A caller that stopped waiting drops the process: killed.
                let _ = answer.send(Ok(launched));
            }
        }
        Tell::Failed { id, errno } => {
            if let Some(answer) = waiting.starts.remove(&id) {
                let _ = answer.send(Err(io::Error::from_raw_os_error(errno)));
            }
        }
        Tell::Exited { pid, status } => {
            if let Some(end) = waiting.ends.remove(&pid) {
                let _ = end.send(ExitStatus::from_raw(status));
            }
        }
    }
}

/// A process the launcher started for the service. Dropped before its end
/// is known, it is killed (as tokio's `kill_on_drop`).
pub struct Launched {
    pid: u32,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    ended: oneshot::Receiver<ExitStatus>,
    status: Option<ExitStatus>,
    launcher: Launcher,
}

impl Launched {
    /// Its pid while it runs.
    pub fn id(&self) -> Option<u32> {
        self.status.is_none().then_some(self.pid)
    }

    /// Waits for its end; cancel-safe.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let status = (&mut self.ended).await.map_err(|_| gone())?;
        self.status = Some(status);
        Ok(status)
    }

    /// Sends `signal` while it runs (through the launcher, its parent: a
    /// pid not yet reaped is never another process's).
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        if self.status.is_none() {
            self.launcher.signal(self.pid as i32, signal as i32);
        }
    }

    /// SIGKILL, and its end.
    pub async fn kill(&mut self) -> io::Result<ExitStatus> {
        self.signal(nix::sys::signal::Signal::SIGKILL);
        self.wait().await
    }
}

impl Drop for Launched {
    fn drop(&mut self) {
        if self.status.is_none() {
            if let Ok(status) = self.ended.try_recv() {
                self.status = Some(status);
                return;
            }
            self.signal(nix::sys::signal::Signal::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A launcher forked from the test process (which has threads: the
    /// launcher's own code is plain system calls and glibc's malloc,
    /// which forks safely).
    fn launcher() -> Launcher {
        Forked::fork().unwrap().attach().unwrap()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn starts_reports_ends_and_output() {
        let launcher = launcher();
        let mut child = launcher
            .start(
                &["sh".into(), "-c".into(), "echo $DDM_TEST; exit 3".into()],
                &[("DDM_TEST", "marked")],
            )
            .await
            .unwrap();
        assert!(child.id().is_some());
        let status = child.wait().await.unwrap();
        assert_eq!(status.code(), Some(3));
        assert!(child.id().is_none());
        let mut out = String::new();
        use std::io::Read;
        std::fs::File::from(child.stdout.take().unwrap())
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "marked\n");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn many_starts_at_once_each_get_their_start_and_their_end() {
        let launcher = launcher();
        let started = (0..200).map(|n| {
            let launcher = launcher.clone();
            async move {
                // Some end before their start can be told; some never run.
                let argv: Vec<String> = match n % 10 {
                    0 => vec!["/nonexistent/ddm-test".into()],
                    _ => vec!["sh".into(), "-c".into(), format!("exit {}", n % 7)],
                };
                match launcher.start(&argv, &[]).await {
                    Ok(mut child) => Some(child.wait().await.unwrap().code() == Some(n % 7)),
                    Err(e) => {
                        assert_eq!(e.kind(), io::ErrorKind::NotFound);
                        assert_eq!(n % 10, 0);
                        None
                    }
                }
            }
        });
        let outcomes = tokio::time::timeout(
            Duration::from_secs(30),
            futures_util::future::join_all(started),
        )
        .await
        .expect("every start and end told");
        assert_eq!(outcomes.iter().filter(|o| o.is_none()).count(), 20);
        assert!(outcomes.iter().flatten().all(|right_code| *right_code));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_missing_program_is_not_found() {
        let launcher = launcher();
        let error = launcher
            .start(&["/nonexistent/ddm-test".into()], &[])
            .await
            .err()
            .unwrap();
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_signal_ends_a_child_and_dropping_one_kills_it() {
        let launcher = launcher();
        let mut child = launcher
            .start(&["sleep".into(), "600".into()], &[])
            .await
            .unwrap();
        child.signal(nix::sys::signal::Signal::SIGTERM);
        let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status.signal(), Some(libc::SIGTERM));

        let dropped = launcher
            .start(&["sleep".into(), "600".into()], &[])
            .await
            .unwrap();
        let pid = nix::unistd::Pid::from_raw(dropped.id().unwrap() as i32);
        drop(dropped);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        // The launcher reaps it: then its pid is gone.
        while nix::sys::signal::kill(pid, None).is_ok() {
            assert!(
                std::time::Instant::now() < deadline,
                "the dropped child was not killed"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

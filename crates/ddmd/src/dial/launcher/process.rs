//! The launcher process: forked from the service as it starts, while the
//! service is small and has one thread, it starts the commands the
//! service asks for and reaps them. A fork copies the page tables and the
//! descriptor table of the process that forks; the launcher's stay small,
//! so starting a command costs the same whatever the service's size.
//!
//! It has one thread and blocks: it waits for a request, a child's exec
//! (the close of a pipe the exec closes) or a child's end (SIGCHLD through
//! a signalfd), and answers. It does not wait for one exec before the next
//! fork: a start of thousands of commands keeps both CPUs busy. Each child gets
//! PR_SET_PDEATHSIG(SIGTERM) and the launcher PR_SET_PDEATHSIG(SIGKILL):
//! if the service dies, even by SIGKILL, the launcher dies with it and the
//! commands with the launcher. It ignores SIGTERM, SIGINT and SIGHUP, which
//! stop the service, so that the service's clean stop can still run
//! commands. A child's stdin is /dev/null, its stdout
//! and stderr pipes whose read ends go to the service; it has the
//! launcher's environment (the service's, as it started, without systemd's
//! LISTEN_ variables) and the variables asked for, and the default action for every signal, as
//! std::process gives a child.

use super::wire::{Ask, Tell, MAX_MESSAGE};
use std::collections::HashSet;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Where the launcher's socket is moved before every other descriptor is
/// closed.
const SOCKET: RawFd = 3;

/// Runs the launcher in the freshly forked child, whose parent is
/// `service`; never returns.
pub fn serve(socket: OwnedFd, service: libc::pid_t) -> ! {
    // SAFETY: plain system calls on descriptors and values this process
    // owns; the process has one thread.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() != service {
            libc::_exit(0);
        }
        if socket.as_raw_fd() != SOCKET {
            libc::dup2(socket.as_raw_fd(), SOCKET);
        }
        std::mem::forget(socket);
        // Nothing of the service's stays open here but stdio.
        libc::syscall(libc::SYS_close_range, SOCKET + 1, u32::MAX, 0);
        // The signals that stop the service reach the launcher too:
        // systemd sends its SIGTERM to every process of the unit, and a
        // terminal its SIGINT and SIGHUP to the whole process group. The
        // service's clean stop then still needs the launcher to run the
        // disconnect commands, so it ignores them: it ends when the
        // service closes its socket, or dies with it (its death signal).
        for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::signal(signal, libc::SIG_IGN);
        }
    }
    // SAFETY: SOCKET was just made this process's copy of the socket.
    let socket = unsafe { OwnedFd::from_raw_fd(SOCKET) };
    let mut launcher = match Launcher::new(socket) {
        Ok(launcher) => launcher,
        // SAFETY: ends the process; nothing to clean up.
        Err(_) => unsafe { libc::_exit(1) },
    };
    launcher.run();
    // SAFETY: as above.
    unsafe { libc::_exit(0) }
}

struct Launcher {
    socket: OwnedFd,
    children: OwnedFd,
    /// Children told the service about, not yet reaped.
    live: HashSet<libc::pid_t>,
    /// Children forked whose exec has not yet said how it went.
    execing: Vec<Execing>,
}

/// A child between its fork and the end of its exec.
struct Execing {
    id: u64,
    pid: libc::pid_t,
    stdout: OwnedFd,
    stderr: OwnedFd,
    /// Closed by a successful exec; the errno of a failed one.
    status: OwnedFd,
    /// Reaped already (a program that ended at once): its wait status,
    /// told right after its start.
    ended: Option<i32>,
}

impl Launcher {
    fn new(socket: OwnedFd) -> std::io::Result<Launcher> {
        // SAFETY: a sigset made with sigemptyset/sigaddset, and a new
        // signalfd whose descriptor is owned at once.
        let children = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGCHLD);
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            OwnedFd::from_raw_fd(fd)
        };
        Ok(Launcher {
            socket,
            children,
            live: HashSet::new(),
            execing: Vec::new(),
        })
    }

    fn run(&mut self) {
        let mut buffer = vec![0u8; MAX_MESSAGE];
        loop {
            let watch = |fd: RawFd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            let mut polls: Vec<libc::pollfd> = [self.socket.as_raw_fd(), self.children.as_raw_fd()]
                .into_iter()
                .chain(self.execing.iter().map(|e| e.status.as_raw_fd()))
                .map(watch)
                .collect();
            // SAFETY: valid pollfds, as many as given, for the call.
            if unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, -1) } < 0 {
                continue;
            }
            if polls[1].revents != 0 {
                self.reap();
            }
            let done: Vec<RawFd> = polls[2..]
                .iter()
                .filter(|p| p.revents != 0)
                .map(|p| p.fd)
                .collect();
            for fd in done {
                self.execed(fd);
            }
            if polls[0].revents != 0 {
                // SAFETY: a buffer of the given length, live for the call.
                let read = unsafe {
                    libc::recv(
                        self.socket.as_raw_fd(),
                        buffer.as_mut_ptr().cast(),
                        buffer.len(),
                        0,
                    )
                };
                if read <= 0 {
                    // The service has gone (or its socket failed): the
                    // children end with the launcher (their death signal).
                    return;
                }
                match Ask::decode(&buffer[..read as usize]) {
                    Ok(Ask::Start { id, argv, env }) => self.start(id, &argv, &env),
                    Ok(Ask::Signal { pid, signal }) => {
                        // Only a child not yet reaped: its pid cannot have
                        // been given to another process.
                        if self.live.contains(&pid) {
                            // SAFETY: kill has no memory preconditions.
                            unsafe { libc::kill(pid, signal) };
                        }
                    }
                    Err(_) => return,
                }
            }
        }
    }

    /// Reports every child that has ended.
    fn reap(&mut self) {
        let mut info = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
        // SAFETY: drains the signalfd into a buffer of its record's size.
        while unsafe {
            libc::read(
                self.children.as_raw_fd(),
                info.as_mut_ptr().cast(),
                info.len(),
            )
        } > 0
        {}
        loop {
            let mut status = 0;
            // SAFETY: waitpid with a valid status pointer.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return;
            }
            if self.live.remove(&pid) {
                self.tell(Tell::Exited { pid, status }, &[]);
            } else if let Some(execing) = self.execing.iter_mut().find(|e| e.pid == pid) {
                execing.ended = Some(status);
            }
        }
    }

    fn tell(&self, tell: Tell, fds: &[RawFd]) {
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
        let bytes = tell.encode();
        let rights = [ControlMessage::ScmRights(fds)];
        let control: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &rights };
        let _ = sendmsg::<()>(
            self.socket.as_raw_fd(),
            &[std::io::IoSlice::new(&bytes)],
            control,
            MsgFlags::MSG_NOSIGNAL,
            None,
        );
    }

    fn start(&mut self, id: u64, argv: &[Vec<u8>], env: &[(Vec<u8>, Vec<u8>)]) {
        match launch(argv, env) {
            Ok(Forked {
                pid,
                stdout,
                stderr,
                status,
            }) => self.execing.push(Execing {
                id,
                pid,
                stdout,
                stderr,
                status,
                ended: None,
            }),
            Err(errno) => self.tell(Tell::Failed { id, errno }, &[]),
        }
    }

    /// The exec of the child whose status pipe is `fd` is over: the start
    /// told, or its failure.
    fn execed(&mut self, fd: RawFd) {
        let Some(at) = self.execing.iter().position(|e| e.status.as_raw_fd() == fd) else {
            return;
        };
        let execing = self.execing.swap_remove(at);
        let mut errno = [0u8; 4];
        let mut read = 0;
        while read < errno.len() {
            // SAFETY: a buffer of the given length, live for the call.
            let n = unsafe {
                libc::read(
                    execing.status.as_raw_fd(),
                    errno[read..].as_mut_ptr().cast(),
                    errno.len() - read,
                )
            };
            if n > 0 {
                read += n as usize;
            } else if n == 0 || nix::errno::Errno::last() != nix::errno::Errno::EINTR {
                break;
            }
        }
        let Execing {
            id,
            pid,
            stdout,
            stderr,
            ended,
            ..
        } = execing;
        if read == errno.len() {
            if ended.is_none() {
                let mut status = 0;
                // SAFETY: reaps the child that failed to exec.
                unsafe { libc::waitpid(pid, &mut status, 0) };
            }
            self.tell(
                Tell::Failed {
                    id,
                    errno: i32::from_ne_bytes(errno),
                },
                &[],
            );
            return;
        }
        self.tell(
            Tell::Started { id, pid },
            &[stdout.as_raw_fd(), stderr.as_raw_fd()],
        );
        match ended {
            Some(status) => self.tell(Tell::Exited { pid, status }, &[]),
            None => {
                self.live.insert(pid);
            }
        }
    }
}

/// A child forked, its exec under way.
struct Forked {
    pid: libc::pid_t,
    stdout: OwnedFd,
    stderr: OwnedFd,
    /// Closed by the exec (O_CLOEXEC), or the errno that kept it from
    /// running.
    status: OwnedFd,
}

/// Forks a child that execs `argv` with `env` added, or the errno of the
/// failure to fork.
fn launch(argv: &[Vec<u8>], env: &[(Vec<u8>, Vec<u8>)]) -> Result<Forked, i32> {
    let cstring = |bytes: &[u8]| CString::new(bytes).map_err(|_| libc::EINVAL);
    let args: Vec<CString> = argv.iter().map(|a| cstring(a)).collect::<Result<_, _>>()?;
    if args.is_empty() {
        return Err(libc::ENOENT);
    }
    let mut environment: Vec<CString> = std::env::vars_os()
        .filter(|(key, _)| {
            let key = key.as_encoded_bytes();
            // The sockets systemd passed are the service's, not a
            // command's (the launcher was forked before the service took
            // them).
            !key.starts_with(b"LISTEN_") && !env.iter().any(|(k, _)| k.as_slice() == key)
        })
        .map(|(key, value)| {
            let mut entry = key.into_encoded_bytes();
            entry.push(b'=');
            entry.extend_from_slice(value.as_encoded_bytes());
            entry
        })
        .chain(
            env.iter()
                .map(|(key, value)| [key.as_slice(), b"=", value].concat()),
        )
        .map(|entry| cstring(&entry))
        .collect::<Result<_, _>>()?;
    environment.shrink_to_fit();
    let mut arg_pointers: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    arg_pointers.push(std::ptr::null());
    let mut env_pointers: Vec<*const libc::c_char> =
        environment.iter().map(|e| e.as_ptr()).collect();
    env_pointers.push(std::ptr::null());

    let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| e as i32);
    let (out_read, out_write) = pipe()?;
    let (err_read, err_write) = pipe()?;
    let (status_read, status_write) = pipe()?;
    let null = nix::fcntl::open(
        "/dev/null",
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| e as i32)?;
    // SAFETY: the launcher has one thread; between fork and exec the child
    // only makes system calls on values prepared above.
    let launcher = unsafe { libc::getpid() };
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(nix::errno::Errno::last_raw());
    }
    if pid == 0 {
        // SAFETY: see above; the child ends in exec or _exit.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            if libc::getppid() != launcher {
                libc::_exit(127);
            }
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            for signal in 1..libc::SIGRTMAX() {
                if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                    libc::signal(signal, libc::SIG_DFL);
                }
            }
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(out_write.as_raw_fd(), 1);
            libc::dup2(err_write.as_raw_fd(), 2);
            libc::execvpe(
                arg_pointers[0],
                arg_pointers.as_ptr(),
                env_pointers.as_ptr(),
            );
            let errno = nix::errno::Errno::last_raw();
            libc::write(
                status_write.as_raw_fd(),
                (&errno as *const i32).cast(),
                std::mem::size_of::<i32>(),
            );
            libc::_exit(127);
        }
    }
    drop((out_write, err_write, status_write, null));
    Ok(Forked {
        pid,
        stdout: out_read,
        stderr: err_read,
        status: status_read,
    })
}

//! Where the local service listens, and where clients look for it.
//!
//! The service listens on `--socket` or `DDM_SOCKET` if given, else in the
//! runtime directory systemd made for it (`$RUNTIME_DIRECTORY/ddm.sock`,
//! `/run/ddm/ddm.sock` for the packaged unit), else on the
//! system socket `/run/ddm/ddm.sock` when it runs as root, and otherwise on
//! a per-user socket: `$XDG_RUNTIME_DIR/ddm.sock`, or `/tmp/ddm-UID/ddm.sock`
//! without one (a service a user runs for themselves).
//!
//! A client takes `--socket` or `DDM_SOCKET` if given, else the system
//! socket when it exists, else its user's socket. So every user's programs
//! reach the machine's service with no setting at all, as
//! `MprAdminServerConnect(NULL)` reaches the router service on Windows, and
//! what each may do there is the service's decision.

use std::path::{Path, PathBuf};

/// The environment variable that names the socket.
pub const SOCKET_ENV: &str = "DDM_SOCKET";

/// The socket path root's service uses: the machine's service.
pub const SYSTEM_SOCKET: &str = "/run/ddm/ddm.sock";

/// `DDM_SOCKET`, when set and not empty.
fn from_environment() -> Option<PathBuf> {
    std::env::var_os(SOCKET_ENV)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

/// The socket of a service the current user runs: the system socket for
/// root, a per-user one for anyone else.
pub fn user_socket_path() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid == 0 {
        return PathBuf::from(SYSTEM_SOCKET);
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("ddm.sock"),
        None => std::env::temp_dir()
            .join(format!("ddm-{euid}"))
            .join("ddm.sock"),
    }
}

/// Where the service listens: `explicit` (`--socket`), else `DDM_SOCKET`,
/// else `ddm.sock` in the runtime directory systemd made for the unit
/// (`RuntimeDirectory=`, passed as `$RUNTIME_DIRECTORY`), else
/// [`user_socket_path`].
pub fn service_socket_path(explicit: Option<PathBuf>) -> PathBuf {
    explicit
        .or_else(from_environment)
        .or_else(from_runtime_directory)
        .unwrap_or_else(user_socket_path)
}

/// `$RUNTIME_DIRECTORY/ddm.sock` (the first directory when it names
/// several, colon-separated).
fn from_runtime_directory() -> Option<PathBuf> {
    let dirs = std::env::var_os("RUNTIME_DIRECTORY")?;
    let first = dirs.to_str()?.split(':').next()?;
    (!first.is_empty()).then(|| Path::new(first).join("ddm.sock"))
}

/// Where a client looks for the service: `explicit` (`--socket`), else
/// `DDM_SOCKET`, else the system socket when it exists, else
/// [`user_socket_path`].
pub fn client_socket_path(explicit: Option<PathBuf>) -> PathBuf {
    explicit
        .or_else(from_environment)
        .unwrap_or_else(|| choose_default(Path::new(SYSTEM_SOCKET).exists(), user_socket_path))
}

fn choose_default(system_exists: bool, user: impl FnOnce() -> PathBuf) -> PathBuf {
    if system_exists {
        PathBuf::from(SYSTEM_SOCKET)
    } else {
        user()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_path_wins() {
        let explicit = PathBuf::from("/tmp/elsewhere.sock");
        assert_eq!(client_socket_path(Some(explicit.clone())), explicit);
        assert_eq!(service_socket_path(Some(explicit.clone())), explicit);
    }

    #[test]
    fn clients_prefer_the_system_socket_when_it_exists() {
        let user = || PathBuf::from("/run/user/1000/ddm.sock");
        assert_eq!(choose_default(true, user), PathBuf::from(SYSTEM_SOCKET));
        assert_eq!(choose_default(false, user), user());
    }
}

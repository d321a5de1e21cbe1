//! Where the local service listens: the rendezvous both ends agree on.
//!
//! Root's service listens on `/run/ddm/ddm.sock`, anyone else's in
//! `$XDG_RUNTIME_DIR/ddm.sock` (or `/tmp/ddm-UID/ddm.sock` without one);
//! `DDM_SOCKET` overrides all of these, and so does an explicit `--socket`
//! on the command line.

use std::path::PathBuf;

/// The environment variable that names the socket.
pub const SOCKET_ENV: &str = "DDM_SOCKET";

/// The socket path root's service uses.
pub const SYSTEM_SOCKET: &str = "/run/ddm/ddm.sock";

/// The socket path to use when none is given explicitly.
pub fn default_socket_path() -> PathBuf {
    if let Some(path) = std::env::var_os(SOCKET_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
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

/// `explicit` if given, else [`default_socket_path`].
pub fn socket_path(explicit: Option<PathBuf>) -> PathBuf {
    explicit.unwrap_or_else(default_socket_path)
}

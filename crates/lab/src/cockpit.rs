//! Cockpit's web server in a namespace, beside the service, with ddm's
//! page: what a person reaches with a browser when the packages are
//! installed, built from the tree.
//!
//! `cockpit-ws` runs without TLS on the namespace's loopback, in a mount
//! namespace of its own where `/usr/local/bin` holds a `ddm` that talks to
//! the lab's service (the one cargo built, with `DDM_SOCKET`) and
//! `/usr/local/share/cockpit/ddm` holds the page (`packaging/cockpit`).
//! Cockpit logs people in with PAM and runs its bridge, and through it
//! `ddm`, as them, exactly as on an installed router.

use crate::netns::Netns;
use crate::process::Process;
use crate::service::{ddm_binary, Service};
use crate::tools::require;
use crate::wait::wait_until;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Where Debian installs Cockpit's web server (not on PATH), and its
/// shell, which frames the page.
const COCKPIT_WS: &str = "/usr/lib/cockpit/cockpit-ws";
const SHELL: &str = "/usr/share/cockpit/shell/manifest.json";
pub const PORT: u16 = 9090;

pub struct Cockpit {
    _ws: Process,
    _dir: tempfile::TempDir,
}

impl Cockpit {
    /// cockpit-ws on 127.0.0.1:[`PORT`] in `netns`, serving the page in
    /// `page` to people whose `ddm` talks to `service`.
    pub fn start(netns: &Netns, service: &Service, page: &Path) -> Cockpit {
        require("cockpit-bridge");
        require(COCKPIT_WS);
        require(SHELL);
        let dir = tempfile::Builder::new()
            .prefix("ddm-cockpit-")
            .tempdir()
            .unwrap();
        let bin = dir.path().join("bin");
        let share = dir.path().join("share");
        let installed = share.join("cockpit/ddm");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&installed).unwrap();
        for entry in std::fs::read_dir(page).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, installed.join(path.file_name().unwrap())).unwrap();
        }
        let ddm = bin.join("ddm");
        std::fs::write(
            &ddm,
            format!(
                "#!/bin/sh\nDDM_SOCKET='{}' exec '{}' \"$@\"\n",
                service.socket.display(),
                ddm_binary().display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&ddm, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Readable by the people logged in, whose bridge runs `ddm`.
        for path in [dir.path(), &bin, &share, &share.join("cockpit"), &installed] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        netns.ip(&["link", "set", "lo", "up"]);
        let ws = netns
            .command("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(
                "mount --bind \"$1\" /usr/local/bin && mount --bind \"$2\" /usr/local/share \
                 && exec \"$3\" --no-tls --address 127.0.0.1 --port \"$4\"",
            )
            .arg("sh")
            .args([&bin, &share])
            .arg(COCKPIT_WS)
            .arg(PORT.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("cockpit-ws.log")).unwrap())
            .spawn()
            .unwrap();
        let cockpit = Cockpit {
            _ws: Process(ws),
            _dir: dir,
        };
        wait_until("cockpit-ws answers", || {
            netns.enter(|| std::net::TcpStream::connect(("127.0.0.1", PORT)).is_ok())
        });
        cockpit
    }
}

//! The man pages: ddm(1) and one page per subcommand (ddm-serve(1), ...)
//! generated from the clap definitions by clap_mangen, ddm(1) with the
//! sections clap does not know (exit status, environment, files), and
//! ddm.toml(5), written by hand. The package ships the pages as committed
//! in `packaging/man` (`ddm generate man packaging/man` writes them; a test
//! says when they are stale); they carry the version without the git
//! revision, so they change only when the command does.

use std::io::Write;
use std::path::Path;

/// The configuration file's page.
const DDM_TOML_5: &str = include_str!("../../../packaging/man/ddm.toml.5");

/// What ddm(1) says beyond the options and subcommands.
const MORE: &str = r#".SH "EXIT STATUS"
0 on success, 1 on failure, with the error on stderr as
NAME (number): text, for example
ERROR_DDM_NOT_RUNNING (903): The Demand-dial Interface Manager is not running.
.PP
\fBddm status\fR exits 0 when the DDM runs, 1 when it is stopped, 2 when no
service answers, 3 when access is denied.
\fBddm watch \-\-timeout\fR exits 1 when the time passes without an event.
\fBddm serve\fR exits 2 for a configuration it cannot read.
.SH ENVIRONMENT
.TP
\fBDDM_SOCKET\fR
The service's Unix socket, for clients and \fBddm serve\fR.
.TP
\fBRUNTIME_DIRECTORY\fR, \fBSTATE_DIRECTORY\fR
Set by systemd for \fBddm serve\fR: its socket is \fI$RUNTIME_DIRECTORY/ddm.sock\fR,
its journal is in \fI$STATE_DIRECTORY\fR.
.TP
\fBLISTEN_FDS\fR, \fBNOTIFY_SOCKET\fR, \fBWATCHDOG_USEC\fR, \fBJOURNAL_STREAM\fR
systemd's socket activation, readiness notification, watchdog and journal.
.TP
\fBDDM_CLIENT_CONFIG\fR, \fBDDM_CLIENT_CERT\fR, \fBDDM_CLIENT_KEY\fR, \fBDDM_CA\fR, \fBDDM_PORT\fR
The client certificate, key, CA and port for \fB\-\-server\fR.
.TP
\fBRUST_LOG\fR
The service's log filter, for example \fIinfo\fR or \fIddmd::router=debug\fR.
.SH FILES
.TP
\fI/etc/ddm/ddm.toml\fR
The configuration the packaged unit reads; see \fBddm.toml\fR(5).
.TP
\fI/run/ddm/ddm.sock\fR
The machine's service; clients use it when it exists.
.TP
\fI/var/lib/ddm/journal.sqlite\fR
The connection journal.
.TP
\fI~/.config/ddm/client.toml\fR, \fI/etc/ddm/client.toml\fR
Client certificates for remote routers.
.SH "SEE ALSO"
\fBddm.toml\fR(5), \fBsystemctl\fR(1)
"#;

/// Writes every page into `dir`.
pub fn write(command: clap::Command, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let command = command.version(env!("CARGO_PKG_VERSION"));
    clap_mangen::generate_to(command.clone(), dir)?;
    let mut command = command.disable_help_subcommand(true);
    command.build();
    let page = clap_mangen::Man::new(command);
    let mut file = std::fs::File::create(dir.join(page.get_filename()))?;
    page.render_title(&mut file)?;
    page.render_name_section(&mut file)?;
    page.render_synopsis_section(&mut file)?;
    page.render_description_section(&mut file)?;
    page.render_options_section(&mut file)?;
    page.render_subcommands_section(&mut file)?;
    file.write_all(MORE.as_bytes())?;
    page.render_version_section(&mut file)?;
    std::fs::write(dir.join("ddm.toml.5"), DDM_TOML_5)
}

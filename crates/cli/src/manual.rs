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

/// The Debian changelog: its newest entry gives the pages their version and
/// date, so they change with a release and not with a build.
const CHANGELOG: &str = include_str!("../../../packaging/debian/changelog");

/// Writes every page into `dir`.
pub fn write(command: clap::Command, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let date = release_date(CHANGELOG);
    let mut command = command
        .version(env!("CARGO_PKG_VERSION"))
        .disable_help_subcommand(true);
    command.build();
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_subcommand_pages(sub.clone(), &date, dir)?;
    }
    let page = titled(clap_mangen::Man::new(command), &date);
    let mut roff = Vec::new();
    page.render_title(&mut roff)?;
    page.render_name_section(&mut roff)?;
    page.render_synopsis_section(&mut roff)?;
    page.render_description_section(&mut roff)?;
    page.render_options_section(&mut roff)?;
    page.render_subcommands_section(&mut roff)?;
    roff.write_all(MORE.as_bytes())?;
    page.render_version_section(&mut roff)?;
    std::fs::write(dir.join(page.get_filename()), tidy(&roff))?;
    // The hand-written page gets the same title line.
    let (_, body) = DDM_TOML_5.split_once('\n').expect("ddm.toml.5 has a body");
    let title = format!(
        ".TH DDM.TOML 5 {date} \"ddm {}\" \"{MANUAL}\"\n",
        env!("CARGO_PKG_VERSION")
    );
    std::fs::write(dir.join("ddm.toml.5"), tidy((title + body).as_bytes()))
}

/// The manual the pages belong to, on their title line.
const MANUAL: &str = "ddm manual";

/// A subcommand's page (ddm-router-stop(1)), then its own subcommands'.
fn write_subcommand_pages(command: clap::Command, date: &str, dir: &Path) -> std::io::Result<()> {
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_subcommand_pages(sub.clone(), date, dir)?;
    }
    let page = titled(clap_mangen::Man::new(command), date);
    let mut roff = Vec::new();
    page.render(&mut roff)?;
    std::fs::write(dir.join(page.get_filename()), tidy(&roff))
}

/// The `.TH` line as man pages have it: the title in capitals, the date,
/// the source with its version, the manual's name.
fn titled(page: clap_mangen::Man, date: &str) -> clap_mangen::Man {
    let title = page.get_filename();
    let title = title.rsplit_once('.').map_or(title.as_str(), |(t, _)| t);
    page.title(title.to_uppercase())
        .date(date)
        .source(concat!("ddm ", env!("CARGO_PKG_VERSION")))
        .manual(MANUAL)
}

/// The date (YYYY-MM-DD) of the changelog's newest entry, from its
/// trailer line (` -- Name <mail>  Fri, 04 Dec 2026 12:00:00 +0000`).
fn release_date(changelog: &str) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let trailer = changelog
        .lines()
        .find(|line| line.starts_with(" -- "))
        .expect("the changelog has an entry");
    let (_, when) = trailer.split_once(">  ").expect("the trailer has a date");
    let words: Vec<&str> = when.split_whitespace().collect();
    let month = MONTHS
        .iter()
        .position(|m| *m == words[2])
        .expect("a month name")
        + 1;
    format!("{}-{month:02}-{:0>2}", words[3], words[1])
}

/// The longest text line a page keeps (mandoc's style check).
const WIDTH: usize = 80;

/// clap_mangen's roff, as `mandoc -T lint` wants it: no space at the end
/// of a line, and text lines no longer than [`WIDTH`], broken at spaces
/// (filled text reads the same; a piece that would start like a request
/// gets `\&` in front).
fn tidy(roff: &[u8]) -> Vec<u8> {
    let roff = String::from_utf8_lossy(roff);
    let mut out = String::with_capacity(roff.len());
    for line in roff.lines() {
        let line = line.trim_end();
        if line == ".br" && out.ends_with("\n\n") {
            continue;
        }
        let tag = out.ends_with(".TP\n");
        if line.len() <= WIDTH || tag || line.starts_with(['.', '\'', ' ']) {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let mut current = String::new();
        for word in line.split(' ') {
            if !current.is_empty()
                && current.len() + 1 + word.len() > WIDTH
                && !current.ends_with('\\')
            {
                out.push_str(&current);
                out.push('\n');
                current.clear();
            }
            if current.is_empty() {
                if word.starts_with(['.', '\'']) {
                    current.push_str("\\&");
                }
            } else {
                current.push(' ');
            }
            current.push_str(word);
        }
        out.push_str(&current);
        out.push('\n');
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_changelog_names_this_version_and_dates_the_pages() {
        let first = CHANGELOG.lines().next().unwrap();
        assert!(
            first.starts_with(concat!("ddm (", env!("CARGO_PKG_VERSION"), "-")),
            "the changelog's newest entry is not this version: {first}"
        );
        let entry = "ddm (1.2.0-1) unstable; urgency=medium\n\n  * x\n\n -- A <a@b.c>  Tue, 09 Mar 2027 10:00:00 +0000\n";
        assert_eq!(release_date(entry), "2027-03-09");
    }

    #[test]
    fn tidy_breaks_long_text_lines_at_spaces_and_leaves_requests_and_tags() {
        let long = "word ".repeat(30);
        let tag = format!("\\fB{}\\fR", "x".repeat(90));
        let roff = format!(".TH T 1  \n.TP\n{tag}\n{long}\n\n.br\nend .SH\\ a .b\n");
        let tidied = String::from_utf8(tidy(roff.as_bytes())).unwrap();
        let lines: Vec<&str> = tidied.lines().collect();
        assert_eq!(lines[0], ".TH T 1");
        assert_eq!(lines[2], tag);
        assert!(lines.iter().all(|l| l.len() <= WIDTH || *l == tag));
        assert!(lines.iter().all(|l| !l.ends_with(' ')));
        let words: usize = lines[3..].iter().map(|l| l.matches("word").count()).sum();
        assert_eq!(words, 30);
        assert!(!tidied.contains("\n\n.br"), "{tidied}");
        let wrapped =
            String::from_utf8(tidy(format!("{} .SH x\n", "a".repeat(78)).as_bytes())).unwrap();
        assert_eq!(wrapped, format!("{}\n\\&.SH x\n", "a".repeat(78)));
    }
}

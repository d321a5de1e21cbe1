//! What people expect of a command: `--version` with the revision,
//! `ddm status` exit codes for scripts, Tab completion with the service's
//! interface names, and man pages.

use crate::support::*;
use std::path::Path;
use std::process::{Command, Output};

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited, not killed")
}

#[test]
fn version_names_the_git_revision() {
    let out = Command::new(DDM).arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let revision = text
        .trim()
        .strip_prefix(concat!("ddm ", env!("CARGO_PKG_VERSION"), " (git "))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not `ddm VERSION (git REVISION)`: {text}"));
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.git");
    if checkout.exists() {
        assert!(
            revision.len() >= 7 && revision.chars().all(|c| c.is_ascii_hexdigit()),
            "{revision}"
        );
    } else {
        assert_eq!(revision, "unknown");
    }
}

#[test]
fn status_exits_0_running_1_stopped_2_no_service_3_access_denied() {
    let lab = Lab::with_config(Some("[access]\ndefault_role = \"none\"\n"));
    let status = |lab: &Lab| lab.service.ddm(&["status"]).output().unwrap();
    let running = status(&lab);
    assert_eq!(
        (code(&running), running.stdout.as_slice()),
        (0, &b"running\n"[..])
    );
    lab.service.connect().set_router_running(false).unwrap();
    let stopped = status(&lab);
    assert_eq!(
        (code(&stopped), stopped.stdout.as_slice()),
        (1, &b"stopped\n"[..])
    );
    let denied = lab.service.ddm_as_nobody(&["status"]);
    assert_eq!(
        code(&denied),
        3,
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let none = Command::new(DDM)
        .args(["status", "--socket"])
        .arg(dir.path().join("none.sock"))
        .output()
        .unwrap();
    assert_eq!(code(&none), 2);
    assert!(String::from_utf8_lossy(&none.stderr).contains("(1717)"));
}

/// What `ddm` answers a shell completing `words` (the last one being
/// typed), as the installed bash script asks it.
fn complete(socket: &Path, words: &[&str]) -> Vec<String> {
    stdout_of(
        Command::new(DDM)
            .env("COMPLETE", "bash")
            .env("_CLAP_COMPLETE_INDEX", (words.len() - 1).to_string())
            .env("_CLAP_COMPLETE_COMP_TYPE", "9")
            .env("_CLAP_COMPLETE_SPACE", "true")
            .env("_CLAP_IFS", "\n")
            .env("DDM_SOCKET", socket)
            .arg("--")
            .args(words),
    )
    .lines()
    .map(str::to_owned)
    .collect()
}

#[test]
fn tab_completes_subcommands_and_the_services_interface_names() {
    let lab = Lab::new();
    lab.add_link("tabby0");
    lab.add_link("tabby1");
    lab.wait_listed("tabby1");
    let socket = &lab.service.socket;
    assert!(complete(socket, &["ddm", "disc"]).contains(&"disconnect".to_owned()));
    for command in ["connect", "disconnect", "enable", "disable"] {
        let names = complete(socket, &["ddm", command, "tab"]);
        assert_eq!(names, ["tabby0", "tabby1"], "ddm {command} tab<Tab>");
    }
    let all = complete(socket, &["ddm", "connect", ""]);
    assert!(all.contains(&"lo".to_owned()), "{all:?}");
    // No service: no names, and no error either.
    let dir = tempfile::tempdir().unwrap();
    assert!(complete(&dir.path().join("none.sock"), &["ddm", "connect", "t"]).is_empty());

    // The real shells, with the scripts `ddm generate completions` prints
    // (as the package installs them), asking the service.
    let ddm_dir = Path::new(DDM).parent().unwrap();
    let path = format!("{}:{}", ddm_dir.display(), std::env::var("PATH").unwrap());
    let shell = |program: &str, script: &str| -> String {
        stdout_of(
            tool(program)
                .args(["-c", script])
                .env("PATH", &path)
                .env("DDM_SOCKET", socket),
        )
    };
    let bash = shell(
        "bash",
        "source <(ddm generate completions bash); COMP_WORDS=(ddm enable tab); COMP_CWORD=2; \
         COMP_TYPE=9; _clap_complete_ddm ddm tab enable; printf '%s\\n' \"${COMPREPLY[@]}\"",
    );
    assert_eq!(
        bash.lines().collect::<Vec<_>>(),
        ["tabby0", "tabby1"],
        "bash"
    );
    let fish = shell(
        "fish",
        "ddm generate completions fish | source; complete -C 'ddm disconnect tab'",
    );
    let names: Vec<&str> = fish
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(names, ["tabby0", "tabby1"], "fish");
    // zsh loads `_ddm` from its fpath at the first Tab, as it does from
    // the package's vendor-completions: an interactive zsh on a pty.
    let fpath = tempfile::tempdir().unwrap();
    let script = stdout_of(Command::new(DDM).args(["generate", "completions", "zsh"]));
    std::fs::write(fpath.path().join("_ddm"), script).unwrap();
    let zsh = shell(
        "zsh",
        &format!(
            r#"zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z 'PS1="> "; fpath=({} $fpath); autoload -U compinit; compinit -u'
zpty -w -n z $'ddm enable tab\t'
out=""
for i in {{1..100}}; do
  while zpty -r -t z line; do out+=$line; done
  [[ $out == *"enable tabby"* ]] && break
  sleep 0.1
done
zpty -d z
print -r -- "$out""#,
            fpath.path().display()
        ),
    );
    // At the first Tab "tab" becomes "tabby", the part the service's two
    // names share (zsh writes the line back, terminal codes around it).
    assert!(zsh.contains("ddm enable tabby"), "zsh: {zsh:?}");
}

#[test]
fn man_pages_for_ddm_each_subcommand_and_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    stdout_of(Command::new(DDM).args(["generate", "man"]).arg(dir.path()));
    for page in [
        "ddm.1",
        "ddm-serve.1",
        "ddm-status.1",
        "ddm-watch.1",
        "ddm-connect.1",
        "ddm-history.1",
        "ddm.toml.5",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.starts_with(".TH") || text.starts_with(".ie"), "{page}");
    }
    let ddm = std::fs::read_to_string(dir.path().join("ddm.1")).unwrap();
    for section in ["EXIT STATUS", "ENVIRONMENT", "FILES", "ddm\\-serve(1)"] {
        assert!(ddm.contains(section), "ddm.1 lacks {section}");
    }
    let serve = std::fs::read_to_string(dir.path().join("ddm-serve.1")).unwrap();
    assert!(serve.contains("config"), "ddm-serve.1 lacks --config");
}

#[test]
fn the_packaged_man_pages_lint_clean_with_a_dated_versioned_title() {
    let pages = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/man");
    let mut names: Vec<_> = std::fs::read_dir(&pages)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    assert!(names.len() > 10, "{names:?}");
    for page in names {
        // Every level, style included: nothing to say.
        ddm_lab::assert_silent(
            tool("mandoc").args(["-T", "lint", "-W", "all"]).arg(&page),
            b"",
        );
        let text = std::fs::read_to_string(&page).unwrap();
        let title = text.lines().find(|l| l.starts_with(".TH ")).unwrap();
        let words: Vec<&str> = title.split_whitespace().collect();
        assert!(
            words[1] == words[1].to_uppercase()
                && words[3].len() == 10
                && words[3].as_bytes()[4] == b'-'
                && title.contains(concat!("\"ddm ", env!("CARGO_PKG_VERSION"), "\"")),
            "{}: {title}",
            page.display()
        );
    }
}

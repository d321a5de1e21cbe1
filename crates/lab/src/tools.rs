//! The programs the lab runs, and the Debian package each comes in
//! (`tools.txt`): one that is missing fails the test at once with a message
//! that names its package, never with an unwrap of NotFound or a wait that
//! runs out. `./run-tests` installs them all.

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Each program the tests and the benchmark run, with its Debian package
/// (`tools.txt`, which `./run-tests` installs from).
const TOOLS: &str = include_str!("../tools.txt");

/// The Debian package `program` comes in.
pub fn package_of(program: &str) -> &'static str {
    TOOLS
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once(' '))
        .find(|(tool, _)| *tool == program)
        .map_or("?", |(_, package)| package.trim())
}

/// Whether `program` is installed: on PATH (or in the sbin directories),
/// or, given by its path, there.
fn installed(program: &str) -> bool {
    if program.starts_with('/') {
        return Path::new(program).exists();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|dir| is_executable(&dir.join(program)))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Fails now, naming its package, when `program` (a name, or a path) is
/// not installed.
pub fn require(program: &str) {
    assert!(
        installed(program),
        "{program} is not installed: it is in the Debian package {package} \
         (apt-get install {package}; ./run-tests installs everything the tests need)",
        package = package_of(program)
    );
}

/// `program` as a command, once it is known to be installed.
pub fn tool(program: &str) -> Command {
    require(program);
    Command::new(program)
}

/// Fails the test, loudly, when not root: the lab makes namespaces.
pub fn require_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "the integration tests create network namespaces and must run as root (sudo ./run-tests)"
    );
    ddmd::raise_descriptor_limit();
}

/// Runs `program`, failing the test (with its stderr) if it fails.
pub fn run(program: &str, args: &[&str]) {
    stdout_of(tool(program).args(args));
}

/// What `command` prints, failing the test (with its stderr) if it fails.
pub fn stdout_of(command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `command` with `input` on its standard input; what it printed on
/// both streams, and how it ended.
pub fn output_fed(command: &mut Command, input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    child
        .stdin
        .take()
        .expect("a piped stdin")
        .write_all(input)
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    child.wait_with_output().unwrap()
}

/// Runs `command` with `input` on its standard input, failing the test if
/// it fails.
pub fn fed(command: &mut Command, input: &str) {
    let out = output_fed(command, input.as_bytes());
    assert!(
        out.status.success(),
        "{command:?} failed: {}\n{input}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Fails the test, with what it said, unless `command` (a linter given
/// `input`) succeeds and prints nothing at all.
pub fn assert_silent(command: &mut Command, input: &[u8]) {
    let out = output_fed(command, input);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.is_empty(),
        "{command:?} ({}) said:\n{said}",
        out.status
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_names_its_package() {
        let missing = std::panic::catch_unwind(|| require("wg-does-not-exist"));
        let message = *missing.unwrap_err().downcast::<String>().unwrap();
        assert!(
            message.contains("wg-does-not-exist is not installed"),
            "{message}"
        );
        assert_eq!(package_of("wireguard-go"), "wireguard-go");
        assert_eq!(package_of("wg"), "wireguard-tools");
        require("sh");
    }
}

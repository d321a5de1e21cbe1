//! The C library against the real service: the C tests in `tests/c` and the
//! example in `examples/c`, compiled with the system C compiler
//! (`-std=c11 -Wall -Wextra -Wpedantic -Werror`, and again under
//! AddressSanitizer) and run in a lab with link "va"; and what the library
//! exports.

use crate::support::*;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The build tree's `pkg-config --cflags --libs mprapi`, as a C
/// programmer uses it (`PKG_CONFIG_PATH=target/<profile>/pkgconfig`): the
/// tree's headers, the library cargo built, an rpath to it.
fn tree_flags() -> Vec<String> {
    let profile = Path::new(DDM).parent().unwrap();
    let library = profile.join("libmprapi.so");
    let fresh = profile.join("deps/libmprapi.so");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    assert!(
        modified(&library).is_some() && modified(&library) >= modified(&fresh),
        "{} is missing or older than the library cargo just built: `cargo build --all-targets` makes it (./run-tests does)",
        library.display()
    );
    let flags = stdout_of(
        tool("pkg-config")
            .args(["--cflags", "--libs", "mprapi"])
            .env("PKG_CONFIG_PATH", profile.join("pkgconfig")),
    );
    flags.split_whitespace().map(str::to_owned).collect()
}

#[derive(Clone, Copy, PartialEq)]
pub enum Build {
    Plain,
    AddressSanitizer,
}

/// Compiles one C program against include/mprapi.h and libmprapi.so.
pub fn compile(source: &str, build: Build) -> PathBuf {
    let repo = repository();
    let name = Path::new(source).file_stem().unwrap().to_str().unwrap();
    let dir = Path::new(DDM).parent().unwrap().join("c-tests");
    std::fs::create_dir_all(&dir).unwrap();
    // Tests compile in parallel: each build gets its own file.
    static BUILDS: AtomicU32 = AtomicU32::new(0);
    let serial = BUILDS.fetch_add(1, Ordering::Relaxed);
    let flavour = if build == Build::Plain { "" } else { "-asan" };
    let output = dir.join(format!("{name}{flavour}-{}-{serial}", std::process::id()));
    let mut gcc = tool("gcc");
    gcc.args([
        "-std=c11",
        "-g",
        "-Wall",
        "-Wextra",
        "-Wpedantic",
        "-Werror",
    ])
    .arg("-I")
    .arg(repo.join("tests/c"))
    .arg(repo.join(source))
    .arg("-o")
    .arg(&output)
    .args(tree_flags())
    .arg("-lpthread");
    if build == Build::AddressSanitizer {
        gcc.args(["-fsanitize=address", "-fno-omit-frame-pointer"]);
    }
    let out = gcc.output().expect("gcc is needed for the C tests");
    assert!(
        out.status.success(),
        "gcc {source}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    output
}

/// Runs a C test program against the lab's service and checks its
/// summary line.
fn run(lab: &Lab, program: &Path, args: &[&str], as_nobody: bool) {
    run_at(lab, &lab.service.socket, program, args, as_nobody)
}

fn run_at(lab: &Lab, socket: &Path, program: &Path, args: &[&str], as_nobody: bool) {
    let mut command = Command::new(program);
    command
        .args(args)
        .env("DDM_SOCKET", socket)
        .env("DDM_TEST_NETNS", &lab.router.name)
        .env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0");
    if as_nobody {
        command.uid(65534).gid(65534);
    }
    let out: Output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(" passed, 0 failed"),
        "{} {args:?}:\n{stdout}\n{stderr}",
        program.display()
    );
}

fn lab_with_va() -> Lab {
    let lab = Lab::new();
    lab.add_link("va");
    lab.wait_listed("va");
    lab
}

/// The names `nm -D` lists as defined in the built library.
fn exported(library: &Path) -> Vec<String> {
    let listing = stdout_of(
        tool("nm")
            .args(["-D", "--defined-only", "--with-symbol-versions"])
            .arg(library),
    );
    let mut names: Vec<String> = listing
        .lines()
        .filter_map(|line| line.split_whitespace().nth(2).map(str::to_owned))
        .collect();
    names.sort();
    names
}

#[test]
fn the_library_exports_only_the_documented_names_each_as_mprapi_0() {
    let header = std::fs::read_to_string(repository().join("include/mprapi.h")).unwrap();
    // Every function the header declares: MprAdmin*, MprEventGetFd, ddm_*.
    let mut documented: Vec<String> = header
        .split('(')
        .filter_map(|before| {
            let start = before.rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
            Some(&before[start? + 1..])
        })
        .filter(|name| name.starts_with("Mpr") || name.starts_with("ddm_"))
        .map(|name| format!("{name}@@MPRAPI_0"))
        .collect();
    documented.sort();
    documented.dedup();
    assert_eq!(documented.len(), 25, "{documented:?}");
    let library = Path::new(DDM).parent().unwrap().join("libmprapi.so");
    assert_eq!(exported(&library), documented);
}

#[test]
fn a_program_with_its_own_sleep_and_getlasterror_links_and_keeps_them() {
    for build in [Build::Plain, Build::AddressSanitizer] {
        let program = compile("tests/c/own_win32_names.c", build);
        let out = Command::new(&program).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains(" passed, 0 failed"),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn c_structures_have_the_windows_x64_layout() {
    require_root();
    let lab = Lab::new();
    for build in [Build::Plain, Build::AddressSanitizer] {
        run(&lab, &compile("tests/c/layout.c", build), &[], false);
    }
}

#[test]
fn c_calls_and_their_errors() {
    let lab = lab_with_va();
    for build in [Build::Plain, Build::AddressSanitizer] {
        let api = compile("tests/c/api.c", build);
        run(&lab, &api, &[], false);
        run(&lab, &api, &["status"], true);
        lab.service.connect().set_router_running(false).unwrap();
        run(&lab, &api, &["stopped"], false);
        lab.service.connect().set_router_running(true).unwrap();
        run_at(
            &lab,
            &lab.service.socket.with_extension("absent"),
            &api,
            &["absent"],
            false,
        );
    }
}

#[test]
fn c_connect_without_a_role_is_access_denied() {
    let lab = Lab::with_config(Some("[access]\ndefault_role = \"none\"\n"));
    let api = compile("tests/c/api.c", Build::Plain);
    run(&lab, &api, &["denied"], true);
}

#[test]
fn c_notification_loop_and_threads() {
    let lab = lab_with_va();
    for build in [Build::Plain, Build::AddressSanitizer] {
        run(&lab, &compile("tests/c/notify.c", build), &[], false);
    }
}

#[test]
fn the_c_example_reports_changes_and_cleans_up_on_ctrl_c() {
    let lab = lab_with_va();
    let example = compile("examples/c/watch_interfaces.c", Build::Plain);
    let mut child = Command::new(&example)
        .env("DDM_SOCKET", &lab.service.socket)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines, received) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    lab.service.wait_for_registration(child.id());
    lab.set_up("va", true);
    let wanted = "va: disconnected -> connected";
    let seen: Vec<String> = received
        .iter()
        .take_while(|l| l != wanted)
        .take(100)
        .collect();
    assert!(
        !seen.iter().any(|l| l == wanted) && seen.iter().any(|l| l == "va: disconnected"),
        "{seen:?}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    assert!(
        child.wait().unwrap().success(),
        "Ctrl-C deregisters and exits cleanly"
    );
}

#[test]
fn the_pkg_config_file_builds_a_program_from_an_installed_library() {
    require_root();
    let prefix = tempfile::tempdir().unwrap();
    let repo = repository();
    let include = prefix.path().join("include/ddm");
    let lib = prefix.path().join("lib");
    std::fs::create_dir_all(&include).unwrap();
    std::fs::create_dir_all(lib.join("pkgconfig")).unwrap();
    for header in ["mprapi.h", "windows.h", "mprerror.h"] {
        std::fs::copy(repo.join("include").join(header), include.join(header)).unwrap();
    }
    std::fs::copy(
        Path::new(DDM).parent().unwrap().join("libmprapi.so"),
        lib.join("libmprapi.so.0"),
    )
    .unwrap();
    std::os::unix::fs::symlink("libmprapi.so.0", lib.join("libmprapi.so")).unwrap();
    std::fs::copy(repo.join("mprapi.pc"), lib.join("pkgconfig/mprapi.pc")).unwrap();
    let flags = tool("pkg-config")
        .arg(format!(
            "--define-variable=prefix={}",
            prefix.path().display()
        ))
        .args(["--cflags", "--libs", "mprapi"])
        .env("PKG_CONFIG_PATH", lib.join("pkgconfig"))
        .output()
        .expect("pkg-config is needed for this test");
    assert!(
        flags.status.success(),
        "{}",
        String::from_utf8_lossy(&flags.stderr)
    );
    let flags = String::from_utf8(flags.stdout).unwrap();
    let program = prefix.path().join("watch_interfaces");
    let out = tool("gcc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror"])
        .arg(repo.join("examples/c/watch_interfaces.c"))
        .args(flags.split_whitespace())
        .arg("-o")
        .arg(&program)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let linked = tool("ldd")
        .arg(&program)
        .env("LD_LIBRARY_PATH", &lib)
        .output()
        .unwrap();
    // The program asks for the soname, found where it was installed.
    let needed = format!("libmprapi.so.0 => {}", lib.join("libmprapi.so.0").display());
    assert!(
        String::from_utf8_lossy(&linked.stdout).contains(&needed),
        "{}",
        String::from_utf8_lossy(&linked.stdout)
    );
}

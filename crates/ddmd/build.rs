//! Puts the git revision into `ddm --version` and the metrics' build info
//! (`ddmd::REVISION`): `$DDM_GIT_REVISION` when a packager sets it, else
//! `git describe` of the source tree, else "unknown" (a tree that is not a
//! git checkout).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=DDM_GIT_REVISION");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for watched in [".git/HEAD", ".git/index"] {
        if root.join(watched).exists() {
            println!("cargo:rerun-if-changed={}", root.join(watched).display());
        }
    }
    let revision = std::env::var("DDM_GIT_REVISION")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| {
            let out = Command::new("git")
                .args(["describe", "--always", "--abbrev=12", "--exclude=*"])
                .current_dir(&root)
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=DDM_GIT_REVISION={revision}");
}

//! libmprapi.so carries its soname, libmprapi.so.0: programs linked against
//! it ask for that name, which the package installs (with the unversioned
//! libmprapi.so link for the linker). The 0 changes when the C ABI does.
//!
//! So that a C program builds and runs against the build tree with no
//! hand-made link, the build also leaves, beside the library cargo writes
//! (`target/<profile>/`): the soname link `libmprapi.so.0`, and
//! `pkgconfig/mprapi-uninstalled.pc`, which pkg-config reads for `mprapi`
//! when that directory is on `PKG_CONFIG_PATH`: the tree's headers, the
//! library, and an rpath to it.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libmprapi.so.0");
    // The exported names and their version (rustc's own script lists every
    // #[no_mangle] name with no version; lld applies both, this one's node).
    let map = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("manifest"))
        .join("libmprapi.map");
    println!(
        "cargo:rustc-cdylib-link-arg=-Wl,--version-script={}",
        map.display()
    );
    println!("cargo:rerun-if-changed=libmprapi.map");
    println!("cargo:rerun-if-changed=build.rs");
    // OUT_DIR is target/<profile>/build/mprapi-<hash>/out.
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let Some(profile) = out.ancestors().nth(3) else {
        return;
    };
    for dir in [profile.to_owned(), profile.join("deps")] {
        soname_link(&dir);
    }
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("manifest"));
    let include = manifest.join("../../include");
    let include = include.canonicalize().unwrap_or(include);
    let pkgconfig = profile.join("pkgconfig");
    let _ = std::fs::create_dir_all(&pkgconfig);
    let pc = format!(
        "# libmprapi in the build tree, written by crates/mprapi/build.rs:\n\
         # PKG_CONFIG_PATH={pkgconfig} pkg-config --cflags --libs mprapi\n\
         libdir={libdir}\n\
         includedir={include}\n\n\
         Name: mprapi\n\
         Description: The Windows router administration API (mprapi.h) on Linux, for ddm (build tree)\n\
         Version: {version}\n\
         Libs: -L${{libdir}} -Wl,-rpath,${{libdir}} -lmprapi\n\
         Cflags: -I${{includedir}}\n",
        pkgconfig = pkgconfig.display(),
        libdir = profile.display(),
        include = include.display(),
        version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default(),
    );
    let _ = std::fs::write(pkgconfig.join("mprapi-uninstalled.pc"), pc);
}

/// `dir/libmprapi.so.0` -> `libmprapi.so`, made before the library is (a
/// link may point at what does not exist yet).
fn soname_link(dir: &Path) {
    let link = dir.join("libmprapi.so.0");
    if std::fs::read_link(&link).is_ok_and(|target| target == Path::new("libmprapi.so")) {
        return;
    }
    let _ = std::fs::remove_file(&link);
    let _ = std::os::unix::fs::symlink("libmprapi.so", &link);
}

//! libmprapi.so carries its soname, libmprapi.so.0: programs linked against
//! it ask for that name, which the package installs (with the unversioned
//! libmprapi.so link for the linker). The 0 changes when the C ABI does.

fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libmprapi.so.0");
}

//! The C ABI: the mprapi.h calls and the Win32 event calls around them,
//! declared in `include/mprapi.h` and built into `libmprapi.so`.
//!
//! A thin layer over [`Server`](crate::Server) and [`Event`](crate::Event):
//! it translates handles and buffers and nothing else, so C and Rust callers
//! get the same behaviour from one implementation. Every function is safe
//! to call from several threads at once, and no handle a caller can pass
//! (NULL, closed, stale, forged, of another kind) is undefined behaviour:
//! each is an error with the number the Win32 documentation gives.

mod admin;
mod events;
mod handles;
mod memory;

use std::cell::Cell;

pub use admin::{MprInterface0, MprServer0};

/// Exports each name as its default version, `MPRAPI_0`, defined in
/// `crates/mprapi/libmprapi.map` (rustc's own version script lists the
/// names with no version, and the linker takes the first script's word).
/// A `.symver` must sit in the object that defines the name: each file
/// versions its own functions, and the workspace's profiles build this
/// crate as one object (`codegen-units = 1`).
macro_rules! versioned {
    ($($name:literal),* $(,)?) => {
        $(std::arch::global_asm!(concat!(".symver ", $name, ", ", $name, "@@MPRAPI_0"));)*
    };
}
use versioned;

versioned!("ddm_GetLastError", "ddm_SetLastError", "ddm_Sleep");

thread_local! {
    static LAST_ERROR: Cell<u32> = const { Cell::new(0) };
}

/// `GetLastError`: the calling thread's last error.
#[export_name = "ddm_GetLastError"]
pub extern "C" fn get_last_error() -> u32 {
    LAST_ERROR.with(Cell::get)
}

/// `Sleep`, which Windows programs call between polls.
#[export_name = "ddm_Sleep"]
pub extern "C" fn sleep(milliseconds: u32) {
    std::thread::sleep(std::time::Duration::from_millis(milliseconds.into()));
}

/// `SetLastError`, which the calls here use too.
#[export_name = "ddm_SetLastError"]
pub extern "C" fn set_last_error(code: u32) {
    LAST_ERROR.with(|e| e.set(code));
}

#[cfg(test)]
mod tests {
    /// libmprapi-dev asks for the library of its own version, and the
    /// pkg-config files say that version.
    #[test]
    fn the_packages_and_pkg_config_files_name_this_version() {
        let version = env!("CARGO_PKG_VERSION");
        let (major_minor, patch) = version.rsplit_once('.').unwrap();
        let next = format!("{major_minor}.{}", patch.parse::<u32>().unwrap() + 1);
        let manifest = include_str!("../../Cargo.toml");
        let depends = format!("depends = \"libmprapi0 (>= {version}), libmprapi0 (<< {next}~)\"");
        assert!(
            manifest.contains(&depends),
            "crates/mprapi/Cargo.toml lacks {depends}"
        );
        for pc in [
            include_str!("../../../../packaging/mprapi.pc"),
            include_str!("../../../../mprapi.pc"),
        ] {
            assert!(pc.contains(&format!("\nVersion: {version}\n")), "{pc}");
        }
    }

    use ddm_proto::WinError;

    const HEADER: &str = include_str!("../../../../include/mprapi.h");

    fn defines() -> Vec<(&'static str, u32)> {
        HEADER
            .lines()
            .filter_map(|line| {
                let mut words = line.strip_prefix("#define ")?.split_whitespace();
                Some((words.next()?, words.next()?.parse().ok()?))
            })
            .collect()
    }

    #[test]
    fn the_header_has_every_error_number_of_the_table() {
        let defines = defines();
        for (code, name, _) in WinError::ALL {
            assert!(
                defines.contains(&(name, *code)),
                "mprapi.h lacks #define {name} {code}"
            );
        }
    }

    #[test]
    fn every_error_number_in_the_header_is_in_the_table() {
        let errors = defines().into_iter().filter(|(name, _)| {
            ["ERROR_", "RPC_S_", "WARNING_", "PENDING"]
                .iter()
                .any(|p| name.starts_with(p))
        });
        for (name, code) in errors {
            if name == "ERROR_SUCCESS" {
                continue;
            }
            assert_eq!(
                WinError(code).name(),
                name,
                "mprapi.h's {name} is not {code} in the table"
            );
        }
    }
}

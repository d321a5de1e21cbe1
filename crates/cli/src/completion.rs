//! Shell completion: clap_complete's dynamic engine. The script a shell
//! loads (`ddm generate completions bash`; the package installs the ones
//! committed in `packaging/completions`) calls
//! `ddm` itself at each Tab (`COMPLETE=bash ddm -- ...`, answered at the top
//! of `main`), so the interface names for `connect`, `disconnect`,
//! `enable` and `disable` come from the service when one answers.

use clap_complete::engine::{ArgValueCompleter, CompletionCandidate};
use clap_complete::env::Shells;
use std::ffi::OsStr;

/// The shells completion scripts are written for.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// Names of the interfaces the local service lists ($DDM_SOCKET or the
/// default socket), those starting with what was typed; none when no
/// service answers.
pub fn interface_names() -> ArgValueCompleter {
    ArgValueCompleter::new(|typed: &OsStr| -> Vec<CompletionCandidate> {
        let typed = typed.to_string_lossy();
        let socket = ddm_proto::endpoint::client_socket_path(None);
        let Ok(interfaces) = mprapi::Server::connect_socket(&socket).and_then(|s| s.interfaces())
        else {
            return Vec::new();
        };
        interfaces
            .into_iter()
            .filter(|i| i.name.starts_with(typed.as_ref()))
            .map(|i| CompletionCandidate::new(i.name).help(Some(i.state.name().into())))
            .collect()
    })
}

/// What zsh needs beyond clap's script when it loads the file from its
/// fpath as the function `_ddm` at the first Tab (the package installs it
/// there): complete at once, not only from the second Tab on. Sourced, the
/// file does nothing more.
const ZSH_AUTOLOADED: &str =
    "if [ \"$funcstack[1]\" = \"_ddm\" ]; then _clap_dynamic_completer_ddm \"$@\"; fi\n";

/// Writes the script that registers `ddm`'s completions with `shell`.
pub fn write_script(shell: Shell, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let name = match shell {
        Shell::Bash => "bash",
        Shell::Zsh => "zsh",
        Shell::Fish => "fish",
    };
    let shells = Shells::builtins();
    let completer = shells
        .completer(name)
        .expect("clap_complete knows bash, zsh and fish");
    completer.write_registration("COMPLETE", "ddm", "ddm", "ddm", out)?;
    if let Shell::Zsh = shell {
        out.write_all(ZSH_AUTOLOADED.as_bytes())?;
    }
    Ok(())
}

//! `ddm`: the service (`ddm serve`) and its command-line client.
//!
//! Every client subcommand talks to the local service through the `mprapi`
//! library, exactly as any other program would. Errors go to stderr as
//! `NAME (number): text` with a non-zero exit status.

mod completion;
mod dialing;
mod events;
mod health;
mod jetstream;
mod journal;
mod listing;
mod manual;
mod output;
mod routers;
mod watch;
mod when;

use clap::{CommandFactory, Parser, Subcommand};
use mprapi::{Server, WinError};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "ddm",
    version = ddmd::VERSION,
    about = "Router connection manager: the DDM service and its client",
    long_about = "Router connection manager: the DDM service and its client.\n\n\
        `ddm serve` runs the service (the demand-dial manager): it keeps the table \
        of the router's interfaces and their connection state, dials, hangs up and \
        redials declared interfaces, signals registered clients on every connect \
        and disconnect, and keeps a journal. The other subcommands are its \
        clients, for the local service (its Unix socket) or remote routers over \
        TLS 1.3 (--server)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The service's socket, for every client subcommand.
#[derive(clap::Args)]
struct Endpoint {
    /// Unix socket of the service [default: $DDM_SOCKET, else
    /// /run/ddm/ddm.sock if it exists (clients) or if root (serve), else
    /// $XDG_RUNTIME_DIR/ddm.sock]
    #[arg(long, value_name = "PATH", global = true, conflicts_with = "servers")]
    socket: Option<PathBuf>,
    /// A remote service, over TLS with the client certificate of
    /// client.toml: a name, name:port or address; @FILE names one a line.
    /// `watch` and `interfaces` take several (repeat it) and show them
    /// together.
    #[arg(long = "server", value_name = "NAME", global = true, value_parser = server_names)]
    servers: Vec<Vec<String>>,
}

/// A `--server` value: a name, or @FILE with names one a line (blank lines
/// and `#` comments left out).
fn server_names(value: &str) -> Result<Vec<String>, String> {
    let Some(file) = value.strip_prefix('@') else {
        return Ok(vec![value.to_owned()]);
    };
    let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
    let names: Vec<String> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if names.is_empty() {
        return Err(format!("{file} names no router"));
    }
    Ok(names)
}

impl Endpoint {
    /// Every router named by --server, in order.
    fn servers(&self) -> Vec<String> {
        self.servers.iter().flatten().cloned().collect()
    }

    fn path(&self) -> PathBuf {
        ddm_proto::endpoint::client_socket_path(self.socket.clone())
    }

    /// The one service this command is for: the first --server, else the
    /// local one.
    fn connect(&self) -> Result<Server, WinError> {
        match self.servers().first() {
            Some(name) => Server::connect(Some(name)),
            None => Server::connect_socket(&self.path()),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (the DDM) in the foreground.
    ///
    /// Under systemd (ddm.service) it takes the socket ddm.socket passes,
    /// says when it is ready, reloading and stopping, feeds the watchdog and
    /// logs with journal priorities; SIGHUP reads the configuration again,
    /// SIGINT and SIGTERM stop it.
    Serve {
        /// TOML configuration; without it the built-in defaults apply.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Print whether the DDM is running or stopped (exit status 0 running,
    /// 1 stopped, 2 no service answers, 3 access denied).
    ///
    /// Then, for monitors and admins, how far the journal's export is
    /// behind and what the journal lost, if anything.
    Status {
        /// Also the journal's file, size and oldest entry.
        #[arg(long, short)]
        verbose: bool,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Print the server information (MPR_SERVER_0).
    Info {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// List the router's interfaces (MPR_INTERFACE_0).
    Interfaces {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Path health of the interfaces with a health table, or of NAME:
    /// verdict, RTT, jitter, loss, and each target's (monitor or admin).
    Health {
        name: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Groups of uplinks: which member carries each group's routes and
    /// since when, and its members' states and health (monitor or admin).
    Groups {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Register for connection notifications and print each connect or
    /// disconnect as it happens.
    Watch {
        /// One JSON object a line.
        #[arg(long)]
        json: bool,
        /// Exit (status 0) after this many events.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Exit with status 1 when this many seconds pass without an event.
        #[arg(long, value_name = "SECS")]
        timeout: Option<f64>,
        /// Begin after this sequence number: what came since is read from
        /// the journal first.
        #[arg(long, value_name = "SEQ", conflicts_with = "fleet")]
        since: Option<u64>,
        /// Go on across restarts of the service and stops of the DDM,
        /// resuming after the last event printed (from the journal).
        #[arg(long, conflicts_with = "fleet")]
        resume: bool,
        /// Watch a whole fleet's events in NATS JetStream instead (see
        /// the --nats options); a durable consumer resumes where it left off.
        #[arg(long)]
        fleet: bool,
        #[command(flatten)]
        nats: jetstream::NatsArgs,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Print the journal's entries, oldest first (monitor or admin).
    History {
        #[command(flatten)]
        window: journal::Window,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Per interface: connected time and percentage, disconnects, longest
    /// outage; for declared interfaces attempts, failures and bytes per
    /// connection (monitor or admin). The window's bounds are times [default:
    /// the journal's oldest entry to now].
    Uptime {
        #[command(flatten)]
        window: journal::Window,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Start or stop the DDM (admin).
    Router {
        #[arg(value_enum)]
        action: RouterAction,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Dial a declared interface (admin); with --wait, until the attempt
    /// completes.
    Connect {
        #[arg(add = completion::interface_names())]
        name: String,
        /// Wait for the attempt: exit 0 once connected, 1 with its error.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Hang up a declared interface, or cancel its attempt (admin).
    Disconnect {
        #[arg(add = completion::interface_names())]
        name: String,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Enable a declared interface (admin).
    Enable {
        #[arg(add = completion::interface_names())]
        name: String,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Disable a declared interface, hanging it up (admin).
    Disable {
        #[arg(add = completion::interface_names())]
        name: String,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Have the service read its configuration file again (admin; SIGHUP
    /// does the same).
    Reload {
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// List the sessions and their registrations (admin).
    Registrations {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Write the man pages, or print a shell's completion script (for
    /// packagers; `source <(ddm generate completions bash)` in a shell).
    Generate {
        #[command(subcommand)]
        what: Generate,
    },
}

#[derive(Subcommand)]
enum Generate {
    /// Write ddm.1, a page per subcommand (ddm-serve.1, ...) and
    /// ddm.toml.5 into DIR.
    Man { dir: PathBuf },
    /// Print the completion script for SHELL; at each Tab it asks `ddm`,
    /// which asks the service for interface names.
    Completions {
        #[arg(value_enum)]
        shell: completion::Shell,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RouterAction {
    Start,
    Stop,
}

fn main() -> ExitCode {
    // A shell asking for completions (COMPLETE=bash ddm -- ...) is answered
    // here, and the process exits.
    clap_complete::CompleteEnv::with_factory(Cli::command)
        .completer("ddm")
        .complete();
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve { .. }) {
        output::end_quietly_on_a_closed_pipe();
    }
    let outcome = match cli.command {
        Command::Serve { config, endpoint } => return ddmd::daemon::main(config, endpoint.socket),
        Command::Status { verbose, endpoint } => return status(&endpoint, verbose),
        Command::Generate { what } => {
            let written = match what {
                Generate::Man { dir } => manual::write(Cli::command(), &dir),
                Generate::Completions { shell } => {
                    completion::write_script(shell, &mut std::io::stdout())
                }
            };
            return match written {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ddm generate: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Info { json, endpoint } => {
            endpoint.connect().and_then(|s| listing::info(&s, json))
        }
        Command::Interfaces { json, endpoint } if endpoint.servers().len() > 1 => {
            routers::interfaces(&endpoint.servers(), json)
        }
        Command::Interfaces { json, endpoint } => endpoint
            .connect()
            .and_then(|s| listing::interfaces(&s, json)),
        Command::Health {
            name,
            json,
            endpoint,
        } => endpoint
            .connect()
            .and_then(|s| health::run(&s, name.as_deref(), json)),
        Command::Groups { json, endpoint } => {
            endpoint.connect().and_then(|s| health::groups(&s, json))
        }
        Command::Watch {
            json,
            count,
            timeout,
            since,
            resume,
            fleet,
            nats,
            endpoint,
        } => {
            let options = watch::Options {
                json,
                count,
                timeout,
                since,
                resume,
            };
            let servers = endpoint.servers();
            if fleet {
                jetstream::watch(&nats, &options)
            } else if servers.len() > 1 {
                routers::watch(&servers, &options)
            } else {
                watch::run(&endpoint, options)
            }
        }
        Command::History { window, endpoint } => endpoint
            .connect()
            .and_then(|s| journal::history(&s, &window)),
        Command::Uptime { window, endpoint } => endpoint
            .connect()
            .and_then(|s| journal::uptime(&s, &window)),
        Command::Router { action, endpoint } => endpoint
            .connect()
            .and_then(|s| s.set_router_running(matches!(action, RouterAction::Start))),
        Command::Connect {
            name,
            wait,
            endpoint,
        } => endpoint
            .connect()
            .and_then(|s| dialing::connect(&s, &name, wait)),
        Command::Disconnect { name, endpoint } => endpoint
            .connect()
            .and_then(|s| dialing::disconnect(&s, &name)),
        Command::Enable { name, endpoint } => endpoint
            .connect()
            .and_then(|s| dialing::set_enabled(&s, &name, true)),
        Command::Disable { name, endpoint } => endpoint
            .connect()
            .and_then(|s| dialing::set_enabled(&s, &name, false)),
        Command::Reload { endpoint } => endpoint.connect().and_then(|s| {
            s.reload_with_reason().map_err(|(error, reason)| {
                if let Some(reason) = reason {
                    eprintln!("ddm reload: {reason}");
                }
                error
            })
        }),
        Command::Registrations { json, endpoint } => endpoint
            .connect()
            .and_then(|s| listing::registrations(&s, json)),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

/// `ddm status`, with its exit status: 0 running, 1 stopped, 2 no service
/// answers (or it failed), 3 access denied.
fn status(endpoint: &Endpoint, verbose: bool) -> ExitCode {
    let server = endpoint.connect();
    let running = server.as_ref().map_err(|e| *e).and_then(listing::status);
    if let (Ok(_), Ok(server)) = (&running, &server) {
        journal::status_lines(server, verbose);
    }
    match running {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("{error}");
            ExitCode::from(if error == WinError::ERROR_ACCESS_DENIED {
                3
            } else {
                2
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// The man pages and completion scripts the package ships, committed in
    /// packaging/, are what this build generates. When this fails, write
    /// them again: `ddm generate man packaging/man` and `ddm generate
    /// completions bash > packaging/completions/ddm.bash` (zsh: `_ddm`,
    /// fish: `ddm.fish`).
    #[test]
    fn the_packaged_pages_and_completion_scripts_are_fresh() {
        let packaging = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging");
        let fresh = tempfile::tempdir().unwrap();
        manual::write(Cli::command(), fresh.path()).unwrap();
        let names = |dir: &Path| -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        let pages = packaging.join("man");
        assert_eq!(names(fresh.path()), names(&pages), "the set of pages");
        for name in names(fresh.path()) {
            let generated = std::fs::read(fresh.path().join(&name)).unwrap();
            let committed = std::fs::read(pages.join(&name)).unwrap();
            assert!(generated == committed, "packaging/man/{name} is stale");
        }
        for (shell, file) in [
            (completion::Shell::Bash, "ddm.bash"),
            (completion::Shell::Zsh, "_ddm"),
            (completion::Shell::Fish, "ddm.fish"),
        ] {
            let mut generated = Vec::new();
            completion::write_script(shell, &mut generated).unwrap();
            let committed = std::fs::read(packaging.join("completions").join(file)).unwrap();
            assert!(
                generated == committed,
                "packaging/completions/{file} is stale"
            );
        }
    }
}

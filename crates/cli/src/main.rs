//! `ddm`: the service (`ddm serve`) and its command-line client.
//!
//! Every client subcommand talks to the local service through the `mprapi`
//! library, exactly as any other program would. Errors go to stderr as
//! `NAME (number): text` with a non-zero exit status.

mod dialing;
mod listing;
mod watch;

use clap::{Parser, Subcommand};
use mprapi::{Server, WinError};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "ddm",
    version,
    about = "Router connection manager: the DDM service and its client"
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
    #[arg(long, value_name = "PATH", global = true)]
    socket: Option<PathBuf>,
}

impl Endpoint {
    fn connect(&self) -> Result<Server, WinError> {
        Server::connect_socket(&ddm_proto::endpoint::client_socket_path(
            self.socket.clone(),
        ))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (the DDM) in the foreground.
    Serve {
        /// TOML configuration; without it the built-in defaults apply.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Print whether the DDM is running or stopped.
    Status {
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
        name: String,
        /// Wait for the attempt: exit 0 once connected, 1 with its error.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Hang up a declared interface, or cancel its attempt (admin).
    Disconnect {
        name: String,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Enable a declared interface (admin).
    Enable {
        name: String,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Disable a declared interface, hanging it up (admin).
    Disable {
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
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RouterAction {
    Start,
    Stop,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Serve { config, endpoint } => return ddmd::daemon::main(config, endpoint.socket),
        Command::Status { endpoint } => listing::status(&endpoint.connect()),
        Command::Info { json, endpoint } => {
            endpoint.connect().and_then(|s| listing::info(&s, json))
        }
        Command::Interfaces { json, endpoint } => endpoint
            .connect()
            .and_then(|s| listing::interfaces(&s, json)),
        Command::Watch {
            json,
            count,
            timeout,
            endpoint,
        } => watch::run(
            &endpoint,
            watch::Options {
                json,
                count,
                timeout,
            },
        ),
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
        Command::Reload { endpoint } => endpoint.connect().and_then(|s| s.reload()),
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

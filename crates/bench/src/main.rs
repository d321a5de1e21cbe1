//! ddm-bench: how fast, at what cost and at what scale ddm tells programs
//! that an interface connected or disconnected, side by side with the
//! kernel's floor and with D-Bus, in one run on one machine.
//!
//! It builds its own lab (private network namespaces, a veth pair), starts
//! the service exactly as `ddm serve` does, a private dbus-daemon and the
//! helper processes, flips the link through rtnetlink, and prints one
//! table: min, p50, p99, max and each figure's ratio to its anchor, then
//! the targets met or not. Everything it starts is stopped on exit.
//!
//! `cargo run --release -p ddm-bench -- [--quick] [--json FILE]` (as root)

mod dbus_anchor;
mod declared;
mod dice;
mod lab;
mod listeners;
mod netlink;
mod report;
mod soak;
mod stats;
mod tunnel;
mod wake;
mod workloads;

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(name = "ddm-bench", about = "ddm's benchmark harness (run as root)")]
struct Args {
    /// A short run (under two minutes) that keeps the harness working.
    #[arg(long)]
    quick: bool,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Run only these workloads (repeatable), e.g. for profiling one.
    #[arg(long, value_enum, value_name = "WORKLOAD")]
    only: Vec<Workload>,
    /// Run every workload this many times; each row is the run with its
    /// median p50 (with the spread over the runs) and each target is
    /// judged on the runs together. Default: 3, or 1 with --quick.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=99))]
    runs: Option<u32>,
    #[command(subcommand)]
    soak: Option<Soak>,
}

#[derive(clap::Subcommand)]
enum Soak {
    /// The reliability soak instead of the benchmark: sessions in several
    /// processes churn and get killed while the link flaps; prints the
    /// counts of missed and late signals and of leaks, all of which must be
    /// zero (the exit status says whether they were).
    Soak {
        #[arg(long, default_value_t = 2.0)]
        minutes: f64,
        #[arg(long, default_value_t = 1000)]
        sessions: usize,
        #[arg(long, default_value_t = 4)]
        processes: usize,
    },
}

#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum Workload {
    Memory,
    Latency,
    Fanout,
    Registration,
    Churn,
    Dialing,
    Journal,
    Remote,
    Metrics,
    Health,
    Scale,
}

/// How much of each workload to run.
struct Plan {
    latency_rounds: usize,
    latency_flips: usize,
    fanout_sizes: &'static [usize],
    fanout_flips: usize,
    registration_calls: usize,
    throughput_time: Duration,
    memory_sessions: usize,
    churn_rates: &'static [u32],
    churn_time: Duration,
    dial_rounds: usize,
    dial_flips: usize,
    journal_rounds: usize,
    journal_flips: usize,
    export_time: Duration,
    remote_rounds: usize,
    remote_flips: usize,
    remote_calls: usize,
    remote_fanout: usize,
    metrics_rounds: usize,
    metrics_flips: usize,
    health_trials: usize,
    health_cost_time: Duration,
    health_rounds: usize,
    health_flips: usize,
    scale_sizes: &'static [usize],
    scale_demand: usize,
}

const QUICK: Plan = Plan {
    latency_rounds: 2,
    latency_flips: 20,
    fanout_sizes: &[1, 10, 100, 1000],
    fanout_flips: 6,
    registration_calls: 1000,
    throughput_time: Duration::from_millis(500),
    memory_sessions: 1000,
    churn_rates: &[1000, 10_000],
    churn_time: Duration::from_secs(1),
    dial_rounds: 5,
    dial_flips: 20,
    journal_rounds: 2,
    journal_flips: 20,
    export_time: Duration::from_secs(1),
    remote_rounds: 2,
    remote_flips: 20,
    remote_calls: 200,
    remote_fanout: 100,
    metrics_rounds: 2,
    metrics_flips: 20,
    health_trials: 5,
    health_cost_time: Duration::from_secs(3),
    health_rounds: 1,
    health_flips: 20,
    scale_sizes: &[200, 500],
    scale_demand: 200,
};

const FULL: Plan = Plan {
    latency_rounds: 5,
    latency_flips: 100,
    fanout_sizes: &[1, 10, 100, 1000, 10_000],
    fanout_flips: 20,
    registration_calls: 10_000,
    throughput_time: Duration::from_secs(2),
    memory_sessions: 10_000,
    churn_rates: &[1000, 10_000],
    churn_time: Duration::from_secs(3),
    dial_rounds: 30,
    dial_flips: 100,
    journal_rounds: 12,
    journal_flips: 50,
    export_time: Duration::from_secs(5),
    remote_rounds: 5,
    remote_flips: 100,
    remote_calls: 5_000,
    remote_fanout: 1_000,
    metrics_rounds: 6,
    metrics_flips: 50,
    health_trials: 20,
    health_cost_time: Duration::from_secs(10),
    health_rounds: 4,
    health_flips: 50,
    scale_sizes: &[1000, 2000, 5000],
    scale_demand: 1000,
};

fn main() -> ExitCode {
    // Helper roles: this executable started again by the lab.
    let argv: Vec<String> = std::env::args().collect();
    match argv.get(1).map(String::as_str) {
        // What `ddm serve` takes: --socket PATH [--config FILE].
        Some("__serve") => {
            let value = |flag: &str| {
                let at = argv.iter().position(|a| a == flag)?;
                argv.get(at + 1).map(PathBuf::from)
            };
            return ddmd::daemon::main(value("--config"), value("--socket"));
        }
        Some("__dbus-publisher") => dbus_anchor::publisher_main(&argv[2]),
        Some("__echo") => workloads::registration::echo_main(),
        Some("__echo-fd") => workloads::registration::echo_fd_main(),
        Some("__relay") => {
            netlink::relay_main(argv[2].parse().expect("link index"), argv[3] == "up")
        }
        Some("__relay-on-tokio") => {
            netlink::relay_on_tokio_main(argv[2].parse().expect("link index"), argv[3] == "up")
        }
        Some("__soak-stuck") => soak::stuck_main(&argv[2]),
        Some("__soak-worker") => soak::worker_main(
            &argv[2],
            argv[3].parse().expect("sessions"),
            argv[4].parse().expect("seed"),
        ),
        _ => {}
    }
    let args = Args::parse();
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("ddm-bench creates network namespaces: run it as root");
        return ExitCode::FAILURE;
    }
    ddmd::raise_descriptor_limit();
    lab::clean_up_on_interrupt();
    lab::serve_as_self();
    if let Some(Soak::Soak {
        minutes,
        sessions,
        processes,
    }) = args.soak
    {
        return if soak::run(minutes, sessions, processes.max(1)) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let plan = if args.quick { &QUICK } else { &FULL };
    let machine = machine();
    println!(
        "ddm-bench{} on {machine}\n",
        if args.quick { " --quick" } else { "" }
    );

    let runs = args.runs.unwrap_or(if args.quick { 1 } else { 3 });
    let started = Instant::now();
    let reports: Vec<report::Report> = (1..=runs)
        .map(|run| {
            if runs > 1 {
                eprintln!("run {run} of {runs}");
            }
            run_once(&args, plan, started)
        })
        .collect();
    let report = if runs > 1 {
        report::Report::combine(reports)
    } else {
        reports.into_iter().next().unwrap_or_default()
    };
    report.print();
    if let Some(path) = args.json {
        let json = report.to_json(&machine, args.quick);
        if let Err(e) = std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()) {
            eprintln!("cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// Every workload wanted, once.
fn run_once(args: &Args, plan: &Plan, started: Instant) -> report::Report {
    let lab = lab::Lab::new();
    let mut report = report::Report::default();
    let step = |name: &str| eprintln!("[{:>5.1}s] {name}", started.elapsed().as_secs_f64());
    let wanted = |w: Workload| args.only.is_empty() || args.only.contains(&w);
    // Memory first: on a fresh service, earlier workloads' freed memory
    // would hide what sessions cost.
    if wanted(Workload::Memory) {
        step("memory");
        workloads::memory::run(&lab, plan.memory_sessions, &mut report);
    }
    if wanted(Workload::Latency) {
        step("latency");
        workloads::latency::run(&lab, plan.latency_rounds, plan.latency_flips, &mut report);
    }
    if wanted(Workload::Fanout) {
        step("fan-out");
        workloads::fanout::run(&lab, plan.fanout_sizes, plan.fanout_flips, &mut report);
    }
    if wanted(Workload::Registration) {
        step("registration cost");
        workloads::registration::run(
            &lab,
            plan.registration_calls,
            plan.throughput_time,
            &mut report,
        );
    }
    if wanted(Workload::Churn) {
        step("churn");
        workloads::churn::run(&lab, plan.churn_rates, plan.churn_time, &mut report);
    }
    drop(lab);
    // In a lab of its own (tunnels and 100 declared interfaces), made
    // after the main one is gone: they share namespace names.
    if wanted(Workload::Dialing) {
        step("dialing");
        workloads::dialing::run(plan.dial_rounds, plan.dial_flips, &mut report);
    }
    if wanted(Workload::Journal) {
        step("journal");
        workloads::journal::run(
            plan.journal_rounds,
            plan.journal_flips,
            plan.export_time,
            &mut report,
        );
    }
    if wanted(Workload::Remote) {
        step("remote");
        workloads::remote::run(
            plan.remote_rounds,
            plan.remote_flips,
            plan.remote_calls,
            plan.remote_fanout,
            &mut report,
        );
    }
    if wanted(Workload::Metrics) {
        step("metrics");
        workloads::metrics::run(plan.metrics_rounds, plan.metrics_flips, &mut report);
    }
    if wanted(Workload::Health) {
        step("health");
        workloads::health::run(
            plan.health_trials,
            plan.health_cost_time,
            plan.health_rounds,
            plan.health_flips,
            &mut report,
        );
    }
    if wanted(Workload::Scale) {
        step("scale");
        workloads::scale::run(plan.scale_sizes, plan.scale_demand, &mut report);
    }
    step("done");
    report
}

/// Cores, processor and kernel, for the record.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown processor".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{cores} cores, {cpu}, Linux {kernel}")
}

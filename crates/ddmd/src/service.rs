//! The service, built and run in one place: the daemon, the fuzz target
//! and the tests all start it through [`serve`].
//!
//! Shutdown, when the future given to `serve` resolves: stop accepting
//! (the socket file goes), hang up every declared interface (for
//! `limits.hang_up_timeout_ms` at the most), have the router end every
//! typed stream with ERROR_DDM_NOT_RUNNING and signal and drop every
//! registration, let every session write what it still holds and close,
//! and return once they have, or after `limits.shutdown_timeout_ms` at the
//! most.

use crate::clients::access::Policy;
use crate::clients::listen::{ListenError, LocalEndpoint};
use crate::clients::remote::{Reloadable, RemoteEndpoint};
use crate::clients::session::SessionContext;
use crate::config::Config;
use crate::core::outbox::LateReply;
use crate::core::table::{InterfaceTable, LinkFilter};
use crate::dial::declaration::Declaration;
use crate::dial::launcher::Forked;
use crate::dial::net::Net;
use crate::dial::{group_routes, leftovers, supervisor};
use crate::dial::{Dialed, LocalClock};
use crate::health::prober;
use crate::links::{self, LinkEvent};
use crate::ops::metrics::{Accounts, Counters};
use crate::ops::systemd::{Notice, Notifier};
use crate::record::journal::Journal;
use crate::router::requests::Reloader;
use crate::router::{Command, Router};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::task::TaskTracker;

/// Why the service could not start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error("kernel link monitor: {0}")]
    Links(std::io::Error),
    #[error(transparent)]
    Journal(#[from] crate::record::journal::JournalError),
    #[error("remote listener: {0}")]
    Remote(String),
    #[error("metrics endpoint {0}: {1}")]
    Metrics(std::net::SocketAddr, std::io::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Reports queued from supervisors to the router; a supervisor waits when
/// it is full (the router never does).
const SUPERVISOR_REPORTS: usize = 1024;
/// Health rounds queued from the probes to the router; a round that finds
/// it full is dropped and counted.
const HEALTH_ROUNDS: usize = 4096;
/// How long the start waits for the demand interfaces' triggers before it
/// serves anyway.
const TRIGGERS_LIMIT: Duration = Duration::from_secs(30);
/// How long a shutdown waits for the export to publish what is left.
const EXPORT_STOP_LIMIT: Duration = Duration::from_secs(2);

/// Where the interface table's news of links comes from.
pub enum LinkSource {
    /// The kernel, over rtnetlink, in the service's network namespace.
    Kernel,
    /// Link events from the program that runs the service (tests, fuzzing):
    /// the pure kind of fake, a channel of link states.
    Channel(mpsc::UnboundedReceiver<LinkEvent>),
}

/// Runs the service on `endpoint` until `shutdown` resolves, then shuts it
/// down as the module docs say, telling `notifier` (systemd) when it is
/// ready, reloading and stopping. Fails if the link source fails.
pub async fn serve(
    mut config: Config,
    launcher: Forked,
    endpoint: LocalEndpoint,
    links: LinkSource,
    notifier: Notifier,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let (commands, command_receiver) = mpsc::unbounded_channel();
    let counters = Arc::new(Counters::default());
    // What a Register's check reads; a service without it refuses
    // registrations (ERROR_INVALID_PARAMETER), and says so now.
    if let Err(e) = crate::core::notify::open_descriptor_directory() {
        tracing::warn!("cannot open /proc/self/fd, registrations will be refused: {e}");
    }
    let context = Arc::new(SessionContext::new(
        Policy::resolve(&config.access),
        config.limits.clone(),
        commands.clone(),
        counters.clone(),
    ));
    // The endpoint's thread ends when this guard goes: at the shutdown,
    // or with any error on the way to it.
    let metrics_stop = tokio_util::sync::CancellationToken::new();
    let stop_metrics = metrics_stop.clone().drop_guard();
    let metrics_feed = match &config.metrics {
        Some(metrics_config) => {
            let listener = crate::ops::metrics::bind(metrics_config)
                .map_err(|e| ServeError::Metrics(metrics_config.listen, e))?;
            let outside = crate::ops::metrics::Outside {
                counters: counters.clone(),
                notifier: notifier.clone(),
                started: crate::ops::metrics::process_start_time(),
            };
            let (feed, source) = crate::ops::metrics::channel(outside, metrics_config);
            if let Ok(address) = listener.local_addr() {
                tracing::info!(%address, "metrics endpoint for Prometheus at /metrics");
            }
            crate::ops::metrics::spawn(listener, source, metrics_config.clone(), metrics_stop)?;
            Some(feed)
        }
        None => None,
    };
    let (ready, first_dump) = oneshot::channel();
    let filter = LinkFilter::new(&config.links.include, &config.links.exclude);
    let supervisors = TaskTracker::new();
    let setting_up = TaskTracker::new();
    let (reports, report_receiver) = mpsc::channel(SUPERVISOR_REPORTS);
    let net = Net::connect().await?;
    let routes_net = net.clone();
    let spawner = {
        let supervisors = supervisors.clone();
        let service: Arc<str> = endpoint.path().display().to_string().into();
        let left = {
            let service = service.clone();
            tokio::task::spawn_blocking(move || leftovers::left_behind(&service))
                .await
                .unwrap_or_default()
        };
        let surroundings = supervisor::Surroundings {
            service,
            net,
            launcher: launcher.attach()?,
            reports,
            turns: Arc::new(tokio::sync::Semaphore::new(config.limits.max_dials_at_once)),
            setting_up: setting_up.clone(),
        };
        Box::new(move |handle, declaration: Arc<Declaration>| {
            let left_behind = left.contains(&declaration.name);
            supervisor::spawn(
                handle,
                declaration,
                left_behind,
                &surroundings,
                &supervisors,
            )
        })
    };
    let remote = match &config.remote {
        Some(remote) => Some(
            RemoteEndpoint::bind(remote)
                .await
                .map_err(ServeError::Remote)?,
        ),
        None => None,
    };
    let reloader = config.path.clone().map(|path| {
        let tls = remote.as_ref().map(|(_, reloadable)| reloadable.clone());
        spawn_reloader(path, tls, commands.clone(), notifier.clone())
    });
    let (rounds, round_receiver) = mpsc::channel(HEALTH_ROUNDS);
    let mut dialed = Dialed::new(spawner, Box::new(LocalClock));
    dialed.routing_groups(group_routes::spawn(routes_net));
    let probing = prober::Probing::start(prober::Rounds {
        queue: rounds,
        counters: counters.clone(),
    })?;
    dialed.probing(Box::new(move |handle, generation, table| {
        probing.spawn(handle, generation, table)
    }));
    let mut router = Router::new(InterfaceTable::new(filter), config.limits.clone(), ready)
        .dialing(dialed, report_receiver, reloader)
        .probing(round_receiver)
        .notifying(notifier.clone());
    if let Some(feed) = metrics_feed {
        router = router.counting(Accounts::new(feed));
    }
    router.declare(config.take_declared());
    let export_stop = tokio_util::sync::CancellationToken::new();
    if let Some(journal_config) = config.journal.config() {
        let (journal, recovered) = Journal::open(&journal_config)?;
        let export = match &config.export {
            Some(export) => Some(
                crate::record::export::spawn(
                    export.clone(),
                    journal.path().to_owned(),
                    journal.epoch(),
                    journal.handled(),
                    export_stop.clone(),
                )
                .map_err(|e| crate::record::journal::JournalError {
                    path: journal.path().to_owned(),
                    source: std::io::Error::other(e),
                })?,
            ),
            None => None,
        };
        router = router.journaled(journal, export, recovered);
    }
    let (link_receiver, monitor) = match links {
        LinkSource::Channel(receiver) => (receiver, None),
        LinkSource::Kernel => {
            let (events, receiver) = mpsc::unbounded_channel();
            let links_config = config.links.clone();
            let counters = counters.clone();
            let monitor =
                tokio::spawn(async move { links::monitor(&links_config, events, counters).await });
            (receiver, Some(monitor))
        }
    };
    tokio::spawn(router.run(command_receiver, link_receiver));
    let monitor_failed = async move {
        let Some(monitor) = monitor else {
            return std::future::pending().await;
        };
        ServeError::Links(match monitor.await {
            Ok(Err(e)) => e,
            Ok(Ok(())) => std::io::Error::other("stopped"),
            Err(e) => std::io::Error::other(e),
        })
    };
    tokio::pin!(monitor_failed);
    tokio::select! {
        _ = first_dump => {}
        e = &mut monitor_failed => return Err(e),
    }
    // Ready means that a packet sent now to a demand interface's routes
    // dials it: its trigger is made first (or has failed, and said so).
    setting_up.close();
    tokio::select! {
        done = tokio::time::timeout(TRIGGERS_LIMIT, setting_up.wait()) => if done.is_err() {
            tracing::warn!(
                waiting = setting_up.len(),
                "demand triggers still not made after {TRIGGERS_LIMIT:?}; serving without them"
            );
        },
        e = &mut monitor_failed => return Err(e),
    }

    let sessions = TaskTracker::new();
    tracing::info!(socket = %endpoint.path().display(), "ddm serving");
    notifier.tell(Notice::Ready);
    let remote_served = async {
        match &remote {
            Some((remote, _)) => {
                if let Ok(address) = remote.local_addr() {
                    tracing::info!(%address, "ddm serving remote clients (TLS 1.3)");
                }
                remote.serve(&context, &sessions).await
            }
            None => std::future::pending().await,
        }
    };
    tokio::pin!(shutdown);
    tokio::select! {
        () = endpoint.serve(&context, &sessions) => {}
        () = remote_served => {}
        e = &mut monitor_failed => return Err(e),
        () = &mut shutdown => {}
    }

    tracing::info!("shutting down");
    notifier.tell(Notice::Stopping);
    drop(endpoint);
    drop(remote);
    drop(stop_metrics);
    let (done, router_done) = oneshot::channel();
    if commands.send(Command::Shutdown(done)).is_ok() {
        if let Ok(stopping) = router_done.await {
            let all = futures_util::future::join_all(stopping);
            if tokio::time::timeout(config.limits.hang_up_timeout(), all)
                .await
                .is_err()
            {
                tracing::warn!(
                    "declared interfaces still hanging up at the limit; their processes are killed"
                );
            }
        }
    }
    close_journal(&commands).await;
    export_stop.cancel();
    context.shutdown.cancel();
    sessions.close();
    let limit = config.limits.shutdown_timeout();
    if tokio::time::timeout(limit, sessions.wait()).await.is_err() {
        tracing::warn!(
            sessions = sessions.len(),
            "sessions still writing at the shutdown limit; closing them"
        );
    }
    tracing::info!("stopped");
    Ok(())
}

/// Records the stop, lets the writer finish, and gives the export a moment
/// to publish what is left.
async fn close_journal(commands: &mpsc::UnboundedSender<Command>) {
    let (reply, journal) = oneshot::channel();
    if commands.send(Command::CloseJournal(reply)).is_err() {
        return;
    }
    let Ok(Some((mut journal, export))) = journal.await else {
        return;
    };
    let last_id = journal.last_id();
    let _ = tokio::task::spawn_blocking(journal.close()).await;
    if let Some(export) = export {
        if !export.caught_up(last_id, EXPORT_STOP_LIMIT).await {
            tracing::warn!(
                behind = export.status(last_id).behind,
                "journal export stopped before the broker had everything; it resumes at the next start"
            );
        }
    }
}

/// The reloader: reads the configuration file again when a Reload request
/// or SIGHUP asks, off the router, and hands the router the result; systemd
/// hears RELOADING=1 before and READY=1 once the router has applied (or
/// refused) it.
fn spawn_reloader(
    path: PathBuf,
    tls: Option<Reloadable>,
    router: mpsc::UnboundedSender<Command>,
    notifier: Notifier,
) -> Reloader {
    let (asks, mut asked) = mpsc::unbounded_channel::<Option<LateReply>>();
    let hangups = asks.clone();
    tokio::spawn(async move {
        let Ok(mut sighup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while sighup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the configuration");
            if hangups.send(None).is_err() {
                return;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(reply) = asked.recv().await {
            notifier.tell(Notice::Reloading);
            let (file, tls) = (path.clone(), tls.clone());
            let read = tokio::task::spawn_blocking(move || {
                let mut config = Config::load(&file).map_err(|e| e.to_string())?;
                // The TLS files are read again too: new certificates, CA
                // and revocation lists (the listen address stays).
                if let (Some(tls), Some(remote)) = (tls, &config.remote) {
                    tls.reload(remote)?;
                }
                Ok::<_, String>(config.take_declared())
            })
            .await;
            let declared = read.unwrap_or_else(|e| Err(e.to_string()));
            let (applied, outcome) = oneshot::channel();
            let reload = Command::Reload {
                declared,
                reply: applied,
            };
            if router.send(reload).is_err() {
                return;
            }
            let outcome = outcome.await;
            notifier.tell(Notice::Ready);
            if let (Some(reply), Ok(outcome)) = (reply, outcome) {
                reply.send(outcome);
            }
        }
    });
    asks
}

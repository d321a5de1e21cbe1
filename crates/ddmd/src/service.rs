//! The service, built and run in one place: the daemon, the fuzz target
//! and the tests all start it through [`serve`].
//!
//! Shutdown, when the future given to `serve` resolves: stop accepting
//! (the socket file goes), have the router end every typed stream with
//! ERROR_DDM_NOT_RUNNING and signal and drop every registration, let every
//! session write what it still holds and close, and return once they have,
//! or after `limits.shutdown_timeout_ms` at the most.

use crate::access::Policy;
use crate::config::Config;
use crate::links::{self, LinkEvent};
use crate::listen::LocalEndpoint;
use crate::router::{Command, Router};
use crate::session::SessionContext;
use crate::table::{InterfaceTable, LinkFilter};
use crate::ServeError;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio_util::task::TaskTracker;

/// Where the interface table's news of links comes from.
pub enum LinkSource {
    /// The kernel, over rtnetlink, in the service's network namespace.
    Kernel,
    /// Link events from the program that runs the service (tests, fuzzing):
    /// the pure kind of fake, a channel of link states.
    Channel(mpsc::UnboundedReceiver<LinkEvent>),
}

/// Runs the service on `endpoint` until `shutdown` resolves, then shuts it
/// down as the module docs say. Fails if the link source fails.
pub async fn serve(
    config: Config,
    endpoint: LocalEndpoint,
    links: LinkSource,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let (commands, command_receiver) = mpsc::unbounded_channel();
    let (ready, first_dump) = oneshot::channel();
    let filter = LinkFilter::new(&config.links.include, &config.links.exclude);
    let router = Router::new(InterfaceTable::new(filter), config.limits.clone(), ready);
    let (link_receiver, monitor) = match links {
        LinkSource::Channel(receiver) => (receiver, None),
        LinkSource::Kernel => {
            let (events, receiver) = mpsc::unbounded_channel();
            let links_config = config.links.clone();
            let monitor = tokio::spawn(async move { links::monitor(&links_config, events).await });
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

    let context = Arc::new(SessionContext::new(
        Policy::resolve(&config.access),
        config.limits.clone(),
        commands.clone(),
    ));
    let sessions = TaskTracker::new();
    tracing::info!(socket = %endpoint.path().display(), "ddm serving");
    tokio::pin!(shutdown);
    tokio::select! {
        () = endpoint.serve(&context, &sessions) => {}
        e = &mut monitor_failed => return Err(e),
        () = &mut shutdown => {}
    }

    tracing::info!("shutting down");
    drop(endpoint);
    let (done, router_done) = oneshot::channel();
    if commands.send(Command::Shutdown(done)).is_ok() {
        let _ = router_done.await;
    }
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

//! The service in a thread of the calling process, on a socket the caller
//! names, with links the caller makes up.
//!
//! This is the real service (the same [`serve`](crate::service::serve()),
//! sessions, router and socket) with one thing swapped: its links come from
//! a channel instead of the kernel. It needs no root and no namespace, so
//! the tests of the router, the sessions and the client library that do not
//! need kernel links run as any user, in milliseconds; the fuzz target uses
//! it too.

use crate::clients::listen::LocalEndpoint;
use crate::config::Config;
use crate::dial::launcher::Forked;
use crate::links::LinkEvent;
use crate::links::LinkState;
use crate::ops::systemd::Notifier;
use crate::service::ServeError;
use crate::service::{serve, LinkSource};
use std::path::{Path, PathBuf};
use tokio::sync::{mpsc, oneshot};

/// A running in-process service; dropping it shuts the service down.
pub struct InProcess {
    socket: PathBuf,
    links: mpsc::UnboundedSender<LinkEvent>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), ServeError>>>,
}

impl InProcess {
    /// Starts the service with `config` on `socket`, with no links yet, and
    /// returns once it accepts connections.
    pub fn start(config: Config, socket: &Path) -> Result<InProcess, ServeError> {
        let (links, link_receiver) = mpsc::unbounded_channel();
        // The fake kernel's first dump: no links.
        for event in [LinkEvent::DumpBegin, LinkEvent::DumpEnd] {
            let _ = links.send(event);
        }
        let (stop, stopped) = oneshot::channel::<()>();
        let (bound, bind_result) = std::sync::mpsc::channel();
        let path = socket.to_owned();
        let thread = std::thread::Builder::new()
            .name("ddm-in-process".into())
            .spawn(move || {
                // From this thread, which lives as long as the service: the
                // launcher dies with the thread that forked it.
                let launcher = Forked::fork()?;
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async move {
                    let endpoint = match LocalEndpoint::bind(&path) {
                        Ok(endpoint) => endpoint,
                        Err(e) => {
                            let _ = bound.send(Err(e));
                            return Ok(());
                        }
                    };
                    let _ = bound.send(Ok(()));
                    let shutdown = async move {
                        let _ = stopped.await;
                    };
                    serve(
                        config,
                        launcher,
                        endpoint,
                        LinkSource::Channel(link_receiver),
                        Notifier::default(),
                        shutdown,
                    )
                    .await
                })
            })?;
        let outcome = bind_result
            .recv()
            .map_err(|_| ServeError::Io(std::io::Error::other("the service thread died")))?;
        let service = InProcess {
            socket: socket.to_owned(),
            links,
            stop: Some(stop),
            thread: Some(thread),
        };
        outcome.map(|()| service).map_err(ServeError::from)
    }

    /// The socket the service listens on.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Reports link `index` as `name`, connected (up, running) or not
    /// (up, no carrier), as the kernel would.
    pub fn set_link(&self, index: u32, name: &str, connected: bool) {
        let mut flags = libc::IFF_UP as u32;
        if connected {
            flags |= libc::IFF_RUNNING as u32;
        }
        let _ = self.links.send(LinkEvent::Changed(LinkState {
            index,
            name: name.into(),
            flags,
            // IF_OPER_UP, IF_OPER_LOWERLAYERDOWN
            operstate: if connected { 6 } else { 2 },
            stats: None,
        }));
    }

    /// Reports link `index` deleted.
    pub fn delete_link(&self, index: u32) {
        let _ = self.links.send(LinkEvent::Deleted(index));
    }

    /// Shuts the service down and waits until it has stopped.
    pub fn stop(mut self) -> Result<(), ServeError> {
        self.shut_down()
    }

    fn shut_down(&mut self) -> Result<(), ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(outcome)) => outcome,
            Some(Err(_)) => Err(ServeError::Io(std::io::Error::other(
                "the service thread panicked",
            ))),
            None => Ok(()),
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        let _ = self.shut_down();
    }
}

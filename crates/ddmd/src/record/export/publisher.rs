//! The publisher: journal entries to JetStream, in order, each once.
//!
//! A loop of connections. On each: make sure of the stream, read the
//! position from the journal, then publish a window of the entries after
//! it, wait for their acknowledgements in order, and move the position
//! past those acknowledged. Any failure drops the connection (its client
//! does not try to reconnect and replay a buffer, which could store a
//! later entry before an earlier one sent again) and starts over after a
//! pause, from the position.

use super::{Export, ExportConfig, State};
use crate::record::journal::store::{self, COLUMNS};
use async_nats::jetstream::{self, message::PublishMessage, stream};
use ddm_proto::message::JournalEntry;
use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Pause before connecting again: doubles from the first to the last.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_LAST: Duration = Duration::from_secs(5);
/// The journal setting that keeps the position.
const POSITION: &str = "export_position";

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// Starts the publisher for the journal at `journal`; it runs until
/// `stop` is cancelled.
pub fn spawn(
    config: ExportConfig,
    journal: PathBuf,
    epoch: u64,
    handled: watch::Receiver<u64>,
    stop: CancellationToken,
) -> Result<Export, rusqlite::Error> {
    let connection = store::open_reader(&journal)?;
    let position = store::setting(&connection, POSITION)?.unwrap_or(0);
    let (acked_sender, acked) = watch::channel(position);
    let state = Arc::new(Mutex::new(State::default()));
    let subject = config.subject_prefix();
    let publisher = Publisher {
        prefix: subject.clone(),
        router: config.router_id(),
        config,
        epoch,
        connection: Arc::new(Mutex::new(connection)),
        position,
        acked: acked_sender,
        handled,
        state: state.clone(),
    };
    tokio::spawn(async move {
        tokio::select! {
            () = publisher.run() => {}
            () = stop.cancelled() => {}
        }
    });
    Ok(Export {
        state,
        acked,
        subject,
    })
}

struct Publisher {
    config: ExportConfig,
    /// Subjects are `<prefix>.<kind>`; read once (it may be the host name).
    prefix: String,
    router: String,
    epoch: u64,
    /// Used on the blocking pool, one statement at a time.
    connection: Arc<Mutex<Connection>>,
    position: u64,
    acked: watch::Sender<u64>,
    handled: watch::Receiver<u64>,
    state: Arc<Mutex<State>>,
}

impl Publisher {
    async fn run(mut self) {
        let mut retry = RETRY_FIRST;
        let mut said = String::new();
        loop {
            let started = self.position;
            let error = self.connected().await.to_string();
            if self
                .state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .connected
            {
                said.clear();
            }
            self.set_state(false, &error);
            self.state.lock().unwrap_or_else(|p| p.into_inner()).errors += 1;
            // Said once, not at every retry while the broker stays away.
            if error != said {
                tracing::warn!(
                    position = self.position,
                    "journal export to NATS interrupted, retrying: {error}"
                );
                said = error;
            }
            if self.position > started {
                retry = RETRY_FIRST;
            }
            tokio::time::sleep(retry).await;
            retry = (retry * 2).min(RETRY_LAST);
        }
    }

    fn set_state(&self, connected: bool, error: &str) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.connected = connected;
        state.last_error = error.into();
    }

    /// One connection's life; returns why it ended.
    async fn connected(&mut self) -> Failure {
        let client = match self.connect().await {
            Ok(client) => client,
            Err(e) => return e,
        };
        let mut context = jetstream::new(client);
        context.set_timeout(self.config.ack_timeout());
        if self.config.create_stream {
            let config = stream::Config {
                name: self.config.stream.clone(),
                subjects: self.config.stream_subjects.clone(),
                duplicate_window: Duration::from_secs(self.config.duplicate_window_secs),
                ..stream::Config::default()
            };
            if let Err(e) = context.get_or_create_stream(config).await {
                return e.into();
            }
        }
        if let Err(e) = self.skip_what_the_stream_holds(&context).await {
            return e;
        }
        self.set_state(true, "");
        tracing::info!(position = self.position, "journal export connected");
        loop {
            let entries = match self.read_after().await {
                Ok(entries) => entries,
                Err(e) => return e,
            };
            if entries.is_empty() {
                if self.handled.changed().await.is_err() {
                    // The journal is closed: nothing more will come.
                    std::future::pending::<()>().await;
                }
                continue;
            }
            if let Err(e) = self.publish(&context, &entries).await {
                return e;
            }
        }
    }

    /// Moves the position past what the stream already holds of this
    /// router's journal (of this epoch): entries the broker stored but
    /// whose acknowledgements never came back are not sent again, however
    /// long ago that was (JetStream's duplicate window is only minutes).
    /// One last-message get per kind subject.
    async fn skip_what_the_stream_holds(
        &mut self,
        context: &jetstream::Context,
    ) -> Result<(), Failure> {
        let stream = context.get_stream(&self.config.stream).await?;
        let mut stored = self.position;
        for kind in super::KIND_NAMES {
            let subject = format!("{}.{kind}", self.prefix);
            let Ok(message) = stream.get_last_raw_message_by_subject(&subject).await else {
                continue;
            };
            let Ok(entry) = serde_json::from_slice::<serde_json::Value>(&message.payload) else {
                continue;
            };
            let epoch = entry["epoch"]
                .as_str()
                .and_then(|e| e.parse().ok())
                .or_else(|| entry["epoch"].as_u64());
            if entry["router"] == self.router.as_str() && epoch == Some(self.epoch) {
                stored = stored.max(entry["id"].as_u64().unwrap_or(0));
            }
        }
        if stored > self.position {
            tracing::info!(
                from = self.position,
                to = stored,
                "journal export: the stream already holds entries whose acknowledgements were lost; going on after them"
            );
            self.position = stored;
            self.save_position().await;
        }
        Ok(())
    }

    async fn connect(&self) -> Result<async_nats::Client, Failure> {
        let options = async_nats::ConnectOptions::new()
            .connection_timeout(self.config.ack_timeout())
            // One connection at a time: see the module docs.
            .max_reconnects(1);
        let name = format!("ddm {}", self.router);
        Ok(self.config.broker().connect(&name, options).await?)
    }

    /// Publishes `entries` (a window), then waits for their
    /// acknowledgements in order, moving the position past each.
    async fn publish(
        &mut self,
        context: &jetstream::Context,
        entries: &[JournalEntry],
    ) -> Result<(), Failure> {
        let mut acks = Vec::with_capacity(entries.len());
        for entry in entries {
            let subject = format!("{}.{}", self.prefix, super::kind_name(entry.kind));
            let payload = super::payload(&self.router, self.epoch, entry).to_string();
            let message = PublishMessage::build()
                .payload(payload.into())
                .message_id(format!("{}-{}-{}", self.router, self.epoch, entry.id));
            acks.push((entry.id, context.send_publish(subject, message).await?));
        }
        let mut result = Ok(());
        for (id, ack) in acks {
            if let Err(e) = ack.await {
                result = Err(e.into());
                break;
            }
            self.position = id;
        }
        self.save_position().await;
        result
    }

    /// Runs `f` on the journal connection, on the blocking pool.
    async fn on_journal<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, Failure> {
        let connection = self.connection.clone();
        let done = tokio::task::spawn_blocking(move || {
            f(&connection.lock().unwrap_or_else(|p| p.into_inner()))
        });
        Ok(done.await??)
    }

    /// The next window of entries after the position.
    async fn read_after(&self) -> Result<Vec<JournalEntry>, Failure> {
        let (after, limit) = (self.position, self.config.window);
        self.on_journal(move |c| read_entries(c, after, limit))
            .await
    }

    async fn save_position(&self) {
        self.acked.send_replace(self.position);
        let position = self.position;
        let saved = self
            .on_journal(move |c| store::set_setting(c, POSITION, position))
            .await;
        if let Err(e) = saved {
            tracing::warn!("cannot keep the export's position: {e}");
        }
    }
}

fn read_entries(
    connection: &Connection,
    after: u64,
    limit: usize,
) -> rusqlite::Result<Vec<JournalEntry>> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM entry WHERE id > ?1 ORDER BY id LIMIT ?2"
    ))?;
    let rows = statement.query_map([after as i64, limit as i64], store::entry_of)?;
    rows.collect()
}

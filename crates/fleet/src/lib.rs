//! Reading a fleet's journal entries back from NATS JetStream, for `ddm
//! watch --fleet` and the benchmark harness. The service publishes them
//! (`ddmd::record::export`) and never reads them back, so this lives
//! apart from it.
//!
//! A durable pull consumer on the stream: the broker remembers what each
//! named watcher has acknowledged, so a watcher that comes back resumes
//! where it left off. Each message is one journal entry of one router, as
//! `ddmd::record::export::payload` wrote it.

use async_nats::jetstream::{self, consumer::pull};
use ddmd::record::export::Broker;
use futures_util::StreamExt;
use std::time::Duration;

/// Where and how to watch.
#[derive(Debug, Clone)]
pub struct FleetWatch {
    pub broker: Broker,
    pub stream: String,
    /// The durable consumer's name: the same name resumes.
    pub durable: String,
    /// Only these subjects (empty: the whole stream).
    pub subject: Option<String>,
    /// Give up when nothing comes for this long (None: never).
    pub idle_timeout: Option<Duration>,
}

/// Hands each entry (its JSON) to `each`, which says whether to go on;
/// acknowledges it once handed. Runs on a runtime of its own.
pub fn watch(
    options: &FleetWatch,
    mut each: impl FnMut(serde_json::Value) -> bool,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = options
            .broker
            .connect("ddm watch --fleet", async_nats::ConnectOptions::new())
            .await?;
        let context = jetstream::new(client);
        let stream = context.get_stream(&options.stream).await?;
        let consumer = stream
            .get_or_create_consumer::<pull::Config>(
                &options.durable,
                pull::Config {
                    durable_name: Some(options.durable.clone()),
                    filter_subject: options.subject.clone().unwrap_or_default(),
                    ..pull::Config::default()
                },
            )
            .await?;
        let mut messages = consumer.messages().await?;
        loop {
            let next = match options.idle_timeout {
                Some(limit) => match tokio::time::timeout(limit, messages.next()).await {
                    Ok(next) => next,
                    Err(_) => return Err("no event within the timeout".into()),
                },
                None => messages.next().await,
            };
            let Some(message) = next else {
                return Ok(());
            };
            let message = message?;
            let entry: serde_json::Value = serde_json::from_slice(&message.payload)?;
            let go_on = each(entry);
            message.ack().await?;
            if !go_on {
                return Ok(());
            }
        }
    })
}

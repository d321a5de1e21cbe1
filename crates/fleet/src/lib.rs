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
use std::collections::HashMap;
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

/// Hands each entry (its JSON) to `each`, once, which says whether to go
/// on; acknowledges it once handed. An entry the broker delivers again (a
/// redelivery after the broker or the watcher restarted) is acknowledged
/// and not handed twice: a router's entries come in the order of their
/// ids within an epoch, so one already passed is one whose id is not
/// above the last one handed for its (router, epoch). Runs on a runtime of
/// its own.
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
        let mut seen = Seen::default();
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
            let go_on = !seen.first_time(&entry) || each(entry);
            message.ack().await?;
            if !go_on {
                return Ok(());
            }
        }
    })
}

/// How many messages `stream` holds: what a person checks against the
/// routers' journals (every entry once). Runs on a runtime of its own.
pub fn stored(
    broker: &Broker,
    stream: &str,
) -> Result<u64, Box<dyn std::error::Error + Send + Sync>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = broker
            .connect("ddm fleet", async_nats::ConnectOptions::new())
            .await?;
        let mut stream = jetstream::new(client).get_stream(stream).await?;
        Ok(stream.info().await?.state.messages)
    })
}

/// The last id handed for each (router, epoch).
#[derive(Default)]
struct Seen(HashMap<(String, String), u64>);

impl Seen {
    /// True the first time `entry` (its router, epoch and id) comes.
    fn first_time(&mut self, entry: &serde_json::Value) -> bool {
        let text = |key: &str| match &entry[key] {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let Some(id) = entry["id"].as_u64() else {
            return true;
        };
        let last = self.0.entry((text("router"), text("epoch"))).or_insert(0);
        if id <= *last {
            return false;
        }
        *last = id;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_delivered_again_is_handed_once() {
        let entry = |router: &str, epoch: &str, id: u64| serde_json::json!({ "router": router, "epoch": epoch, "id": id });
        let mut seen = Seen::default();
        assert!(seen.first_time(&entry("r1", "7", 1)));
        assert!(seen.first_time(&entry("r1", "7", 2)));
        assert!(!seen.first_time(&entry("r1", "7", 1)), "redelivered");
        assert!(!seen.first_time(&entry("r1", "7", 2)), "redelivered");
        assert!(seen.first_time(&entry("r2", "7", 1)), "another router");
        assert!(seen.first_time(&entry("r1", "8", 1)), "another epoch");
        assert!(seen.first_time(&entry("r1", "7", 3)));
    }
}

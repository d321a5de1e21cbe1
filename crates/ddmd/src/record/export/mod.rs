//! Export of the journal to NATS JetStream, for fleets of routers.
//!
//! The journal is the outbox: `publisher` reads entries from it in order,
//! publishes each with a `Nats-Msg-Id` of `<router-id>-<epoch>-<id>`, and
//! moves its position (kept in the journal) only past entries the broker
//! acknowledged. A broker that is away loses nothing: publishing resumes
//! after the last acknowledged entry, and JetStream's duplicate window
//! absorbs what is sent twice. It runs beside the router and the writer
//! and never holds either up.

mod publisher;

use ddm_proto::message::{ConnectionEvent, EntryKind, ExportStatus, JournalEntry};
use ddm_proto::model::ConnectionState;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

pub use publisher::spawn;

/// The `[export]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExportConfig {
    /// Broker URLs (`tls://host:4222`, `nats://...`).
    pub servers: Vec<String>,
    /// This router's name in the fleet; default: the host name.
    pub router_id: Option<String>,
    /// Subjects are `<prefix>.<kind>`; default `ddm.<router-id>.events`.
    pub subject_prefix: Option<String>,
    /// The JetStream stream.
    pub stream: String,
    /// Create the stream if it does not exist, with `stream_subjects`.
    pub create_stream: bool,
    pub stream_subjects: Vec<String>,
    /// The CA that signed the broker's certificate (PEM).
    pub ca: Option<PathBuf>,
    /// This router's client certificate and key (PEM), which the broker
    /// maps to a user (`verify_and_map`).
    pub certificate: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Entries published and not yet acknowledged, at most.
    pub window: usize,
    /// How long an acknowledgement may take before the entry is sent again.
    pub ack_timeout_ms: u64,
    /// The stream's duplicate window, when ddm creates the stream.
    pub duplicate_window_secs: u64,
}

impl Default for ExportConfig {
    fn default() -> Self {
        ExportConfig {
            servers: Vec::new(),
            router_id: None,
            subject_prefix: None,
            stream: "DDM".into(),
            create_stream: true,
            stream_subjects: vec!["ddm.*.events.>".into()],
            ca: None,
            certificate: None,
            key: None,
            window: 256,
            ack_timeout_ms: 5_000,
            duplicate_window_secs: 120,
        }
    }
}

impl ExportConfig {
    /// Checks what the broker cannot: names, sizes, pairs.
    pub fn check(&self) -> Result<(), String> {
        if self.servers.is_empty() {
            return Err("export: servers must name at least one broker".into());
        }
        crate::bounds::within("export.window", self.window, 1..=65_536)?;
        crate::bounds::within("export.ack_timeout_ms", self.ack_timeout_ms, 1..=600_000)?;
        crate::bounds::within(
            "export.duplicate_window_secs",
            self.duplicate_window_secs,
            1..=86_400,
        )?;
        if self.certificate.is_some() != self.key.is_some() {
            return Err("export: certificate and key go together".into());
        }
        for file in [&self.ca, &self.certificate, &self.key]
            .into_iter()
            .flatten()
        {
            std::fs::File::open(file)
                .map_err(|e| format!("export: cannot read {}: {e}", file.display()))?;
        }
        if !is_token(&self.router_id()) {
            return Err(format!(
                "export: router_id {:?} must be a subject token (no dots, spaces, * or >)",
                self.router_id()
            ));
        }
        if self.stream.is_empty() || self.stream.contains(['.', ' ', '*', '>']) {
            return Err(format!(
                "export: stream {:?} is not a stream name",
                self.stream
            ));
        }
        Ok(())
    }

    pub fn router_id(&self) -> String {
        self.router_id.clone().unwrap_or_else(|| {
            nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "localhost".into())
                .replace('.', "_")
        })
    }

    pub fn subject_prefix(&self) -> String {
        self.subject_prefix
            .clone()
            .unwrap_or_else(|| format!("ddm.{}.events", self.router_id()))
    }

    pub fn broker(&self) -> Broker {
        Broker {
            servers: self.servers.clone(),
            ca: self.ca.clone(),
            certificate: self.certificate.clone(),
            key: self.key.clone(),
        }
    }

    fn ack_timeout(&self) -> Duration {
        Duration::from_millis(self.ack_timeout_ms)
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && !s.contains(|c: char| c == '.' || c == '*' || c == '>' || c.is_whitespace())
}

/// Where a broker is and how to reach it: the export's and the fleet
/// watcher's connections are made the same way.
#[derive(Debug, Clone, Default)]
pub struct Broker {
    pub servers: Vec<String>,
    /// The CA that signed the broker's certificate (PEM); with it (or a
    /// client certificate) the connection must be TLS.
    pub ca: Option<PathBuf>,
    pub certificate: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl Broker {
    /// Connects, naming the connection `name` on the broker. `options`
    /// adds what the caller needs.
    pub async fn connect(
        &self,
        name: &str,
        options: async_nats::ConnectOptions,
    ) -> Result<async_nats::Client, async_nats::ConnectError> {
        let mut options = options.name(name);
        if let Some(ca) = &self.ca {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let (Some(certificate), Some(key)) = (&self.certificate, &self.key) {
            options = options
                .add_client_certificate(certificate.clone(), key.clone())
                .require_tls(true);
        }
        options.connect(self.servers.clone()).await
    }
}

/// The export's state, as `ddm status` shows it.
#[derive(Debug, Default)]
struct State {
    connected: bool,
    last_error: String,
    /// Times the export failed and started again (no broker, a publish
    /// refused or not acknowledged in time).
    errors: u64,
}

/// The service's handle on its running export.
#[derive(Debug)]
pub struct Export {
    state: Arc<Mutex<State>>,
    acked: watch::Receiver<u64>,
    subject: String,
}

impl Export {
    /// How far it is, with `last_id` the journal's last entry.
    pub fn status(&self, last_id: u64) -> ExportStatus {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let acked = *self.acked.borrow();
        ExportStatus {
            enabled: true,
            connected: state.connected,
            acked_id: acked,
            behind: last_id.saturating_sub(acked),
            last_error: state.last_error.clone(),
            subject: self.subject.clone(),
        }
    }

    /// Times the export failed and started again, since the service started.
    pub fn errors(&self) -> u64 {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).errors
    }

    /// Waits (at most `limit`) until the broker has acknowledged `last_id`.
    pub async fn caught_up(&self, last_id: u64, limit: Duration) -> bool {
        let mut acked = self.acked.clone();
        tokio::time::timeout(limit, acked.wait_for(|id| *id >= last_id))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// The name of an entry's kind in subjects and payloads.
/// Every kind's name, as the last token of its subject.
pub const KIND_NAMES: [&str; 10] = [
    "transition",
    "service_start",
    "service_stop",
    "ddm_start",
    "ddm_stop",
    "resync",
    "gap",
    "accounting",
    "group_switch",
    "unknown",
];

pub fn kind_name(kind: i32) -> &'static str {
    match EntryKind::try_from(kind) {
        Ok(EntryKind::EntryTransition) => "transition",
        Ok(EntryKind::EntryServiceStart) => "service_start",
        Ok(EntryKind::EntryServiceStop) => "service_stop",
        Ok(EntryKind::EntryDdmStart) => "ddm_start",
        Ok(EntryKind::EntryDdmStop) => "ddm_stop",
        Ok(EntryKind::EntryResync) => "resync",
        Ok(EntryKind::EntryGap) => "gap",
        Ok(EntryKind::EntryAccounting) => "accounting",
        Ok(EntryKind::EntryGroupSwitch) => "group_switch",
        Err(_) => "unknown",
    }
}

/// An entry as published: JSON, so that any consumer can read it.
pub fn payload(router: &str, epoch: u64, entry: &JournalEntry) -> serde_json::Value {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(entry.time_unix_ns);
    // The epoch is a string: it exceeds 2^53, which JSON parsers that read
    // numbers as doubles (jq, JavaScript) would round.
    let mut value = serde_json::json!({
        "router": router,
        "epoch": epoch.to_string(),
        "id": entry.id,
        "time": humantime::format_rfc3339_nanos(time).to_string(),
        "time_unix_ns": entry.time_unix_ns,
        "kind": kind_name(entry.kind),
    });
    let fields = value.as_object_mut().expect("an object");
    if let Some(ConnectionEvent {
        seq,
        name,
        group_switch: Some(switch),
        ..
    }) = &entry.event
    {
        fields.insert("seq".into(), (*seq).into());
        fields.insert("group".into(), name.as_str().into());
        fields.insert("from".into(), switch.from.as_str().into());
        fields.insert("to".into(), switch.to.as_str().into());
        fields.insert("via_trigger".into(), switch.via_trigger.into());
    } else if let Some(ConnectionEvent {
        seq,
        handle,
        name,
        from,
        to,
        last_error,
        ..
    }) = &entry.event
    {
        fields.insert("seq".into(), (*seq).into());
        fields.insert("interface".into(), name.as_str().into());
        fields.insert("handle".into(), (*handle).into());
        fields.insert(
            "from".into(),
            ConnectionState::from_u32(*from).name().into(),
        );
        fields.insert("to".into(), ConnectionState::from_u32(*to).name().into());
        fields.insert("last_error".into(), (*last_error).into());
    }
    let numbers = [
        ("count", entry.count),
        ("rx_bytes", entry.rx_bytes),
        ("tx_bytes", entry.tx_bytes),
        ("connected_ns", entry.connected_ns),
        ("last_seq", entry.last_seq),
    ];
    for (key, number) in numbers {
        if number != 0 {
            fields.insert(key.into(), number.into());
        }
    }
    if !entry.interface.is_empty() {
        fields.insert("interface".into(), entry.interface.as_str().into());
    }
    if !entry.reason.is_empty() {
        fields.insert("reason".into(), entry.reason.as_str().into());
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_router_id_is_one_subject_token() {
        let config = |id: &str| ExportConfig {
            servers: vec!["nats://127.0.0.1:4222".into()],
            router_id: Some(id.into()),
            ..ExportConfig::default()
        };
        assert!(config("r1").check().is_ok());
        assert_eq!(config("r1").subject_prefix(), "ddm.r1.events");
        for bad in ["", "a.b", "r*", "r>", "r 1"] {
            assert!(config(bad).check().is_err(), "{bad:?}");
        }
        assert!(ExportConfig::default().check().is_err(), "no servers");
    }

    #[test]
    fn a_transition_is_published_with_its_states_named() {
        let entry = JournalEntry {
            id: 7,
            time_unix_ns: 5,
            kind: EntryKind::EntryTransition as i32,
            event: Some(ConnectionEvent {
                seq: 3,
                name: "wan".into(),
                from: 3,
                to: 1,
                ..ConnectionEvent::default()
            }),
            reason: "idle".into(),
            ..JournalEntry::default()
        };
        let value = payload("r1", 9, &entry);
        assert_eq!(value["router"], "r1");
        assert_eq!(value["id"], 7);
        assert_eq!(value["seq"], 3);
        assert_eq!(value["kind"], "transition");
        assert_eq!(value["from"], ConnectionState::Connected.name());
        assert_eq!(value["reason"], "idle");
        assert!(value.get("rx_bytes").is_none());
    }
}

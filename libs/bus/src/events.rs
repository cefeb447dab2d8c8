//! Event payloads, version 1. The table in `events!` is the only place a subject, its stream and its payload are named.

use std::collections::BTreeMap;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::subject::{DEAD_LETTER_ROOT, Namespace, Stream};

/// Declares every event: its kind, its subject (a `*` is filled from the payload), its stream, who may
/// publish it (`libs/bus/src/access.rs` derives each identity's NATS permissions from this) and its payload.
macro_rules! events {
    ($( $(#[$doc:meta])* $variant:ident => $subject:literal in $stream:ident by $by:ident $(($who:literal))? : $payload:ty ),+ $(,)?) => {
        /// What an event is, independent of its payload.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Kind { $( $(#[$doc])* $variant ),+ }

        impl Kind {
            pub const ALL: &'static [Kind] = &[$(Kind::$variant),+];

            /// The subject without namespace; `*` stands for one token taken from the payload.
            pub fn pattern(self) -> &'static str {
                match self { $(Kind::$variant => $subject),+ }
            }

            pub fn stream(self) -> Stream {
                match self { $(Kind::$variant => Stream::$stream),+ }
            }

            /// Who may publish this kind: the bus refuses it from anyone else.
            pub fn publisher(self) -> By {
                match self { $(Kind::$variant => By::$by $(($who))?),+ }
            }
        }

        /// An event with its payload.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub enum Event { $( $(#[$doc])* $variant($payload) ),+ }

        impl Event {
            pub fn kind(&self) -> Kind {
                match self { $(Event::$variant(_) => Kind::$variant),+ }
            }

            fn data(&self) -> serde_json::Result<serde_json::Value> {
                match self { $(Event::$variant(d) => serde_json::to_value(d)),+ }
            }

            fn from_data(kind: Kind, data: serde_json::Value) -> serde_json::Result<Event> {
                match kind { $(Kind::$variant => serde_json::from_value(data).map(Event::$variant)),+ }
            }
        }
    };
}

events! {
    /// An edge node presented a valid join token and was recorded.
    NodeEnrolled => "edge.v1.node.enrolled" in Edge by Service("edge-registry"): NodeEnrolled,
    /// An edge node is alive; sent every few seconds by the node itself, on its own subject.
    NodeHeartbeat => "edge.v1.node.*.heartbeat" in Heartbeats by EachEdgeNode: NodeHeartbeat,
    /// An edge node missed enough heartbeats to be declared offline.
    NodeOffline => "edge.v1.node.offline" in Edge by Service("edge-registry"): NodeLiveness,
    /// An offline edge node is heard from again.
    NodeOnline => "edge.v1.node.online" in Edge by Service("edge-registry"): NodeLiveness,
    /// An admin removed an edge node: its bus credential is refused from now on, its Node drained and deleted.
    NodeRemoved => "edge.v1.node.removed" in Edge by Service("edge-registry"): NodeRemoved,
    DeploySynced => "deploy.v1.synced" in Deploy by Service("deployer"): Deployment,
    DeployHealthy => "deploy.v1.healthy" in Deploy by Service("deployer"): Deployment,
    DeployDegraded => "deploy.v1.degraded" in Deploy by Service("deployer"): Deployment,
    DeployRolledBack => "deploy.v1.rolled_back" in Deploy by Service("deployer"): Deployment,
    BackupRunStarted => "backup.v1.run.started" in Backup by Service("backup"): BackupRun,
    BackupRunSucceeded => "backup.v1.run.succeeded" in Backup by Service("backup"): BackupRun,
    BackupRunFailed => "backup.v1.run.failed" in Backup by Service("backup"): BackupRun,
    BackupDrillPassed => "backup.v1.drill.passed" in Backup by Service("backup"): BackupDrill,
    BackupDrillFailed => "backup.v1.drill.failed" in Backup by Service("backup"): BackupDrill,
    /// A secret got a new version; the value itself never travels on the bus.
    SecretRotated => "secrets.v1.rotated" in Secrets by Service("secrets-rotator"): SecretRotated,
    /// A consumer reloaded a rotated secret's version; each service acknowledges on its own subject only.
    SecretAcknowledged => "secrets.v1.acknowledged.*" in Secrets by EachService: SecretAcknowledged,
    /// Something in inventory's view of the lab changed.
    InventoryChanged => "inventory.v1.changed" in Inventory by Service("inventory"): InventoryChanged,
}

/// Who may publish an event kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// One service of the lab, by its name (its NATS user).
    Service(&'static str),
    /// Every service, each on the subject whose `*` is its own name.
    EachService,
    /// Every enrolled edge node, each on the subject whose `*` is its own node id.
    EachEdgeNode,
}

/// What a node's hardware is, as its agent reads it (or an operator enters it in inventory): the one shape
/// the agent sends, edge-registry checks and announces, and inventory keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HardwareFacts {
    /// e.g. "NVIDIA Jetson AGX Orin Developer Kit"
    pub model: String,
    pub jetpack: Option<String>,
    pub l4t: Option<String>,
    pub cuda: Option<String>,
    pub gpu_name: Option<String>,
    pub memory_bytes: u64,
    /// e.g. "aarch64"
    pub architecture: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeEnrolled {
    pub node_id: Uuid,
    pub name: String,
    pub tailnet_ip: IpAddr,
    pub dns_name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub facts: HardwareFacts,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeHeartbeat {
    pub node_id: Uuid,
    pub load1: f32,
    pub gpu_utilization_pct: Option<f32>,
    pub temperature_c: Option<f32>,
    pub disk_free_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRemoved {
    pub node_id: Uuid,
    pub name: String,
    /// Who removed it (the admin's identity).
    pub by: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeLiveness {
    pub node_id: Uuid,
    pub name: String,
    pub last_seen: DateTime<Utc>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// The Argo CD Application.
    pub app: String,
    pub namespace: String,
    pub revision: String,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupRun {
    pub policy: String,
    pub run_id: Uuid,
    /// postgres, vault, velero, jetstream or folder.
    pub source: String,
    pub bytes: Option<u64>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupDrill {
    pub policy: String,
    pub backup_id: Uuid,
    pub duration_ms: u64,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecretRotated {
    pub path: String,
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecretAcknowledged {
    pub path: String,
    pub version: u64,
    /// The service that now uses this version.
    pub consumer: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Entity {
    Node,
    Service,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Created,
    Updated,
    Deleted,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InventoryChanged {
    pub entity: Entity,
    pub id: Uuid,
    pub name: String,
    pub change: Change,
}

impl Event {
    /// The token that fills the `*` of this event's subject pattern, if it has one.
    fn wildcard(&self) -> Option<String> {
        match self {
            Event::NodeHeartbeat(h) => Some(h.node_id.to_string()),
            Event::SecretAcknowledged(a) => Some(a.consumer.clone()),
            _ => None,
        }
    }

    /// The subject this event is published on, without namespace.
    pub fn subject(&self) -> String {
        let pattern = self.kind().pattern();
        match self.wildcard() {
            Some(token) => pattern.replacen('*', &token, 1),
            None => pattern.to_owned(),
        }
    }
}

impl Stream {
    /// The subjects this stream holds: those of its kinds, or every dead letter.
    pub(crate) fn subjects(self, ns: &Namespace) -> Vec<String> {
        if self == Stream::DeadLetter {
            return vec![ns.subject(&format!("{DEAD_LETTER_ROOT}.>"))];
        }
        Kind::ALL
            .iter()
            .filter(|k| k.stream() == self)
            .map(|k| ns.subject(k.pattern()))
            .collect()
    }
}

/// An event as it travels: its id (also the `Nats-Msg-Id`, and the key of idempotent handling), time and source.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub source: String,
    pub event: Event,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    id: Uuid,
    occurred_at: DateTime<Utc>,
    source: String,
    data: serde_json::Value,
}

/// Why a message could not be read as an event; it goes to the dead-letter subject with this text.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParseError {
    #[error("subject {0} is not a HomeStation v1 event")]
    UnknownSubject(String),
    #[error("payload of {subject} does not parse: {reason}")]
    Payload { subject: String, reason: String },
    #[error("subject {subject} does not match its payload (expected {expected})")]
    SubjectMismatch { subject: String, expected: String },
}

impl Envelope {
    pub fn new(source: &str, event: Event) -> Self {
        Self {
            id: Uuid::now_v7(),
            occurred_at: Utc::now(),
            source: source.to_owned(),
            event,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let wire = Wire {
            id: self.id,
            occurred_at: self.occurred_at,
            source: self.source.clone(),
            data: self.event.data().expect("event payloads serialize"),
        };
        serde_json::to_vec(&wire).expect("event payloads serialize")
    }

    /// Reads an event from a full subject in `ns` and its payload.
    pub fn parse(ns: &Namespace, subject: &str, payload: &[u8]) -> Result<Self, ParseError> {
        let relative = ns
            .strip(subject)
            .ok_or_else(|| ParseError::UnknownSubject(subject.to_owned()))?;
        let kind = Kind::ALL
            .iter()
            .copied()
            .find(|k| matches_pattern(k.pattern(), relative))
            .ok_or_else(|| ParseError::UnknownSubject(subject.to_owned()))?;
        let bad = |e: serde_json::Error| ParseError::Payload {
            subject: subject.to_owned(),
            reason: e.to_string(),
        };
        let wire: Wire = serde_json::from_slice(payload).map_err(bad)?;
        let event = Event::from_data(kind, wire.data).map_err(bad)?;
        let expected = event.subject();
        if expected != relative {
            return Err(ParseError::SubjectMismatch {
                subject: subject.to_owned(),
                expected,
            });
        }
        Ok(Self {
            id: wire.id,
            occurred_at: wire.occurred_at,
            source: wire.source,
            event,
        })
    }
}

fn matches_pattern(pattern: &str, subject: &str) -> bool {
    let mut p = pattern.split('.');
    let mut s = subject.split('.');
    loop {
        match (p.next(), s.next()) {
            (None, None) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_kind_belongs_to_exactly_one_stream_and_streams_do_not_overlap() {
        let ns = Namespace::production();
        let mut seen = std::collections::HashSet::new();
        for stream in Stream::ALL {
            for subject in stream.subjects(&ns) {
                assert!(seen.insert(subject.clone()), "{subject} is in two streams");
            }
        }
        assert_eq!(seen.len(), Kind::ALL.len() + 1);
    }

    use super::*;

    fn heartbeat() -> Event {
        Event::NodeHeartbeat(NodeHeartbeat {
            node_id: Uuid::nil(),
            load1: 0.5,
            gpu_utilization_pct: Some(12.0),
            temperature_c: None,
            disk_free_bytes: Some(1 << 30),
        })
    }

    #[test]
    fn round_trips_through_the_wire_with_namespace() {
        let ns = Namespace::parse("t1").unwrap();
        let envelope = Envelope::new("edge-registry", heartbeat());
        let subject = ns.subject(&envelope.event.subject());
        assert_eq!(
            subject,
            "t1.edge.v1.node.00000000-0000-0000-0000-000000000000.heartbeat"
        );
        let back = Envelope::parse(&ns, &subject, &envelope.to_bytes()).unwrap();
        assert_eq!(back, envelope);
    }

    #[test]
    fn malformed_payloads_say_why() {
        let ns = Namespace::production();
        let err = Envelope::parse(&ns, "deploy.v1.synced", b"{not json").unwrap_err();
        assert!(matches!(err, ParseError::Payload { .. }), "{err}");
        let wrong_field = br#"{"id":"00000000-0000-0000-0000-000000000000","occurred_at":"2026-01-01T00:00:00Z","source":"x","data":{"app":"a","namespace":"n"}}"#;
        let err = Envelope::parse(&ns, "deploy.v1.synced", wrong_field).unwrap_err();
        assert!(err.to_string().contains("revision"), "{err}");
        let err = Envelope::parse(&ns, "deploy.v2.synced", wrong_field).unwrap_err();
        assert!(matches!(err, ParseError::UnknownSubject(_)));
    }

    #[test]
    fn a_heartbeat_on_another_nodes_subject_is_refused() {
        let ns = Namespace::production();
        let bytes = Envelope::new("x", heartbeat()).to_bytes();
        let err = Envelope::parse(&ns, "edge.v1.node.someone-else.heartbeat", &bytes).unwrap_err();
        assert!(matches!(err, ParseError::SubjectMismatch { .. }), "{err}");
    }

    #[test]
    fn patterns_match_token_by_token() {
        assert!(matches_pattern(
            "edge.v1.node.*.heartbeat",
            "edge.v1.node.n1.heartbeat"
        ));
        assert!(!matches_pattern(
            "edge.v1.node.*.heartbeat",
            "edge.v1.node.enrolled"
        ));
        assert!(!matches_pattern(
            "deploy.v1.synced",
            "deploy.v1.synced.extra"
        ));
    }
}

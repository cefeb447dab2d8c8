//! Subjects and streams: a namespace prefix (empty in production, unique per test) and one stream per domain.

use std::time::Duration;

use async_nats::jetstream::stream;

use crate::BusError;

/// Prefixes every subject and stream name, so tests sharing one nats-server never see each other.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespace(String);

impl Namespace {
    pub fn production() -> Self {
        Self::default()
    }

    pub fn parse(raw: &str) -> crate::Result<Self> {
        let valid = raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(BusError::Namespace(raw.to_owned()))
        }
    }

    /// The prefix as configured (`nats.namespace`); empty in production.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `edge.v1.node.enrolled` → `t1234.edge.v1.node.enrolled` in a test namespace.
    pub fn subject(&self, relative: &str) -> String {
        if self.0.is_empty() {
            relative.to_owned()
        } else {
            format!("{}.{relative}", self.0)
        }
    }

    /// The subject with this namespace's prefix removed, or None if it is not in this namespace.
    pub fn strip<'a>(&self, subject: &'a str) -> Option<&'a str> {
        if self.0.is_empty() {
            Some(subject)
        } else {
            subject.strip_prefix(self.0.as_str())?.strip_prefix('.')
        }
    }

    fn stream_name(&self, stream: Stream) -> String {
        if self.0.is_empty() {
            stream.base_name().to_owned()
        } else {
            format!(
                "{}_{}",
                self.0.to_ascii_uppercase().replace('-', "_"),
                stream.base_name()
            )
        }
    }
}

/// The JetStream streams of HomeStation; which kinds land in which stream is said once, in `events.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Edge,
    Heartbeats,
    Deploy,
    Backup,
    Secrets,
    Inventory,
    DeadLetter,
}

/// Where payloads that cannot be handled go, with the reason in a header.
pub(crate) const DEAD_LETTER_ROOT: &str = "deadletter.v1";

impl Stream {
    pub const ALL: [Stream; 7] = [
        Stream::Edge,
        Stream::Heartbeats,
        Stream::Deploy,
        Stream::Backup,
        Stream::Secrets,
        Stream::Inventory,
        Stream::DeadLetter,
    ];

    fn base_name(self) -> &'static str {
        match self {
            Stream::Edge => "EDGE",
            Stream::Heartbeats => "HEARTBEATS",
            Stream::Deploy => "DEPLOY",
            Stream::Backup => "BACKUP",
            Stream::Secrets => "SECRETS",
            Stream::Inventory => "INVENTORY",
            Stream::DeadLetter => "DEADLETTER",
        }
    }

    pub fn name(self, ns: &Namespace) -> String {
        ns.stream_name(self)
    }

    /// At most this many bytes are kept; past it a publish is refused (nothing stored is dropped), so no
    /// identity can fill the volume (10 GiB in `argocd/platform/nats.yaml`; the limits add up to 6 GiB).
    pub fn max_bytes(self) -> i64 {
        const MIB: i64 = 1 << 20;
        match self {
            Stream::Heartbeats | Stream::DeadLetter => 512 * MIB,
            _ => 1024 * MIB,
        }
    }

    /// Heartbeats matter only while fresh; everything else is kept a week for replays and audits.
    fn max_age(self) -> Duration {
        match self {
            Stream::Heartbeats => Duration::from_secs(10 * 60),
            Stream::DeadLetter => Duration::from_secs(30 * 24 * 3600),
            _ => Duration::from_secs(7 * 24 * 3600),
        }
    }

    pub(crate) fn config(self, ns: &Namespace, limits: &StreamLimits) -> stream::Config {
        stream::Config {
            name: self.name(ns),
            subjects: self.subjects(ns),
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            max_age: self.max_age(),
            max_bytes: limits.max_bytes.unwrap_or_else(|| self.max_bytes()),
            // A full stream refuses new events rather than dropping the oldest: nothing acknowledged is lost.
            discard: stream::DiscardPolicy::New,
            // Publishes carry Nats-Msg-Id; a retry within this window is dropped by the server.
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        }
    }
}

/// Overrides of the streams' limits (`[nats] stream_max_bytes`), for a test that fills a stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamLimits {
    pub max_bytes: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_prefix_subjects_and_streams() {
        let ns = Namespace::parse("t-42").unwrap();
        assert_eq!(
            ns.subject("edge.v1.node.enrolled"),
            "t-42.edge.v1.node.enrolled"
        );
        assert_eq!(ns.strip("t-42.deploy.v1.synced"), Some("deploy.v1.synced"));
        assert_eq!(ns.strip("other.deploy.v1.synced"), None);
        assert_eq!(Stream::Edge.name(&ns), "T_42_EDGE");
        assert_eq!(Stream::Edge.name(&Namespace::production()), "EDGE");
        assert!(Namespace::parse("Bad.Name").is_err());
    }

    #[test]
    fn the_stream_limits_fit_the_volume() {
        let total: i64 = Stream::ALL.iter().map(|s| s.max_bytes()).sum();
        // The volume the lab gives JetStream, as argocd/platform/nats.yaml says it.
        let values = include_str!("../../../argocd/platform/nats.yaml");
        let volume: i64 = values
            .lines()
            .find_map(|l| l.trim().strip_prefix("size: ")?.strip_suffix("Gi"))
            .and_then(|gi| gi.parse().ok())
            .expect("nats.yaml names the JetStream volume's size in Gi");
        assert!(
            total < volume << 30,
            "streams may hold {total} bytes, the volume is {volume} GiB"
        );
        let config = Stream::Edge.config(&Namespace::production(), &StreamLimits::default());
        assert_eq!(config.discard, stream::DiscardPolicy::New);
        assert_eq!(config.max_bytes, Stream::Edge.max_bytes());
    }
}

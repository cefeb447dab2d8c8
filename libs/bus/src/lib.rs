//! HomeStation's event bus on NATS JetStream: typed, versioned subjects and payloads; durable publish and consume.

mod consume;
mod events;
mod metrics;
pub mod outbox;
mod propagation;
mod publish;
mod subject;

pub use consume::{
    ConsumerSettings, ConsumerSpec, DEAD_LETTER_REASON, DEAD_LETTER_SUBJECT, HandleError, Handler,
    run_consumers,
};
pub use events::*;
pub use metrics::{BusMetrics, names as metric_names};
pub use propagation::{extract_context, inject_context};
pub use publish::Publisher;
pub use subject::{Namespace, Stream, ensure_streams};

/// The bus's one error type.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("invalid namespace {0:?}: use lowercase letters, digits, '-' and '_'")]
    Namespace(String),
    #[error("setting up stream {stream}: {reason}")]
    Stream { stream: String, reason: String },
    #[error("publishing to {subject}: {reason}")]
    Publish { subject: String, reason: String },
    #[error("consuming from {stream}: {reason}")]
    Consume { stream: String, reason: String },
}

pub type Result<T, E = BusError> = std::result::Result<T, E>;

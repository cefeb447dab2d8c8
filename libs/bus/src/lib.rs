//! HomeStation's event bus on NATS JetStream: typed, versioned subjects and payloads; durable publish and consume.

pub mod access;
#[cfg(feature = "server")]
pub mod callout;
#[cfg(feature = "server")]
mod consume;
mod events;
mod metrics;
#[cfg(feature = "server")]
pub mod outbox;
mod propagation;
mod publish;
mod subject;

pub use access::ensure_streams;
#[cfg(feature = "server")]
pub use consume::{
    ConsumerSettings, ConsumerSpec, DEAD_LETTER_REASON, DEAD_LETTER_SUBJECT, HandleError, Handler,
    run_consumers,
};
pub use events::*;
pub use metrics::{BusMetrics, names as metric_names};
pub use propagation::{extract_context, inject_context};
pub use publish::Publisher;
pub use subject::{Namespace, Stream, StreamLimits};

/// A service's connection to the bus: the NATS client, JetStream and its namespace, with every stream ensured.
#[cfg(feature = "server")]
#[derive(Clone)]
pub struct Connection {
    pub client: async_nats::Client,
    pub js: async_nats::jetstream::Context,
    pub namespace: Namespace,
}

#[cfg(feature = "server")]
impl Connection {
    pub async fn open(settings: &service_kit::NatsSettings, service: &str) -> Result<Self> {
        let namespace = Namespace::parse(&settings.namespace)?;
        let client = settings
            .connect(service)
            .await
            .map_err(|e| BusError::Connect(e.to_string()))?;
        let js = async_nats::jetstream::new(client.clone());
        let limits = StreamLimits {
            max_bytes: settings.stream_max_bytes,
        };
        ensure_streams(&js, &namespace, service, &limits).await?;
        Ok(Self {
            client,
            js,
            namespace,
        })
    }

    /// A publisher of `source`'s events in this namespace, counting into `metrics`.
    pub fn publisher(&self, source: &'static str, metrics: BusMetrics) -> Publisher {
        Publisher::new(self.js.clone(), self.namespace.clone(), source).with_metrics(metrics)
    }
}

/// The bus's one error type.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("invalid namespace {0:?}: use lowercase letters, digits, '-' and '_'")]
    Namespace(String),
    #[error("{0}")]
    Connect(String),
    #[error("setting up stream {stream}: {reason}")]
    Stream { stream: String, reason: String },
    #[error("publishing to {subject}: {reason}")]
    Publish { subject: String, reason: String },
    #[error("consuming from {stream}: {reason}")]
    Consume { stream: String, reason: String },
    #[error("auth callout: {0}")]
    Callout(String),
}

pub type Result<T, E = BusError> = std::result::Result<T, E>;

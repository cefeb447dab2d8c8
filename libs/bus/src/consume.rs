//! Durable consumers: ack on success, bounded retries with backoff, and a dead-letter subject that carries the reason.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures_util::StreamExt;
use service_kit::Shutdown;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::BusError;
use crate::events::Envelope;
use crate::metrics::{BusMetrics, ConsumeLabels, ConsumerLabels};
use crate::propagation::extract_context;
use crate::subject::{DEAD_LETTER_ROOT, Namespace, Stream};

/// Header of a dead-lettered message: why it was given up.
pub const DEAD_LETTER_REASON: &str = "HomeStation-Dead-Letter-Reason";
/// Header of a dead-lettered message: the subject it was first published on.
pub const DEAD_LETTER_SUBJECT: &str = "HomeStation-Dead-Letter-Subject";

/// What a handler says when it could not handle an event.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Worth trying again (a database or network hiccup).
    #[error("{0}")]
    Retry(String),
    /// Will never succeed (the event contradicts the system of record); dead-lettered at once.
    #[error("{0}")]
    Reject(String),
}

/// Handles one event. Must be idempotent: an event can be delivered more than once.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, envelope: Envelope) -> impl Future<Output = Result<(), HandleError>> + Send;
}

/// A durable consumer: its name, the streams it reads, and its retry policy.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    pub durable: String,
    pub streams: Vec<Stream>,
    /// Deliveries before an event that keeps failing is dead-lettered.
    pub max_attempts: i64,
    /// First retry delay; doubled each attempt, capped at 30 s.
    pub backoff: Duration,
    /// How long the server waits for an ack before redelivering (covers a crashed consumer).
    pub ack_wait: Duration,
}

/// The operator's knobs for a service's consumers (`[consumer]` in its config).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsumerSettings {
    pub max_attempts: i64,
    pub backoff_ms: u64,
    pub ack_wait_secs: u64,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        let spec = ConsumerSpec::new("", &[]);
        Self {
            max_attempts: spec.max_attempts,
            backoff_ms: u64::try_from(spec.backoff.as_millis()).unwrap_or(u64::MAX),
            ack_wait_secs: spec.ack_wait.as_secs(),
        }
    }
}

impl ConsumerSpec {
    /// A spec with the retry policy of `settings`.
    pub fn with_settings(durable: &str, streams: &[Stream], settings: &ConsumerSettings) -> Self {
        Self {
            max_attempts: settings.max_attempts.max(1),
            backoff: Duration::from_millis(settings.backoff_ms),
            ack_wait: Duration::from_secs(settings.ack_wait_secs.max(1)),
            ..Self::new(durable, streams)
        }
    }

    pub fn new(durable: &str, streams: &[Stream]) -> Self {
        Self {
            durable: durable.to_owned(),
            streams: streams.to_vec(),
            max_attempts: 5,
            backoff: Duration::from_millis(500),
            ack_wait: Duration::from_secs(30),
        }
    }

    fn retry_delay(&self, delivered: i64) -> Duration {
        let exponent = u32::try_from(delivered.clamp(1, 16) - 1).unwrap_or(0);
        self.backoff
            .saturating_mul(2u32.saturating_pow(exponent))
            .min(Duration::from_secs(30))
    }
}

/// Runs one durable consumer per stream of `spec` until shutdown; the current event is finished first.
pub async fn run_consumers<H: Handler>(
    js: jetstream::Context,
    ns: Namespace,
    spec: ConsumerSpec,
    handler: Arc<H>,
    metrics: BusMetrics,
    shutdown: Shutdown,
) -> crate::Result<()> {
    // The consumer's histograms exist from the start, so its dashboards are not empty until an event comes.
    let consumer = crate::metrics::ConsumerLabels {
        consumer: spec.durable.clone(),
    };
    drop(metrics.handle_duration.get_or_create(&consumer));
    drop(metrics.lag.get_or_create(&consumer));
    let runs = spec.streams.iter().map(|&stream| {
        let worker = Worker {
            js: js.clone(),
            ns: ns.clone(),
            spec: spec.clone(),
            stream,
            handler: handler.clone(),
            metrics: metrics.clone(),
        };
        worker.run(shutdown.clone())
    });
    futures_util::future::try_join_all(runs).await.map(drop)
}

struct Worker<H> {
    js: jetstream::Context,
    ns: Namespace,
    spec: ConsumerSpec,
    stream: Stream,
    handler: Arc<H>,
    metrics: BusMetrics,
}

enum Outcome {
    Ack,
    Retry(Duration),
    DeadLetter(String),
}

impl<H: Handler> Worker<H> {
    fn error(&self, e: impl std::fmt::Display) -> BusError {
        BusError::Consume {
            stream: self.stream.name(&self.ns),
            reason: e.to_string(),
        }
    }

    async fn run(self, shutdown: Shutdown) -> crate::Result<()> {
        let stream = self
            .js
            .get_stream(self.stream.name(&self.ns))
            .await
            .map_err(|e| self.error(e))?;
        let consumer: jetstream::consumer::PullConsumer = stream
            .get_or_create_consumer(
                &self.spec.durable,
                pull::Config {
                    durable_name: Some(self.spec.durable.clone()),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: self.spec.ack_wait,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| self.error(e))?;
        let mut messages = consumer.messages().await.map_err(|e| self.error(e))?;
        tracing::info!(stream = %self.stream.name(&self.ns), consumer = %self.spec.durable, "consuming");
        loop {
            let next = tokio::select! {
                _ = shutdown.wait() => return Ok(()),
                next = messages.next() => next,
            };
            match next {
                None => return Err(self.error("the message stream ended")),
                Some(Err(e)) => {
                    // Heartbeat misses and reconnects surface here; the stream resumes by itself.
                    tracing::warn!(error = %e, stream = %self.stream.name(&self.ns), "pull failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Some(Ok(message)) => self.process(message).await,
            }
        }
    }

    async fn process(&self, message: jetstream::Message) {
        let started = Instant::now();
        let (delivered, published) = message
            .info()
            .map(|i| (i.delivered, Some(i.published)))
            .unwrap_or((1, None));
        let subject = message.subject.to_string();
        let span = tracing::info_span!(
            "bus.consume",
            otel.name = format!("{subject} process"),
            otel.kind = "consumer",
            messaging.system = "nats",
            messaging.destination.name = %subject,
            messaging.consumer.group.name = %self.spec.durable,
            messaging.message.delivery_count = delivered,
            event.id = tracing::field::Empty,
        );
        let _ = span.set_parent(extract_context(message.headers.as_ref()));
        let (kind, outcome) = async {
            match Envelope::parse(&self.ns, &subject, &message.payload) {
                Err(e) => ("unparsed".to_owned(), Outcome::DeadLetter(e.to_string())),
                Ok(envelope) => {
                    tracing::Span::current()
                        .record("event.id", tracing::field::display(envelope.id));
                    let kind = envelope.event.kind().pattern().to_owned();
                    let outcome = match self.handler.handle(envelope).await {
                        Ok(()) => Outcome::Ack,
                        Err(HandleError::Reject(reason)) => Outcome::DeadLetter(reason),
                        Err(HandleError::Retry(reason)) if delivered >= self.spec.max_attempts => {
                            Outcome::DeadLetter(format!(
                                "gave up after {delivered} attempts: {reason}"
                            ))
                        }
                        Err(HandleError::Retry(reason)) => {
                            tracing::warn!(reason, delivered, "handling failed; will retry");
                            Outcome::Retry(self.spec.retry_delay(delivered))
                        }
                    };
                    (kind, outcome)
                }
            }
        }
        .instrument(span.clone())
        .await;
        let label = match &outcome {
            Outcome::Ack => "ack",
            Outcome::Retry(_) => "retry",
            Outcome::DeadLetter(_) => "dead_letter",
        };
        let acked = match outcome {
            Outcome::Ack => message.ack().await,
            Outcome::Retry(delay) => message.ack_with(AckKind::Nak(Some(delay))).await,
            Outcome::DeadLetter(reason) => {
                self.dead_letter(&message, &reason).instrument(span).await
            }
        };
        if let Err(e) = acked {
            // Not fatal: the server redelivers after ack_wait and the handler is idempotent.
            tracing::warn!(error = %e, "ack failed");
        }
        let consumer = ConsumerLabels {
            consumer: self.spec.durable.clone(),
        };
        self.metrics
            .consumed
            .get_or_create(&ConsumeLabels {
                consumer: self.spec.durable.clone(),
                kind,
                outcome: label,
            })
            .inc();
        self.metrics
            .handle_duration
            .get_or_create(&consumer)
            .observe(started.elapsed().as_secs_f64());
        if let Some(published) = published {
            let lag = time_since(published);
            self.metrics.lag.get_or_create(&consumer).observe(lag);
        }
    }

    /// Stores the original payload under `deadletter.v1.<consumer>` with the reason, then terminates redelivery.
    async fn dead_letter(
        &self,
        message: &jetstream::Message,
        reason: &str,
    ) -> Result<(), async_nats::Error> {
        tracing::error!(reason, subject = %message.subject, "dead-lettering event");
        let mut headers = message.headers.clone().unwrap_or_default();
        headers.insert(DEAD_LETTER_REASON, reason);
        headers.insert(DEAD_LETTER_SUBJECT, message.subject.as_str());
        let sequence = message
            .info()
            .map(|i| i.stream_sequence)
            .unwrap_or_default();
        let id = format!(
            "dl-{}-{}-{sequence}",
            self.stream.name(&self.ns),
            self.spec.durable
        );
        headers.insert("Nats-Msg-Id", id.as_str());
        let subject = self
            .ns
            .subject(&format!("{DEAD_LETTER_ROOT}.{}", self.spec.durable));
        let stored = async {
            self.js
                .publish_with_headers(subject, headers, message.payload.clone())
                .await?
                .await?;
            Ok::<_, async_nats::Error>(())
        }
        .await;
        match stored {
            Ok(()) => message.ack_with(AckKind::Term).await,
            // Keep the event rather than lose it: it comes back and is dead-lettered again.
            Err(e) => {
                tracing::warn!(error = %e, "dead-letter publish failed; redelivering");
                message
                    .ack_with(AckKind::Nak(Some(self.spec.retry_delay(1))))
                    .await
            }
        }
    }
}

fn time_since(published: chrono::DateTime<chrono::Utc>) -> f64 {
    (chrono::Utc::now() - published)
        .to_std()
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_and_is_capped() {
        let spec = ConsumerSpec::new("x", &[]);
        assert_eq!(spec.retry_delay(1), Duration::from_millis(500));
        assert_eq!(spec.retry_delay(2), Duration::from_millis(1000));
        assert_eq!(spec.retry_delay(3), Duration::from_millis(2000));
        assert_eq!(spec.retry_delay(40), Duration::from_secs(30));
    }
}

//! Publishing: every event carries its id as `Nats-Msg-Id` and the current trace context, and waits for the stream's ack.

use async_nats::jetstream::{self, message::PublishMessage};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::BusError;
use crate::events::{Envelope, Event};
use crate::metrics::{BusMetrics, KindLabels};
use crate::propagation::inject_context;
use crate::subject::Namespace;

#[derive(Clone)]
pub struct Publisher {
    js: jetstream::Context,
    ns: Namespace,
    source: &'static str,
    metrics: Option<BusMetrics>,
}

impl Publisher {
    pub fn new(js: jetstream::Context, ns: Namespace, source: &'static str) -> Self {
        Self {
            js,
            ns,
            source,
            metrics: None,
        }
    }

    pub fn with_metrics(mut self, metrics: BusMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Wraps `event` in a new envelope and publishes it; returns the envelope (its id is the dedupe key).
    pub async fn publish(&self, event: Event) -> crate::Result<Envelope> {
        let envelope = Envelope::new(self.source, event);
        self.publish_envelope(&envelope).await?;
        Ok(envelope)
    }

    /// Publishes an existing envelope; publishing the same envelope twice within two minutes stores it once.
    pub async fn publish_envelope(&self, envelope: &Envelope) -> crate::Result<()> {
        self.publish_envelope_in(envelope, tracing::Span::current().context())
            .await
    }

    /// Publishes with `parent` as the publish span's parent (for events relayed after the request that made them).
    pub async fn publish_envelope_in(
        &self,
        envelope: &Envelope,
        parent: opentelemetry::Context,
    ) -> crate::Result<()> {
        let subject = self.ns.subject(&envelope.event.subject());
        let span = tracing::info_span!(
            "bus.publish",
            otel.name = format!("{} publish", envelope.event.kind().pattern()),
            otel.kind = "producer",
            messaging.system = "nats",
            messaging.destination.name = %subject,
            messaging.message.id = %envelope.id,
        );
        let _ = span.set_parent(parent);
        let mut headers = async_nats::HeaderMap::new();
        inject_context(&span.context(), &mut headers);
        let message = PublishMessage::build()
            .payload(envelope.to_bytes().into())
            .headers(headers)
            .message_id(envelope.id.to_string());
        let error = |e: &dyn std::fmt::Display| BusError::Publish {
            subject: subject.clone(),
            reason: e.to_string(),
        };
        async {
            let ack = self
                .js
                .send_publish(subject.clone(), message)
                .await
                .map_err(|e| error(&e))?;
            ack.await.map_err(|e| error(&e))?;
            Ok::<_, BusError>(())
        }
        .instrument(span)
        .await?;
        if let Some(m) = &self.metrics {
            m.published
                .get_or_create(&KindLabels {
                    kind: envelope.event.kind().pattern().to_owned(),
                })
                .inc();
        }
        Ok(())
    }
}

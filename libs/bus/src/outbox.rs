//! The transactional outbox: an event is written in the same transaction as the change it reports,
//! with the trace context of the request that made it, and a relay publishes it after commit.
//!
//! Each service's migrations create the table:
//! `outbox (id bigserial PRIMARY KEY, subject text NOT NULL, payload bytea NOT NULL, traceparent text,
//! created_at timestamptz NOT NULL DEFAULT now())`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use service_kit::Shutdown;
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::events::Envelope;
use crate::publish::Publisher;
use crate::subject::Namespace;

const BATCH: i64 = 100;
/// How often the relay looks when nothing woke it (a change committed by another replica).
const POLL: Duration = Duration::from_secs(1);

/// Queues `envelope` inside the caller's transaction, remembering the current span as its parent.
pub async fn enqueue(tx: &mut PgConnection, envelope: &Envelope) -> sqlx::Result<()> {
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&tracing::Span::current().context(), &mut carrier);
    sqlx::query("INSERT INTO outbox (subject, payload, traceparent) VALUES ($1, $2, $3)")
        .bind(envelope.event.subject())
        .bind(envelope.to_bytes())
        .bind(carrier.remove("traceparent"))
        .execute(tx)
        .await
        .map(drop)
}

/// Publishes queued events in order until shutdown, then once more for what the last requests committed.
/// Each keeps its id, so a re-publish after a crash is dropped by JetStream's duplicate window.
pub async fn relay(
    pool: PgPool,
    publisher: Publisher,
    wake: Arc<Notify>,
    shutdown: Shutdown,
) -> Result<(), std::convert::Infallible> {
    while !shutdown.is_triggered() {
        match relay_batch(&pool, &publisher).await {
            Ok(n) if n == BATCH as usize => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "outbox relay failed; retrying"),
        }
        tokio::select! {
            _ = shutdown.wait() => {}
            _ = wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
    if let Err(e) = relay_batch(&pool, &publisher).await {
        tracing::warn!(error = %e, "final outbox relay failed; rows stay queued for the next start");
    }
    Ok(())
}

type Row = (i64, String, Vec<u8>, Option<String>);

async fn relay_batch(pool: &PgPool, publisher: &Publisher) -> Result<usize, String> {
    let mut tx = pool.begin().await.map_err(|e| e.to_string())?;
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, subject, payload, traceparent FROM outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await
    .map_err(|e| e.to_string())?;
    for (id, subject, payload, traceparent) in &rows {
        match Envelope::parse(&Namespace::production(), subject, payload) {
            Ok(envelope) => {
                let carrier: HashMap<String, String> = traceparent
                    .iter()
                    .map(|t| ("traceparent".to_owned(), t.clone()))
                    .collect();
                let parent = TraceContextPropagator::new().extract(&carrier);
                publisher
                    .publish_envelope_in(&envelope, parent)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Err(e) => tracing::error!(id, error = %e, "unreadable outbox row dropped"),
        }
        sqlx::query("DELETE FROM outbox WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
    }
    tx.commit().await.map_err(|e| e.to_string())?;
    Ok(rows.len())
}

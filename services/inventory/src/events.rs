//! Keeps the unified view current from the other services' events, and publishes inventory's own through the outbox.

use std::sync::Arc;
use std::time::Duration;

use bus::{Change, Entity, Envelope, Event, HandleError, Handler};
use serde_json::json;
use service_kit::Shutdown;
use sqlx::PgPool;
use sqlx::types::Json;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::domain::Health;
use crate::metrics::{InventoryMetrics, Recovery};
use crate::store::{self, Tx, event_name};

/// Applies events to the database, each exactly once (the ledger), in one transaction with its effects.
pub struct Applier {
    pub pool: PgPool,
    /// Wakes the outbox relay once a change is committed.
    pub outbox: Arc<Notify>,
    pub metrics: InventoryMetrics,
}

fn retry(e: sqlx::Error) -> HandleError {
    HandleError::Retry(format!("database: {e}"))
}

impl Handler for Applier {
    async fn handle(&self, envelope: Envelope) -> Result<(), HandleError> {
        if let Event::NodeHeartbeat(beat) = &envelope.event {
            // Heartbeats are many and monotonic: applying one twice changes nothing, so no ledger entry.
            return heartbeat(&self.pool, &envelope, beat).await.map_err(retry);
        }
        let mut tx = self.pool.begin().await.map_err(retry)?;
        if !store::claim_event(&mut tx, envelope.id, &envelope.event.subject())
            .await
            .map_err(retry)?
        {
            tracing::debug!(event.id = %envelope.id, "already applied; skipping");
            return Ok(());
        }
        let recovery = match apply(&mut tx, &envelope).await {
            Ok(recovery) => recovery,
            Err(Failure::Reject(reason)) => return Err(HandleError::Reject(reason)),
            Err(Failure::Db(e)) => return Err(retry(e)),
        };
        tx.commit().await.map_err(retry)?;
        // Observed after the commit: an event applied once is counted once.
        if let Some(recovery) = recovery {
            self.metrics.observe(&recovery);
        }
        self.outbox.notify_one();
        if moves_health(&envelope.event) {
            self.metrics.health_moved();
        }
        Ok(())
    }
}

/// Events that can change a node's or a service's health: the gauges follow at once, not at the next tick.
fn moves_health(event: &Event) -> bool {
    matches!(
        event,
        Event::NodeEnrolled(_)
            | Event::NodeOffline(_)
            | Event::NodeOnline(_)
            | Event::NodeRemoved(_)
            | Event::DeployHealthy(_)
            | Event::DeployDegraded(_)
            | Event::DeployRolledBack(_)
    )
}

enum Failure {
    Reject(String),
    Db(sqlx::Error),
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Self::Db(e)
    }
}

async fn heartbeat(
    pool: &PgPool,
    envelope: &Envelope,
    beat: &bus::NodeHeartbeat,
) -> sqlx::Result<()> {
    let updated = sqlx::query(
        "UPDATE nodes SET last_heartbeat = $2, last_seen = $3
         WHERE id = $1 AND (last_seen IS NULL OR last_seen <= $3)",
    )
    .bind(beat.node_id)
    .bind(Json(beat))
    .bind(envelope.occurred_at)
    .execute(pool)
    .await?;
    if updated.rows_affected() == 0 {
        tracing::debug!(node = %beat.node_id, "heartbeat for an unknown node or out of order; ignored");
    }
    Ok(())
}

/// Applies one event; returns the recovery it completes, if it brings a node or service back to healthy.
async fn apply(tx: &mut Tx<'_>, envelope: &Envelope) -> Result<Option<Recovery>, Failure> {
    let none = |()| None;
    match &envelope.event {
        Event::NodeEnrolled(e) => enrolled(tx, envelope, e).await,
        Event::NodeOffline(e) => liveness(tx, envelope, e, Health::Offline).await,
        Event::NodeOnline(e) => liveness(tx, envelope, e, Health::Healthy).await,
        Event::NodeRemoved(e) => removed(tx, envelope, e).await.map(|()| None),
        Event::DeploySynced(d) => deployment(tx, envelope, d, "synced", None).await,
        Event::DeployHealthy(d) => {
            deployment(tx, envelope, d, "healthy", Some(Health::Healthy)).await
        }
        Event::DeployDegraded(d) => {
            deployment(tx, envelope, d, "degraded", Some(Health::Degraded)).await
        }
        Event::DeployRolledBack(d) => {
            deployment(tx, envelope, d, "rolled_back", Some(Health::Degraded)).await
        }
        Event::BackupRunStarted(r) => backup(tx, envelope, r, "started").await.map(none),
        Event::BackupRunSucceeded(r) => backup(tx, envelope, r, "succeeded").await.map(none),
        Event::BackupRunFailed(r) => backup(tx, envelope, r, "failed").await.map(none),
        Event::BackupDrillPassed(d) => drill(tx, envelope, d, "passed").await.map(none),
        Event::BackupDrillFailed(d) => drill(tx, envelope, d, "failed").await.map(none),
        Event::SecretRotated(s) => {
            let detail = json!({ "version": s.version });
            store::record_activity(tx, envelope, "secret", &s.path, "rotated", detail).await?;
            Ok(None)
        }
        Event::NodeHeartbeat(_) | Event::InventoryChanged(_) | Event::SecretAcknowledged(_) => {
            Ok(None)
        }
    }
}

async fn enrolled(
    tx: &mut Tx<'_>,
    envelope: &Envelope,
    e: &bus::NodeEnrolled,
) -> Result<Option<Recovery>, Failure> {
    let name = event_name("name", &e.name).map_err(Failure::Reject)?;
    // A name is one machine's: an enrolment may take it only from an edge node a person added by hand
    // ahead of it (adopted below), never from a control, worker or VM node or another enrolled node.
    let holder: Option<(Uuid, String, String)> =
        sqlx::query_as("SELECT id, kind, source FROM nodes WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(&mut **tx)
            .await?;
    if let Some((id, kind, source)) = holder
        && id != e.node_id
        && !(kind == "edge" && source == "api")
    {
        return Err(Failure::Reject(format!(
            "node name {name} belongs to another node ({kind}, from {source}); enrolment of {} may not take it",
            e.node_id
        )));
    }
    // A node re-enrolled under a new name keeps its id; the old row goes.
    sqlx::query("DELETE FROM nodes WHERE id = $1 AND name <> $2")
        .bind(e.node_id)
        .bind(name.as_str())
        .execute(&mut **tx)
        .await?;
    // A node an admin added by hand before it enrolled is adopted: it takes the registry's id.
    let created: bool = sqlx::query_scalar(
        "INSERT INTO nodes (id, name, kind, addresses, labels, gpu, health, health_reason, last_seen, source)
         VALUES ($1, $2, 'edge', $3, $4, $5, 'healthy', 'enrolled', $6, $7)
         ON CONFLICT (name) DO UPDATE SET
            id = EXCLUDED.id, kind = 'edge', addresses = EXCLUDED.addresses, labels = EXCLUDED.labels,
            gpu = EXCLUDED.gpu, health = 'healthy', health_reason = 'enrolled',
            last_seen = EXCLUDED.last_seen, source = EXCLUDED.source, updated_at = now()
         RETURNING (xmax = 0)",
    )
    .bind(e.node_id)
    .bind(name.as_str())
    .bind(Json(vec![e.tailnet_ip.to_string()]))
    .bind(Json(&e.labels))
    .bind(Json(e.facts.clone()))
    .bind(envelope.occurred_at)
    .bind(&envelope.source)
    .fetch_one(&mut **tx)
    .await?;
    let recovered = store::record_health(
        tx,
        Entity::Node,
        e.node_id,
        Health::Healthy,
        Some("enrolled"),
        Some(envelope.id),
        envelope.occurred_at,
    )
    .await?;
    let change = if created {
        Change::Created
    } else {
        Change::Updated
    };
    store::record_change(tx, Entity::Node, e.node_id, name.as_str(), change).await?;
    Ok(recovered.map(|after| Recovery::Node { after }))
}

/// An edge node an admin removed through edge-registry leaves the view (a change event says so).
async fn removed(
    tx: &mut Tx<'_>,
    envelope: &Envelope,
    e: &bus::NodeRemoved,
) -> Result<(), Failure> {
    // By id only: a node of the same name that is not this one stays.
    let gone = store::delete_node(tx, &store::Key::Id(e.node_id)).await?;
    if gone.is_none() {
        tracing::debug!(node = %e.node_id, "removed node was not in inventory; nothing to do");
    }
    let detail = json!({ "by": e.by });
    store::record_activity(tx, envelope, "node", &e.name, "removed", detail).await?;
    Ok(())
}

async fn liveness(
    tx: &mut Tx<'_>,
    envelope: &Envelope,
    e: &bus::NodeLiveness,
    health: Health,
) -> Result<Option<Recovery>, Failure> {
    let found: Option<String> = sqlx::query_scalar(
        "UPDATE nodes SET health = $2, health_reason = $3, updated_at = now(),
                last_seen = GREATEST(last_seen, $4)
         WHERE id = $1 RETURNING name",
    )
    .bind(e.node_id)
    .bind(health.as_str())
    .bind(e.reason.as_deref())
    .bind(e.last_seen)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(name) = found else {
        return Err(Failure::Reject(format!(
            "node {} ({}) is not in inventory",
            e.node_id, e.name
        )));
    };
    let recovered = store::record_health(
        tx,
        Entity::Node,
        e.node_id,
        health,
        e.reason.as_deref(),
        Some(envelope.id),
        envelope.occurred_at,
    )
    .await?;
    store::record_change(tx, Entity::Node, e.node_id, &name, Change::Updated).await?;
    Ok(recovered.map(|after| Recovery::Node { after }))
}

async fn deployment(
    tx: &mut Tx<'_>,
    envelope: &Envelope,
    d: &bus::Deployment,
    status: &str,
    health: Option<Health>,
) -> Result<Option<Recovery>, Failure> {
    let app = event_name("app", &d.app).map_err(Failure::Reject)?;
    let namespace = event_name("namespace", &d.namespace).map_err(Failure::Reject)?;
    let reason = d
        .reason
        .clone()
        .or_else(|| Some(format!("{status} at {}", d.revision)));
    let (id, created, previous): (Uuid, bool, String) = sqlx::query_as(
        "WITH before AS (SELECT health FROM services WHERE namespace = $2 AND name = $3)
         INSERT INTO services (id, name, namespace, health, health_reason, revision, source)
         VALUES ($1, $3, $2, COALESCE($4, 'unknown'), $5, $6, $7)
         ON CONFLICT (namespace, name) DO UPDATE SET
            health = COALESCE($4, services.health),
            health_reason = CASE WHEN $4 IS NULL THEN services.health_reason ELSE $5 END,
            revision = $6, updated_at = now()
         RETURNING id, (xmax = 0), COALESCE((SELECT health FROM before), 'unknown')",
    )
    .bind(Uuid::now_v7())
    .bind(namespace.as_str())
    .bind(app.as_str())
    .bind(health.map(Health::as_str))
    .bind(reason.as_deref())
    .bind(&d.revision)
    .bind(&envelope.source)
    .fetch_one(&mut **tx)
    .await?;
    let mut recovered = None;
    if let Some(health) = health.filter(|h| h.as_str() != previous) {
        recovered = store::record_health(
            tx,
            Entity::Service,
            id,
            health,
            reason.as_deref(),
            Some(envelope.id),
            envelope.occurred_at,
        )
        .await?;
    }
    let key = format!("{namespace}/{app}");
    let detail = json!({ "revision": d.revision, "reason": d.reason });
    store::record_activity(tx, envelope, "deploy", &key, status, detail).await?;
    let change = if created {
        Change::Created
    } else {
        Change::Updated
    };
    store::record_change(tx, Entity::Service, id, app.as_str(), change).await?;
    Ok(recovered.map(|after| Recovery::Service {
        namespace: namespace.as_str().to_owned(),
        name: app.as_str().to_owned(),
        after,
    }))
}

async fn backup(
    tx: &mut Tx<'_>,
    envelope: &Envelope,
    r: &bus::BackupRun,
    status: &str,
) -> Result<(), Failure> {
    let detail =
        json!({ "run_id": r.run_id, "source": r.source, "bytes": r.bytes, "reason": r.reason });
    store::record_activity(tx, envelope, "backup", &r.policy, status, detail).await?;
    Ok(())
}

async fn drill(
    tx: &mut Tx<'_>,
    envelope: &Envelope,
    d: &bus::BackupDrill,
    status: &str,
) -> Result<(), Failure> {
    let detail =
        json!({ "backup_id": d.backup_id, "duration_ms": d.duration_ms, "reason": d.reason });
    store::record_activity(tx, envelope, "drill", &d.policy, status, detail).await?;
    Ok(())
}

const LEDGER_PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Forgets ledger entries no stream can redeliver any more, once an hour.
pub async fn prune_ledger(
    pool: PgPool,
    shutdown: Shutdown,
) -> Result<(), std::convert::Infallible> {
    loop {
        tokio::select! {
            _ = shutdown.wait() => return Ok(()),
            _ = tokio::time::sleep(LEDGER_PRUNE_EVERY) => {}
        }
        match store::prune_ledger(&pool).await {
            Ok(n) => tracing::debug!(pruned = n, "event ledger pruned"),
            Err(e) => tracing::warn!(error = %e, "pruning the event ledger failed"),
        }
    }
}

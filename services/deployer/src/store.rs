//! All of the deployer's SQL: webhook deliveries already handled, and deployments with their timeline.
//! A change of a deployment's state goes through [`move_to`], which records it and, in the same
//! transaction, queues its `deploy.v1.*` event in the outbox.

use std::time::Duration;

use bus::{Envelope, Event};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::domain::{Deployment, DeploymentStatus};

/// The columns of a [`Deployment`], for every query that reads one.
macro_rules! deployment_columns {
    () => {
        "id, namespace, app, commit, delivery, committed_at, webhook_at, sync_requested_at, synced_at, \
         healthy_at, status, reason, rollback_of"
    };
}

/// Records a webhook delivery; false when it was handled before (a replay carries the same id).
pub async fn first_delivery(
    db: impl PgExecutor<'_>,
    provider: &str,
    delivery: &str,
    commit: &str,
) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO deliveries (provider, id, commit) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(provider)
    .bind(delivery)
    .bind(commit)
    .execute(db)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// A deployment about to be recorded.
#[derive(Debug, Default)]
pub struct NewDeployment<'a> {
    pub namespace: &'a str,
    pub app: &'a str,
    pub commit: &'a str,
    /// The push's delivery, for deployments a webhook started.
    pub delivery: Option<&'a str>,
    pub committed_at: Option<DateTime<Utc>>,
    pub webhook_at: Option<DateTime<Utc>>,
    /// The deployer asked Argo CD for this sync now (not a sync it only saw happen).
    pub sync_requested: bool,
    pub failed: bool,
    pub reason: Option<&'a str>,
    pub rollback_of: Option<Uuid>,
}

/// Records a new deployment, `requested` (or `failed`).
pub async fn insert(db: impl PgExecutor<'_>, new: &NewDeployment<'_>) -> sqlx::Result<Deployment> {
    let status = if new.failed {
        DeploymentStatus::Failed
    } else {
        DeploymentStatus::Requested
    };
    sqlx::query_as(concat!(
        "INSERT INTO deployments (id, namespace, app, commit, delivery, committed_at, webhook_at, sync_requested_at,
                                  status, reason, rollback_of)
         VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $8 THEN now() END, $9, $10, $11)
         RETURNING ",
        deployment_columns!()
    ))
    .bind(Uuid::now_v7())
    .bind(new.namespace)
    .bind(new.app)
    .bind(new.commit)
    .bind(new.delivery)
    .bind(new.committed_at)
    .bind(new.webhook_at)
    .bind(new.sync_requested && !new.failed)
    .bind(status)
    .bind(new.reason)
    .bind(new.rollback_of)
    .fetch_one(db)
    .await
}

/// Deployments, newest first, of one app or all.
pub async fn list(
    db: impl PgExecutor<'_>,
    app: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<Deployment>> {
    sqlx::query_as(concat!(
        "SELECT ",
        deployment_columns!(),
        " FROM deployments WHERE $1::text IS NULL OR app = $1 ORDER BY webhook_at DESC LIMIT $2"
    ))
    .bind(app)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// The newest deployment of `commit` to the app `namespace/app`, as the watcher needs it.
pub async fn newest(
    db: impl PgExecutor<'_>,
    namespace: &str,
    app: &str,
    commit: &str,
) -> sqlx::Result<Option<Deployment>> {
    sqlx::query_as(concat!(
        "SELECT ",
        deployment_columns!(),
        " FROM deployments WHERE namespace = $1 AND app = $2 AND commit = $3
         ORDER BY webhook_at DESC NULLS LAST, id DESC LIMIT 1"
    ))
    .bind(namespace)
    .bind(app)
    .bind(commit)
    .fetch_optional(db)
    .await
}

/// The one transition: moves deployment `id` to `to` (stamping when it synced or became healthy, keeping
/// its reason unless a new one is given) and queues `event` in the same transaction.
pub async fn move_to(
    tx: &mut PgConnection,
    id: Uuid,
    to: DeploymentStatus,
    reason: Option<&str>,
    event: Option<Event>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE deployments SET status = $2, reason = COALESCE($3, reason),
                synced_at = CASE WHEN $2 = 'synced' THEN now() ELSE synced_at END,
                healthy_at = CASE WHEN $2 = 'healthy' THEN now() ELSE healthy_at END
         WHERE id = $1",
    )
    .bind(id)
    .bind(to)
    .bind(reason)
    .execute(&mut *tx)
    .await?;
    if let Some(event) = event {
        bus::outbox::enqueue(tx, &Envelope::new(crate::events::SOURCE, event)).await?;
    }
    Ok(())
}

/// Explains why a deployment stays as it is (no rollback was possible).
pub async fn set_reason(db: impl PgExecutor<'_>, id: Uuid, reason: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE deployments SET reason = $2 WHERE id = $1")
        .bind(id)
        .bind(reason)
        .execute(db)
        .await
        .map(drop)
}

/// The newest revision of the app, other than `revision`, that was healthy.
pub async fn last_healthy_other_than(
    db: impl PgExecutor<'_>,
    namespace: &str,
    app: &str,
    revision: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT commit FROM deployments WHERE namespace = $1 AND app = $2 AND status = 'healthy' AND commit <> $3
         ORDER BY healthy_at DESC LIMIT 1",
    )
    .bind(namespace)
    .bind(app)
    .bind(revision)
    .fetch_optional(db)
    .await
}

/// A deployment synced longer than the deadline ago and still not healthy.
#[derive(Debug, sqlx::FromRow)]
pub struct Late {
    pub id: Uuid,
    pub app: String,
    pub commit: String,
}

/// Deployments (not rollbacks) synced more than `deadline` ago and not healthy since.
pub async fn late(db: impl PgExecutor<'_>, deadline: Duration) -> sqlx::Result<Vec<Late>> {
    sqlx::query_as(
        "SELECT id, app, commit FROM deployments
         WHERE status = 'synced' AND rollback_of IS NULL AND synced_at < now() - make_interval(secs => $1)",
    )
    .bind(deadline.as_secs_f64())
    .fetch_all(db)
    .await
}

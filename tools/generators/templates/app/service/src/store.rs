//! All of @@crate@@'s SQL.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::domain::{DeploymentHeard, HeardStatus, Limit};

/// Records a deployment heard in event `event_id`; false when that event was recorded before.
pub async fn record(
    db: impl PgExecutor<'_>,
    event_id: Uuid,
    deployment: &bus::Deployment,
    status: HeardStatus,
    occurred_at: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO deployments_heard (event_id, app, revision, status, occurred_at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(event_id)
    .bind(&deployment.app)
    .bind(&deployment.revision)
    .bind(status)
    .bind(occurred_at)
    .execute(db)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// The deployments heard, newest first.
pub async fn recent(db: impl PgExecutor<'_>, limit: Limit) -> sqlx::Result<Vec<DeploymentHeard>> {
    sqlx::query_as(
        "SELECT app, revision, status, occurred_at FROM deployments_heard
         ORDER BY occurred_at DESC LIMIT $1",
    )
    .bind(limit.0)
    .fetch_all(db)
    .await
}

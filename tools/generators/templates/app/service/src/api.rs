//! @@crate@@'s REST API. Routes here sit behind the kit's authentication; `Identity::require` says who may call them.

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use service_kit::{ApiError, Identity, Role};

pub fn router(pool: sqlx::PgPool) -> Router {
    Router::new()
        .route("/v1/deployments", get(deployments))
        .with_state(pool)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentsQuery {
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct DeploymentHeard {
    pub app: String,
    pub revision: String,
    pub status: String,
    pub occurred_at: DateTime<Utc>,
}

/// The deployments heard on the bus, newest first (Viewer).
async fn deployments(
    State(pool): State<sqlx::PgPool>,
    identity: Identity,
    Query(query): Query<DeploymentsQuery>,
) -> Result<Json<Vec<DeploymentHeard>>, ApiError> {
    identity.require(Role::Viewer)?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 500"));
    }
    let rows = sqlx::query_as::<_, DeploymentHeard>(
        "SELECT app, revision, status, occurred_at FROM deployments_heard
         ORDER BY occurred_at DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&pool)
    .await?;
    Ok(Json(rows))
}

//! The deployer's HTTP API: the Git webhook (authenticated by its signature, not by a token) and the
//! deployment history.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use kube::api::{Api, ListParams};
use serde::{Deserialize, Serialize};
use service_kit::error::{ApiResult, ErrorBody};
use service_kit::extract::Query;
use service_kit::{ApiError, Identity};
use sqlx::PgPool;
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::argo::Application;
use crate::webhook::{self, WebhookError, normalize_repository};
use crate::{Repository, mapping, sync};

pub struct Deployer {
    pub pool: PgPool,
    pub applications: Api<Application>,
    pub repositories: Vec<Repository>,
}

pub type AppState = Arc<Deployer>;

/// The largest webhook body accepted (GitHub caps theirs at 25 MB; pushes are far smaller).
const MAX_BODY: usize = 5 << 20;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/deployments", get(list_deployments))
        .with_state(state)
}

/// The webhook needs no identity: its signature, made with the repository's secret, is the credential.
pub fn public_router(state: AppState) -> Router {
    Router::new()
        .route("/v1/webhooks/git", post(git_webhook))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
        .route(
            "/v1/openapi.json",
            get(|| async { axum::Json(ApiDoc::openapi()) }),
        )
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "HomeStation deployer",
        description = "Git push webhooks to Argo CD syncs; deployment history."
    ),
    paths(git_webhook, list_deployments),
    components(schemas(ErrorBody, WebhookOutcome, Deployment))
)]
pub struct ApiDoc;

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        match e {
            WebhookError::BadSignature => ApiError::Unauthorized(e.to_string()),
            _ => ApiError::BadRequest {
                field: None,
                message: e.to_string(),
            },
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookOutcome {
    pub delivery: String,
    pub commit: String,
    /// A delivery seen before: nothing was done again.
    pub replayed: bool,
    /// The Applications asked to sync, as `namespace/name`.
    pub synced: Vec<String>,
    /// Applications that could not be asked, with the reason.
    pub failed: Vec<String>,
}

/// Receives a push from GitHub, Gitea/Forgejo or GitLab, verifies it, and asks Argo CD to sync the
/// Applications whose sources it changed.
#[utoipa::path(post, path = "/v1/webhooks/git", responses(
    (status = 202, body = WebhookOutcome), (status = 200, body = WebhookOutcome, description = "a replayed delivery"),
    (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn git_webhook(
    State(d): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, axum::Json<WebhookOutcome>)> {
    let received = Utc::now();
    let provider = webhook::provider(&headers)?;
    let push = webhook::parse(provider, &headers, &body)?;
    let urls: Vec<String> = push
        .repository_urls
        .iter()
        .map(|u| normalize_repository(u))
        .collect();
    let repository = d
        .repositories
        .iter()
        .find(|r| urls.contains(&normalize_repository(&r.url)))
        .ok_or_else(|| ApiError::BadRequest {
            field: None,
            message: format!(
                "unknown repository {}: add it under `repositories` in the deployer's config",
                push.repository_urls
                    .first()
                    .map(String::as_str)
                    .unwrap_or("(none)")
            ),
        })?;
    webhook::verify(provider, &headers, &body, &repository.secret)?;
    let mut outcome = WebhookOutcome {
        delivery: push.delivery.clone(),
        commit: push.commit.clone(),
        replayed: false,
        synced: Vec::new(),
        failed: Vec::new(),
    };
    let first = sqlx::query(
        "INSERT INTO deliveries (provider, id, commit) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(provider.as_str())
    .bind(&push.delivery)
    .bind(&push.commit)
    .execute(&d.pool)
    .await?
    .rows_affected()
        == 1;
    if !first {
        tracing::info!(delivery = %push.delivery, "replayed webhook delivery ignored");
        outcome.replayed = true;
        return Ok((StatusCode::OK, axum::Json(outcome)));
    }
    let apps = d
        .applications
        .list(&ListParams::default())
        .await
        .map_err(|e| ApiError::Unavailable(format!("listing Argo CD Applications: {e}")))?
        .items;
    let committed_at = push
        .committed_at
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.to_utc());
    for app in mapping::affected(&push, &apps) {
        let name = format!("{}/{}", app.namespace(), app.name());
        let reason = format!(
            "push {} to {} ({} delivery {})",
            &push.commit,
            push.branch,
            provider.as_str(),
            push.delivery
        );
        let requested =
            sync::request_sync(&d.applications, app.name(), &push.commit, &reason).await;
        let (status, failure) = match &requested {
            Ok(()) => ("requested", None),
            Err(e) => ("failed", Some(format!("writing the sync operation: {e}"))),
        };
        sqlx::query(
            "INSERT INTO deployments (id, namespace, app, commit, delivery, committed_at, webhook_at, sync_requested_at, status, reason)
             VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $8 = 'requested' THEN now() END, $8, $9)",
        )
        .bind(Uuid::now_v7())
        .bind(app.namespace())
        .bind(app.name())
        .bind(&push.commit)
        .bind(&push.delivery)
        .bind(committed_at)
        .bind(received)
        .bind(status)
        .bind(&failure)
        .execute(&d.pool)
        .await?;
        match failure {
            None => outcome.synced.push(name),
            Some(f) => outcome.failed.push(format!("{name}: {f}")),
        }
    }
    tracing::info!(delivery = %push.delivery, commit = %push.commit, synced = ?outcome.synced, failed = ?outcome.failed, "push handled");
    Ok((StatusCode::ACCEPTED, axum::Json(outcome)))
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Deployment {
    pub id: Uuid,
    pub namespace: String,
    pub app: String,
    pub commit: String,
    pub delivery: Option<String>,
    pub committed_at: Option<DateTime<Utc>>,
    pub webhook_at: Option<DateTime<Utc>>,
    pub sync_requested_at: Option<DateTime<Utc>>,
    pub synced_at: Option<DateTime<Utc>>,
    pub healthy_at: Option<DateTime<Utc>>,
    /// requested, synced, healthy, degraded, rolled_back or failed.
    pub status: String,
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeploymentsQuery {
    pub app: Option<String>,
    pub limit: Option<i64>,
}

/// Deployments, newest first, with their timeline.
#[utoipa::path(get, path = "/v1/deployments", params(DeploymentsQuery), responses((status = 200, body = Vec<Deployment>)))]
async fn list_deployments(
    State(d): State<AppState>,
    _: Identity,
    Query(q): Query<DeploymentsQuery>,
) -> ApiResult<axum::Json<Vec<Deployment>>> {
    let limit = match q.limit.unwrap_or(50) {
        n @ 1..=1000 => n,
        _ => return Err(ApiError::invalid("limit", "must be from 1 to 1000")),
    };
    Ok(axum::Json(
        sqlx::query_as(
            "SELECT id, namespace, app, commit, delivery, committed_at, webhook_at, sync_requested_at, synced_at,
                    healthy_at, status, reason
             FROM deployments WHERE $1::text IS NULL OR app = $1 ORDER BY webhook_at DESC LIMIT $2",
        )
        .bind(q.app)
        .bind(limit)
        .fetch_all(&d.pool)
        .await?,
    ))
}

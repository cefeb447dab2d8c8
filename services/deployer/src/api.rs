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
use service_kit::extract::{Json, Path, Query};
use service_kit::{ApiError, Identity, Role};
use sqlx::PgPool;
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::argo::Application;
use crate::webhook::{self, WebhookError, normalize_repository};
use crate::{Repository, mapping, sync};

pub struct Deployer {
    pub pool: PgPool,
    pub applications: Api<Application>,
    pub syncer: sync::Syncer,
    pub repositories: Vec<Repository>,
}

pub type AppState = Arc<Deployer>;

/// The largest webhook body accepted (GitHub caps theirs at 25 MB; pushes are far smaller).
const MAX_BODY: usize = 5 << 20;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/deployments", get(list_deployments))
        .route("/v1/apps/{app}/sync", post(sync_app))
        .route("/v1/apps/{app}/rollback", post(rollback_app))
        .with_state(state)
}

/// The webhook needs no identity: its signature, made with the repository's secret, is the credential.
pub fn public_router(state: AppState) -> Router {
    Router::new()
        .route("/v1/webhooks/git", post(git_webhook))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
        .merge(service_kit::openapi::router(openapi()))
}

/// The OpenAPI document this service serves on `/v1/openapi.json` (committed as `openapi.json` beside
/// the crate, validated by `make test`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    service_kit::openapi::document(ApiDoc::openapi())
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "HomeStation deployer",
        description = "Git push webhooks to Argo CD syncs; deployment history."
    ),
    paths(git_webhook, list_deployments, sync_app, rollback_app),
    components(schemas(ErrorBody, WebhookOutcome, Deployment, SyncRequest, SyncAccepted))
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
    /// Why nothing was done, for a push that deploys nothing (a tag, a deleted branch).
    pub ignored: Option<String>,
}

/// Receives a push from GitHub, Gitea/Forgejo or GitLab, verifies it, and asks Argo CD to sync the
/// Applications whose sources it changed.
#[utoipa::path(post, path = "/v1/webhooks/git", security(()), responses(
    (status = 202, body = WebhookOutcome), (status = 200, body = WebhookOutcome, description = "a replayed delivery"),
    (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn git_webhook(
    State(d): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, axum::Json<WebhookOutcome>)> {
    let received = Utc::now();
    let provider = webhook::provider(&headers)?;
    let push = match webhook::parse(provider, &headers, &body) {
        Err(WebhookError::NotABranch) => {
            // Answered as handled: the provider would otherwise show the delivery as failed and retry it.
            return Ok((
                StatusCode::ACCEPTED,
                axum::Json(WebhookOutcome {
                    delivery: String::new(),
                    commit: String::new(),
                    replayed: false,
                    synced: Vec::new(),
                    failed: Vec::new(),
                    ignored: Some(WebhookError::NotABranch.to_string()),
                }),
            ));
        }
        other => other?,
    };
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
        ignored: None,
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
        let requested = d.syncer.sync(app.name(), &push.commit, &reason).await;
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
#[into_params(parameter_in = Query)]
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

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// A Git revision (commit, branch or tag); the app's target revision when absent.
    pub revision: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SyncAccepted {
    pub app: String,
    pub revision: String,
    pub deployment: Uuid,
}

async fn find_app(d: &Deployer, app: &str) -> Result<Application, ApiError> {
    d.applications
        .get_opt(app)
        .await
        .map_err(|e| ApiError::Unavailable(format!("reading Application {app}: {e}")))?
        .ok_or_else(|| ApiError::NotFound(format!("no Argo CD Application {app}")))
}

async fn request(
    d: &Deployer,
    app: &Application,
    revision: &str,
    reason: &str,
    rollback: bool,
) -> ApiResult<Uuid> {
    d.syncer
        .sync(app.name(), revision, reason)
        .await
        .map_err(|e| ApiError::Unavailable(format!("writing the sync operation: {e}")))?;
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO deployments (id, namespace, app, commit, sync_requested_at, status, reason)
         VALUES ($1, $2, $3, $4, now(), 'requested', $5)",
    )
    .bind(id)
    .bind(app.namespace())
    .bind(app.name())
    .bind(revision)
    .bind(if rollback { Some(reason) } else { None })
    .execute(&d.pool)
    .await?;
    Ok(id)
}

/// Asks Argo CD to sync an app now (Developer).
#[utoipa::path(post, path = "/v1/apps/{app}/sync", params(("app" = String, Path)), request_body = SyncRequest,
    responses((status = 202, body = SyncAccepted), (status = 404, body = ErrorBody)))]
async fn sync_app(
    State(d): State<AppState>,
    identity: Identity,
    Path(app): Path<String>,
    Json(body): Json<SyncRequest>,
) -> ApiResult<(StatusCode, axum::Json<SyncAccepted>)> {
    identity.require(Role::Developer)?;
    let found = find_app(&d, &app).await?;
    let revision = body
        .revision
        .or_else(|| {
            found
                .git_sources()
                .next()
                .and_then(|s| s.target_revision.clone())
        })
        .unwrap_or_else(|| "HEAD".into());
    let reason = format!("sync asked by {}", identity.subject);
    let deployment = request(&d, &found, &revision, &reason, false).await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(SyncAccepted {
            app,
            revision,
            deployment,
        }),
    ))
}

/// Rolls an app back (Admin): to `revision`, or to the newest revision before the current one in Argo CD's
/// history. Auto-sync would undo it, so the app must not have it (turn it off first).
#[utoipa::path(post, path = "/v1/apps/{app}/rollback", params(("app" = String, Path)), request_body = SyncRequest,
    responses((status = 202, body = SyncAccepted), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn rollback_app(
    State(d): State<AppState>,
    identity: Identity,
    Path(app): Path<String>,
    Json(body): Json<SyncRequest>,
) -> ApiResult<(StatusCode, axum::Json<SyncAccepted>)> {
    identity.require(Role::Admin)?;
    let found = find_app(&d, &app).await?;
    if found.auto_sync() {
        return Err(ApiError::Conflict(format!(
            "{app} has auto-sync on, which would undo the rollback at once: turn it off first"
        )));
    }
    let status = found.status.clone().unwrap_or_default();
    let current = status.sync.as_ref().and_then(|s| s.revision.clone());
    let revision = match body.revision {
        Some(r) => r,
        None => status
            .history
            .iter()
            .rev()
            .filter_map(|h| h.revision.clone())
            .find(|r| Some(r) != current.as_ref())
            .ok_or_else(|| {
                ApiError::Conflict(format!(
                    "{app} has no earlier revision in Argo CD's history"
                ))
            })?,
    };
    let reason = format!("rollback asked by {}", identity.subject);
    let deployment = request(&d, &found, &revision, &reason, true).await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(SyncAccepted {
            app,
            revision,
            deployment,
        }),
    ))
}

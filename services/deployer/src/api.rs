//! The deployer's HTTP API: the Git webhook (authenticated by its signature, not by a token) and the
//! deployment history.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use service_kit::error::{ApiResult, ErrorBody};
use service_kit::extract::{Json, Path, Query};
use service_kit::{ApiError, Identity, Role};
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::deploy::AppState;
use crate::domain::{Deployment, WebhookOutcome};
use crate::store;

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
    let outcome = d.deploy_push(&headers, &body, Utc::now()).await?;
    // A replayed delivery is answered 200: nothing new was accepted.
    let status = if outcome.replayed {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, axum::Json(outcome)))
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
        store::list(&d.pool, q.app.as_deref(), limit).await?,
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
    let found = d.application(&app).await?;
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
    let deployment = d.request(&found, &revision, &reason, false).await?;
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
    let found = d.application(&app).await?;
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
    let deployment = d.request(&found, &revision, &reason, true).await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(SyncAccepted {
            app,
            revision,
            deployment,
        }),
    ))
}

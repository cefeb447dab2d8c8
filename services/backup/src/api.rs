//! The backup service's REST API: policies and their runs, the catalog, verify, restore, drills, retention.
//! Reading is for every role; starting runs, verifying and drilling for Developers; restoring and pruning,
//! which replace or delete data, for Admins.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use service_kit::error::{ApiResult, ErrorBody};
use service_kit::extract::{Json, Path, Query};
use service_kit::{ApiError, Identity, Role};
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::catalog::{self, Backup};
use crate::engine::{CheckResult, DrillRecord, Engine, Pruned, RestoreTarget, Restored, Verified};
use crate::policy::Check;

pub type AppState = Arc<Engine>;

pub fn router(engine: AppState) -> Router {
    Router::new()
        .route("/v1/policies", get(list_policies))
        .route("/v1/policies/{policy}/runs", post(start_run))
        .route("/v1/policies/{policy}/drills", post(run_drill))
        .route("/v1/policies/{policy}/prune", post(prune))
        .route("/v1/backups", get(list_backups))
        .route("/v1/backups/{id}", get(get_backup))
        .route("/v1/backups/{id}/verify", post(verify))
        .route("/v1/backups/{id}/restore", post(restore))
        .route("/v1/drills", get(list_drills))
        .with_state(engine)
}

/// The OpenAPI document this service serves on `/v1/openapi.json` (committed as `openapi.json` beside
/// the crate, validated by `make test`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    service_kit::openapi::document(ApiDoc::openapi())
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "HomeStation backup",
        description = "Encrypted, verified backups to S3; restores; scheduled restore drills; retention."
    ),
    paths(
        list_policies,
        start_run,
        run_drill,
        prune,
        list_backups,
        get_backup,
        verify,
        restore,
        list_drills
    ),
    components(schemas(
        ErrorBody,
        PolicyView,
        RetentionView,
        RunProgress,
        BackupView,
        Backup,
        StartedRun,
        Verified,
        RestoreRequest,
        RestoreTarget,
        Restored,
        DrillRecord,
        CheckResult,
        Check,
        Pruned
    ))
)]
pub struct ApiDoc;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RetentionView {
    pub keep_last: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
    pub min_age_days: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RunProgress {
    pub run_id: Uuid,
    /// Source bytes read so far.
    pub bytes: u64,
    /// The size of the policy's previous backup, for an estimate of what is left.
    pub expected_bytes: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PolicyView {
    pub name: String,
    /// postgres, vault, jetstream or folder.
    pub source: String,
    pub schedule: Option<String>,
    pub next_run: Option<DateTime<Utc>>,
    pub bucket: String,
    pub prefix: String,
    pub retention: RetentionView,
    pub retries: u32,
    pub verify: bool,
    pub drill_schedule: Option<String>,
    pub last_run: Option<Backup>,
    pub last_success: Option<DateTime<Utc>>,
    pub last_drill: Option<DrillRecord>,
    pub running: Option<RunProgress>,
}

/// Every policy with its schedule, its newest run and success, its newest drill, and any run in progress.
#[utoipa::path(get, path = "/v1/policies", responses((status = 200, body = Vec<PolicyView>)))]
async fn list_policies(
    State(engine): State<AppState>,
    _: Identity,
) -> ApiResult<axum::Json<Vec<PolicyView>>> {
    let now = Utc::now();
    let mut views = Vec::new();
    for (name, entry) in &engine.policies {
        let p = &entry.policy;
        let last_run = catalog::list(&engine.pool, Some(name), 1).await?.pop();
        let last_ok = catalog::latest_succeeded(&engine.pool, name).await?;
        let last_drill = drills(&engine, Some(name), 1).await?.pop();
        views.push(PolicyView {
            name: name.clone(),
            source: p.kind.as_str().into(),
            schedule: p.schedule.as_ref().map(ToString::to_string),
            next_run: p.schedule.as_ref().and_then(|s| s.next_after(now)),
            bucket: p.bucket.clone(),
            prefix: p.prefix.clone(),
            retention: RetentionView {
                keep_last: p.retention.keep_last,
                keep_daily: p.retention.keep_daily,
                keep_weekly: p.retention.keep_weekly,
                keep_monthly: p.retention.keep_monthly,
                min_age_days: p.retention.min_age.num_days(),
            },
            retries: p.retries,
            verify: p.verify,
            drill_schedule: p.drill.as_ref().map(|d| d.schedule.to_string()),
            last_run,
            last_success: last_ok.as_ref().and_then(|b| b.finished_at),
            last_drill,
            running: engine.progress(name).map(|(run_id, bytes)| RunProgress {
                run_id,
                bytes,
                expected_bytes: last_ok.as_ref().and_then(|b| b.plaintext_bytes),
            }),
        });
    }
    Ok(axum::Json(views))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StartedRun {
    pub policy: String,
    pub run_id: Uuid,
}

/// Starts a run of the policy now (Developer); follow it with `GET /v1/backups/{run_id}`.
#[utoipa::path(post, path = "/v1/policies/{policy}/runs", params(("policy" = String, Path)), responses(
    (status = 202, body = StartedRun), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn start_run(
    State(engine): State<AppState>,
    identity: Identity,
    Path(policy): Path<String>,
) -> ApiResult<(StatusCode, axum::Json<StartedRun>)> {
    identity.require(Role::Developer)?;
    let run_id = engine.start_run(&policy).await?;
    tracing::info!(%policy, %run_id, by = %identity.subject, "backup run started");
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(StartedRun { policy, run_id }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this policy's.
    pub policy: Option<String>,
    /// At most this many, newest first (default 50).
    pub limit: Option<i64>,
}

impl ListQuery {
    fn limit(&self) -> Result<i64, ApiError> {
        match self.limit.unwrap_or(50) {
            n @ 1..=1000 => Ok(n),
            _ => Err(ApiError::invalid("limit", "must be from 1 to 1000")),
        }
    }
}

/// A backup with, while it runs, how far it got.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BackupView {
    #[serde(flatten)]
    pub backup: Backup,
    pub progress: Option<RunProgress>,
}

async fn view(engine: &Engine, backup: Backup) -> ApiResult<BackupView> {
    let progress = match engine.progress(&backup.policy) {
        Some((run_id, bytes)) if run_id == backup.id && backup.status == "running" => {
            let previous = catalog::latest_succeeded(&engine.pool, &backup.policy).await?;
            Some(RunProgress {
                run_id,
                bytes,
                expected_bytes: previous.and_then(|b| b.plaintext_bytes),
            })
        }
        _ => None,
    };
    Ok(BackupView { backup, progress })
}

/// The catalog, newest first: every run, including failed ones and their reasons.
#[utoipa::path(get, path = "/v1/backups", params(ListQuery), responses((status = 200, body = Vec<BackupView>)))]
async fn list_backups(
    State(engine): State<AppState>,
    _: Identity,
    Query(query): Query<ListQuery>,
) -> ApiResult<axum::Json<Vec<BackupView>>> {
    let backups = catalog::list(&engine.pool, query.policy.as_deref(), query.limit()?).await?;
    let mut views = Vec::with_capacity(backups.len());
    for b in backups {
        views.push(view(&engine, b).await?);
    }
    Ok(axum::Json(views))
}

#[utoipa::path(get, path = "/v1/backups/{id}", params(("id" = Uuid, Path)), responses(
    (status = 200, body = BackupView), (status = 404, body = ErrorBody)))]
async fn get_backup(
    State(engine): State<AppState>,
    _: Identity,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<BackupView>> {
    let backup = catalog::get(&engine.pool, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no backup {id}")))?;
    Ok(axum::Json(view(&engine, backup).await?))
}

/// Downloads the object, decrypts every chunk and checks both SHA-256 against the catalog (Developer).
#[utoipa::path(post, path = "/v1/backups/{id}/verify", params(("id" = Uuid, Path)), responses(
    (status = 200, body = Verified), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn verify(
    State(engine): State<AppState>,
    identity: Identity,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Verified>> {
    identity.require(Role::Developer)?;
    Ok(axum::Json(engine.verify(id).await?))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    pub to: RestoreTarget,
    /// Replace an existing database or folder, or restore Vault: what a restore never does unasked.
    #[serde(default)]
    pub force: bool,
}

/// Restores a backup into a database, a folder or Vault (Admin). Nothing existing is replaced without
/// `force`, and nothing is touched when the object fails its checks.
#[utoipa::path(post, path = "/v1/backups/{id}/restore", params(("id" = Uuid, Path)), request_body = RestoreRequest,
    responses((status = 200, body = Restored), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn restore(
    State(engine): State<AppState>,
    identity: Identity,
    Path(id): Path<Uuid>,
    Json(request): Json<RestoreRequest>,
) -> ApiResult<axum::Json<Restored>> {
    identity.require(Role::Admin)?;
    tracing::info!(backup = %id, to = ?request.to, force = request.force, by = %identity.subject, "restore requested");
    Ok(axum::Json(
        engine.restore(id, request.to, request.force).await?,
    ))
}

async fn drills(engine: &Engine, policy: Option<&str>, limit: i64) -> ApiResult<Vec<DrillRecord>> {
    Ok(sqlx::query_as(
        "SELECT id, policy, backup_id, status, reason, checks, duration_ms, started_at, finished_at FROM drills
         WHERE $1::text IS NULL OR policy = $1 ORDER BY started_at DESC LIMIT $2",
    )
    .bind(policy)
    .bind(limit)
    .fetch_all(&engine.pool)
    .await?)
}

/// Restore drills, newest first, with their checks and how long they took.
#[utoipa::path(get, path = "/v1/drills", params(ListQuery), responses((status = 200, body = Vec<DrillRecord>)))]
async fn list_drills(
    State(engine): State<AppState>,
    _: Identity,
    Query(query): Query<ListQuery>,
) -> ApiResult<axum::Json<Vec<DrillRecord>>> {
    Ok(axum::Json(
        drills(&engine, query.policy.as_deref(), query.limit()?).await?,
    ))
}

/// Runs a restore drill of the policy's newest backup now (Developer) and answers with its result.
#[utoipa::path(post, path = "/v1/policies/{policy}/drills", params(("policy" = String, Path)), responses(
    (status = 200, body = DrillRecord), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn run_drill(
    State(engine): State<AppState>,
    identity: Identity,
    Path(policy): Path<String>,
) -> ApiResult<axum::Json<DrillRecord>> {
    identity.require(Role::Developer)?;
    Ok(axum::Json(engine.drill(&policy).await?))
}

/// Applies the policy's retention now (Admin); it also runs after every successful backup.
#[utoipa::path(post, path = "/v1/policies/{policy}/prune", params(("policy" = String, Path)), responses(
    (status = 200, body = Pruned), (status = 404, body = ErrorBody)))]
async fn prune(
    State(engine): State<AppState>,
    identity: Identity,
    Path(policy): Path<String>,
) -> ApiResult<axum::Json<Pruned>> {
    identity.require(Role::Admin)?;
    Ok(axum::Json(engine.prune(&policy).await?))
}

//! The rotator's REST API. Policies are readable by every role (they hold no secret); rotating and the
//! audit trail are for Admins only.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use service_kit::error::{ApiResult, ErrorBody};
use service_kit::extract::{Json, Query};
use service_kit::{ApiError, Identity, Role};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::engine::{Rotation, Rotator};
use crate::policy::Verify;

pub type AppState = Arc<Rotator>;

pub fn router(rotator: AppState) -> Router {
    Router::new()
        .route("/v1/policies", get(list_policies))
        .route("/v1/rotations", post(rotate).get(history))
        .route("/v1/vault-policies", get(vault_policies))
        .with_state(rotator)
}

/// The OpenAPI document this service serves on `/v1/openapi.json` (committed as `openapi.json` beside
/// the crate, validated by `make test`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    service_kit::openapi::document(ApiDoc::openapi())
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "HomeStation secrets-rotator",
        description = "Rotation of Vault secrets and database logins, delivered, verified, rolled back."
    ),
    paths(list_policies, rotate, history, vault_policies),
    components(schemas(ErrorBody, PolicyView, RotateRequest, Rotation, Verify))
)]
pub struct ApiDoc;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PolicyView {
    pub name: String,
    pub path: String,
    /// kv, database (alternating users) or database (single user).
    pub kind: String,
    pub schedule: Option<String>,
    pub consumers: Vec<String>,
    pub deployments: Vec<String>,
    pub verify: Option<Verify>,
    pub ack_timeout_secs: u64,
    pub last_rotation: Option<Rotation>,
}

/// Every rotation policy with its newest rotation.
#[utoipa::path(get, path = "/v1/policies", responses((status = 200, body = Vec<PolicyView>)))]
async fn list_policies(
    State(r): State<AppState>,
    _: Identity,
) -> ApiResult<axum::Json<Vec<PolicyView>>> {
    let mut views = Vec::new();
    for (name, p) in &r.policies {
        views.push(PolicyView {
            name: name.clone(),
            path: p.target.path().to_owned(),
            kind: p.target.kind().to_owned(),
            schedule: p.schedule.as_ref().map(ToString::to_string),
            consumers: p.consumers.clone(),
            deployments: p
                .deployments
                .iter()
                .map(|(ns, d)| format!("{ns}/{d}"))
                .collect(),
            verify: p.verify.clone(),
            ack_timeout_secs: p.ack_timeout.as_secs(),
            last_rotation: r.history(Some(p.target.path()), 1).await?.pop(),
        });
    }
    Ok(axum::Json(views))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// The secret's path (as in `homestation secrets policies`).
    pub path: String,
}

/// Rotates a secret now (Admin) and answers when the rotation finished: done, rolled back or failed, with
/// the reason. A rotation that did not finish is still answered 200: its phase says what happened.
#[utoipa::path(post, path = "/v1/rotations", request_body = RotateRequest, responses(
    (status = 200, body = Rotation), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn rotate(
    State(r): State<AppState>,
    identity: Identity,
    Json(request): Json<RotateRequest>,
) -> ApiResult<axum::Json<Rotation>> {
    identity.require(Role::Admin)?;
    let policy = r
        .policy_for_path(&request.path)
        .ok_or_else(|| ApiError::NotFound(format!("no rotation policy for {}", request.path)))?;
    let name = policy.name.as_str().to_owned();
    Ok(axum::Json(r.rotate(&name, &identity.subject).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    pub path: Option<String>,
    /// At most this many, newest first (default 50, at most 1000).
    pub limit: Option<i64>,
}

/// The audit trail, newest first: who rotated what, when, and the result (Admin).
#[utoipa::path(get, path = "/v1/rotations", params(HistoryQuery), responses(
    (status = 200, body = Vec<Rotation>), (status = 403, body = ErrorBody)))]
async fn history(
    State(r): State<AppState>,
    identity: Identity,
    Query(q): Query<HistoryQuery>,
) -> ApiResult<axum::Json<Vec<Rotation>>> {
    identity.require(Role::Admin)?;
    let limit = match q.limit.unwrap_or(50) {
        n @ 1..=1000 => n,
        _ => return Err(ApiError::invalid("limit", "must be from 1 to 1000")),
    };
    Ok(axum::Json(r.history(q.path.as_deref(), limit).await?))
}

/// The least-privilege Vault policies the rotation policies imply, as HCL by policy name (Admin).
#[utoipa::path(get, path = "/v1/vault-policies", responses(
    (status = 200, body = std::collections::BTreeMap<String, String>), (status = 403, body = ErrorBody)))]
async fn vault_policies(
    State(r): State<AppState>,
    identity: Identity,
) -> ApiResult<axum::Json<std::collections::BTreeMap<String, String>>> {
    identity.require(Role::Admin)?;
    let policies: Vec<_> = r.policies.values().collect();
    Ok(axum::Json(crate::vault_policy::generate(
        &policies,
        r.kv.mount(),
    )))
}

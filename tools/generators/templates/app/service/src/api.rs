//! @@crate@@'s REST API: thin handlers (parse, call the store, answer). Routes here sit behind the kit's
//! authentication; `Identity::require` says who may call them.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::Deserialize;
use service_kit::error::{ApiResult, ErrorBody};
use service_kit::extract::Query;
use service_kit::{Identity, Role};
use utoipa::{IntoParams, OpenApi};

use crate::domain::{DeploymentHeard, Limit};
use crate::store;

pub fn router(pool: sqlx::PgPool) -> Router {
    Router::new()
        .route("/v1/deployments", get(deployments))
        .with_state(pool)
}

/// The OpenAPI document this service serves on `/v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    service_kit::openapi::document(ApiDoc::openapi())
}

#[derive(OpenApi)]
#[openapi(
    info(title = "HomeStation @@crate@@", description = "The deployments @@crate@@ heard of on the bus."),
    paths(deployments),
    components(schemas(ErrorBody, DeploymentHeard))
)]
pub struct ApiDoc;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeploymentsQuery {
    /// How many, newest first: 1 to 500 (50).
    pub limit: Option<i64>,
}

/// The deployments heard on the bus, newest first (Viewer).
#[utoipa::path(get, path = "/v1/deployments", params(DeploymentsQuery),
    responses((status = 200, body = Vec<DeploymentHeard>), (status = 400, body = ErrorBody)))]
async fn deployments(
    State(pool): State<sqlx::PgPool>,
    identity: Identity,
    Query(query): Query<DeploymentsQuery>,
) -> ApiResult<axum::Json<Vec<DeploymentHeard>>> {
    identity.require(Role::Viewer)?;
    let limit = Limit::parse(query.limit)?;
    Ok(axum::Json(store::recent(&pool, limit).await?))
}

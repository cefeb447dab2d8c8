//! Inventory's REST API under `/v1`, and its OpenAPI document.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bus::Entity;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use service_kit::error::{ApiResult, ErrorBody};
use service_kit::extract::{Json, Path, Query};
use service_kit::{ApiError, Identity, Role};
use sqlx::PgPool;
use tokio::sync::Notify;
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::domain::{Health, NewNode, NewService, NodeKind, NodeRequest, ServiceRequest};
use crate::exports;
use crate::store::{self, Activity, HealthChange, Key, Node, ServiceRecord};

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub outbox: Arc<Notify>,
}

/// The routes that need an identity; the kit adds auth, health, metrics and request ids around them.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/nodes", get(list_nodes).post(create_node))
        .route("/v1/nodes/{node}", get(get_node).delete(delete_node))
        .route("/v1/nodes/{node}/history", get(node_history))
        .route("/v1/services", get(list_services).post(create_service))
        .route(
            "/v1/services/{service}",
            get(get_service).delete(delete_service),
        )
        .route("/v1/services/{namespace}/{name}", get(get_service_in))
        .route("/v1/summary", get(summary))
        .route("/v1/exports/homepage/services.yaml", get(homepage))
        .route("/v1/exports/prometheus/http-sd", get(http_sd))
        .with_state(state)
}

/// Routes served without an identity.
/// The OpenAPI document this service serves on `/v1/openapi.json` (committed as `openapi.json` beside
/// the crate, validated by `make test`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    service_kit::openapi::document(ApiDoc::openapi())
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "HomeStation inventory",
        description = "The system of record of the lab: nodes, services, health and the unified view."
    ),
    paths(
        list_nodes,
        create_node,
        get_node,
        delete_node,
        node_history,
        list_services,
        create_service,
        get_service,
        get_service_in,
        delete_service,
        summary,
        homepage,
        http_sd
    ),
    components(schemas(
        ErrorBody,
        Node,
        NodeRequest,
        ServiceRecord,
        ServiceRequest,
        Summary,
        HealthChange,
        Activity
    ))
)]
pub struct ApiDoc;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct NodeFilter {
    kind: Option<NodeKind>,
    health: Option<Health>,
}

/// Nodes, optionally filtered by kind and health.
#[utoipa::path(get, path = "/v1/nodes", params(NodeFilter), responses(
    (status = 200, body = Vec<Node>), (status = 401, body = ErrorBody)))]
async fn list_nodes(
    State(s): State<AppState>,
    Query(filter): Query<NodeFilter>,
) -> ApiResult<axum::Json<Vec<Node>>> {
    Ok(axum::Json(
        store::list_nodes(&s.pool, filter.kind, filter.health).await?,
    ))
}

/// Records a node by hand (a control, worker or VM node; edge nodes enrol through edge-registry).
#[utoipa::path(post, path = "/v1/nodes", request_body = NodeRequest, responses(
    (status = 201, body = Node), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_node(
    State(s): State<AppState>,
    identity: Identity,
    Json(request): Json<NodeRequest>,
) -> ApiResult<Response> {
    let node = NewNode::try_from(request)?;
    let mut tx = s.pool.begin().await?;
    let created = store::insert_node(&mut tx, &node, "api")
        .await
        .map_err(|e| conflict(e, format!("a node named {} exists already", node.name)))?;
    tx.commit().await?;
    s.outbox.notify_one();
    tracing::info!(node = %created.name, by = %identity.subject, "node added");
    let location = format!("/v1/nodes/{}", created.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(created),
    )
        .into_response())
}

fn conflict(error: sqlx::Error, message: String) -> ApiError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => ApiError::Conflict(message),
        _ => error.into(),
    }
}

/// One node, by id or name.
#[utoipa::path(get, path = "/v1/nodes/{node}", params(("node" = String, Path, description = "id or name")), responses(
    (status = 200, body = Node), (status = 404, body = ErrorBody)))]
async fn get_node(
    State(s): State<AppState>,
    Path(node): Path<String>,
) -> ApiResult<axum::Json<Node>> {
    find_node(&s.pool, &node).await.map(axum::Json)
}

async fn find_node(pool: &PgPool, node: &str) -> ApiResult<Node> {
    store::get_node(pool, &Key::parse(node))
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no node {node}; `homestation nodes list` shows them"
            ))
        })
}

/// Removes a node from inventory (Admin only).
#[utoipa::path(delete, path = "/v1/nodes/{node}", params(("node" = String, Path, description = "id or name")), responses(
    (status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_node(
    State(s): State<AppState>,
    identity: Identity,
    Path(node): Path<String>,
) -> ApiResult<StatusCode> {
    identity.require(Role::Admin)?;
    let mut tx = s.pool.begin().await?;
    let deleted = store::delete_node(&mut tx, &Key::parse(&node))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no node {node}")))?;
    tx.commit().await?;
    s.outbox.notify_one();
    tracing::info!(node = %deleted.name, by = %identity.subject, "node removed");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// At most this many changes, newest first (default 50, at most 1000).
    limit: Option<i64>,
}

/// A node's health transitions, newest first.
#[utoipa::path(get, path = "/v1/nodes/{node}/history", params(("node" = String, Path), HistoryParams), responses(
    (status = 200, body = Vec<HealthChange>), (status = 404, body = ErrorBody)))]
async fn node_history(
    State(s): State<AppState>,
    Path(node): Path<String>,
    Query(params): Query<HistoryParams>,
) -> ApiResult<axum::Json<Vec<HealthChange>>> {
    let limit = params.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 1000"));
    }
    let node = find_node(&s.pool, &node).await?;
    Ok(axum::Json(
        store::health_history(&s.pool, Entity::Node, node.id, limit).await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ServiceFilter {
    namespace: Option<String>,
}

/// Services, optionally in one namespace.
#[utoipa::path(get, path = "/v1/services", params(ServiceFilter), responses((status = 200, body = Vec<ServiceRecord>)))]
async fn list_services(
    State(s): State<AppState>,
    Query(f): Query<ServiceFilter>,
) -> ApiResult<axum::Json<Vec<ServiceRecord>>> {
    Ok(axum::Json(
        store::list_services(&s.pool, f.namespace.as_deref()).await?,
    ))
}

/// Records a service and its endpoints.
#[utoipa::path(post, path = "/v1/services", request_body = ServiceRequest, responses(
    (status = 201, body = ServiceRecord), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_service(
    State(s): State<AppState>,
    identity: Identity,
    Json(request): Json<ServiceRequest>,
) -> ApiResult<Response> {
    let service = NewService::try_from(request)?;
    let mut tx = s.pool.begin().await?;
    let created = store::insert_service(&mut tx, &service, "api")
        .await
        .map_err(|e| {
            conflict(
                e,
                format!(
                    "service {}/{} exists already",
                    service.namespace, service.name
                ),
            )
        })?;
    tx.commit().await?;
    s.outbox.notify_one();
    tracing::info!(service = %created.name, by = %identity.subject, "service added");
    let location = format!("/v1/services/{}", created.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(created),
    )
        .into_response())
}

/// One service, by id, `name` or `namespace/name`.
#[utoipa::path(get, path = "/v1/services/{service}", params(("service" = String, Path)), responses(
    (status = 200, body = ServiceRecord), (status = 404, body = ErrorBody)))]
async fn get_service(
    State(s): State<AppState>,
    Path(service): Path<String>,
) -> ApiResult<axum::Json<ServiceRecord>> {
    find_service(&s.pool, &service).await.map(axum::Json)
}

/// One service by namespace and name.
#[utoipa::path(get, path = "/v1/services/{namespace}/{name}", params(("namespace" = String, Path), ("name" = String, Path)), responses(
    (status = 200, body = ServiceRecord), (status = 404, body = ErrorBody)))]
async fn get_service_in(
    State(s): State<AppState>,
    Path((namespace, name)): Path<(String, String)>,
) -> ApiResult<axum::Json<ServiceRecord>> {
    find_service(&s.pool, &format!("{namespace}/{name}"))
        .await
        .map(axum::Json)
}

async fn find_service(pool: &PgPool, service: &str) -> ApiResult<ServiceRecord> {
    store::get_service(pool, &Key::parse(service))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no service {service}")))
}

/// Removes a service (Admin only).
#[utoipa::path(delete, path = "/v1/services/{service}", params(("service" = String, Path)), responses(
    (status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_service(
    State(s): State<AppState>,
    identity: Identity,
    Path(service): Path<String>,
) -> ApiResult<StatusCode> {
    identity.require(Role::Admin)?;
    let found = find_service(&s.pool, &service).await?;
    let mut tx = s.pool.begin().await?;
    store::delete_service(&mut tx, found.id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no service {service}")))?;
    tx.commit().await?;
    s.outbox.notify_one();
    Ok(StatusCode::NO_CONTENT)
}

/// The single view of the lab.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Summary {
    pub generated_at: DateTime<Utc>,
    pub nodes: Counts,
    pub nodes_by_kind: BTreeMap<String, i64>,
    pub services: Counts,
    /// Edge nodes with their GPU facts and liveness.
    pub edge: Vec<EdgeNode>,
    /// The latest state per app, backup policy, drill and secret.
    pub deployments: Vec<ActivityLine>,
    pub backups: Vec<ActivityLine>,
    pub drills: Vec<ActivityLine>,
    pub secrets: Vec<ActivityLine>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Counts {
    pub total: i64,
    pub by_health: BTreeMap<String, i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EdgeNode {
    pub name: String,
    pub health: Health,
    pub last_seen: Option<DateTime<Utc>>,
    pub model: Option<String>,
    pub jetpack: Option<String>,
    pub cuda: Option<String>,
    pub gpu_name: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ActivityLine {
    pub key: String,
    pub status: String,
    pub at: DateTime<Utc>,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

impl From<Activity> for ActivityLine {
    fn from(a: Activity) -> Self {
        Self {
            key: a.key,
            status: a.status,
            at: a.at,
            detail: a.detail,
        }
    }
}

fn counts(by_health: BTreeMap<String, i64>) -> Counts {
    Counts {
        total: by_health.values().sum(),
        by_health,
    }
}

/// Nodes, services, the edge fleet and the latest deploys, backups, drills and rotations in one document.
#[utoipa::path(get, path = "/v1/summary", responses((status = 200, body = Summary)))]
async fn summary(State(s): State<AppState>) -> ApiResult<axum::Json<Summary>> {
    use store::{CountColumn, Counted};
    // One snapshot: an event applied between two of these reads must not show half of itself.
    let mut tx = s.pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let edge = store::list_nodes(&mut *tx, Some(NodeKind::Edge), None)
        .await?
        .into_iter()
        .map(|n| EdgeNode {
            name: n.name,
            health: n.health,
            last_seen: n.last_seen,
            model: n.gpu.as_ref().map(|g| g.model.clone()),
            jetpack: n.gpu.as_ref().and_then(|g| g.jetpack.clone()),
            cuda: n.gpu.as_ref().and_then(|g| g.cuda.clone()),
            gpu_name: n.gpu.and_then(|g| g.gpu_name),
        })
        .collect();
    let nodes = counts(store::count_by(&mut *tx, Counted::Nodes, CountColumn::Health).await?);
    let nodes_by_kind = store::count_by(&mut *tx, Counted::Nodes, CountColumn::Kind).await?;
    let services = counts(store::count_by(&mut *tx, Counted::Services, CountColumn::Health).await?);
    let mut latest = Vec::new();
    for kind in ["deploy", "backup", "drill", "secret"] {
        let rows = store::latest_activity(&mut *tx, kind).await?;
        latest.push(rows.into_iter().map(ActivityLine::from).collect::<Vec<_>>());
    }
    tx.commit().await?;
    let [deployments, backups, drills, secrets]: [Vec<ActivityLine>; 4] =
        latest.try_into().expect("four kinds were read");
    Ok(axum::Json(Summary {
        generated_at: Utc::now(),
        nodes,
        nodes_by_kind,
        services,
        edge,
        deployments,
        backups,
        drills,
        secrets,
    }))
}

/// Homepage's `services.yaml`, generated from the services inventory knows, grouped by namespace.
#[utoipa::path(get, path = "/v1/exports/homepage/services.yaml", responses((status = 200, content_type = "application/yaml", body = String)))]
async fn homepage(State(s): State<AppState>) -> ApiResult<Response> {
    let services = store::list_services(&s.pool, None).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/yaml")],
        exports::homepage_yaml(&services),
    )
        .into_response())
}

/// Prometheus HTTP service discovery: one target group per service endpoint and per node.
#[utoipa::path(get, path = "/v1/exports/prometheus/http-sd", responses((status = 200, body = Vec<exports::TargetGroup>)))]
async fn http_sd(State(s): State<AppState>) -> ApiResult<axum::Json<Vec<exports::TargetGroup>>> {
    let services = store::list_services(&s.pool, None).await?;
    let nodes = store::list_nodes(&s.pool, None, None).await?;
    Ok(axum::Json(exports::http_sd(&services, &nodes)))
}

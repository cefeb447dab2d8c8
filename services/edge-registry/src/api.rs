//! edge-registry's REST API: join tokens (Admin), enrolment (the join token is the credential), the edge fleet.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use bus::{Event, NodeEnrolled};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use service_kit::error::{ApiResult, ErrorBody};
use service_kit::extract::{Json, Path};
use service_kit::names::Labels;
use service_kit::{ApiError, Identity, Role};
use sqlx::PgPool;
use tokio::sync::Notify;
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use crate::bus_access::{BusCredential, NodeCredentials};
use crate::domain::{
    self, EnrollRequest, Enrollment, JoinToken, JoinTokenRequest, K3sAgentConfig, Taint,
};
use crate::events;
use crate::liveness::Fleet;
use crate::store::{self, EdgeNode, TokenInfo};

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub outbox: Arc<Notify>,
    pub fleet: Fleet,
    pub agent_token: AgentTokenReader,
    pub credentials: Arc<NodeCredentials>,
    pub k3s: crate::K3sSettings,
    pub agents: AgentSettings,
    pub max_ttl_secs: u64,
    /// The Kubernetes reconciler drains and deletes a removed node's Node; without it, removal ends at once.
    pub kube_enabled: bool,
    /// Inventory, asked whether a name is another machine's before a node takes it.
    pub names: Option<crate::names::NameCheck>,
}

/// What enrolled agents are told: where to send heartbeats, and how often.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentSettings {
    pub nats_url: String,
    pub nats_namespace: String,
    pub heartbeat_interval_secs: u64,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/join-tokens", post(create_token).get(list_tokens))
        .route("/v1/join-tokens/{id}", delete(revoke_token))
        .route("/v1/nodes", get(list_nodes))
        .route("/v1/nodes/{node}", get(get_node).delete(remove_node))
        .with_state(state)
}

/// The enrolment listener's one route: the one-time join token in the body is the credential and the
/// node's key signs it; nothing here takes a human's identity, so the tailnet may reach it.
pub fn enrol_router(state: AppState) -> Router {
    Router::new()
        .route("/v1/enroll", post(enroll))
        .with_state(state)
}

/// The OpenAPI document this service serves on `/v1/openapi.json` (committed as `openapi.json` beside
/// the crate, validated by `make test`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    service_kit::openapi::document(ApiDoc::openapi())
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "HomeStation edge-registry",
        description = "Enrolment and liveness of edge nodes (NVIDIA Jetsons on the tailnet)."
    ),
    paths(
        create_token,
        list_tokens,
        revoke_token,
        enroll,
        list_nodes,
        get_node,
        remove_node
    ),
    components(schemas(
        ErrorBody,
        JoinTokenRequest,
        CreatedToken,
        TokenInfo,
        EnrollRequest,
        Enrolled,
        K3sAgentConfig,
        AgentSettings,
        BusCredential,
        EdgeNode,
        Removal
    ))
)]
pub struct ApiDoc;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    pub id: Uuid,
    /// The token itself: shown this once, never stored.
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// Creates a one-time join token (Admin).
#[utoipa::path(post, path = "/v1/join-tokens", request_body = JoinTokenRequest, responses(
    (status = 201, body = CreatedToken), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn create_token(
    State(s): State<AppState>,
    identity: Identity,
    Json(request): Json<JoinTokenRequest>,
) -> ApiResult<Response> {
    identity.require(Role::Admin)?;
    let ttl = domain::parse_ttl("ttl", request.ttl.as_deref().unwrap_or("1h"))?;
    if ttl.as_secs() > s.max_ttl_secs {
        return Err(ApiError::invalid(
            "ttl",
            format!("may be at most {} seconds", s.max_ttl_secs),
        ));
    }
    let labels = Labels::parse(request.labels)?.into_inner();
    let taints = request
        .taints
        .iter()
        .enumerate()
        .map(|(i, t)| Taint::parse(&format!("taints[{i}]"), t).map(|t| t.as_str().to_owned()))
        .collect::<Result<Vec<_>, _>>()?;
    let token = JoinToken::generate();
    let expires_at = Utc::now() + chrono::Duration::from_std(ttl).map_err(ApiError::internal)?;
    let created = store::insert_token(
        &s.pool,
        store::NewToken {
            sha256: &JoinToken::sha256(token.as_str()),
            description: request.description.as_deref(),
            labels: &labels,
            taints: &taints,
            created_by: &identity.subject,
            expires_at,
        },
    )
    .await?;
    tracing::info!(token = %created.id, by = %identity.subject, %expires_at, "join token created");
    let body = CreatedToken {
        id: created.id,
        token: token.as_str().to_owned(),
        expires_at,
    };
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(body),
    )
        .into_response())
}

/// Join tokens with their status; never the tokens themselves (Admin).
#[utoipa::path(get, path = "/v1/join-tokens", responses((status = 200, body = Vec<TokenInfo>)))]
async fn list_tokens(
    State(s): State<AppState>,
    identity: Identity,
) -> ApiResult<axum::Json<Vec<TokenInfo>>> {
    identity.require(Role::Admin)?;
    Ok(axum::Json(store::list_tokens(&s.pool).await?))
}

/// Revokes an unused join token (Admin).
#[utoipa::path(delete, path = "/v1/join-tokens/{id}", params(("id" = Uuid, Path)), responses(
    (status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn revoke_token(
    State(s): State<AppState>,
    identity: Identity,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    identity.require(Role::Admin)?;
    let token = store::revoke_token(&s.pool, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no join token {id}")))?;
    match token.status.as_str() {
        "revoked" => {
            tracing::info!(token = %id, by = %identity.subject, "join token revoked");
            Ok(StatusCode::NO_CONTENT)
        }
        "used" => Err(ApiError::Conflict(format!(
            "join token {id} was already used by node {}",
            token.used_by.map(|u| u.to_string()).unwrap_or_default()
        ))),
        other => Err(ApiError::Conflict(format!("join token {id} is {other}"))),
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Enrolled {
    pub node_id: Uuid,
    pub name: String,
    pub k3s: K3sAgentConfig,
    pub agent: AgentSettings,
    /// The node's own bus credential: it may publish its heartbeat subject and nothing else.
    pub bus: BusCredential,
}

/// Enrols an edge node with a one-time join token; answers with its K3s agent configuration. The node is
/// bound to its key: the same enrolment retried (same token, same key) is answered again, with 200.
#[utoipa::path(post, path = "/v1/enroll", security(()), request_body = EnrollRequest, responses(
    (status = 201, body = Enrolled), (status = 200, body = Enrolled), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn enroll(
    State(s): State<AppState>,
    Json(request): Json<EnrollRequest>,
) -> ApiResult<Response> {
    let enrollment = Enrollment::try_from(request)?;
    let sha256 = JoinToken::sha256(&enrollment.token);
    if let Some(names) = &s.names {
        names.free_for_edge(enrollment.name.as_str()).await?;
    }
    let node_id = Uuid::now_v7();
    let mut tx = s.pool.begin().await?;
    let Some(claimed) = store::claim_token(&mut tx, &sha256, node_id).await? else {
        drop(tx);
        // The agent's retry after an answer it never got: the node this token and this key made.
        if let Some(node) = store::enrolled_with(&s.pool, &sha256, enrollment.key.as_str()).await? {
            tracing::info!(node = %node.name, node_id = %node.id, "enrolment retried with the same key; answered again");
            let agent_token = s.agent_token.read().await?;
            return Ok(enrolled(StatusCode::OK, answer(&s, &node, &agent_token)));
        }
        return Err(refusal(&s.pool, &sha256).await?);
    };
    // Read before anything is committed: without the agent token the node cannot join, so nothing is recorded.
    let agent_token = s.agent_token.read().await?;
    let labels = domain::node_labels(&enrollment.facts, &claimed.labels);
    let node = store::insert_node(
        &mut tx,
        store::NewNode {
            id: node_id,
            name: enrollment.name.as_str(),
            tailnet_ip: enrollment.tailnet_ip.ip().to_string(),
            dns_name: &enrollment.dns_name,
            facts: &enrollment.facts,
            labels: &labels,
            taints: &claimed.taints,
            token_id: claimed.id,
            public_key: enrollment.key.as_str(),
        },
    )
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.constraint() == Some("edge_nodes_public_key") => {
            ApiError::Conflict(
                "this node's key is enrolled already, as another node; a machine enrols once (the token was not used)".into(),
            )
        }
        sqlx::Error::Database(db) if db.is_unique_violation() => ApiError::Conflict(format!(
            "a node named {} is enrolled already; choose another name (the token was not used)",
            enrollment.name
        )),
        _ => e.into(),
    })?;
    let event = Event::NodeEnrolled(NodeEnrolled {
        node_id,
        name: node.name.clone(),
        tailnet_ip: enrollment.tailnet_ip.ip(),
        dns_name: enrollment.dns_name.clone(),
        labels: labels.clone(),
        facts: enrollment.facts.clone(),
    });
    events::announce(&mut tx, event).await?;
    tx.commit().await?;
    s.outbox.notify_one();
    s.fleet.enrolled(node_id, &node.name);
    tracing::info!(node = %node.name, %node_id, ip = %enrollment.tailnet_ip.ip(), "edge node enrolled");
    Ok(enrolled(
        StatusCode::CREATED,
        answer(&s, &node, &agent_token),
    ))
}

/// The enrolment answer for `node`, as recorded: the same every time it is asked for.
fn answer(s: &AppState, node: &EdgeNode, agent_token: &SecretString) -> Enrolled {
    Enrolled {
        node_id: node.id,
        name: node.name.clone(),
        k3s: K3sAgentConfig {
            server: s.k3s.server_url.clone(),
            token: agent_token.expose_secret().to_owned(),
            node_ip: node.tailnet_ip.clone(),
            flannel_iface: s.k3s.flannel_iface.clone(),
            node_labels: node
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            node_taints: node.taints.clone(),
        },
        agent: s.agents.clone(),
        bus: s.credentials.issue(node.id),
    }
}

fn enrolled(status: StatusCode, body: Enrolled) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(body),
    )
        .into_response()
}

/// The reason a token was refused, for the agent's operator.
async fn refusal(pool: &PgPool, sha256: &str) -> ApiResult<ApiError> {
    let Some(token) = store::token_refusal(pool, sha256).await? else {
        tracing::warn!("enrolment with an unknown join token");
        return Ok(ApiError::Unauthorized(
            "unknown join token: create one with `homestation edge token create`".into(),
        ));
    };
    tracing::warn!(token = %token.id, status = %token.status, "enrolment with an unusable join token");
    Ok(ApiError::Forbidden(match token.status.as_str() {
        "used" => format!("join token {} was already used; create a new one", token.id),
        "revoked" => format!("join token {} was revoked", token.id),
        "expired" => format!("join token {} expired at {}", token.id, token.expires_at),
        other => format!("join token {} is {other}", token.id),
    }))
}

/// Enrolled edge nodes with their liveness.
#[utoipa::path(get, path = "/v1/nodes", responses((status = 200, body = Vec<EdgeNode>)))]
async fn list_nodes(State(s): State<AppState>) -> ApiResult<axum::Json<Vec<EdgeNode>>> {
    Ok(axum::Json(store::list_nodes(&s.pool).await?))
}

/// One edge node by id or name.
#[utoipa::path(get, path = "/v1/nodes/{node}", params(("node" = String, Path)), responses(
    (status = 200, body = EdgeNode), (status = 404, body = ErrorBody)))]
async fn get_node(
    State(s): State<AppState>,
    Path(node): Path<String>,
) -> ApiResult<axum::Json<EdgeNode>> {
    store::get_node(&s.pool, &node)
        .await?
        .map(axum::Json)
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no edge node {node}; `homestation edge list` shows them"
            ))
        })
}

/// What removing a node started.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Removal {
    pub node_id: Uuid,
    pub name: String,
    /// `draining`: the Kubernetes node is being cordoned, drained (Eviction API, PodDisruptionBudgets
    /// honoured) and then deleted; `removed`: nothing is left (no Kubernetes API configured).
    pub state: String,
}

/// Removes an edge node (Admin): its bus credential is refused at once, the node leaves the fleet and
/// inventory, and its Kubernetes node is drained and deleted.
#[utoipa::path(delete, path = "/v1/nodes/{node}", params(("node" = String, Path)), responses(
    (status = 202, body = Removal), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn remove_node(
    State(s): State<AppState>,
    identity: Identity,
    Path(node): Path<String>,
) -> ApiResult<(StatusCode, axum::Json<Removal>)> {
    identity.require(Role::Admin)?;
    let mut tx = s.pool.begin().await?;
    let removed = store::begin_removal(&mut tx, &node, &identity.subject)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no edge node {node}")))?;
    let event = Event::NodeRemoved(bus::NodeRemoved {
        node_id: removed.id,
        name: removed.name.clone(),
        by: identity.subject.clone(),
    });
    events::announce(&mut tx, event).await?;
    tx.commit().await?;
    s.outbox.notify_one();
    s.fleet.forget(removed.id);
    let state = if s.kube_enabled {
        "draining"
    } else {
        store::finish_removal(&s.pool, removed.id).await?;
        "removed"
    };
    tracing::info!(node = %removed.name, node_id = %removed.id, by = %identity.subject, state, "edge node removed; its bus credential is refused from now on");
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(Removal {
            node_id: removed.id,
            name: removed.name,
            state: state.to_owned(),
        }),
    ))
}

/// Where the cluster's K3s agent token is read from at each enrolment (Vault/OpenBao KV v2).
#[derive(Clone)]
pub struct AgentTokenReader {
    pub client: Arc<vaultrs::client::VaultClient>,
    pub mount: String,
    pub path: String,
    pub key: String,
}

impl AgentTokenReader {
    /// The agent token; a K3s *server* token found there instead is never handed out.
    pub async fn read(&self) -> ApiResult<SecretString> {
        let data: std::collections::HashMap<String, String> = vaultrs::kv2::read(self.client.as_ref(), &self.mount, &self.path)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, mount = %self.mount, path = %self.path, "reading the K3s agent token from Vault failed");
                ApiError::Unavailable("the K3s agent token cannot be read from Vault right now; try again shortly".into())
            })?;
        let token = data.get(&self.key).ok_or_else(|| {
            tracing::error!(mount = %self.mount, path = %self.path, key = %self.key, "the K3s agent token is missing in Vault");
            ApiError::Unavailable("the K3s agent token is not in Vault yet (the control-plane playbook writes it)".into())
        })?;
        if crate::domain::is_server_token(token) {
            tracing::error!(mount = %self.mount, path = %self.path, key = %self.key, "Vault holds the K3s server token where the agent token belongs; enrolment refuses to hand it out");
            return Err(ApiError::Unavailable(
                "the K3s token in Vault is the server token, which no node may hold; store the agent token (the control-plane playbook does)".into(),
            ));
        }
        Ok(SecretString::from(token.clone()))
    }
}

//! edge-registry's SQL: join tokens, enrolled nodes, liveness state.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgPool, Row};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenInfo {
    pub id: Uuid,
    pub description: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// active, used, revoked or expired.
    pub status: String,
    pub used_by: Option<Uuid>,
}

const TOKEN_COLUMNS: &str =
    "id, description, labels, taints, created_by, created_at, expires_at, used_by,
    CASE WHEN revoked_at IS NOT NULL THEN 'revoked' WHEN used_at IS NOT NULL THEN 'used'
         WHEN expires_at <= now() THEN 'expired' ELSE 'active' END AS status";

impl FromRow<'_, PgRow> for TokenInfo {
    fn from_row(row: &PgRow) -> sqlx::Result<Self> {
        Ok(Self {
            id: row.try_get("id")?,
            description: row.try_get("description")?,
            labels: row.try_get::<Json<_>, _>("labels")?.0,
            taints: row.try_get::<Json<_>, _>("taints")?.0,
            created_by: row.try_get("created_by")?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
            status: row.try_get("status")?,
            used_by: row.try_get("used_by")?,
        })
    }
}

pub struct NewToken<'a> {
    pub sha256: &'a str,
    pub description: Option<&'a str>,
    pub labels: &'a BTreeMap<String, String>,
    pub taints: &'a [String],
    pub created_by: &'a str,
    pub expires_at: DateTime<Utc>,
}

pub async fn insert_token(pool: &PgPool, t: NewToken<'_>) -> sqlx::Result<TokenInfo> {
    let sql = format!(
        "INSERT INTO join_tokens (id, sha256, description, labels, taints, created_by, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {TOKEN_COLUMNS}"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(Uuid::now_v7())
        .bind(t.sha256)
        .bind(t.description)
        .bind(Json(t.labels))
        .bind(Json(t.taints))
        .bind(t.created_by)
        .bind(t.expires_at)
        .fetch_one(pool)
        .await
}

pub async fn list_tokens(pool: &PgPool) -> sqlx::Result<Vec<TokenInfo>> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM join_tokens ORDER BY created_at DESC");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await
}

/// Revokes an unused token; returns its state after the attempt (None if there is no such token).
pub async fn revoke_token(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<TokenInfo>> {
    sqlx::query("UPDATE join_tokens SET revoked_at = now() WHERE id = $1 AND used_at IS NULL AND revoked_at IS NULL")
        .bind(id)
        .execute(pool)
        .await?;
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM join_tokens WHERE id = $1");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(pool)
        .await
}

pub struct ClaimedToken {
    pub id: Uuid,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<String>,
}

/// Marks the token used by `node`, atomically: of two agents racing with one token, exactly one gets it.
pub async fn claim_token(
    tx: &mut PgConnection,
    sha256: &str,
    node: Uuid,
) -> sqlx::Result<Option<ClaimedToken>> {
    let row = sqlx::query(
        "UPDATE join_tokens SET used_at = now(), used_by = $2
         WHERE sha256 = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now()
         RETURNING id, labels, taints",
    )
    .bind(sha256)
    .bind(node)
    .fetch_optional(&mut *tx)
    .await?;
    row.map(|r| {
        Ok(ClaimedToken {
            id: r.try_get("id")?,
            labels: r.try_get::<Json<_>, _>("labels")?.0,
            taints: r.try_get::<Json<_>, _>("taints")?.0,
        })
    })
    .transpose()
}

/// Why a token could not be claimed: unknown, used, revoked or expired (with when).
pub async fn token_refusal(pool: &PgPool, sha256: &str) -> sqlx::Result<Option<TokenInfo>> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM join_tokens WHERE sha256 = $1");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(sha256)
        .fetch_optional(pool)
        .await
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EdgeNode {
    pub id: Uuid,
    pub name: String,
    pub tailnet_ip: String,
    pub dns_name: String,
    #[schema(value_type = Object)]
    pub facts: serde_json::Value,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<String>,
    /// online, stale (missed a few heartbeats) or offline.
    pub state: String,
    pub enrolled_at: DateTime<Utc>,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    #[schema(value_type = Option<Object>)]
    pub last_heartbeat: Option<serde_json::Value>,
    pub state_changed_at: DateTime<Utc>,
}

impl FromRow<'_, PgRow> for EdgeNode {
    fn from_row(row: &PgRow) -> sqlx::Result<Self> {
        Ok(Self {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            tailnet_ip: row.try_get("tailnet_ip")?,
            dns_name: row.try_get("dns_name")?,
            facts: row.try_get::<Json<_>, _>("facts")?.0,
            labels: row.try_get::<Json<_>, _>("labels")?.0,
            taints: row.try_get::<Json<_>, _>("taints")?.0,
            state: row.try_get("state")?,
            enrolled_at: row.try_get("enrolled_at")?,
            last_heartbeat_at: row.try_get("last_heartbeat_at")?,
            last_heartbeat: row
                .try_get::<Option<Json<_>>, _>("last_heartbeat")?
                .map(|j| j.0),
            state_changed_at: row.try_get("state_changed_at")?,
        })
    }
}

pub struct NewNode<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub tailnet_ip: String,
    pub dns_name: &'a str,
    pub facts: &'a bus::HardwareFacts,
    pub labels: &'a BTreeMap<String, String>,
    pub taints: &'a [String],
    pub token_id: Uuid,
    pub public_key: &'a str,
}

pub async fn insert_node(tx: &mut PgConnection, n: NewNode<'_>) -> sqlx::Result<EdgeNode> {
    sqlx::query_as(
        "INSERT INTO edge_nodes (id, name, tailnet_ip, dns_name, facts, labels, taints, token_id, public_key, last_heartbeat_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now()) RETURNING *",
    )
    .bind(n.id)
    .bind(n.name)
    .bind(n.tailnet_ip)
    .bind(n.dns_name)
    .bind(Json(n.facts))
    .bind(Json(n.labels))
    .bind(Json(n.taints))
    .bind(n.token_id)
    .bind(n.public_key)
    .fetch_one(tx)
    .await
}

/// The node that enrolled with this join token and this key: a retry of that enrolment.
pub async fn enrolled_with(
    pool: &PgPool,
    token_sha256: &str,
    public_key: &str,
) -> sqlx::Result<Option<EdgeNode>> {
    sqlx::query_as(
        "SELECT n.* FROM edge_nodes n JOIN join_tokens t ON t.id = n.token_id
         WHERE t.sha256 = $1 AND n.public_key = $2 AND n.removing_since IS NULL",
    )
    .bind(token_sha256)
    .bind(public_key)
    .fetch_optional(pool)
    .await
}

pub async fn list_nodes(pool: &PgPool) -> sqlx::Result<Vec<EdgeNode>> {
    sqlx::query_as("SELECT * FROM edge_nodes WHERE removing_since IS NULL ORDER BY name")
        .fetch_all(pool)
        .await
}

pub async fn get_node(pool: &PgPool, key: &str) -> sqlx::Result<Option<EdgeNode>> {
    sqlx::query_as(
        "SELECT * FROM edge_nodes WHERE (id::text = $1 OR name = $1) AND removing_since IS NULL",
    )
    .bind(key)
    .fetch_optional(pool)
    .await
}

/// Marks the node removed (by id or name): its credential is refused and it leaves every listing at
/// once; the Kubernetes side follows (`kube_nodes`). None when there is no such node (or it is already going).
pub async fn begin_removal(
    tx: &mut PgConnection,
    key: &str,
    by: &str,
) -> sqlx::Result<Option<EdgeNode>> {
    sqlx::query_as(
        "UPDATE edge_nodes SET removing_since = now(), removed_by = $2
         WHERE (id::text = $1 OR name = $1) AND removing_since IS NULL RETURNING *",
    )
    .bind(key)
    .bind(by)
    .fetch_optional(tx)
    .await
}

/// The last of a removed node: its row (and with it the name) goes.
pub async fn finish_removal(pool: &PgPool, id: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM edge_nodes WHERE id = $1 AND removing_since IS NOT NULL")
        .bind(id)
        .execute(pool)
        .await
        .map(drop)
}

pub async fn set_state(tx: &mut PgConnection, id: Uuid, state: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE edge_nodes SET state = $2, state_changed_at = now() WHERE id = $1")
        .bind(id)
        .bind(state)
        .execute(tx)
        .await
        .map(drop)
}

/// Writes the latest heartbeat of many nodes in one statement.
pub async fn flush_heartbeats(
    pool: &PgPool,
    ids: &[Uuid],
    at: &[DateTime<Utc>],
    beats: &[Json<bus::NodeHeartbeat>],
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE edge_nodes n SET last_heartbeat_at = u.at, last_heartbeat = u.beat
         FROM unnest($1::uuid[], $2::timestamptz[], $3::jsonb[]) AS u(id, at, beat)
         WHERE n.id = u.id AND (n.last_heartbeat_at IS NULL OR n.last_heartbeat_at < u.at)",
    )
    .bind(ids)
    .bind(at)
    .bind(beats)
    .execute(pool)
    .await
    .map(drop)
}

//! All of inventory's SQL: nodes, services, health history, activity, the processed-event ledger and the outbox.

use std::collections::BTreeMap;

use bus::{Change, Entity, Envelope, Event, InventoryChanged};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{FromRow, PgPool, Postgres, Row, Transaction};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::{Capacity, HardwareFacts, Health, Name, NewNode, NewService, NodeKind};

pub type Tx<'a> = Transaction<'a, Postgres>;

/// Every inventory write publishes `inventory.v1.changed` through the outbox, under this source name.
pub const SOURCE: &str = "inventory";

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Node {
    pub id: Uuid,
    pub name: String,
    pub kind: NodeKind,
    pub addresses: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub capacity: Capacity,
    pub gpu: Option<HardwareFacts>,
    pub health: Health,
    pub health_reason: Option<String>,
    pub last_seen: Option<DateTime<Utc>>,
    /// The last heartbeat's figures (load, GPU utilisation, temperature, disk), for edge nodes.
    #[schema(value_type = Option<Object>)]
    pub last_heartbeat: Option<serde_json::Value>,
    /// `api` when added by a person, else the service that reported it.
    pub source: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn health_of(row: &PgRow) -> sqlx::Result<Health> {
    let raw: String = row.try_get("health")?;
    Health::parse(&raw).ok_or_else(|| sqlx::Error::Decode(format!("unknown health {raw}").into()))
}

impl FromRow<'_, PgRow> for Node {
    fn from_row(row: &PgRow) -> sqlx::Result<Self> {
        let kind: String = row.try_get("kind")?;
        Ok(Self {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            kind: NodeKind::parse(&kind)
                .ok_or_else(|| sqlx::Error::Decode(format!("unknown kind {kind}").into()))?,
            addresses: row.try_get::<Json<_>, _>("addresses")?.0,
            labels: row.try_get::<Json<_>, _>("labels")?.0,
            capacity: row.try_get::<Json<_>, _>("capacity")?.0,
            gpu: row.try_get::<Option<Json<_>>, _>("gpu")?.map(|j| j.0),
            health: health_of(row)?,
            health_reason: row.try_get("health_reason")?,
            last_seen: row.try_get("last_seen")?,
            last_heartbeat: row
                .try_get::<Option<Json<_>>, _>("last_heartbeat")?
                .map(|j| j.0),
            source: row.try_get("source")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServiceRecord {
    pub id: Uuid,
    pub name: String,
    pub namespace: String,
    pub endpoints: Vec<String>,
    pub owner: Option<String>,
    pub description: Option<String>,
    pub health: Health,
    pub health_reason: Option<String>,
    /// The Git revision last deployed, when the deployer reported one.
    pub revision: Option<String>,
    pub source: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl FromRow<'_, PgRow> for ServiceRecord {
    fn from_row(row: &PgRow) -> sqlx::Result<Self> {
        Ok(Self {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            namespace: row.try_get("namespace")?,
            endpoints: row.try_get::<Json<_>, _>("endpoints")?.0,
            owner: row.try_get("owner")?,
            description: row.try_get("description")?,
            health: health_of(row)?,
            health_reason: row.try_get("health_reason")?,
            revision: row.try_get("revision")?,
            source: row.try_get("source")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

/// A node or service named in a URL: by id, or by name.
#[derive(Debug, Clone)]
pub enum Key {
    Id(Uuid),
    Name(String),
}

impl Key {
    pub fn parse(raw: &str) -> Self {
        Uuid::parse_str(raw).map_or_else(|_| Self::Name(raw.to_owned()), Self::Id)
    }

    fn id(&self) -> Option<Uuid> {
        match self {
            Self::Id(id) => Some(*id),
            Self::Name(_) => None,
        }
    }

    fn name(&self) -> Option<&str> {
        match self {
            Self::Name(n) => Some(n),
            Self::Id(_) => None,
        }
    }
}

pub async fn list_nodes(
    db: impl sqlx::PgExecutor<'_>,
    kind: Option<NodeKind>,
    health: Option<Health>,
) -> sqlx::Result<Vec<Node>> {
    sqlx::query_as(
        "SELECT * FROM nodes WHERE ($1::text IS NULL OR kind = $1) AND ($2::text IS NULL OR health = $2) ORDER BY name",
    )
    .bind(kind.map(NodeKind::as_str))
    .bind(health.map(Health::as_str))
    .fetch_all(db)
    .await
}

pub async fn get_node(pool: &PgPool, key: &Key) -> sqlx::Result<Option<Node>> {
    sqlx::query_as("SELECT * FROM nodes WHERE id = $1 OR name = $2")
        .bind(key.id())
        .bind(key.name())
        .fetch_optional(pool)
        .await
}

pub async fn insert_node(tx: &mut Tx<'_>, node: &NewNode, source: &str) -> sqlx::Result<Node> {
    let addresses: Vec<String> = node.addresses.iter().map(ToString::to_string).collect();
    let created: Node = sqlx::query_as(
        "INSERT INTO nodes (id, name, kind, addresses, labels, capacity, gpu, source)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *",
    )
    .bind(Uuid::now_v7())
    .bind(node.name.as_str())
    .bind(node.kind.as_str())
    .bind(Json(addresses))
    .bind(Json(node.labels.clone().into_inner()))
    .bind(Json(&node.capacity))
    .bind(node.gpu.as_ref().map(Json))
    .bind(source)
    .fetch_one(&mut **tx)
    .await?;
    record_change(tx, Entity::Node, created.id, &created.name, Change::Created).await?;
    Ok(created)
}

pub async fn delete_node(tx: &mut Tx<'_>, key: &Key) -> sqlx::Result<Option<Node>> {
    let deleted: Option<Node> =
        sqlx::query_as("DELETE FROM nodes WHERE id = $1 OR name = $2 RETURNING *")
            .bind(key.id())
            .bind(key.name())
            .fetch_optional(&mut **tx)
            .await?;
    if let Some(node) = &deleted {
        record_change(tx, Entity::Node, node.id, &node.name, Change::Deleted).await?;
    }
    Ok(deleted)
}

pub async fn list_services(
    pool: &PgPool,
    namespace: Option<&str>,
) -> sqlx::Result<Vec<ServiceRecord>> {
    sqlx::query_as("SELECT * FROM services WHERE ($1::text IS NULL OR namespace = $1) ORDER BY namespace, name")
        .bind(namespace)
        .fetch_all(pool)
        .await
}

/// A service by id, or by `name` (any namespace, the first in order) or `namespace/name`.
pub async fn get_service(pool: &PgPool, key: &Key) -> sqlx::Result<Option<ServiceRecord>> {
    let (namespace, name) = match key.name().and_then(|n| n.split_once('/')) {
        Some((ns, n)) => (Some(ns), Some(n)),
        None => (None, key.name()),
    };
    sqlx::query_as(
        "SELECT * FROM services WHERE id = $1 OR (name = $2 AND ($3::text IS NULL OR namespace = $3))
         ORDER BY namespace LIMIT 1",
    )
    .bind(key.id())
    .bind(name)
    .bind(namespace)
    .fetch_optional(pool)
    .await
}

pub async fn insert_service(
    tx: &mut Tx<'_>,
    service: &NewService,
    source: &str,
) -> sqlx::Result<ServiceRecord> {
    let endpoints: Vec<&str> = service.endpoints.iter().map(|e| e.as_str()).collect();
    let created: ServiceRecord = sqlx::query_as(
        "INSERT INTO services (id, name, namespace, endpoints, owner, description, source)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *",
    )
    .bind(Uuid::now_v7())
    .bind(service.name.as_str())
    .bind(service.namespace.as_str())
    .bind(Json(endpoints))
    .bind(service.owner.as_deref())
    .bind(service.description.as_deref())
    .bind(source)
    .fetch_one(&mut **tx)
    .await?;
    record_change(
        tx,
        Entity::Service,
        created.id,
        &created.name,
        Change::Created,
    )
    .await?;
    Ok(created)
}

pub async fn delete_service(tx: &mut Tx<'_>, id: Uuid) -> sqlx::Result<Option<ServiceRecord>> {
    let deleted: Option<ServiceRecord> =
        sqlx::query_as("DELETE FROM services WHERE id = $1 RETURNING *")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
    if let Some(s) = &deleted {
        record_change(tx, Entity::Service, s.id, &s.name, Change::Deleted).await?;
    }
    Ok(deleted)
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HealthChange {
    pub health: Health,
    pub reason: Option<String>,
    pub observed_at: DateTime<Utc>,
}

pub async fn health_history(
    pool: &PgPool,
    entity: Entity,
    id: Uuid,
    limit: i64,
) -> sqlx::Result<Vec<HealthChange>> {
    let rows = sqlx::query(
        "SELECT health, reason, observed_at FROM health_history
         WHERE entity = $1 AND entity_id = $2 ORDER BY observed_at DESC, id DESC LIMIT $3",
    )
    .bind(entity_str(entity))
    .bind(id)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(HealthChange {
                health: health_of(row)?,
                reason: row.try_get("reason")?,
                observed_at: row.try_get("observed_at")?,
            })
        })
        .collect()
}

fn entity_str(entity: Entity) -> &'static str {
    match entity {
        Entity::Node => "node",
        Entity::Service => "service",
    }
}

/// Appends a health transition; returns how long the entity took to recover when this one brings it
/// back to healthy.
pub async fn record_health(
    tx: &mut Tx<'_>,
    entity: Entity,
    id: Uuid,
    health: Health,
    reason: Option<&str>,
    event_id: Option<Uuid>,
    at: DateTime<Utc>,
) -> sqlx::Result<Option<std::time::Duration>> {
    // Back to healthy: how long since the first unhealthy transition after the last healthy one.
    let unhealthy_since: Option<DateTime<Utc>> = if health == Health::Healthy {
        sqlx::query_scalar(
            "SELECT min(observed_at) FROM health_history
             WHERE entity = $1 AND entity_id = $2 AND health IN ('degraded', 'offline')
               AND observed_at > COALESCE((SELECT max(observed_at) FROM health_history
                   WHERE entity = $1 AND entity_id = $2 AND health = 'healthy'), '-infinity')",
        )
        .bind(entity_str(entity))
        .bind(id)
        .fetch_one(&mut **tx)
        .await?
    } else {
        None
    };
    sqlx::query(
        "INSERT INTO health_history (entity, entity_id, health, reason, event_id, observed_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(entity_str(entity))
    .bind(id)
    .bind(health.as_str())
    .bind(reason)
    .bind(event_id)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(unhealthy_since.and_then(|since| (at - since).to_std().ok()))
}

/// Queues `inventory.v1.changed` in the same transaction as the change; the relay publishes it after commit.
pub async fn record_change(
    tx: &mut Tx<'_>,
    entity: Entity,
    id: Uuid,
    name: &str,
    change: Change,
) -> sqlx::Result<()> {
    let envelope = Envelope::new(
        SOURCE,
        Event::InventoryChanged(InventoryChanged {
            entity,
            id,
            name: name.to_owned(),
            change,
        }),
    );
    bus::outbox::enqueue(tx, &envelope).await
}

/// Records `event_id` as applied; false if it already was (a redelivery), in which case nothing must change.
pub async fn claim_event(tx: &mut Tx<'_>, event_id: Uuid, subject: &str) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO processed_events (event_id, subject) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(event_id)
    .bind(subject)
    .execute(&mut **tx)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Forgets ledger entries older than any event the streams can still redeliver (they keep 7 days).
pub async fn prune_ledger(pool: &PgPool) -> sqlx::Result<u64> {
    sqlx::query("DELETE FROM processed_events WHERE processed_at < now() - interval '14 days'")
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
}

/// One line of the lab's activity: the latest state of a deployment, backup policy, drill or secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Activity {
    /// The app (`namespace/app`), backup policy or secret path.
    pub key: String,
    pub status: String,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    pub at: DateTime<Utc>,
}

pub async fn record_activity(
    tx: &mut Tx<'_>,
    envelope: &Envelope,
    kind: &str,
    key: &str,
    status: &str,
    detail: serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO activity (event_id, kind, subject_key, status, detail, occurred_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(envelope.id)
    .bind(kind)
    .bind(key)
    .bind(status)
    .bind(Json(detail))
    .bind(envelope.occurred_at)
    .execute(&mut **tx)
    .await
    .map(drop)
}

/// The latest activity per key of one kind (deploy, backup, drill, secret).
pub async fn latest_activity(
    db: impl sqlx::PgExecutor<'_>,
    kind: &str,
) -> sqlx::Result<Vec<Activity>> {
    let rows = sqlx::query(
        "SELECT DISTINCT ON (subject_key) subject_key, status, detail, occurred_at
         FROM activity WHERE kind = $1 ORDER BY subject_key, occurred_at DESC, id DESC",
    )
    .bind(kind)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Activity {
                key: row.try_get("subject_key")?,
                status: row.try_get("status")?,
                detail: row.try_get::<Json<_>, _>("detail")?.0,
                at: row.try_get("occurred_at")?,
            })
        })
        .collect()
}

/// Counts of `column` values in `table`, for the summary.
pub async fn count_by(
    db: impl sqlx::PgExecutor<'_>,
    table: Counted,
    column: CountColumn,
) -> sqlx::Result<BTreeMap<String, i64>> {
    let sql: &'static str = match (table, column) {
        (Counted::Nodes, CountColumn::Kind) => "SELECT kind, count(*) FROM nodes GROUP BY kind",
        (Counted::Nodes, CountColumn::Health) => {
            "SELECT health, count(*) FROM nodes GROUP BY health"
        }
        (Counted::Services, _) => "SELECT health, count(*) FROM services GROUP BY health",
    };
    let rows: Vec<(String, i64)> = sqlx::query_as(sql).fetch_all(db).await?;
    Ok(rows.into_iter().collect())
}

#[derive(Debug, Clone, Copy)]
pub enum Counted {
    Nodes,
    Services,
}

#[derive(Debug, Clone, Copy)]
pub enum CountColumn {
    Kind,
    Health,
}

/// Parses a name from an event; an invalid one is the publisher's defect, so the event is dead-lettered.
pub fn event_name(field: &str, raw: &str) -> Result<Name, String> {
    Name::parse(field, raw).map_err(|e| e.to_string())
}

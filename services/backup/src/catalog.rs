//! The catalog of backups in PostgreSQL. A row is `running` before the first byte leaves and `succeeded` only
//! after S3 completed the object, so no half backup is ever listed as good; every change of state queues its
//! `backup.v1.run.*` event in the same transaction (the outbox).

use std::io::Read;
use std::sync::Arc;

use bus::{BackupRun, Envelope, Event};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::format::KeyWrap;
use crate::pipeline::Digests;
use crate::s3::{self, Destination, UploadError, Uploaded};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The source name on every event the backup service publishes.
pub const SOURCE: &str = "backup";

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Upload(#[from] UploadError),
}

/// What is being backed up, for the catalog.
pub struct Run<'a> {
    pub policy: &'a str,
    pub source: &'a str,
}

/// A backup as the catalog holds it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Backup {
    pub id: Uuid,
    pub policy: String,
    /// postgres, vault, jetstream or folder.
    pub source: String,
    pub bucket: String,
    pub object_key: String,
    pub key_id: String,
    /// running, succeeded or failed.
    pub status: String,
    pub reason: Option<String>,
    pub attempt: i32,
    pub plaintext_sha256: Option<String>,
    pub plaintext_bytes: Option<i64>,
    pub stored_sha256: Option<String>,
    pub stored_bytes: Option<i64>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub verified_at: Option<DateTime<Utc>>,
}

impl Backup {
    /// The digests of a succeeded backup, None for any other.
    pub fn digests(&self) -> Option<Digests> {
        Some(Digests {
            plaintext_sha256: self.plaintext_sha256.clone()?,
            plaintext_bytes: u64::try_from(self.plaintext_bytes?).ok()?,
            stored_sha256: self.stored_sha256.clone()?,
            stored_bytes: u64::try_from(self.stored_bytes?).ok()?,
        })
    }
}

const COLUMNS: &str = "id, policy, source, bucket, object_key, key_id, status, reason, attempt, plaintext_sha256, \
     plaintext_bytes, stored_sha256, stored_bytes, started_at, finished_at, verified_at";

async fn announce(tx: &mut PgConnection, event: Event) -> sqlx::Result<()> {
    bus::outbox::enqueue(tx, &Envelope::new(SOURCE, event)).await
}

/// Where a new run's object goes.
pub struct NewRun<'a> {
    pub id: Uuid,
    pub policy: &'a str,
    pub source: &'a str,
    pub bucket: &'a str,
    pub object_key: &'a str,
    pub key_id: &'a str,
    pub attempt: i32,
}

/// Records a run as `running` and queues `backup.v1.run.started`.
pub async fn begin(pool: &PgPool, run: &NewRun<'_>) -> sqlx::Result<Uuid> {
    let id = run.id;
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO backups (id, policy, source, bucket, object_key, key_id, status, attempt)
         VALUES ($1, $2, $3, $4, $5, $6, 'running', $7)",
    )
    .bind(id)
    .bind(run.policy)
    .bind(run.source)
    .bind(run.bucket)
    .bind(run.object_key)
    .bind(run.key_id)
    .bind(run.attempt)
    .execute(&mut *tx)
    .await?;
    let event = Event::BackupRunStarted(BackupRun {
        policy: run.policy.to_owned(),
        run_id: id,
        source: run.source.to_owned(),
        bytes: None,
        reason: None,
    });
    announce(&mut tx, event).await?;
    tx.commit().await?;
    Ok(id)
}

/// Records a completed upload with its digests (and whether it was read back and checked), and queues
/// `backup.v1.run.succeeded`.
pub async fn succeed(
    pool: &PgPool,
    id: Uuid,
    digests: &Digests,
    verified: bool,
) -> sqlx::Result<Backup> {
    let mut tx = pool.begin().await?;
    let backup: Backup = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE backups SET status = 'succeeded', finished_at = now(), plaintext_sha256 = $2, plaintext_bytes = $3,
                stored_sha256 = $4, stored_bytes = $5, verified_at = CASE WHEN $6 THEN now() END
         WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(&digests.plaintext_sha256)
    .bind(i64::try_from(digests.plaintext_bytes).unwrap_or(i64::MAX))
    .bind(&digests.stored_sha256)
    .bind(i64::try_from(digests.stored_bytes).unwrap_or(i64::MAX))
    .bind(verified)
    .fetch_one(&mut *tx)
    .await?;
    let event = Event::BackupRunSucceeded(BackupRun {
        policy: backup.policy.clone(),
        run_id: id,
        source: backup.source.clone(),
        bytes: Some(digests.plaintext_bytes),
        reason: None,
    });
    announce(&mut tx, event).await?;
    tx.commit().await?;
    Ok(backup)
}

/// Records a failed run with its reason and queues `backup.v1.run.failed`.
pub async fn fail(pool: &PgPool, id: Uuid, reason: &str) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    let row: Option<(String, String)> = sqlx::query_as(
        "UPDATE backups SET status = 'failed', finished_at = now(), reason = $2
         WHERE id = $1 AND status = 'running' RETURNING policy, source",
    )
    .bind(id)
    .bind(reason)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((policy, source)) = row {
        let event = Event::BackupRunFailed(BackupRun {
            policy,
            run_id: id,
            source,
            bytes: None,
            reason: Some(reason.to_owned()),
        });
        announce(&mut tx, event).await?;
    }
    tx.commit().await
}

/// Records the run, uploads `source` sealed to `d`, and records the outcome.
pub async fn back_up<R: Read + Send + 'static>(
    pool: &PgPool,
    run: Run<'_>,
    d: &Destination<'_>,
    source: R,
    wrap: Arc<dyn KeyWrap>,
) -> Result<(Uuid, Uploaded), CatalogError> {
    let id = begin(
        pool,
        &NewRun {
            id: Uuid::now_v7(),
            policy: run.policy,
            source: run.source,
            bucket: d.bucket,
            object_key: d.key,
            key_id: wrap.key_id(),
            attempt: 1,
        },
    )
    .await?;
    match s3::upload(d, source, wrap, crate::format::DEFAULT_CHUNK_SIZE, 3).await {
        Ok(uploaded) => {
            succeed(pool, id, &uploaded.digests, false).await?;
            Ok((id, uploaded))
        }
        Err(e) => {
            fail(pool, id, &e.to_string()).await?;
            Err(e.into())
        }
    }
}

pub async fn get(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<Backup>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM backups WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Backups newest first, of one policy or all.
pub async fn list(pool: &PgPool, policy: Option<&str>, limit: i64) -> sqlx::Result<Vec<Backup>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM backups WHERE $1::text IS NULL OR policy = $1 ORDER BY started_at DESC, id DESC LIMIT $2"
    )))
    .bind(policy)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// The newest succeeded backup of a policy.
pub async fn latest_succeeded(pool: &PgPool, policy: &str) -> sqlx::Result<Option<Backup>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM backups WHERE policy = $1 AND status = 'succeeded' ORDER BY started_at DESC LIMIT 1"
    )))
    .bind(policy)
    .fetch_optional(pool)
    .await
}

/// When the policy's newest restore drill passed, if one ever did.
pub async fn latest_passed_drill(
    pool: &PgPool,
    policy: &str,
) -> sqlx::Result<Option<chrono::DateTime<chrono::Utc>>> {
    sqlx::query_scalar(
        "SELECT max(COALESCE(finished_at, started_at)) FROM drills WHERE policy = $1 AND status = 'passed'",
    )
    .bind(policy)
    .fetch_one(pool)
    .await
}

pub async fn mark_verified(pool: &PgPool, id: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE backups SET verified_at = now() WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .map(drop)
}

/// A restore or drill reading a backup; retention leaves the backup alone until [`Reading::done`].
pub struct Reading {
    id: Uuid,
    pool: PgPool,
}

/// Registers a reader of a succeeded backup; None when there is no such backup (any more).
pub async fn start_reading(
    pool: &PgPool,
    backup: Uuid,
    purpose: &str,
) -> sqlx::Result<Option<Reading>> {
    let id = Uuid::now_v7();
    let inserted = sqlx::query(
        "INSERT INTO backup_reads (id, backup_id, purpose)
         SELECT $1, id, $3 FROM backups WHERE id = $2 AND status = 'succeeded'",
    )
    .bind(id)
    .bind(backup)
    .bind(purpose)
    .execute(pool)
    .await?;
    Ok((inserted.rows_affected() == 1).then(|| Reading {
        id,
        pool: pool.clone(),
    }))
}

impl Reading {
    pub async fn done(self) {
        if let Err(e) = sqlx::query("DELETE FROM backup_reads WHERE id = $1")
            .bind(self.id)
            .execute(&self.pool)
            .await
        {
            tracing::warn!(error = %e, "forgetting a finished reader failed; the next start clears it");
        }
    }
}

/// At start: runs left `running` by a process that died are failed (with their event), their open multipart
/// uploads aborted, and readers of the dead process forgotten. Returns how many runs were recovered.
pub async fn recover(pool: &PgPool, client: &aws_sdk_s3::Client) -> Result<usize, CatalogError> {
    sqlx::query("DELETE FROM backup_reads")
        .execute(pool)
        .await?;
    sqlx::query(
        "UPDATE drills SET status = 'failed', finished_at = now(), reason = 'interrupted: the backup service stopped during the drill'
         WHERE status = 'running'",
    )
    .execute(pool)
    .await?;
    let interrupted: Vec<(Uuid, String, String)> =
        sqlx::query_as("SELECT id, bucket, object_key FROM backups WHERE status = 'running'")
            .fetch_all(pool)
            .await?;
    for (id, bucket, key) in &interrupted {
        s3::abort_uploads(client, bucket, key).await?;
        fail(
            pool,
            *id,
            "interrupted: the backup service stopped during the upload",
        )
        .await?;
        tracing::warn!(backup = %id, %bucket, %key, "an interrupted backup was failed and its upload aborted");
    }
    Ok(interrupted.len())
}

/// Deletes a backup that retention let go: the catalog row first (it stops being listed), then the object.
/// Returns false, deleting nothing, when a reader holds it.
pub async fn delete(
    pool: &PgPool,
    client: &aws_sdk_s3::Client,
    backup: &Backup,
) -> Result<bool, CatalogError> {
    let mut tx = pool.begin().await?;
    let deleted = sqlx::query("DELETE FROM backups WHERE id = $1")
        .bind(backup.id)
        .execute(&mut *tx)
        .await;
    match deleted {
        Ok(_) => {}
        Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    client
        .delete_object()
        .bucket(&backup.bucket)
        .key(&backup.object_key)
        .send()
        .await
        .map_err(|e| UploadError::S3 {
            operation: "delete object",
            bucket: backup.bucket.clone(),
            key: backup.object_key.clone(),
            reason: aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
        })?;
    tx.commit().await?;
    Ok(true)
}

//! The catalog of backups in PostgreSQL, and recovery after a crash: no half backup is ever listed as good.

use std::io::Read;
use std::sync::Arc;

use sqlx::PgPool;
use uuid::Uuid;

use crate::format::KeyWrap;
use crate::s3::{self, Destination, UploadError, Uploaded};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

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

/// Records the run as `running`, uploads, then records `succeeded` with the digests, or `failed` with the reason.
pub async fn back_up<R: Read + Send + 'static>(
    pool: &PgPool,
    run: Run<'_>,
    d: &Destination<'_>,
    source: R,
    wrap: Arc<dyn KeyWrap>,
) -> Result<(Uuid, Uploaded), CatalogError> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO backups (id, policy, source, bucket, object_key, key_id, status) VALUES ($1, $2, $3, $4, $5, $6, 'running')",
    )
    .bind(id)
    .bind(run.policy)
    .bind(run.source)
    .bind(d.bucket)
    .bind(d.key)
    .bind(wrap.key_id())
    .execute(pool)
    .await?;
    match s3::upload(d, source, wrap, crate::format::DEFAULT_CHUNK_SIZE, 3).await {
        Ok(uploaded) => {
            let g = &uploaded.digests;
            sqlx::query(
                "UPDATE backups SET status = 'succeeded', finished_at = now(), plaintext_sha256 = $2, plaintext_bytes = $3,
                        stored_sha256 = $4, stored_bytes = $5 WHERE id = $1",
            )
            .bind(id)
            .bind(&g.plaintext_sha256)
            .bind(i64::try_from(g.plaintext_bytes).unwrap_or(i64::MAX))
            .bind(&g.stored_sha256)
            .bind(i64::try_from(g.stored_bytes).unwrap_or(i64::MAX))
            .execute(pool)
            .await?;
            Ok((id, uploaded))
        }
        Err(e) => {
            sqlx::query("UPDATE backups SET status = 'failed', finished_at = now(), reason = $2 WHERE id = $1")
                .bind(id)
                .bind(e.to_string())
                .execute(pool)
                .await?;
            Err(e.into())
        }
    }
}

/// At start: runs left `running` by a process that died are failed, and their open multipart uploads aborted.
/// Returns how many runs were recovered.
pub async fn recover(pool: &PgPool, client: &aws_sdk_s3::Client) -> Result<usize, CatalogError> {
    let interrupted: Vec<(Uuid, String, String)> =
        sqlx::query_as("SELECT id, bucket, object_key FROM backups WHERE status = 'running'")
            .fetch_all(pool)
            .await?;
    for (id, bucket, key) in &interrupted {
        let open = client
            .list_multipart_uploads()
            .bucket(bucket)
            .prefix(key)
            .send()
            .await
            .map_err(|e| UploadError::S3 {
                operation: "list multipart uploads",
                bucket: bucket.clone(),
                key: key.clone(),
                reason: aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
            })?;
        for upload in open
            .uploads()
            .iter()
            .filter(|u| u.key() == Some(key.as_str()))
        {
            let upload_id = upload.upload_id().unwrap_or_default();
            if let Err(e) = client
                .abort_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(upload_id)
                .send()
                .await
            {
                tracing::warn!(%bucket, %key, error = %aws_sdk_s3::error::DisplayErrorContext(e), "aborting an interrupted upload failed");
            }
        }
        sqlx::query("UPDATE backups SET status = 'failed', finished_at = now(), reason = 'interrupted: the backup service stopped during the upload' WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await?;
        tracing::warn!(backup = %id, %bucket, %key, "an interrupted backup was failed and its upload aborted");
    }
    Ok(interrupted.len())
}

//! The engine behind the API and the scheduler: runs with retries, verification, restores, drills and
//! retention, for the policies in the config. One run per policy at a time.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bus::{BackupDrill, Envelope, Event};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use service_kit::{ApiError, Shutdown};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::Notify;
use tracing::Instrument;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::catalog::{self, Backup, NewRun};
use crate::format::{DEFAULT_CHUNK_SIZE, KeyWrap};
use crate::metrics::BackupMetrics;
use crate::pipeline::Digests;
use crate::policy::{Check, Policy};
use crate::retention::{self, SourceKind};
use crate::s3::{self, Destination};
use crate::sources::{Source, SourceSettings};
use crate::{channel, postgres};

mod drill;
mod restore;

/// zstd's default level: a good balance for dumps.
const LEVEL: i32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no backup policy {0:?} (see `homestation backup policies`)")]
    UnknownPolicy(String),
    #[error("policy {policy} is already running (run {run})")]
    Busy { policy: String, run: Uuid },
    #[error("no backup {0}")]
    NotFound(Uuid),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    BadTarget(String),
    #[error("{0}")]
    Failed(String),
    #[error("catalog database: {0}")]
    Db(#[from] sqlx::Error),
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::UnknownPolicy(_) | EngineError::NotFound(_) => {
                ApiError::NotFound(e.to_string())
            }
            EngineError::Busy { .. } | EngineError::Conflict(_) => {
                ApiError::Conflict(e.to_string())
            }
            EngineError::BadTarget(m) => ApiError::BadRequest {
                field: Some("to".into()),
                message: m,
            },
            EngineError::Failed(m) => ApiError::Unavailable(m),
            EngineError::Db(e) => ApiError::internal(e),
        }
    }
}

type Result<T, E = EngineError> = std::result::Result<T, E>;

/// A policy with the source built from it.
pub struct Entry {
    pub policy: Policy,
    pub source: Arc<dyn Source>,
}

/// Where backups go and how they are sealed.
pub struct Store {
    pub s3: aws_sdk_s3::Client,
    pub part_size: usize,
    pub wrap: Arc<dyn KeyWrap>,
}

/// A run in progress: which try, and how many source bytes have gone through.
struct Running {
    run: Uuid,
    bytes: Arc<AtomicU64>,
}

pub struct Engine {
    pub pool: PgPool,
    pub s3: aws_sdk_s3::Client,
    pub part_size: usize,
    pub wrap: Arc<dyn KeyWrap>,
    pub policies: BTreeMap<String, Entry>,
    pub metrics: BackupMetrics,
    pub outbox: Arc<Notify>,
    /// Where drills restore folders, and restores stage before they move into place.
    pub scratch: PathBuf,
    pub shutdown: Shutdown,
    running: Mutex<HashMap<String, Running>>,
}

/// Counts what the source has produced, for progress.
struct Counting<R> {
    inner: R,
    bytes: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Where a restore goes.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum RestoreTarget {
    /// A database on the policy's PostgreSQL server; by default a new one, `<database>_restored_<id>`.
    Database { name: Option<String> },
    /// A folder on the backup service's host: a folder backup is extracted, any other is written as one file.
    Folder {
        #[schema(value_type = String)]
        path: PathBuf,
    },
    /// The policy's Vault, from its raft snapshot (replaces all of Vault's data).
    Vault,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Restored {
    pub backup_id: Uuid,
    /// Where the data went: a database name, a folder, or the Vault address.
    pub target: String,
    pub bytes: u64,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Verified {
    pub backup_id: Uuid,
    pub verified: bool,
    /// Why verification failed.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CheckResult {
    pub check: Check,
    pub passed: bool,
    /// What was found (a count, the missing files, a size).
    pub found: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct DrillRecord {
    pub id: Uuid,
    pub policy: String,
    pub backup_id: Option<Uuid>,
    /// running, passed or failed.
    pub status: String,
    pub reason: Option<String>,
    #[schema(value_type = Vec<CheckResult>)]
    pub checks: sqlx::types::Json<Vec<CheckResult>>,
    pub duration_ms: Option<i64>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Pruned {
    pub kept: usize,
    pub deleted: Vec<Uuid>,
    /// Backups retention let go that a restore or drill was reading; the next pass deletes them.
    pub skipped: Vec<Uuid>,
}

fn io_failed(what: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::Failed(format!("{what}: {e}"))
}

impl Engine {
    pub fn new(
        pool: PgPool,
        store: Store,
        policies: Vec<Entry>,
        metrics: BackupMetrics,
        outbox: Arc<Notify>,
        scratch: PathBuf,
        shutdown: Shutdown,
    ) -> Self {
        Self {
            pool,
            s3: store.s3,
            part_size: store.part_size,
            wrap: store.wrap,
            policies: policies
                .into_iter()
                .map(|e| (e.policy.name.as_str().to_owned(), e))
                .collect(),
            metrics,
            outbox,
            scratch,
            shutdown,
            running: Mutex::new(HashMap::new()),
        }
    }

    pub fn entry(&self, policy: &str) -> Result<&Entry> {
        self.policies
            .get(policy)
            .ok_or_else(|| EngineError::UnknownPolicy(policy.to_owned()))
    }

    /// The run in progress of a policy and the source bytes it has read so far.
    pub fn progress(&self, policy: &str) -> Option<(Uuid, u64)> {
        let running = self.running.lock().expect("running lock");
        running
            .get(policy)
            .map(|r| (r.run, r.bytes.load(Ordering::Relaxed)))
    }

    /// Sets the metrics from the catalog, so last-success times survive a restart.
    pub async fn load_metrics(&self) -> Result<()> {
        for name in self.policies.keys() {
            self.metrics.known(name);
            if let Some(b) = catalog::latest_succeeded(&self.pool, name).await? {
                let at = b.finished_at.unwrap_or(b.started_at);
                self.metrics
                    .restore_last_success(name, at, b.plaintext_bytes.unwrap_or(0) as u64);
            }
            if let Some(at) = catalog::latest_passed_drill(&self.pool, name).await? {
                self.metrics.restore_last_drill(name, at);
            }
        }
        Ok(())
    }

    async fn begin(&self, entry: &Entry, run: Uuid, attempt: i32) -> sqlx::Result<String> {
        let key = entry.policy.object_key(run, Utc::now());
        catalog::begin(
            &self.pool,
            &NewRun {
                id: run,
                policy: entry.policy.name.as_str(),
                source: entry.policy.kind.as_str(),
                bucket: &entry.policy.bucket,
                object_key: &key,
                key_id: self.wrap.key_id(),
                attempt,
            },
        )
        .await?;
        self.outbox.notify_one();
        Ok(key)
    }

    /// Starts a run of `policy` in the background, with its retries; returns the first try's id.
    pub async fn start_run(self: &Arc<Self>, policy: &str) -> Result<Uuid> {
        let entry = self.entry(policy)?;
        let bytes = Arc::new(AtomicU64::new(0));
        let run = Uuid::now_v7();
        {
            let mut running = self.running.lock().expect("running lock");
            if let Some(r) = running.get(policy) {
                return Err(EngineError::Busy {
                    policy: policy.to_owned(),
                    run: r.run,
                });
            }
            running.insert(
                policy.to_owned(),
                Running {
                    run,
                    bytes: bytes.clone(),
                },
            );
        }
        let key = match self.begin(entry, run, 1).await {
            Ok(key) => key,
            Err(e) => {
                self.running.lock().expect("running lock").remove(policy);
                return Err(e.into());
            }
        };
        let engine = self.clone();
        let name = policy.to_owned();
        // The run goes on after the request is answered, in the request's trace (or the scheduler's), so
        // its events (`backup.v1.run.succeeded`, …) carry that trace to inventory.
        let span = tracing::info_span!("backup.run", policy = %name, %run);
        tokio::spawn(
            async move {
                engine.drive(&name, run, key, bytes).await;
                engine.running.lock().expect("running lock").remove(&name);
            }
            .instrument(span),
        );
        Ok(run)
    }

    /// Tries, and tries again per the policy, until a try succeeds or the retries are spent.
    async fn drive(&self, name: &str, mut run: Uuid, mut key: String, bytes: Arc<AtomicU64>) {
        let Ok(entry) = self.entry(name) else { return };
        let policy = &entry.policy;
        let mut attempt = 1;
        loop {
            let started = Instant::now();
            match self.attempt(entry, run, &key, bytes.clone()).await {
                Ok(backup) => {
                    let at = backup.finished_at.unwrap_or_else(Utc::now);
                    let size = backup.plaintext_bytes.unwrap_or(0) as u64;
                    self.metrics
                        .succeeded(name, at, size, started.elapsed().as_secs_f64());
                    tracing::info!(policy = name, %run, bytes = size, elapsed = ?started.elapsed(), "backup succeeded");
                    if let Err(e) = self.prune(name).await {
                        tracing::warn!(policy = name, error = %e, "retention after the run failed; the next run tries again");
                    }
                    return;
                }
                Err(reason) => {
                    self.metrics.failed(name);
                    tracing::warn!(policy = name, %run, attempt, %reason, "backup failed");
                    if let Err(e) = catalog::fail(&self.pool, run, &reason).await {
                        tracing::error!(policy = name, %run, error = %e, "recording the failure failed; the next start records it");
                    }
                    self.outbox.notify_one();
                }
            }
            if attempt > policy.retries {
                return;
            }
            let delay = policy.retry_delay * 2u32.saturating_pow(attempt - 1);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.shutdown.wait() => return,
            }
            attempt += 1;
            run = Uuid::now_v7();
            bytes.store(0, Ordering::Relaxed);
            if let Some(r) = self.running.lock().expect("running lock").get_mut(name) {
                r.run = run;
            }
            key = match self.begin(entry, run, attempt as i32).await {
                Ok(key) => key,
                Err(e) => {
                    tracing::error!(policy = name, error = %e, "starting a retry failed");
                    return;
                }
            };
        }
    }

    /// One try: source → pipeline → S3, then (per policy) a full read-back, and only then `succeeded`.
    async fn attempt(
        &self,
        entry: &Entry,
        run: Uuid,
        key: &str,
        bytes: Arc<AtomicU64>,
    ) -> Result<Backup, String> {
        let policy = &entry.policy;
        let stream = entry.source.open().await.map_err(|e| e.to_string())?;
        let destination = Destination {
            client: &self.s3,
            bucket: &policy.bucket,
            key,
            part_size: self.part_size,
        };
        let counted = Counting {
            inner: stream,
            bytes,
        };
        let uploaded = s3::upload(
            &destination,
            counted,
            self.wrap.clone(),
            DEFAULT_CHUNK_SIZE,
            LEVEL,
        )
        .await
        .map_err(|e| e.to_string())?;
        let verified = if policy.verify {
            if let Err(e) = self
                .check_object(&policy.bucket, key, &uploaded.digests)
                .await
            {
                let _ = self
                    .s3
                    .delete_object()
                    .bucket(&policy.bucket)
                    .key(key)
                    .send()
                    .await;
                return Err(format!("the stored object did not verify: {e}"));
            }
            true
        } else {
            false
        };
        let backup = catalog::succeed(&self.pool, run, &uploaded.digests, verified)
            .await
            .map_err(|e| format!("recording the backup: {e}"))?;
        self.outbox.notify_one();
        Ok(backup)
    }

    /// Streams a stored backup through every check into `sink`; fails when a chunk or a digest does not match.
    async fn read_backup<W: io::Write + Send + 'static>(
        &self,
        backup: &Backup,
        digests: &Digests,
        sink: W,
    ) -> Result<Digests, s3::UploadError> {
        s3::restore(
            &self.s3,
            &backup.bucket,
            &backup.object_key,
            self.wrap.clone(),
            digests.clone(),
            sink,
        )
        .await
    }

    /// Downloads, decrypts and checks both digests, writing the plaintext nowhere.
    async fn check_object(
        &self,
        bucket: &str,
        key: &str,
        expected: &Digests,
    ) -> Result<Digests, String> {
        s3::restore(
            &self.s3,
            bucket,
            key,
            self.wrap.clone(),
            expected.clone(),
            io::sink(),
        )
        .await
        .map_err(|e| e.to_string())
    }

    async fn succeeded(&self, id: Uuid) -> Result<(Backup, Digests)> {
        let backup = catalog::get(&self.pool, id)
            .await?
            .ok_or(EngineError::NotFound(id))?;
        match backup.digests() {
            Some(d) if backup.status == "succeeded" => Ok((backup, d)),
            _ => Err(EngineError::Conflict(format!(
                "backup {id} is {}, not a stored backup",
                backup.status
            ))),
        }
    }

    async fn reading(&self, id: Uuid, purpose: &str) -> Result<catalog::Reading> {
        catalog::start_reading(&self.pool, id, purpose)
            .await?
            .ok_or_else(|| EngineError::Conflict(format!("backup {id} was deleted by retention")))
    }

    /// Reads the whole object back and checks it against the catalog; a pass marks the backup verified.
    pub async fn verify(&self, id: Uuid) -> Result<Verified> {
        let (backup, digests) = self.succeeded(id).await?;
        let reading = self.reading(id, "verify").await?;
        let checked = self
            .check_object(&backup.bucket, &backup.object_key, &digests)
            .await;
        reading.done().await;
        if checked.is_ok() {
            catalog::mark_verified(&self.pool, id).await?;
        }
        tracing::info!(backup = %id, ok = checked.is_ok(), "backup verified");
        Ok(Verified {
            backup_id: id,
            verified: checked.is_ok(),
            reason: checked.err(),
        })
    }

    /// Applies the policy's retention to its stored backups: deletes what no rule keeps, unless a reader holds it.
    pub async fn prune(&self, policy: &str) -> Result<Pruned> {
        let entry = self.entry(policy)?;
        let stored: Vec<Backup> = catalog::list(&self.pool, Some(policy), i64::MAX)
            .await?
            .into_iter()
            .filter(|b| b.status == "succeeded")
            .collect();
        let in_use: Vec<(Uuid,)> = sqlx::query_as("SELECT DISTINCT backup_id FROM backup_reads")
            .fetch_all(&self.pool)
            .await?;
        let history: Vec<retention::Backup> = stored
            .iter()
            .map(|b| retention::Backup {
                id: b.id.to_string(),
                taken_at: b.started_at,
                verified: b.verified_at.is_some(),
                in_use: in_use.iter().any(|(id,)| *id == b.id),
            })
            .collect();
        let plan = retention::plan(&entry.policy.retention, &history, Utc::now());
        let mut pruned = Pruned {
            kept: plan.keep.len(),
            ..Default::default()
        };
        for id in &plan.delete {
            let Some(backup) = stored.iter().find(|b| b.id.to_string() == *id) else {
                continue;
            };
            match catalog::delete(&self.pool, &self.s3, backup).await {
                Ok(true) => pruned.deleted.push(backup.id),
                Ok(false) => pruned.skipped.push(backup.id),
                Err(e) => return Err(EngineError::Failed(e.to_string())),
            }
        }
        if !pruned.deleted.is_empty() {
            tracing::info!(
                policy,
                deleted = pruned.deleted.len(),
                kept = pruned.kept,
                "retention deleted old backups"
            );
        }
        Ok(pruned)
    }

    /// Starts each policy's runs and drills when their schedules say, until shutdown.
    pub async fn schedule(self: Arc<Self>) -> Result<(), std::convert::Infallible> {
        #[derive(Clone, Copy)]
        enum Job {
            Run,
            Drill,
        }
        let mut jobs = Vec::new();
        for (name, entry) in &self.policies {
            if let Some(s) = &entry.policy.schedule {
                jobs.push(((name.clone(), Job::Run), s.clone()));
            }
            if let Some(d) = &entry.policy.drill {
                jobs.push(((name.clone(), Job::Drill), d.schedule.clone()));
            }
        }
        let engine = self.clone();
        service_kit::cron::run_schedules(jobs, self.shutdown.clone(), move |(name, job)| {
            let engine = engine.clone();
            let (name, job) = (name.clone(), *job);
            async move {
                match job {
                    Job::Run => match engine.start_run(&name).await {
                        Ok(run) => tracing::info!(policy = %name, %run, "scheduled backup started"),
                        Err(e) => {
                            tracing::warn!(policy = %name, error = %e, "scheduled backup did not start")
                        }
                    },
                    Job::Drill => {
                        tokio::spawn(async move {
                            if let Err(e) = engine.drill(&name).await {
                                tracing::warn!(policy = %name, error = %e, "scheduled drill did not run");
                            }
                        });
                    }
                }
            }
        })
        .await
    }
}

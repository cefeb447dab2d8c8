//! Following Applications as Argo CD reports them: each sync and health change moves its deployment along
//! (`requested → synced → healthy`, or `degraded`), is published as `deploy.v1.*`, and a deployment that
//! turns Degraded, or is not Healthy within its deadline, is rolled back once to the last revision that was
//! healthy. Auto-sync would undo a rollback at once, so it is suspended first, and that is reported.

use std::sync::Arc;
use std::time::Duration;

use bus::{Envelope, Event};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use serde_json::json;
use service_kit::Shutdown;
use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::argo::Application;
use crate::sync::{self, FIELD_MANAGER};

pub const SOURCE: &str = "deployer";

pub mod names {
    pub const COMMIT_TO_LIVE: &str = "homestation_deploy_commit_to_live_seconds";
    pub const DEPLOYMENTS: &str = "homestation_deploy_deployments";
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelSet)]
pub struct OutcomeLabel {
    /// healthy, degraded or rolled_back
    pub outcome: &'static str,
}

#[derive(Clone)]
pub struct DeployMetrics {
    pub commit_to_live: Histogram,
    pub deployments: Family<OutcomeLabel, Counter>,
}

impl DeployMetrics {
    pub fn new(metrics: &service_kit::metrics::Metrics) -> Self {
        let this = Self {
            commit_to_live: Histogram::new([
                5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0,
            ]),
            deployments: Family::default(),
        };
        metrics.register(
            names::COMMIT_TO_LIVE,
            "From a commit (or its webhook) to its app being Healthy",
            this.commit_to_live.clone(),
        );
        metrics.register(
            names::DEPLOYMENTS,
            "Deployments, by how they ended",
            this.deployments.clone(),
        );
        // At 0 from the start, so `increase()` sees the first degraded or rolled-back deployment.
        for outcome in ["healthy", "degraded", "rolled_back"] {
            drop(this.deployments.get_or_create(&OutcomeLabel { outcome }));
        }
        this
    }
}

pub struct Watcher {
    pub pool: PgPool,
    pub applications: Api<Application>,
    pub syncer: sync::Syncer,
    pub outbox: Arc<Notify>,
    pub metrics: DeployMetrics,
    /// How long a synced app has to become Healthy.
    pub health_deadline: Duration,
}

#[derive(Debug, sqlx::FromRow)]
struct Open {
    id: Uuid,
    status: String,
    committed_at: Option<DateTime<Utc>>,
    webhook_at: Option<DateTime<Utc>>,
    synced_at: Option<DateTime<Utc>>,
    rollback_of: Option<Uuid>,
}

impl Watcher {
    async fn announce(&self, tx: &mut sqlx::PgConnection, event: Event) -> sqlx::Result<()> {
        bus::outbox::enqueue(tx, &Envelope::new(SOURCE, event)).await
    }

    fn event(app: &Application, revision: &str, reason: Option<String>) -> bus::Deployment {
        bus::Deployment {
            app: app.name().to_owned(),
            namespace: app.namespace().to_owned(),
            revision: revision.to_owned(),
            reason,
        }
    }

    /// The newest deployment of this app and revision still in flight; a sync nobody asked the deployer
    /// for gets one now.
    async fn open_deployment(&self, app: &Application, revision: &str) -> sqlx::Result<Open> {
        let found: Option<Open> = sqlx::query_as(
            "SELECT id, status, committed_at, webhook_at, synced_at, rollback_of FROM deployments
             WHERE namespace = $1 AND app = $2 AND commit = $3 ORDER BY webhook_at DESC NULLS LAST, id DESC LIMIT 1",
        )
        .bind(app.namespace())
        .bind(app.name())
        .bind(revision)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(open) = found {
            return Ok(open);
        }
        sqlx::query_as(
            "INSERT INTO deployments (id, namespace, app, commit, status) VALUES ($1, $2, $3, $4, 'requested')
             RETURNING id, status, committed_at, webhook_at, synced_at, rollback_of",
        )
        .bind(Uuid::now_v7())
        .bind(app.namespace())
        .bind(app.name())
        .bind(revision)
        .fetch_one(&self.pool)
        .await
    }

    /// Moves the app's deployment along from what Argo CD reports now.
    pub async fn observe(&self, app: &Application) -> Result<(), String> {
        let Some(status) = &app.status else {
            return Ok(());
        };
        let (Some(sync), Some(health)) = (&status.sync, &status.health) else {
            return Ok(());
        };
        let Some(revision) = sync.revision.as_deref() else {
            return Ok(());
        };
        if sync.status != "Synced" {
            return Ok(());
        }
        let d = self
            .open_deployment(app, revision)
            .await
            .map_err(|e| e.to_string())?;
        let mut tx = self.pool.begin().await.map_err(|e| e.to_string())?;
        let db = |e: sqlx::Error| e.to_string();
        if d.synced_at.is_none() && d.status == "requested" {
            sqlx::query(
                "UPDATE deployments SET status = 'synced', synced_at = now() WHERE id = $1",
            )
            .bind(d.id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            self.announce(
                &mut tx,
                Event::DeploySynced(Self::event(app, revision, None)),
            )
            .await
            .map_err(db)?;
        }
        let mut roll_back = None;
        match (health.status.as_str(), d.status.as_str()) {
            ("Healthy", "requested" | "synced") => {
                sqlx::query(
                    "UPDATE deployments SET status = 'healthy', healthy_at = now() WHERE id = $1",
                )
                .bind(d.id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
                self.announce(
                    &mut tx,
                    Event::DeployHealthy(Self::event(app, revision, None)),
                )
                .await
                .map_err(db)?;
                if let Some(start) = d.committed_at.or(d.webhook_at) {
                    let seconds = (Utc::now() - start).num_milliseconds() as f64 / 1000.0;
                    self.metrics.commit_to_live.observe(seconds.max(0.0));
                }
                self.count("healthy");
            }
            ("Degraded", "requested" | "synced") => {
                let reason = format!(
                    "Degraded after the sync of {revision}: {}",
                    health.message.as_deref().unwrap_or("no message")
                );
                sqlx::query(
                    "UPDATE deployments SET status = 'degraded', reason = $2 WHERE id = $1",
                )
                .bind(d.id)
                .bind(&reason)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
                self.announce(
                    &mut tx,
                    Event::DeployDegraded(Self::event(app, revision, Some(reason.clone()))),
                )
                .await
                .map_err(db)?;
                self.count("degraded");
                if d.rollback_of.is_none() {
                    roll_back = Some(reason);
                }
            }
            _ => {}
        }
        tx.commit().await.map_err(|e| e.to_string())?;
        self.outbox.notify_one();
        if let Some(reason) = roll_back {
            self.roll_back(app, d.id, revision, &reason).await?;
        }
        Ok(())
    }

    fn count(&self, outcome: &'static str) {
        self.metrics
            .deployments
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// Syncs the app back to the newest revision that was Healthy before `bad`, once.
    pub async fn roll_back(
        &self,
        app: &Application,
        bad: Uuid,
        revision: &str,
        why: &str,
    ) -> Result<(), String> {
        let previous: Option<String> = sqlx::query_scalar(
            "SELECT commit FROM deployments WHERE namespace = $1 AND app = $2 AND status = 'healthy' AND commit <> $3
             ORDER BY healthy_at DESC LIMIT 1",
        )
        .bind(app.namespace())
        .bind(app.name())
        .bind(revision)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| e.to_string())?;
        let history = app
            .status
            .as_ref()
            .map(|s| s.history.as_slice())
            .unwrap_or_default();
        let Some(target) = previous.filter(|p| {
            history
                .iter()
                .any(|h| h.revision.as_deref() == Some(p.as_str()))
        }) else {
            let reason =
                format!("{why}; no earlier healthy revision in Argo CD's history to roll back to");
            sqlx::query("UPDATE deployments SET reason = $2 WHERE id = $1")
                .bind(bad)
                .bind(&reason)
                .execute(&self.pool)
                .await
                .map_err(|e| e.to_string())?;
            tracing::warn!(app = app.name(), %reason, "not rolled back");
            return Ok(());
        };
        let mut reason = format!("{why}; rolled back to {target}");
        if app.auto_sync() {
            // Argo CD refuses a rollback while auto-sync is on, and auto-sync would re-deploy the bad commit.
            self.applications
                .patch(
                    app.name(),
                    &PatchParams {
                        field_manager: Some(FIELD_MANAGER.into()),
                        ..Default::default()
                    },
                    &Patch::Merge(&json!({ "spec": { "syncPolicy": { "automated": null } } })),
                )
                .await
                .map_err(|e| format!("suspending auto-sync: {e}"))?;
            reason.push_str("; auto-sync is suspended until someone turns it back on");
        }
        self.syncer
            .sync(app.name(), &target, &format!("HomeStation rollback: {why}"))
            .await
            .map_err(|e| format!("writing the rollback: {e}"))?;
        let mut tx = self.pool.begin().await.map_err(|e| e.to_string())?;
        let db = |e: sqlx::Error| e.to_string();
        sqlx::query("UPDATE deployments SET status = 'rolled_back', reason = $2 WHERE id = $1")
            .bind(bad)
            .bind(&reason)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query(
            "INSERT INTO deployments (id, namespace, app, commit, status, sync_requested_at, rollback_of, reason)
             VALUES ($1, $2, $3, $4, 'requested', now(), $5, 'rollback')",
        )
        .bind(Uuid::now_v7())
        .bind(app.namespace())
        .bind(app.name())
        .bind(&target)
        .bind(bad)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        self.announce(
            &mut tx,
            Event::DeployRolledBack(Self::event(app, revision, Some(reason.clone()))),
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        self.outbox.notify_one();
        self.count("rolled_back");
        tracing::warn!(app = app.name(), %reason, "deployment rolled back");
        Ok(())
    }

    /// Rolls back deployments synced longer than the deadline ago and still not Healthy; checks every 5 s.
    pub async fn check_deadlines(
        self: Arc<Self>,
        shutdown: Shutdown,
    ) -> Result<(), std::convert::Infallible> {
        loop {
            tokio::select! {
                _ = shutdown.wait() => return Ok(()),
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
            if let Err(e) = self.deadlines_passed().await {
                tracing::warn!(error = %e, "checking health deadlines failed");
            }
        }
    }

    /// One pass of [`Watcher::check_deadlines`].
    pub async fn deadlines_passed(&self) -> Result<usize, String> {
        let late: Vec<(Uuid, String, String)> = sqlx::query_as(
            "SELECT id, app, commit FROM deployments
             WHERE status = 'synced' AND rollback_of IS NULL AND synced_at < now() - make_interval(secs => $1)",
        )
        .bind(self.health_deadline.as_secs_f64())
        .fetch_all(&self.pool)
        .await
        .map_err(|e| e.to_string())?;
        for (id, name, commit) in &late {
            let app = self
                .applications
                .get(name)
                .await
                .map_err(|e| format!("reading {name}: {e}"))?;
            let why = format!(
                "not Healthy {} s after the sync of {commit}",
                self.health_deadline.as_secs()
            );
            sqlx::query("UPDATE deployments SET status = 'degraded', reason = $2 WHERE id = $1")
                .bind(id)
                .bind(&why)
                .execute(&self.pool)
                .await
                .map_err(|e| e.to_string())?;
            self.roll_back(&app, *id, commit, &why).await?;
        }
        Ok(late.len())
    }

    /// Watches every Application until shutdown; a broken watch resumes (kube-runtime's watcher re-lists or
    /// resumes from its resource version, with backoff).
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) -> Result<(), std::convert::Infallible> {
        let stream = watcher(self.applications.clone(), watcher::Config::default())
            .default_backoff()
            .applied_objects();
        futures_util::pin_mut!(stream);
        loop {
            tokio::select! {
                _ = shutdown.wait() => return Ok(()),
                next = stream.next() => match next {
                    Some(Ok(app)) => {
                        if let Err(e) = self.observe(&app).await {
                            tracing::warn!(app = app.name(), error = %e, "recording an Application change failed");
                        }
                    }
                    Some(Err(e)) => tracing::warn!(error = %e, "watching Applications failed; resuming"),
                    None => return Ok(()),
                }
            }
        }
    }
}

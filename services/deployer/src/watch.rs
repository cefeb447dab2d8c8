//! Following Applications as Argo CD reports them: each sync and health change moves its deployment along
//! (`requested → synced → healthy`, or `degraded`), is published as `deploy.v1.*`, and a deployment that
//! turns Degraded, or is not Healthy within its deadline, is rolled back once to the last revision that was
//! healthy. Auto-sync would undo a rollback at once, so it is suspended first, and that is reported.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use serde_json::json;
use service_kit::Shutdown;
use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::Error;
use crate::argo::Application;
use crate::domain::{Deployment, DeploymentStatus};
use crate::events;
use crate::metrics::DeployMetrics;
use crate::store::{self, NewDeployment};
use crate::sync::{self, FIELD_MANAGER};

pub struct Watcher {
    pub pool: PgPool,
    pub applications: Api<Application>,
    pub syncer: sync::Syncer,
    pub outbox: Arc<Notify>,
    pub metrics: DeployMetrics,
    /// How long a synced app has to become Healthy.
    pub health_deadline: Duration,
}

impl Watcher {
    /// The newest deployment of this app and revision; a sync nobody asked the deployer for gets one now.
    async fn deployment_of(&self, app: &Application, revision: &str) -> Result<Deployment, Error> {
        if let Some(found) =
            store::newest(&self.pool, app.namespace(), app.name(), revision).await?
        {
            return Ok(found);
        }
        let new = NewDeployment {
            namespace: app.namespace(),
            app: app.name(),
            commit: revision,
            ..Default::default()
        };
        Ok(store::insert(&self.pool, &new).await?)
    }

    /// Moves the app's deployment along from what Argo CD reports now.
    pub async fn observe(&self, app: &Application) -> Result<(), Error> {
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
        let d = self.deployment_of(app, revision).await?;
        let mut tx = self.pool.begin().await?;
        if d.synced_at.is_none() && d.status == DeploymentStatus::Requested {
            let event = events::deployment(DeploymentStatus::Synced, app, revision, None);
            store::move_to(&mut tx, d.id, DeploymentStatus::Synced, None, event).await?;
        }
        let mut roll_back = None;
        if d.status.in_flight() {
            match health.status.as_str() {
                "Healthy" => {
                    let event = events::deployment(DeploymentStatus::Healthy, app, revision, None);
                    store::move_to(&mut tx, d.id, DeploymentStatus::Healthy, None, event).await?;
                    if let Some(start) = d.committed_at.or(d.webhook_at) {
                        let seconds = (Utc::now() - start).num_milliseconds() as f64 / 1000.0;
                        self.metrics.live_after(seconds);
                    }
                    self.metrics.ended(DeploymentStatus::Healthy);
                }
                "Degraded" => {
                    let reason = format!(
                        "Degraded after the sync of {revision}: {}",
                        health.message.as_deref().unwrap_or("no message")
                    );
                    let event = events::deployment(
                        DeploymentStatus::Degraded,
                        app,
                        revision,
                        Some(&reason),
                    );
                    store::move_to(
                        &mut tx,
                        d.id,
                        DeploymentStatus::Degraded,
                        Some(&reason),
                        event,
                    )
                    .await?;
                    self.metrics.ended(DeploymentStatus::Degraded);
                    if d.rollback_of.is_none() {
                        roll_back = Some(reason);
                    }
                }
                _ => {}
            }
        }
        tx.commit().await?;
        self.outbox.notify_one();
        if let Some(reason) = roll_back {
            self.roll_back(app, d.id, revision, &reason).await?;
        }
        Ok(())
    }

    /// Syncs the app back to the newest revision that was Healthy before `bad`, once.
    pub async fn roll_back(
        &self,
        app: &Application,
        bad: Uuid,
        revision: &str,
        why: &str,
    ) -> Result<(), Error> {
        let previous =
            store::last_healthy_other_than(&self.pool, app.namespace(), app.name(), revision)
                .await?;
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
            store::set_reason(&self.pool, bad, &reason).await?;
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
                .map_err(|source| Error::Argo {
                    what: "suspending auto-sync".into(),
                    source,
                })?;
            reason.push_str("; auto-sync is suspended until someone turns it back on");
        }
        self.syncer
            .sync(app.name(), &target, &format!("HomeStation rollback: {why}"))
            .await
            .map_err(|source| Error::Sync {
                what: "writing the rollback".into(),
                source,
            })?;
        let mut tx = self.pool.begin().await?;
        let event = events::deployment(DeploymentStatus::RolledBack, app, revision, Some(&reason));
        store::move_to(
            &mut tx,
            bad,
            DeploymentStatus::RolledBack,
            Some(&reason),
            event,
        )
        .await?;
        let rollback = NewDeployment {
            namespace: app.namespace(),
            app: app.name(),
            commit: &target,
            sync_requested: true,
            reason: Some("rollback"),
            rollback_of: Some(bad),
            ..Default::default()
        };
        store::insert(&mut *tx, &rollback).await?;
        tx.commit().await?;
        self.outbox.notify_one();
        self.metrics.ended(DeploymentStatus::RolledBack);
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
                tracing::warn!(error = %service_kit::service::error_chain(&e), "checking health deadlines failed");
            }
        }
    }

    /// One pass of [`Watcher::check_deadlines`].
    pub async fn deadlines_passed(&self) -> Result<usize, Error> {
        let late = store::late(&self.pool, self.health_deadline).await?;
        for store::Late {
            id,
            app: name,
            commit,
        } in &late
        {
            let app = self
                .applications
                .get(name)
                .await
                .map_err(|source| Error::Argo {
                    what: format!("reading {name}"),
                    source,
                })?;
            let why = format!(
                "not Healthy {} s after the sync of {commit}",
                self.health_deadline.as_secs()
            );
            let mut tx = self.pool.begin().await?;
            store::move_to(&mut tx, *id, DeploymentStatus::Degraded, Some(&why), None).await?;
            tx.commit().await?;
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
                            tracing::warn!(app = app.name(), error = %service_kit::service::error_chain(&e), "recording an Application change failed");
                        }
                    }
                    Some(Err(e)) => tracing::warn!(error = %e, "watching Applications failed; resuming"),
                    None => return Ok(()),
                }
            }
        }
    }
}

//! The deployer's work on request: a verified push becomes a sync of each Application whose sources it
//! changed, and an operator's sync or rollback becomes one; each is recorded as a deployment (the watcher
//! then follows it).

use std::sync::Arc;

use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use kube::api::{Api, ListParams};
use service_kit::ApiError;
use sqlx::PgPool;

use crate::argo::Application;
use crate::domain::WebhookOutcome;
use crate::store::{self, NewDeployment};
use crate::webhook::{self, WebhookError, normalize_repository};
use crate::{Repository, mapping, sync};

pub struct Deployer {
    pub pool: PgPool,
    pub applications: Api<Application>,
    pub syncer: sync::Syncer,
    pub repositories: Vec<Repository>,
}

pub type AppState = Arc<Deployer>;

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        match e {
            WebhookError::BadSignature => ApiError::Unauthorized(e.to_string()),
            _ => ApiError::BadRequest {
                field: None,
                message: e.to_string(),
            },
        }
    }
}

impl Deployer {
    /// A push webhook, received at `received`: parsed, matched to a configured repository, verified with
    /// its secret, recorded once (a replayed delivery does nothing), then each affected Application is
    /// asked to sync to the pushed commit.
    pub async fn deploy_push(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        received: DateTime<Utc>,
    ) -> Result<WebhookOutcome, ApiError> {
        let provider = webhook::provider(headers)?;
        let push = match webhook::parse(provider, headers, body) {
            // Answered as handled: the provider would otherwise show the delivery as failed and retry it.
            Err(WebhookError::NotABranch) => {
                return Ok(WebhookOutcome::ignored(
                    WebhookError::NotABranch.to_string(),
                ));
            }
            other => other?,
        };
        let urls: Vec<String> = push
            .repository_urls
            .iter()
            .map(|u| normalize_repository(u))
            .collect();
        let repository = self
            .repositories
            .iter()
            .find(|r| urls.contains(&normalize_repository(&r.url)))
            .ok_or_else(|| ApiError::BadRequest {
                field: None,
                message: format!(
                    "unknown repository {}: add it under `repositories` in the deployer's config",
                    push.repository_urls
                        .first()
                        .map(String::as_str)
                        .unwrap_or("(none)")
                ),
            })?;
        webhook::verify(provider, headers, body, &repository.secret)?;
        let mut outcome = WebhookOutcome {
            delivery: push.delivery.clone(),
            commit: push.commit.clone(),
            replayed: false,
            synced: Vec::new(),
            failed: Vec::new(),
            ignored: None,
        };
        if !store::first_delivery(&self.pool, provider.as_str(), &push.delivery, &push.commit)
            .await?
        {
            tracing::info!(delivery = %push.delivery, "replayed webhook delivery ignored");
            outcome.replayed = true;
            return Ok(outcome);
        }
        let apps = self
            .applications
            .list(&ListParams::default())
            .await
            .map_err(|e| ApiError::Unavailable(format!("listing Argo CD Applications: {e}")))?
            .items;
        let committed_at = push
            .committed_at
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.to_utc());
        for app in mapping::affected(&push, &apps) {
            let name = format!("{}/{}", app.namespace(), app.name());
            let reason = format!(
                "push {} to {} ({} delivery {})",
                &push.commit,
                push.branch,
                provider.as_str(),
                push.delivery
            );
            let failure = self
                .syncer
                .sync(app.name(), &push.commit, &reason)
                .await
                .err()
                .map(|e| format!("writing the sync operation: {e}"));
            let deployment = NewDeployment {
                namespace: app.namespace(),
                app: app.name(),
                commit: &push.commit,
                delivery: Some(&push.delivery),
                committed_at,
                webhook_at: Some(received),
                sync_requested: true,
                failed: failure.is_some(),
                reason: failure.as_deref(),
                rollback_of: None,
            };
            store::insert(&self.pool, &deployment).await?;
            match failure {
                None => outcome.synced.push(name),
                Some(f) => outcome.failed.push(format!("{name}: {f}")),
            }
        }
        tracing::info!(delivery = %push.delivery, commit = %push.commit, synced = ?outcome.synced, failed = ?outcome.failed, "push handled");
        Ok(outcome)
    }

    /// The Application `app`, or a 404 naming it.
    pub async fn application(&self, app: &str) -> Result<Application, ApiError> {
        self.applications
            .get_opt(app)
            .await
            .map_err(|e| ApiError::Unavailable(format!("reading Application {app}: {e}")))?
            .ok_or_else(|| ApiError::NotFound(format!("no Argo CD Application {app}")))
    }

    /// Asks Argo CD to sync `app` to `revision` now and records the deployment (a rollback keeps its
    /// reason); returns the deployment's id.
    pub async fn request(
        &self,
        app: &Application,
        revision: &str,
        reason: &str,
        rollback: bool,
    ) -> Result<uuid::Uuid, ApiError> {
        self.syncer
            .sync(app.name(), revision, reason)
            .await
            .map_err(|e| ApiError::Unavailable(format!("writing the sync operation: {e}")))?;
        let deployment = NewDeployment {
            namespace: app.namespace(),
            app: app.name(),
            commit: revision,
            sync_requested: true,
            reason: rollback.then_some(reason),
            ..Default::default()
        };
        Ok(store::insert(&self.pool, &deployment).await?.id)
    }
}

//! Asking Argo CD to sync an Application to a revision, one of two ways: a merge patch of its `.operation`
//! (what `argocd app sync` writes) through the Kubernetes API, or Argo CD's own REST API
//! (`POST /api/v1/applications/{name}/sync`) when `argocd_api` is configured. Conflicts and server errors
//! are retried with backoff; anything else is the caller's to report.

use std::future::Future;
use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::argo::Application;

pub const FIELD_MANAGER: &str = "homestation-deployer";
const ATTEMPTS: u32 = 4;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("{0}")]
    Kube(#[from] kube::Error),
    #[error("Argo CD API: {reason}")]
    Rest {
        /// The HTTP status Argo CD answered; None when it could not be reached.
        status: Option<u16>,
        reason: String,
    },
}

impl SyncError {
    fn retryable(&self) -> bool {
        match self {
            SyncError::Kube(kube::Error::Api(status)) => status.code == 409 || status.code >= 500,
            SyncError::Kube(kube::Error::HyperError(_) | kube::Error::Service(_)) => true,
            SyncError::Kube(_) => false,
            SyncError::Rest { status, .. } => status.is_none_or(|s| s == 409 || s >= 500),
        }
    }
}

async fn with_retries<F, Fut>(app: &str, mut attempt: F) -> Result<(), SyncError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), SyncError>>,
{
    let mut delay = Duration::from_millis(100);
    for n in 1..=ATTEMPTS {
        match attempt().await {
            Ok(()) => return Ok(()),
            Err(e) if n < ATTEMPTS && e.retryable() => {
                tracing::warn!(app, attempt = n, error = %e, "asking for a sync failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => return Err(e),
        }
    }
    unreachable!("the last attempt returns")
}

/// Where sync requests go.
#[derive(Clone)]
pub enum Syncer {
    Kube(Box<Api<Application>>),
    Rest {
        http: reqwest::Client,
        /// Argo CD's server, `https://argocd.lab`.
        url: String,
        /// An Argo CD API token (`argocd account generate-token`).
        token: SecretString,
    },
}

impl Syncer {
    /// Asks for a sync of `app` to `revision`; `reason` shows in Argo CD's UI.
    pub async fn sync(&self, app: &str, revision: &str, reason: &str) -> Result<(), SyncError> {
        match self {
            Syncer::Kube(api) => request_sync(api.as_ref(), app, revision, reason).await,
            Syncer::Rest { http, url, token } => {
                let body = json!({ "name": app, "revision": revision, "prune": false,
                                   "infos": [{ "name": "Reason", "value": reason }] });
                with_retries(app, || async {
                    let answer = http
                        .post(format!(
                            "{}/api/v1/applications/{app}/sync",
                            url.trim_end_matches('/')
                        ))
                        .bearer_auth(token.expose_secret())
                        .json(&body)
                        .send()
                        .await
                        .map_err(|e| SyncError::Rest {
                            status: None,
                            reason: e.to_string(),
                        })?;
                    let status = answer.status();
                    if status.is_success() {
                        return Ok(());
                    }
                    let text = answer.text().await.unwrap_or_default();
                    Err(SyncError::Rest {
                        status: Some(status.as_u16()),
                        reason: format!("answered {}: {}", status.as_u16(), text.trim()),
                    })
                })
                .await
            }
        }
    }
}

/// Writes a sync operation for `revision` on `app` through the Kubernetes API.
pub async fn request_sync(
    api: &Api<Application>,
    app: &str,
    revision: &str,
    reason: &str,
) -> Result<(), SyncError> {
    let patch = json!({
        "metadata": { "annotations": { "argocd.argoproj.io/refresh": "normal" } },
        "operation": {
            "initiatedBy": { "username": FIELD_MANAGER },
            "info": [{ "name": "Reason", "value": reason }],
            "sync": { "revision": revision }
        }
    });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    with_retries(app, || async {
        api.patch(app, &params, &Patch::Merge(&patch))
            .await
            .map(drop)
            .map_err(SyncError::from)
    })
    .await
}

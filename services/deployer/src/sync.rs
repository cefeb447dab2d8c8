//! Asking Argo CD to sync an Application to a revision: a merge patch of its `.operation` (what `argocd app
//! sync` writes) and a refresh annotation, through the Kubernetes API. Conflicts and server errors are
//! retried with backoff; anything else is the caller's to report.

use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::argo::Application;

pub const FIELD_MANAGER: &str = "homestation-deployer";
const ATTEMPTS: u32 = 4;

fn retryable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(status) => status.code == 409 || status.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// Writes a sync operation for `revision` on `app`; `reason` shows in Argo CD's UI.
pub async fn request_sync(
    api: &Api<Application>,
    app: &str,
    revision: &str,
    reason: &str,
) -> Result<(), kube::Error> {
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
    let mut delay = Duration::from_millis(100);
    for attempt in 1..=ATTEMPTS {
        match api.patch(app, &params, &Patch::Merge(&patch)).await {
            Ok(_) => return Ok(()),
            Err(e) if attempt < ATTEMPTS && retryable(&e) => {
                tracing::warn!(app, attempt, error = %e, "writing the sync operation failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => return Err(e),
        }
    }
    unreachable!("the last attempt returns")
}

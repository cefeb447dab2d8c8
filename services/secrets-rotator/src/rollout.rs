//! Rolling a Deployment when its secret changes: the pod template gets an annotation with the new version
//! (a merge patch through kube-rs), so Kubernetes replaces the pods one by one and the new ones read it.

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

/// The pod-template annotation that rolls a Deployment when its secret changes.
pub const ANNOTATION_PREFIX: &str = "homestation.io/secret-";

pub const FIELD_MANAGER: &str = "homestation-secrets-rotator";

/// Sets `homestation.io/secret-<policy>: <version>` on the Deployment's pod template.
pub async fn annotate(
    client: kube::Client,
    namespace: &str,
    name: &str,
    policy: &str,
    version: u64,
) -> Result<(), kube::Error> {
    let deployments: Api<Deployment> = Api::namespaced(client, namespace);
    let patch = json!({
        "spec": { "template": { "metadata": { "annotations": {
            format!("{ANNOTATION_PREFIX}{policy}"): version.to_string()
        } } } }
    });
    deployments
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Merge(&patch),
        )
        .await
        .map(drop)
}

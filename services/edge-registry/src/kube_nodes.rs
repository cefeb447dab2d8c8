//! The Kubernetes side of enrolment: once an enrolled node registers as a Node, its labels and taints are applied;
//! while it is offline it is cordoned (if configured). A level-triggered loop compares what the database wants
//! with what the Node shows, so an API error only delays the change to the next tick.
//!
//! A Node is touched only if its addresses include the tailnet IP the node enrolled with: an enrolment
//! that merely borrows another machine's name (the control plane's, a worker's) changes nothing there.
//!
//! A removed node's Node is cordoned, drained through the Eviction API (so PodDisruptionBudgets hold: a
//! refused eviction is tried again next tick) and deleted once only DaemonSet and mirror pods are left.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use kube::api::{Api, DeleteParams, EvictParams, ListParams, Patch, PatchParams};
use serde::Deserialize;
use service_kit::Shutdown;
use sqlx::types::Json;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::store;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubeSettings {
    /// Talk to the cluster (in-cluster service account, or the local kubeconfig).
    pub enabled: bool,
    /// Cordon a node while it is offline, so no new pods are scheduled onto it.
    pub cordon_offline: bool,
    pub reconcile_interval_secs: u64,
}

impl Default for KubeSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            cordon_offline: true,
            reconcile_interval_secs: 10,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// Nodes whose Node object may need a change.
struct Pending {
    id: Uuid,
    name: String,
    tailnet_ip: String,
    labels: BTreeMap<String, String>,
    taints: Vec<String>,
    labeled: bool,
    offline: bool,
    cordoned_by_us: bool,
    removing: bool,
}

/// What one reconcile did, for logs and tests.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub labeled: Vec<String>,
    pub cordoned: Vec<String>,
    pub uncordoned: Vec<String>,
    pub not_registered: Vec<String>,
    /// A Node of that name exists but does not have the enrolled tailnet IP: left untouched.
    pub not_the_enrolled_machine: Vec<String>,
    /// Removed nodes still draining: pods were evicted or an eviction was refused (a PodDisruptionBudget).
    pub draining: Vec<String>,
    /// Removed nodes whose Node is deleted (or never was), and whose row is gone.
    pub removed: Vec<String>,
}

/// Whether the Node is cordoned (by anyone).
fn cordoned(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
}

/// Whether draining must wait for `pod`: not a DaemonSet's or a mirror pod (they go with the Node), and
/// not finished.
fn must_leave(pod: &Pod) -> bool {
    let daemon = pod
        .metadata
        .owner_references
        .as_ref()
        .is_some_and(|o| o.iter().any(|r| r.kind == "DaemonSet"));
    let mirror = pod
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
    let finished = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Succeeded" || p == "Failed");
    !daemon && !mirror && !finished
}

/// Whether the Node reports `ip` among its addresses (K3s sets `node-ip`, the tailnet address, as its
/// InternalIP).
pub fn has_address(node: &Node, ip: &str) -> bool {
    let Ok(wanted) = ip.parse::<std::net::IpAddr>() else {
        return false;
    };
    node.status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .is_some_and(|addresses| {
            addresses
                .iter()
                .any(|a| a.address.parse::<std::net::IpAddr>().ok() == Some(wanted))
        })
}

/// `key[=value]:Effect` → a Kubernetes Taint.
fn taint(raw: &str) -> Option<Taint> {
    let (kv, effect) = raw.rsplit_once(':')?;
    let (key, value) = kv
        .split_once('=')
        .map_or((kv, None), |(k, v)| (k, Some(v.to_owned())));
    Some(Taint {
        key: key.to_owned(),
        value,
        effect: effect.to_owned(),
        time_added: None,
    })
}

pub struct Reconciler {
    client: kube::Client,
    nodes: Api<Node>,
    pool: PgPool,
    cordon_offline: bool,
}

const MANAGER: &str = "homestation-edge-registry";

impl Reconciler {
    pub fn new(client: kube::Client, pool: PgPool, cordon_offline: bool) -> Self {
        Self {
            nodes: Api::all(client.clone()),
            client,
            pool,
            cordon_offline,
        }
    }

    async fn pending(&self) -> sqlx::Result<Vec<Pending>> {
        let rows = sqlx::query(
            "SELECT id, name, tailnet_ip, labels, taints, kube_labeled_at IS NOT NULL AS labeled, state = 'offline' AS offline,
                    kube_cordoned, removing_since IS NOT NULL AS removing
             FROM edge_nodes
             WHERE kube_labeled_at IS NULL OR (state = 'offline') <> kube_cordoned OR removing_since IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Pending {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    tailnet_ip: r.try_get("tailnet_ip")?,
                    labels: r.try_get::<Json<_>, _>("labels")?.0,
                    taints: r.try_get::<Json<_>, _>("taints")?.0,
                    labeled: r.try_get("labeled")?,
                    offline: r.try_get("offline")?,
                    cordoned_by_us: r.try_get("kube_cordoned")?,
                    removing: r.try_get("removing")?,
                })
            })
            .collect()
    }

    /// One pass over the nodes that need something.
    pub async fn reconcile_once(&self) -> Result<Report, Error> {
        let mut report = Report::default();
        for node in self.pending().await? {
            let Some(current) = self.nodes.get_opt(&node.name).await? else {
                if node.removing {
                    store::finish_removal(&self.pool, node.id).await?;
                    report.removed.push(node.name);
                } else {
                    report.not_registered.push(node.name);
                }
                continue;
            };
            if node.removing && !has_address(&current, &node.tailnet_ip) {
                // Not the removed machine's Node: nothing of ours to drain there.
                store::finish_removal(&self.pool, node.id).await?;
                report.removed.push(node.name);
                continue;
            }
            if node.removing {
                if self.drain(&node.name, &current).await? {
                    self.nodes
                        .delete(&node.name, &DeleteParams::default())
                        .await?;
                    store::finish_removal(&self.pool, node.id).await?;
                    tracing::info!(node = %node.name, "removed edge node drained; its Kubernetes node is deleted");
                    report.removed.push(node.name);
                } else {
                    report.draining.push(node.name);
                }
                continue;
            }
            if !has_address(&current, &node.tailnet_ip) {
                tracing::warn!(
                    node = %node.name,
                    tailnet_ip = %node.tailnet_ip,
                    "a Kubernetes node has this edge node's name but not its tailnet address; not touching it"
                );
                report.not_the_enrolled_machine.push(node.name);
                continue;
            }
            if !node.labeled {
                self.label(&node, &current).await?;
                report.labeled.push(node.name.clone());
            }
            let want_cordon = node.offline && self.cordon_offline;
            if want_cordon && !node.cordoned_by_us {
                let already = cordoned(&current);
                if !already {
                    self.set_unschedulable(&node.name, true).await?;
                    report.cordoned.push(node.name.clone());
                }
                // Only a cordon we made is ours to lift later.
                self.mark_cordoned(node.id, !already).await?;
            } else if !node.offline && node.cordoned_by_us {
                self.set_unschedulable(&node.name, false).await?;
                self.mark_cordoned(node.id, false).await?;
                report.uncordoned.push(node.name.clone());
            }
        }
        Ok(report)
    }

    /// Cordons the Node and evicts what must leave it; true once nothing but DaemonSet, mirror and
    /// finished pods is left.
    async fn drain(&self, name: &str, current: &Node) -> Result<bool, Error> {
        if !cordoned(current) {
            self.set_unschedulable(name, true).await?;
        }
        let on_node = ListParams::default().fields(&format!("spec.nodeName={name}"));
        let pods = Api::<Pod>::all(self.client.clone()).list(&on_node).await?;
        let mut left = 0;
        for pod in pods.items.iter().filter(|p| must_leave(p)) {
            left += 1;
            if pod.metadata.deletion_timestamp.is_some() {
                continue; // already on its way out
            }
            let (Some(pod_name), Some(namespace)) = (&pod.metadata.name, &pod.metadata.namespace)
            else {
                continue;
            };
            let pods = Api::<Pod>::namespaced(self.client.clone(), namespace);
            match pods.evict(pod_name, &EvictParams::default()).await {
                Ok(_) => tracing::info!(node = name, pod = %pod_name, %namespace, "evicted"),
                // 429: a PodDisruptionBudget does not allow it now; the next tick asks again.
                Err(kube::Error::Api(status)) if status.code == 429 => {
                    tracing::info!(node = name, pod = %pod_name, %namespace, "eviction refused by a PodDisruptionBudget; trying again next tick")
                }
                Err(kube::Error::Api(status)) if status.code == 404 => left -= 1,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(left == 0)
    }

    async fn label(&self, node: &Pending, current: &Node) -> Result<(), Error> {
        // Keep taints others set; ours replace any with the same key and effect.
        let ours: Vec<Taint> = node.taints.iter().filter_map(|t| taint(t)).collect();
        let mut taints: Vec<Taint> = current
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|t| !ours.iter().any(|o| o.key == t.key && o.effect == t.effect))
            .collect();
        taints.extend(ours);
        let patch = serde_json::json!({
            "metadata": {"labels": node.labels},
            "spec": {"taints": taints},
        });
        self.nodes
            .patch(
                &node.name,
                &PatchParams::apply(MANAGER),
                &Patch::Merge(&patch),
            )
            .await?;
        sqlx::query("UPDATE edge_nodes SET kube_labeled_at = now() WHERE id = $1")
            .bind(node.id)
            .execute(&self.pool)
            .await?;
        tracing::info!(node = %node.name, "labels and taints applied to the Kubernetes node");
        Ok(())
    }

    async fn set_unschedulable(&self, name: &str, on: bool) -> Result<(), Error> {
        let patch = serde_json::json!({"spec": {"unschedulable": on}});
        self.nodes
            .patch(name, &PatchParams::apply(MANAGER), &Patch::Merge(&patch))
            .await?;
        tracing::info!(node = name, cordoned = on, "Kubernetes node cordon changed");
        Ok(())
    }

    async fn mark_cordoned(&self, id: Uuid, ours: bool) -> sqlx::Result<()> {
        sqlx::query("UPDATE edge_nodes SET kube_cordoned = $2 WHERE id = $1")
            .bind(id)
            .bind(ours)
            .execute(&self.pool)
            .await
            .map(drop)
    }

    /// Reconciles every interval until shutdown; failures are logged and retried at the next tick.
    pub async fn run(
        self,
        interval: Duration,
        shutdown: Shutdown,
    ) -> Result<(), std::convert::Infallible> {
        let mut ticker = tokio::time::interval(interval);
        loop {
            tokio::select! {
                _ = shutdown.wait() => return Ok(()),
                _ = ticker.tick() => {}
            }
            match self.reconcile_once().await {
                Ok(report) if report != Report::default() => {
                    tracing::debug!(?report, "kubernetes nodes reconciled")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "reconciling kubernetes nodes failed; retrying next tick")
                }
            }
        }
    }
}

//! Velero as a backup source, through the Kubernetes API (kube-rs): a run creates a `velero.io/v1` Backup
//! and watches it until Velero finishes; what HomeStation stores is the finished Backup object (what was
//! backed up, where Velero put it, when it expires), so the catalog, events, metrics and drills cover Velero
//! like any other source. Velero keeps the data in its own storage location for the Backup's TTL, which is
//! the policy's minimum age and never below 30 days.
//!
//! With `in_cluster_schedule`, the policy also owns a Velero `Schedule` (applied at start), so Velero keeps
//! taking backups on that cron while HomeStation is down.

use std::io::Cursor;
use std::time::{Duration, Instant};

use chrono::Utc;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ByteStream, Opening, Source, SourceError};
use crate::retention::SourceKind;

pub const FIELD_MANAGER: &str = "homestation-backup";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VeleroSettings {
    /// Where Velero runs and its Backup objects live.
    pub namespace: String,
    pub included_namespaces: Vec<String>,
    pub excluded_namespaces: Vec<String>,
    /// Velero's BackupStorageLocation; Velero's default when unset.
    pub storage_location: Option<String>,
    pub snapshot_volumes: Option<bool>,
    /// A cron for a Velero Schedule of this policy's own, run by Velero itself.
    pub in_cluster_schedule: Option<String>,
    /// How long a run waits for Velero to finish.
    pub timeout_secs: u64,
    /// How often the Backup's phase is read while Velero works.
    pub poll_secs: u64,
}

impl Default for VeleroSettings {
    fn default() -> Self {
        Self {
            namespace: "velero".into(),
            included_namespaces: vec!["*".into()],
            excluded_namespaces: Vec::new(),
            storage_location: None,
            snapshot_volumes: None,
            in_cluster_schedule: None,
            timeout_secs: 4 * 3600,
            poll_secs: 10,
        }
    }
}

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("velero.io", "v1", kind), plural)
}

/// A policy's Velero backups.
pub struct Velero {
    backups: Api<DynamicObject>,
    schedules: Api<DynamicObject>,
    policy: String,
    settings: VeleroSettings,
    /// The Backup's TTL: the policy's minimum age (at least 30 days, enforced by the policy).
    ttl: chrono::Duration,
}

impl Velero {
    pub fn new(
        client: kube::Client,
        policy: &str,
        settings: VeleroSettings,
        ttl: chrono::Duration,
    ) -> Self {
        Self {
            backups: Api::namespaced_with(
                client.clone(),
                &settings.namespace,
                &resource("Backup", "backups"),
            ),
            schedules: Api::namespaced_with(
                client,
                &settings.namespace,
                &resource("Schedule", "schedules"),
            ),
            policy: policy.to_owned(),
            settings,
            ttl,
        }
    }

    /// Velero's BackupSpec for this policy; `ttl` as Go prints durations.
    fn backup_spec(&self) -> Value {
        let mut spec = json!({
            "includedNamespaces": self.settings.included_namespaces,
            "ttl": format!("{}h0m0s", self.ttl.num_hours()),
        });
        if !self.settings.excluded_namespaces.is_empty() {
            spec["excludedNamespaces"] = json!(self.settings.excluded_namespaces);
        }
        if let Some(location) = &self.settings.storage_location {
            spec["storageLocation"] = json!(location);
        }
        if let Some(snapshot) = self.settings.snapshot_volumes {
            spec["snapshotVolumes"] = json!(snapshot);
        }
        spec
    }

    fn labels(&self) -> Value {
        json!({ "app.kubernetes.io/managed-by": "homestation", "homestation.io/policy": self.policy })
    }

    /// Names fit Velero's 63-character label values: `hs-<policy>-<UTC time>`.
    fn backup_name(&self) -> String {
        let policy = &self.policy[..self.policy.len().min(44)];
        format!(
            "hs-{}-{}",
            policy.trim_end_matches('-'),
            Utc::now().format("%Y%m%d%H%M%S")
        )
    }

    pub fn schedule_name(&self) -> String {
        format!("hs-{}", self.policy)
    }

    /// Creates or updates (server-side apply) the policy's Velero Schedule, when it has `in_cluster_schedule`.
    pub async fn apply_schedule(&self) -> Result<Option<String>, kube::Error> {
        let Some(cron) = &self.settings.in_cluster_schedule else {
            return Ok(None);
        };
        let name = self.schedule_name();
        let schedule = json!({
            "apiVersion": "velero.io/v1",
            "kind": "Schedule",
            "metadata": { "name": name, "namespace": self.settings.namespace, "labels": self.labels() },
            "spec": { "schedule": cron, "useOwnerReferencesInBackup": false, "template": self.backup_spec() },
        });
        self.schedules
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&schedule),
            )
            .await?;
        Ok(Some(name))
    }

    async fn create_and_watch(&self) -> Result<DynamicObject, SourceError> {
        let name = self.backup_name();
        let what = format!("Velero backup {}/{name}", self.settings.namespace);
        let failed = |reason: String| SourceError::new(&what, reason);
        let mut backup = DynamicObject::new(&name, &resource("Backup", "backups"))
            .within(&self.settings.namespace)
            .data(json!({ "spec": self.backup_spec() }));
        backup.metadata.labels = serde_json::from_value(self.labels()).ok();
        self.backups
            .create(&PostParams::default(), &backup)
            .await
            .map_err(|e| failed(format!("creating it: {e}")))?;
        let deadline = Instant::now() + Duration::from_secs(self.settings.timeout_secs);
        loop {
            let current = self
                .backups
                .get(&name)
                .await
                .map_err(|e| failed(format!("reading its status: {e}")))?;
            let status = &current.data["status"];
            match status["phase"].as_str().unwrap_or("New") {
                "Completed" => return Ok(current),
                phase @ ("Failed" | "PartiallyFailed" | "FailedValidation") => {
                    let mut reasons = vec![format!("Velero says {phase}")];
                    if let Some(r) = status["failureReason"].as_str() {
                        reasons.push(r.to_owned());
                    }
                    if let Some(errors) = status["validationErrors"].as_array() {
                        reasons.extend(errors.iter().filter_map(|e| e.as_str()).map(str::to_owned));
                    }
                    if let Some(n) = status["errors"].as_u64() {
                        reasons.push(format!("{n} errors (`velero backup logs {name}`)"));
                    }
                    return Err(failed(reasons.join("; ")));
                }
                phase if Instant::now() > deadline => {
                    return Err(failed(format!(
                        "still {phase} after {} s; Velero goes on, HomeStation stopped waiting",
                        self.settings.timeout_secs
                    )));
                }
                _ => tokio::time::sleep(Duration::from_secs(self.settings.poll_secs)).await,
            }
        }
    }
}

impl Source for Velero {
    fn kind(&self) -> SourceKind {
        SourceKind::Velero
    }

    fn open(&self) -> Opening<'_> {
        Box::pin(async move {
            let finished = self.create_and_watch().await?;
            let record = serde_json::to_vec_pretty(&finished)
                .map_err(|e| SourceError::new("Velero backup", e))?;
            Ok(Box::new(Cursor::new(record)) as ByteStream)
        })
    }
}

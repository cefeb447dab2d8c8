//! What a deployment is: the states it goes through and its record.
//!
//! `requested → synced → healthy`, or `degraded` (then, once, `rolled_back` with a new deployment of the
//! last healthy revision); `failed` when the sync could not even be asked for.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Where a deployment is; the `deployments.status` column holds its snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum DeploymentStatus {
    /// The sync is asked for; Argo CD has not reported it done.
    Requested,
    /// Argo CD synced the revision; its health is not known yet.
    Synced,
    Healthy,
    Degraded,
    RolledBack,
    /// The sync could not be asked for.
    Failed,
}

impl DeploymentStatus {
    /// Still moving: a sync and a health report are awaited.
    pub fn in_flight(self) -> bool {
        matches!(self, Self::Requested | Self::Synced)
    }

    /// How the deployment ended, for the outcome counter; none while it is in flight.
    pub fn outcome(self) -> Option<&'static str> {
        match self {
            Self::Healthy => Some("healthy"),
            Self::Degraded => Some("degraded"),
            Self::RolledBack => Some("rolled_back"),
            Self::Requested | Self::Synced | Self::Failed => None,
        }
    }
}

/// A deployment and its timeline.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Deployment {
    pub id: Uuid,
    pub namespace: String,
    pub app: String,
    pub commit: String,
    pub delivery: Option<String>,
    pub committed_at: Option<DateTime<Utc>>,
    pub webhook_at: Option<DateTime<Utc>>,
    pub sync_requested_at: Option<DateTime<Utc>>,
    pub synced_at: Option<DateTime<Utc>>,
    pub healthy_at: Option<DateTime<Utc>>,
    pub status: DeploymentStatus,
    pub reason: Option<String>,
    /// The deployment this one rolls back (a rollback is never rolled back itself).
    pub rollback_of: Option<Uuid>,
}

/// What a push did: the Applications it asked to sync and those it could not.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookOutcome {
    pub delivery: String,
    pub commit: String,
    /// A delivery seen before: nothing was done again.
    pub replayed: bool,
    /// The Applications asked to sync, as `namespace/name`.
    pub synced: Vec<String>,
    /// Applications that could not be asked, with the reason.
    pub failed: Vec<String>,
    /// Why nothing was done, for a push that deploys nothing (a tag, a deleted branch).
    pub ignored: Option<String>,
}

impl WebhookOutcome {
    /// A push that deploys nothing, and why.
    pub fn ignored(why: String) -> Self {
        Self {
            delivery: String::new(),
            commit: String::new(),
            replayed: false,
            synced: Vec::new(),
            failed: Vec::new(),
            ignored: Some(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_their_snake_case_names_and_say_how_they_ended() {
        assert_eq!(
            serde_json::to_value(DeploymentStatus::RolledBack).unwrap(),
            "rolled_back"
        );
        assert!(DeploymentStatus::Synced.in_flight());
        assert!(!DeploymentStatus::Failed.in_flight());
        assert_eq!(DeploymentStatus::Degraded.outcome(), Some("degraded"));
        assert_eq!(DeploymentStatus::Requested.outcome(), None);
    }
}

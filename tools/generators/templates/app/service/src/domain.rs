//! What @@crate@@ knows, parsed: the deployments it heard of and how they stood.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use service_kit::ApiError;
use utoipa::ToSchema;

/// How a deployment stood when its event was published; the `status` column holds its snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum HeardStatus {
    Synced,
    Healthy,
    Degraded,
    RolledBack,
}

impl HeardStatus {
    /// The status a bus event reports, and its deployment; `None` for events of other kinds.
    pub fn of(event: &bus::Event) -> Option<(Self, &bus::Deployment)> {
        match event {
            bus::Event::DeploySynced(d) => Some((Self::Synced, d)),
            bus::Event::DeployHealthy(d) => Some((Self::Healthy, d)),
            bus::Event::DeployDegraded(d) => Some((Self::Degraded, d)),
            bus::Event::DeployRolledBack(d) => Some((Self::RolledBack, d)),
            _ => None,
        }
    }
}

/// A deployment heard on the bus.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct DeploymentHeard {
    pub app: String,
    pub revision: String,
    pub status: HeardStatus,
    pub occurred_at: DateTime<Utc>,
}

/// How many rows a list returns: 1 to 500, 50 unless asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(pub i64);

impl Limit {
    pub fn parse(raw: Option<i64>) -> Result<Self, ApiError> {
        match raw.unwrap_or(50) {
            n @ 1..=500 => Ok(Self(n)),
            _ => Err(ApiError::invalid("limit", "must be between 1 and 500")),
        }
    }
}

//! The rotator's own metrics: rotations by outcome, and when each policy last rotated successfully.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use service_kit::metrics::Metrics;

pub mod names {
    pub const ROTATIONS: &str = "homestation_secrets_rotations";
    pub const LAST_SUCCESS: &str = "homestation_secrets_last_rotation_timestamp_seconds";
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub policy: String,
    /// done, rolled_back or failed
    pub outcome: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PolicyLabel {
    pub policy: String,
}

#[derive(Clone)]
pub struct RotatorMetrics {
    rotations: Family<OutcomeLabel, Counter>,
    last_success: Family<PolicyLabel, Gauge<f64, AtomicU64>>,
}

impl RotatorMetrics {
    pub fn new(metrics: &Metrics) -> Self {
        let this = Self {
            rotations: Family::default(),
            last_success: Family::default(),
        };
        metrics.register(
            names::ROTATIONS,
            "Rotations, by outcome",
            this.rotations.clone(),
        );
        metrics.register(
            names::LAST_SUCCESS,
            "When the policy last rotated successfully (Unix time)",
            this.last_success.clone(),
        );
        this
    }

    /// At start: each policy's outcome counters at 0 (so `increase()` sees the first failure) and its
    /// last successful rotation from the audit trail (so a restart does not make every secret look unrotated).
    pub async fn load(&self, pool: &sqlx::PgPool, policies: &[&str]) -> sqlx::Result<()> {
        for policy in policies {
            for outcome in ["done", "rolled_back", "failed"] {
                drop(self.rotations.get_or_create(&OutcomeLabel {
                    policy: (*policy).to_owned(),
                    outcome: outcome.to_owned(),
                }));
            }
        }
        let last: Vec<(String, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
            "SELECT policy, max(finished_at) FROM rotations
             WHERE phase = 'done' AND finished_at IS NOT NULL GROUP BY policy",
        )
        .fetch_all(pool)
        .await?;
        for (policy, at) in last {
            self.last_success
                .get_or_create(&PolicyLabel { policy })
                .set(at.timestamp() as f64);
        }
        Ok(())
    }

    pub fn rotated(&self, policy: &str, outcome: &str) {
        self.rotations
            .get_or_create(&OutcomeLabel {
                policy: policy.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        if outcome == "done" {
            self.last_success
                .get_or_create(&PolicyLabel {
                    policy: policy.to_owned(),
                })
                .set(chrono::Utc::now().timestamp() as f64);
        }
    }
}

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

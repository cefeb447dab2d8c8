//! The deployer's metrics: commit-to-live time and how deployments ended.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

use crate::domain::DeploymentStatus;

pub mod names {
    pub const COMMIT_TO_LIVE: &str = "homestation_deploy_commit_to_live_seconds";
    pub const DEPLOYMENTS: &str = "homestation_deploy_deployments";
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelSet)]
pub struct OutcomeLabel {
    /// healthy, degraded or rolled_back
    pub outcome: &'static str,
}

#[derive(Clone)]
pub struct DeployMetrics {
    pub commit_to_live: Histogram,
    pub deployments: Family<OutcomeLabel, Counter>,
}

impl DeployMetrics {
    pub fn new(metrics: &service_kit::metrics::Metrics) -> Self {
        let this = Self {
            commit_to_live: Histogram::new([
                5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0,
            ]),
            deployments: Family::default(),
        };
        metrics.register(
            names::COMMIT_TO_LIVE,
            "From a commit (or its webhook) to its app being Healthy",
            this.commit_to_live.clone(),
        );
        metrics.register(
            names::DEPLOYMENTS,
            "Deployments, by how they ended",
            this.deployments.clone(),
        );
        // At 0 from the start, so `increase()` sees the first degraded or rolled-back deployment.
        for outcome in ["healthy", "degraded", "rolled_back"] {
            drop(this.deployments.get_or_create(&OutcomeLabel { outcome }));
        }
        this
    }

    /// Counts a deployment that ended (healthy, degraded or rolled back); an in-flight status counts nothing.
    pub fn ended(&self, status: DeploymentStatus) {
        if let Some(outcome) = status.outcome() {
            self.deployments
                .get_or_create(&OutcomeLabel { outcome })
                .inc();
        }
    }

    /// Records how long a deployment took from its commit (or webhook) to Healthy.
    pub fn live_after(&self, seconds: f64) {
        self.commit_to_live.observe(seconds.max(0.0));
    }
}

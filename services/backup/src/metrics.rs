//! The backup service's own metrics: per policy, when it last succeeded, how much and how long, and how runs
//! and drills ended. The last-success times are loaded from the catalog at start, so they survive restarts.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use service_kit::metrics::Metrics;

pub mod names {
    pub const LAST_SUCCESS: &str = "homestation_backup_last_success_timestamp_seconds";
    pub const LAST_BYTES: &str = "homestation_backup_last_bytes";
    pub const LAST_DURATION: &str = "homestation_backup_last_duration_seconds";
    pub const RUNS: &str = "homestation_backup_runs";
    pub const DRILL_LAST_SUCCESS: &str = "homestation_backup_drill_last_success_timestamp_seconds";
    pub const DRILLS: &str = "homestation_backup_drills";
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PolicyLabel {
    pub policy: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub policy: String,
    pub outcome: &'static str,
}

type FloatGauge = Gauge<f64, AtomicU64>;

#[derive(Clone)]
pub struct BackupMetrics {
    last_success: Family<PolicyLabel, FloatGauge>,
    last_bytes: Family<PolicyLabel, Gauge>,
    last_duration: Family<PolicyLabel, FloatGauge>,
    runs: Family<OutcomeLabel, Counter>,
    drill_last_success: Family<PolicyLabel, FloatGauge>,
    drills: Family<OutcomeLabel, Counter>,
}

fn label(policy: &str) -> PolicyLabel {
    PolicyLabel {
        policy: policy.to_owned(),
    }
}

impl BackupMetrics {
    pub fn new(metrics: &Metrics) -> Self {
        let this = Self {
            last_success: Family::default(),
            last_bytes: Family::default(),
            last_duration: Family::default(),
            runs: Family::default(),
            drill_last_success: Family::default(),
            drills: Family::default(),
        };
        metrics.register(
            names::LAST_SUCCESS,
            "When the policy's newest backup succeeded (Unix time)",
            this.last_success.clone(),
        );
        metrics.register(
            names::LAST_BYTES,
            "Bytes (before compression) of the policy's newest backup",
            this.last_bytes.clone(),
        );
        metrics.register(
            names::LAST_DURATION,
            "How long the policy's newest successful run took",
            this.last_duration.clone(),
        );
        metrics.register(
            names::RUNS,
            "Backup runs (each try), by outcome",
            this.runs.clone(),
        );
        metrics.register(
            names::DRILL_LAST_SUCCESS,
            "When the policy's newest restore drill passed (Unix time)",
            this.drill_last_success.clone(),
        );
        metrics.register(
            names::DRILLS,
            "Restore drills, by outcome",
            this.drills.clone(),
        );
        this
    }

    /// A policy's outcome counters at 0 from the start: `increase(…{outcome="failed"}[…])` then sees the
    /// first failure (a series that appears at 1 has no increase), and dashboards show every policy.
    pub fn known(&self, policy: &str) {
        for outcome in ["succeeded", "failed"] {
            drop(self.runs.get_or_create(&OutcomeLabel {
                policy: policy.to_owned(),
                outcome,
            }));
        }
        for outcome in ["passed", "failed"] {
            drop(self.drills.get_or_create(&OutcomeLabel {
                policy: policy.to_owned(),
                outcome,
            }));
        }
    }

    pub fn succeeded(
        &self,
        policy: &str,
        at: chrono::DateTime<chrono::Utc>,
        bytes: u64,
        seconds: f64,
    ) {
        self.restore_last_success(policy, at, bytes);
        self.last_duration
            .get_or_create(&label(policy))
            .set(seconds);
        self.runs
            .get_or_create(&OutcomeLabel {
                policy: policy.to_owned(),
                outcome: "succeeded",
            })
            .inc();
    }

    /// At start, from the catalog: the newest success without counting a run.
    pub fn restore_last_success(
        &self,
        policy: &str,
        at: chrono::DateTime<chrono::Utc>,
        bytes: u64,
    ) {
        self.last_success
            .get_or_create(&label(policy))
            .set(at.timestamp() as f64);
        self.last_bytes
            .get_or_create(&label(policy))
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    pub fn failed(&self, policy: &str) {
        self.runs
            .get_or_create(&OutcomeLabel {
                policy: policy.to_owned(),
                outcome: "failed",
            })
            .inc();
    }

    /// At start, from the catalog: the newest passed drill without counting one.
    pub fn restore_last_drill(&self, policy: &str, at: chrono::DateTime<chrono::Utc>) {
        self.drill_last_success
            .get_or_create(&label(policy))
            .set(at.timestamp() as f64);
    }

    pub fn drilled(&self, policy: &str, passed: bool, at: chrono::DateTime<chrono::Utc>) {
        if passed {
            self.restore_last_drill(policy, at);
        }
        self.drills
            .get_or_create(&OutcomeLabel {
                policy: policy.to_owned(),
                outcome: if passed { "passed" } else { "failed" },
            })
            .inc();
    }
}

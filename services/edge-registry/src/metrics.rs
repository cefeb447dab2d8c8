//! edge-registry's metrics: heartbeats by outcome, nodes by liveness state, heartbeat lag.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use service_kit::metrics::Metrics;

pub mod names {
    pub const HEARTBEATS: &str = "homestation_edge_heartbeats";
    pub const NODES: &str = "homestation_edge_nodes";
    pub const HEARTBEAT_LAG: &str = "homestation_edge_heartbeat_lag_seconds";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct StateLabel {
    /// online, stale or offline
    pub state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// accepted, unknown_node or malformed
    pub outcome: &'static str,
}

#[derive(Clone)]
pub struct FleetMetrics {
    pub heartbeats: Family<OutcomeLabel, Counter>,
    pub nodes: Family<StateLabel, Gauge>,
    pub lag: Histogram,
}

impl FleetMetrics {
    pub fn new(metrics: &Metrics) -> Self {
        let this = Self {
            heartbeats: Family::default(),
            nodes: Family::default(),
            lag: Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
            ]),
        };
        metrics.register(
            names::HEARTBEATS,
            "Heartbeats received, by outcome",
            this.heartbeats.clone(),
        );
        metrics.register(
            names::NODES,
            "Enrolled edge nodes by liveness state",
            this.nodes.clone(),
        );
        metrics.register(
            names::HEARTBEAT_LAG,
            "Time from a heartbeat's sending to its receipt",
            this.lag.clone(),
        );
        for outcome in ["accepted", "unknown_node", "malformed"] {
            drop(this.heartbeats.get_or_create(&OutcomeLabel { outcome }));
        }
        this
    }

    pub fn count(&self, outcome: &'static str) {
        self.heartbeats
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }
}

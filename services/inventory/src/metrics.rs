//! Inventory's own metrics: how many nodes and services are in each health state, and how long each took
//! to recover (the time from its first unhealthy transition to healthy again: the recover-time SLO), and
//! the edge fleet's GPU facts.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use service_kit::Shutdown;
use service_kit::metrics::Metrics;
use sqlx::PgPool;

use crate::domain::{HardwareFacts, Health, NodeKind};

pub mod names {
    pub const NODES: &str = "homestation_inventory_nodes";
    pub const SERVICES: &str = "homestation_inventory_services";
    pub const SERVICE_RECOVERY: &str = "homestation_inventory_service_recovery_seconds";
    pub const NODE_RECOVERY: &str = "homestation_inventory_node_recovery_seconds";
    pub const EDGE_NODE_INFO: &str = "homestation_inventory_edge_node_info";
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct NodeLabels {
    pub kind: &'static str,
    pub health: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct HealthLabel {
    pub health: &'static str,
}

/// An edge node's GPU facts as labels of a constant 1 (an info metric, one series per edge node).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct EdgeNodeLabels {
    pub node: String,
    pub health: String,
    pub model: String,
    pub jetpack: String,
    pub cuda: String,
    pub gpu: String,
    pub memory_bytes: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ServiceLabels {
    pub namespace: String,
    pub name: String,
}

/// Recovery buckets around the 2-minute promise: seconds up to an hour.
fn recovery_histogram() -> Histogram {
    Histogram::new([1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0])
}

#[derive(Clone)]
pub struct InventoryMetrics {
    nodes: Family<NodeLabels, Gauge>,
    services: Family<HealthLabel, Gauge>,
    service_recovery: Family<ServiceLabels, Histogram>,
    node_recovery: Histogram,
    edge_nodes: Family<EdgeNodeLabels, Gauge>,
    /// Wakes [`InventoryMetrics::refresh_every`] when an applied event moved a health.
    moved: std::sync::Arc<tokio::sync::Notify>,
}

/// A recovery seen while applying an event, observed once its transaction commits.
pub enum Recovery {
    Service {
        namespace: String,
        name: String,
        after: Duration,
    },
    Node {
        after: Duration,
    },
}

impl InventoryMetrics {
    pub fn new(metrics: &Metrics) -> Self {
        let this = Self {
            nodes: Family::default(),
            services: Family::default(),
            service_recovery: Family::new_with_constructor(recovery_histogram),
            node_recovery: recovery_histogram(),
            edge_nodes: Family::default(),
            moved: std::sync::Arc::default(),
        };
        metrics.register(
            names::NODES,
            "Nodes in inventory by kind and health",
            this.nodes.clone(),
        );
        metrics.register(
            names::SERVICES,
            "Services in inventory by health",
            this.services.clone(),
        );
        metrics.register(
            names::SERVICE_RECOVERY,
            "Time from a service's first unhealthy transition to healthy again",
            this.service_recovery.clone(),
        );
        metrics.register(
            names::NODE_RECOVERY,
            "Time from a node's first unhealthy transition to healthy again",
            this.node_recovery.clone(),
        );
        metrics.register(
            names::EDGE_NODE_INFO,
            "Edge nodes with their health and GPU facts (JetPack, CUDA, GPU) as labels",
            this.edge_nodes.clone(),
        );
        this
    }

    pub fn observe(&self, recovery: &Recovery) {
        match recovery {
            Recovery::Service {
                namespace,
                name,
                after,
            } => self
                .service_recovery
                .get_or_create(&ServiceLabels {
                    namespace: namespace.clone(),
                    name: name.clone(),
                })
                .observe(after.as_secs_f64()),
            Recovery::Node { after } => self.node_recovery.observe(after.as_secs_f64()),
        }
    }

    /// Sets the health gauges from the database (every combination, zeros included, so a state that
    /// empties shows 0 rather than vanishing).
    pub async fn refresh(&self, pool: &PgPool) -> sqlx::Result<()> {
        let nodes: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT kind, health, count(*) FROM nodes GROUP BY kind, health")
                .fetch_all(pool)
                .await?;
        let services: Vec<(String, i64)> =
            sqlx::query_as("SELECT health, count(*) FROM services GROUP BY health")
                .fetch_all(pool)
                .await?;
        let edge: Vec<(String, String, Option<sqlx::types::Json<HardwareFacts>>)> =
            sqlx::query_as("SELECT name, health, gpu FROM nodes WHERE kind = 'edge' ORDER BY name")
                .fetch_all(pool)
                .await?;
        // Cleared and set again: a removed node's series goes with it.
        self.edge_nodes.clear();
        for (node, health, facts) in edge {
            let facts = facts.map(|f| f.0);
            let fact = |get: fn(&HardwareFacts) -> Option<&String>| {
                facts.as_ref().and_then(get).cloned().unwrap_or_default()
            };
            self.edge_nodes
                .get_or_create(&EdgeNodeLabels {
                    node,
                    health,
                    model: facts.as_ref().map(|f| f.model.clone()).unwrap_or_default(),
                    jetpack: fact(|f| f.jetpack.as_ref()),
                    cuda: fact(|f| f.cuda.as_ref()),
                    gpu: fact(|f| f.gpu_name.as_ref()),
                    memory_bytes: facts
                        .as_ref()
                        .map(|f| f.memory_bytes.to_string())
                        .unwrap_or_default(),
                })
                .set(1);
        }
        for kind in NodeKind::ALL {
            for health in Health::ALL {
                let count = nodes
                    .iter()
                    .find(|(k, h, _)| k == kind.as_str() && h == health.as_str())
                    .map_or(0, |(_, _, n)| *n);
                self.nodes
                    .get_or_create(&NodeLabels {
                        kind: kind.as_str(),
                        health: health.as_str(),
                    })
                    .set(count);
            }
        }
        // Every known service has its recovery histogram from the start (count 0), so a dashboard lists it.
        let known: Vec<(String, String)> = sqlx::query_as("SELECT namespace, name FROM services")
            .fetch_all(pool)
            .await?;
        for (namespace, name) in known {
            drop(
                self.service_recovery
                    .get_or_create(&ServiceLabels { namespace, name }),
            );
        }
        for health in Health::ALL {
            let count = services
                .iter()
                .find(|(h, _)| h == health.as_str())
                .map_or(0, |(_, n)| *n);
            self.services
                .get_or_create(&HealthLabel {
                    health: health.as_str(),
                })
                .set(count);
        }
        Ok(())
    }

    /// A node's or a service's health changed: the gauges refresh now rather than at the next tick. Off the
    /// consumer's path, and a burst of changes (an edge site going offline) makes one refresh, not one each.
    pub fn health_moved(&self) {
        self.moved.notify_one();
    }

    /// Keeps the health gauges current until shutdown: every `every`, and when a health moved.
    pub async fn refresh_every(
        self,
        pool: PgPool,
        every: Duration,
        shutdown: Shutdown,
    ) -> Result<(), std::convert::Infallible> {
        let mut tick = tokio::time::interval(every);
        while !shutdown.is_triggered() {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.moved.notified() => {}
                _ = shutdown.wait() => continue,
            }
            if let Err(e) = self.refresh(&pool).await {
                tracing::warn!(error = %e, "refreshing the health gauges failed; retrying");
            }
        }
        Ok(())
    }
}
